"""One engine, requests of any shape: symbolic dims stay dynamic, plans built per shape and cached.

Against ONNX Runtime on a BERT-style encoder (symbolic batch and sequence,
its head-split shapes computed by Shape -> Slice -> Concat chains) and a fully
convolutional CNN (symbolic batch, height and width), from several threads on
multi_stream so requests of different shapes run side by side.
"""
import concurrent.futures
import random

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

import tilerun
from tilerun.bert_like import bert_like

F = np.float32


def _ort(model):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _bert_inputs(rng, batch, seq):
    ids = rng.integers(0, 1000, (batch, seq)).astype(np.int64)
    mask = np.ones((batch, seq), np.int64)
    mask[:, seq // 2:] = rng.integers(0, 2, (batch, seq - seq // 2))
    return [ids, mask]


def small_cnn(seed=0):
    """Conv-Relu-Conv(stride 2)-depthwise-GlobalAveragePool-Gemm on ``[N, 3, H, W]``, all three symbolic."""
    rng = np.random.default_rng(seed)
    inits = [numpy_helper.from_array((rng.standard_normal(s) * 0.3).astype(F), n) for n, s in
             [("w0", (16, 3, 3, 3)), ("b0", (16,)), ("w1", (32, 16, 3, 3)), ("w2", (32, 1, 3, 3)),
              ("fc", (10, 32)), ("fcb", (10,))]]
    nodes = [helper.make_node("Conv", ["x", "w0", "b0"], ["c0"], pads=[1] * 4),
             helper.make_node("Relu", ["c0"], ["r0"]),
             helper.make_node("Conv", ["r0", "w1"], ["c1"], pads=[1] * 4, strides=[2, 2]),
             helper.make_node("Conv", ["c1", "w2"], ["c2"], pads=[1] * 4, group=32),
             helper.make_node("GlobalAveragePool", ["c2"], ["p"]),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "fc", "fcb"], ["y"], transB=1)]
    graph = helper.make_graph(nodes, "cnn", [helper.make_tensor_value_info("x", 1, ["N", 3, "H", "W"])],
                              [helper.make_tensor_value_info("y", 1, ["N", 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def test_bert_like_any_batch_and_sequence_from_threads():
    model = bert_like(layers=2, hidden=64, heads=4)
    sess = _ort(model)
    shapes = [(b, s) for b in (1, 2, 3, 4) for s in (8, 16, 33)]
    random.Random(0).shuffle(shapes)
    with tilerun.compile_model(model, scheduler="multi_stream") as eng:
        assert eng.input_shapes == [("batch", "seq"), ("batch", "seq")]

        def one(k):
            b, s = shapes[k % len(shapes)]
            ids, mask = _bert_inputs(np.random.default_rng(k), b, s)
            got = eng.run([ids, mask])[0]
            want = sess.run(None, {"input_ids": ids, "attention_mask": mask})[0]
            np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4 * max(1.0, float(np.abs(want).max())))
            return got.shape

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            got = list(pool.map(one, range(2 * len(shapes))))
        assert got == [(b, s, 64) for b, s in shapes + shapes]
        assert len(eng._plans.cached()) == 8  # the default capacity: the latest shapes


@pytest.mark.parametrize("scheduler", ["single_stream", "multi_stream"])
def test_fully_convolutional_cnn_any_batch_and_size(scheduler):
    model = small_cnn()
    sess = _ort(model)
    rng = np.random.default_rng(1)
    with tilerun.compile_model(model, scheduler=scheduler) as eng:
        for n, size in [(1, 32), (3, 48), (2, 32), (1, 48), (4, 40)]:
            x = rng.standard_normal((n, 3, size, size)).astype(F)
            np.testing.assert_allclose(eng.run([x])[0], sess.run(None, {"x": x})[0], rtol=1e-3, atol=1e-4)


def test_plans_share_packed_weights_and_evict_least_recent():
    model = small_cnn()
    with tilerun.compile_model(model, plan_cache_size=2) as eng:
        outs = {}
        for size in (32, 40, 48, 32):
            x = np.ones((1, 3, size, size), F)
            outs.setdefault(size, eng.run([x])[0])
            np.testing.assert_array_equal(eng.run([x])[0], outs[size])
        cached = eng._plans.cached()
        assert [shapes for shapes, _ in cached] == [((1, 3, 48, 48),), ((1, 3, 32, 32),)]
        packed = [{id(a) for n, a in sp.plan.weights.items() if n.startswith("#conv_w")} for _, sp in cached]
        assert packed[0] == packed[1] and len(packed[0]) == 3  # one packing per conv, shared by both plans


def test_symbol_bounds_and_agreement_are_checked():
    model = bert_like(layers=1, hidden=32, heads=2)
    with tilerun.compile_model(model, input_shapes={"seq": (1, 16), "batch": 2}) as eng:
        assert eng.input_shapes == [(2, "seq"), (2, "seq")]
        ids, mask = _bert_inputs(np.random.default_rng(0), 2, 16)
        eng.run([ids, mask])
        with pytest.raises(tilerun.InputError, match=r"dim 1 \('seq'\) must be in \[1, 16\], given 17"):
            eng.run(_bert_inputs(np.random.default_rng(0), 2, 17))
        with pytest.raises(tilerun.InputError, match=r"inputs sharing a symbolic dim must agree"):
            eng.run([ids, mask[:, :8]])
        with pytest.raises(tilerun.InputError, match=r"expected shape \[2, seq\], given \[1, 16\]"):
            eng.run([ids[:1], mask[:1]])
    with pytest.raises(tilerun.ArgumentError, match="which are not graph inputs"):
        tilerun.compile_model(model, input_shapes={"sequence": 8})


def test_static_model_builds_its_one_plan_at_compile_time():
    model = small_cnn()
    with tilerun.compile_model(model, input_shapes={"x": [1, 3, 32, 32]}) as eng:
        assert eng.plan is not None and len(eng._plans.cached()) == 1
        with pytest.raises(tilerun.InputError, match=r"expected shape \[1, 3, 32, 32\], given \[1, 3, 40, 40\]"):
            eng.run([np.ones((1, 3, 40, 40), F)])


def baked_batch_model():
    """Exported at batch 1: input ``[1, 3, 8, 8]`` and a ``Reshape [1, 192]`` that bakes the batch."""
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("Reshape", ["r", "shape"], ["flat"]),
             helper.make_node("MatMul", ["flat", "w"], ["y"])]
    inits = [numpy_helper.from_array(np.array([1, 192], np.int64), "shape"),
             numpy_helper.from_array(np.random.default_rng(0).standard_normal((192, 5)).astype(F), "w")]
    graph = helper.make_graph(nodes, "baked", [helper.make_tensor_value_info("x", 1, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", 1, [1, 5])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def test_batch_size_runs_every_batch_up_to_it_even_when_the_export_baked_batch_one():
    model = baked_batch_model()
    x = np.random.default_rng(2).standard_normal((4, 3, 8, 8)).astype(F)
    with tilerun.compile_model(model) as one:
        want = np.concatenate([one.run([x[i:i + 1]])[0] for i in range(4)])
        with pytest.raises(tilerun.InputError, match="batch size 2 is larger than the compiled batch size 1"):
            one.run([x[:2]])
    with tilerun.compile_model(model, batch_size=4) as eng:
        assert eng.input_shapes == [(4, 3, 8, 8)]
        for b in (4, 1, 3):
            np.testing.assert_allclose(eng.run([x[:b]])[0], want[:b], rtol=1e-5, atol=1e-5)
        with pytest.raises(tilerun.InputError, match="batch size 5 is larger than the compiled batch size 4"):
            eng.run([np.concatenate([x, x[:1]])])
    with tilerun.compile_model(model, input_shapes={"x": [3, 3, 8, 8]}) as eng:
        np.testing.assert_allclose(eng.run([x[:3]])[0], want[:3], rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_default_model_batches():
    from tilerun.models import default_model, random_inputs
    model = default_model()
    x = np.random.default_rng(3).standard_normal((2, 3, 224, 224)).astype(F)
    with tilerun.compile_model(model, batch_size=2) as eng:
        both = eng.run([x])[0]
        np.testing.assert_allclose(eng.run([x[1:]])[0], both[1:], rtol=1e-4, atol=1e-3)
    want = _ort(model).run(None, {"gpu_0/data_0": x[:1]})[0]
    np.testing.assert_allclose(both[:1], want, rtol=1e-3, atol=1e-3 * max(1.0, float(np.abs(want).max())))
    assert random_inputs(eng)[0].shape == (2, 3, 224, 224)


def test_cli_run_at_a_larger_batch_checks_against_onnxruntime(tmp_path, capsys):
    from tilerun.cli import main
    path = tmp_path / "baked.onnx"
    onnx.save(baked_batch_model(), str(path))
    assert main(["run", str(path), "--batch-size", "3", "--iterations", "1"]) == 0
    out = capsys.readouterr().out
    assert "top-5 [item 2]" in out and "re-exported for these input shapes" in out and "PASS" in out


@pytest.mark.slow
def test_bert_like_every_batch_to_8_and_sequence_to_384_from_four_threads():
    model = bert_like(layers=4, hidden=256, heads=4)
    sess = _ort(model)
    shapes = [(b, s) for b in range(1, 9) for s in (8, 16, 33, 128, 384)]
    random.Random(0).shuffle(shapes)
    with tilerun.compile_model(model, scheduler="multi_stream") as eng:
        def one(k):
            ids, mask = _bert_inputs(np.random.default_rng(k), *shapes[k])
            want = sess.run(None, {"input_ids": ids, "attention_mask": mask})[0]
            np.testing.assert_allclose(eng.run([ids, mask])[0], want, rtol=1e-3,
                                       atol=1e-4 * max(1.0, float(np.abs(want).max())))
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            list(pool.map(one, range(len(shapes))))


# -- shape-valued inputs -------------------------------------------------------------------
def _value_input_model():
    """``y = Relu(Conv(Reshape(x, shape), w) + Slice(bias, starts, ends))``: shape, starts, ends and w are inputs."""
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["r"]),
             helper.make_node("Conv", ["r", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Slice", ["bias", "starts", "ends"], ["b"]),
             helper.make_node("Add", ["c", "b"], ["s"]),
             helper.make_node("Relu", ["s"], ["y"])]
    ins = [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n"]),
           helper.make_tensor_value_info("shape", onnx.TensorProto.INT64, [4]),
           helper.make_tensor_value_info("w", onnx.TensorProto.FLOAT, [4, 2, 3, 3]),
           helper.make_tensor_value_info("bias", onnx.TensorProto.FLOAT, [8, 1, 1]),
           helper.make_tensor_value_info("starts", onnx.TensorProto.INT64, [1]),
           helper.make_tensor_value_info("ends", onnx.TensorProto.INT64, [1])]
    graph = helper.make_graph(nodes, "values", ins, [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_shape_valued_inputs_key_the_plan_like_shapes():
    """Inputs a node needs as constants are found at the first run and key the plan by their values."""
    model = _value_input_model()
    sess = _ort(model)
    rng = np.random.default_rng(0)
    bias = rng.standard_normal((8, 1, 1)).astype(F)
    weights = [rng.standard_normal((4, 2, 3, 3)).astype(F) for _ in range(2)]
    with tilerun.compile_model(model) as eng:
        for shape, start, w in [((1, 2, 6, 8), 0, weights[0]), ((2, 2, 4, 6), 4, weights[0]),
                                ((1, 2, 6, 8), 4, weights[1]), ((1, 2, 6, 8), 0, weights[0])]:
            x = rng.standard_normal(int(np.prod(shape))).astype(F)
            feeds = [x, np.array(shape, np.int64), w, bias, np.array([start], np.int64),
                     np.array([start + 4], np.int64)]
            want = sess.run(None, dict(zip(eng.input_names, feeds)))[0]
            np.testing.assert_allclose(eng.run(feeds)[0], want, rtol=1e-4, atol=1e-5)
        assert [eng.input_names[i] for i in eng._plans.value_inputs] == ["shape", "w", "starts", "ends"]
        # Other values are other plans (the Conv's weights too); the repeat of the first reused its plan.
        assert len(eng._plans.cached()) == 3


def test_a_constant_computed_from_no_input_is_still_the_models_error():
    nodes = [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Cast", ["s"], ["f"], to=1),
             helper.make_node("Cast", ["f"], ["i"], to=7), helper.make_node("Reshape", ["x", "i"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 3])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with tilerun.compile_model(model) as eng:  # Shape's output folds: nothing to bind, it runs
        x = np.arange(6, dtype=F).reshape(2, 3)
        np.testing.assert_array_equal(eng.run([x])[0], x)
        assert eng._plans.value_inputs == []
