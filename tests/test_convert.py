"""``tilerun convert`` / ``tilerun.export``: converted models match the original in tilerun and ORT.

Round trip on every light model (seeded random weights, final Softmax dropped
so the values compared are not saturated): the converted model passes the
onnx checker, targets ``TARGET_OPSET``, has no Dropout, Identity or
Conv→BatchNormalization pair left, and runs in ONNX Runtime and in tilerun with outputs equal to
ONNX Runtime's on the original (rtol 1e-3, atol 1e-3 * max(1, max|ref|)).
"""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import tilerun
from tilerun.cli import main
from tilerun.export import TARGET_OPSET, convert_model
from tilerun.load import model_opset
from tilerun.models import LIGHT_MODELS, light_model_path, random_inputs, randomize_weights, without_final_softmax

ort = pytest.importorskip("onnxruntime")


def ort_run(model, inputs):
    """Outputs of ONNX Runtime on one thread."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    s = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return s.run(None, {i.name: x for i, x in zip(s.get_inputs(), inputs)})


def assert_close(got, ref):
    """Same shape and values within rtol 1e-3, atol 1e-3 * max(1, max|ref|); returns the max abs error."""
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=1e-3, atol=1e-3 * max(1.0, float(np.abs(ref).max())))
    return float(np.abs(got.astype(np.float64) - ref).max())


def conv_batchnorm_pairs(model):
    """BatchNormalization nodes fed directly by a Conv (the folding pass removes every one)."""
    produced_by = {o: n.op_type for n in model.graph.node for o in n.output}
    return [n.name for n in model.graph.node
            if n.op_type == "BatchNormalization" and produced_by.get(n.input[0]) == "Conv"]


@pytest.mark.slow
@pytest.mark.parametrize("name", LIGHT_MODELS)
def test_round_trip_light_model(name):
    model = without_final_softmax(randomize_weights(light_model_path(name), seed=1))
    converted = convert_model(model)
    onnx.checker.check_model(converted)
    assert model_opset(converted) == TARGET_OPSET
    assert not {"Dropout", "Identity"} & {n.op_type for n in converted.graph.node}
    assert not conv_batchnorm_pairs(converted), "a BatchNormalization after a Conv was not folded"
    inputs = random_inputs(model, seed=2)
    ref = ort_run(model, inputs)[0]
    assert np.isfinite(ref).all()
    err_ort = assert_close(ort_run(converted, inputs)[0], ref)
    with tilerun.compile_model(converted) as eng:
        err_tilerun = assert_close(eng.run(inputs)[0], ref)
    print(f"{name}: max abs error converted-in-ORT {err_ort:.3g}, converted-in-tilerun {err_tilerun:.3g}")


def _passes_model():
    """x → Identity → Conv → BatchNorm → Dropout → Add(c1 + c2 folded) → y, batch dim dynamic."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array((1 + 0.1 * rng.standard_normal(4)).astype(np.float32), "s"),
             numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "b"),
             numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "m"),
             numpy_helper.from_array((0.5 + rng.random(4)).astype(np.float32), "v"),
             numpy_helper.from_array(rng.standard_normal((1, 4, 1, 1)).astype(np.float32), "c1"),
             numpy_helper.from_array(rng.standard_normal((1, 4, 1, 1)).astype(np.float32), "c2")]
    nodes = [helper.make_node("Identity", ["x"], ["xi"]),
             helper.make_node("Conv", ["xi", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["bn"]),
             helper.make_node("Dropout", ["bn"], ["d"]),
             helper.make_node("Add", ["c1", "c2"], ["cc"]),
             helper.make_node("Add", ["d", "cc"], ["y"])]
    g = helper.make_graph(nodes, "passes", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 6, 6])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 6, 6])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 12)])


@pytest.mark.parametrize("dynamic", [False, True])
def test_passes_expressed_in_onnx(dynamic):
    model = _passes_model()
    converted = convert_model(model, batch_size=2, dynamic_batch=dynamic)
    onnx.checker.check_model(converted)
    ops = [n.op_type for n in converted.graph.node]
    # Identity and Dropout gone, BatchNorm folded into the Conv, c1 + c2 folded (and maybe the Add too)
    assert ops[0] == "Conv" and set(ops) <= {"Conv", "Add"} and len(ops) <= 2, ops
    assert all(len(n.input) == 2 for n in converted.graph.node if n.op_type == "Add")
    dims = converted.graph.input[0].type.tensor_type.shape.dim
    assert (dims[0].dim_param == "N") if dynamic else (dims[0].dim_value == 2)
    x = np.random.default_rng(1).standard_normal((2, 3, 6, 6)).astype(np.float32)
    # ORT is the oracle: onnx's reference BatchNormalization-9 takes the momentum default as training mode.
    ref = ort_run(model, [x])[0]
    np.testing.assert_allclose(ReferenceEvaluator(converted).run(None, {"x": x})[0], ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(ort_run(converted, [x])[0], ref, rtol=1e-4, atol=1e-4)


def test_dynamic_batch_light_model_runs_at_any_batch():
    # shufflenet's channel shuffles are Reshapes to constant shapes starting with batch 1.
    model = without_final_softmax(randomize_weights(light_model_path("shufflenet"), seed=1))
    converted = convert_model(model, dynamic_batch=True)
    assert converted.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    x = np.random.default_rng(3).standard_normal((3, 3, 224, 224)).astype(np.float32)
    ref = np.concatenate([ort_run(model, [x[i:i + 1]])[0] for i in range(3)])
    assert_close(ort_run(converted, [x])[0], ref)
    with tilerun.compile_model(converted, batch_size=3) as eng:
        assert_close(eng.run([x])[0], ref)


def test_cli_convert_light_model_file(tmp_path, capsys):
    model = without_final_softmax(randomize_weights(light_model_path("squeezenet"), seed=1))
    src, dst = tmp_path / "squeezenet.onnx", tmp_path / "out.onnx"
    onnx.save(model, str(src))
    assert main(["convert", str(src), "-o", str(dst), "--batch-size", "2", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert f"-> {TARGET_OPSET}" in out and "max abs error" in out and "PASS" in out and "at batch" not in out
    converted = onnx.load(str(dst))
    assert converted.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 2


def test_opset_out_of_range_is_clear():
    with pytest.raises(tilerun.ArgumentError, match="target opset"):
        convert_model(_passes_model(), opset=99)


def test_default_opset_never_converts_down():
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    old, new = (helper.make_model(g, opset_imports=[helper.make_opsetid("", v)]) for v in (9, 21))
    old.ir_version = 4
    up = convert_model(old)
    assert model_opset(up) == TARGET_OPSET and up.ir_version >= helper.find_min_ir_version_for(up.opset_import)
    assert model_opset(convert_model(new)) == 21
    down = convert_model(new, opset=TARGET_OPSET)
    x = np.linspace(-1, 1, 4, dtype=np.float32).reshape(1, 4)
    assert model_opset(down) == TARGET_OPSET
    np.testing.assert_array_equal(ReferenceEvaluator(down).run(None, {"x": x})[0], np.maximum(x, 0))


def test_batchnorm_not_after_conv_becomes_mul_add():
    # tilerun merges it into its internal ChannelAffine op; the export writes the ONNX ops it stands for.
    rng = np.random.default_rng(2)
    params = [numpy_helper.from_array(a.astype(np.float32), n) for n, a in
              (("s", 1 + 0.1 * rng.standard_normal(3)), ("b", rng.standard_normal(3)),
               ("m", rng.standard_normal(3)), ("v", 0.5 + rng.random(3)))]
    g = helper.make_graph([helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["n"]),
                           helper.make_node("Relu", ["n"], ["y"])], "bn",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 5, 5])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 5, 5])], params)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 15)])
    converted = convert_model(model)
    onnx.checker.check_model(converted)
    assert [n.op_type for n in converted.graph.node] == ["Mul", "Add", "Relu"]
    x = rng.standard_normal((1, 3, 5, 5)).astype(np.float32)
    ref = ort_run(model, [x])[0]
    np.testing.assert_allclose(ort_run(converted, [x])[0], ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ReferenceEvaluator(converted).run(None, {"x": x})[0], ref, rtol=1e-5, atol=1e-5)


def _scalar_constants_model():
    """x → Gather(x, 0-d index) → Unsqueeze → Gemm → Mul(0-d scale): ranks that only hold with 0-d initializers.

    With a ``[1]`` index, Gather keeps the axis and Gemm gets a rank-3 input (the
    error ONNX Runtime gave on a converted ``nn.TransformerEncoder``).
    """
    rng = np.random.default_rng(4)
    inits = [numpy_helper.from_array(np.array(2, np.int64), "idx"),
             numpy_helper.from_array(np.array([0], np.int64), "axes"),
             numpy_helper.from_array(rng.standard_normal((8, 5)).astype(np.float32), "w"),
             numpy_helper.from_array(np.array(0.5, np.float32), "scale")]
    nodes = [helper.make_node("Gather", ["x", "idx"], ["row"], axis=0),
             helper.make_node("Unsqueeze", ["row", "axes"], ["row2"]),
             helper.make_node("Gemm", ["row2", "w"], ["g"]),
             helper.make_node("Mul", ["g", "scale"], ["y"])]
    g = helper.make_graph(nodes, "scalars", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_zero_d_initializers_stay_scalars(tmp_path, capsys):
    model = _scalar_constants_model()
    src, dst = tmp_path / "scalars.onnx", tmp_path / "out.onnx"
    onnx.save(model, str(src))
    assert main(["convert", str(src), "-o", str(dst), "--quiet"]) == 0
    assert "PASS" in capsys.readouterr().out
    converted = onnx.load(str(dst))
    dims = {t.name: list(t.dims) for t in converted.graph.initializer}
    assert dims["idx"] == [] and dims["scale"] == []
    x = np.random.default_rng(5).standard_normal((4, 8)).astype(np.float32)
    np.testing.assert_allclose(ort_run(converted, [x])[0], ort_run(model, [x])[0], rtol=1e-6)


def _broken_convert(monkeypatch, how):
    """Make ``tilerun convert`` produce a wrong model: a 0-d index made [1] (ORT refuses it) or a changed scale."""
    import tilerun.export as export
    real = export.convert_model

    def broken(*a, **kw):
        m = real(*a, **kw)
        for t in m.graph.initializer:
            if how == "rank" and t.name == "idx":
                t.CopyFrom(numpy_helper.from_array(np.array([2], np.int64), "idx"))
            if how == "value" and t.name == "scale":
                t.CopyFrom(numpy_helper.from_array(np.array(0.75, np.float32), "scale"))
        return m
    monkeypatch.setattr(export, "convert_model", broken)


@pytest.mark.parametrize("how", ["rank", "value"])
def test_convert_failed_check_writes_no_output(tmp_path, capsys, monkeypatch, how):
    src, dst = tmp_path / "scalars.onnx", tmp_path / "out.onnx"
    onnx.save(_scalar_constants_model(), str(src))
    _broken_convert(monkeypatch, how)
    assert main(["convert", str(src), "-o", str(dst), "--quiet"]) == 1
    cap = capsys.readouterr()
    assert "not written" in (cap.err if how == "rank" else cap.out)
    assert not dst.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["scalars.onnx"]
    dst.write_bytes(b"previous")  # an existing DST is left as it was
    assert main(["convert", str(src), "-o", str(dst), "--quiet"]) == 1
    assert dst.read_bytes() == b"previous"


def test_convert_no_check_says_unverified(tmp_path, capsys, monkeypatch):
    src, dst = tmp_path / "scalars.onnx", tmp_path / "out.onnx"
    onnx.save(_scalar_constants_model(), str(src))
    _broken_convert(monkeypatch, "value")
    assert main(["convert", str(src), "-o", str(dst), "--quiet", "--no-check"]) == 0
    assert f"{dst} is unverified" in capsys.readouterr().out
    assert dst.exists()
