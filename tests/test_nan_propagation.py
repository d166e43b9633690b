"""NaN goes through every fused epilogue exactly as through the unfused ops, as in ONNX Runtime.

Relu, Clip, LeakyRelu and HardSigmoid of NaN are NaN (the ONNX spec, numpy
and ONNX Runtime agree). Each case below is fused into its producer (Conv,
Gemm, MatMul, ChannelAffine: the plan has rows of that op only) and compared
NaN for NaN with the same graph unfused (the producer's output made a graph
output too) and with ONNX Runtime, on inputs holding a few NaNs among values
of both signs; the kernel named is the path the case is built to take on this
host. A max pool over a window that mixes NaN and numbers has no agreed
answer (ONNX Runtime's depends on where the NaN sits in the window), so the
fused Conv+Relu+MaxPool case is compared with the unfused graph only.
"""
import numpy as np
import onnx
import pytest
from onnx import helper

import tilerun
from oracle import make_model, reference_outputs
from tilerun.ops import conv_paths

F = np.float32


def _rng(seed=0):
    return np.random.default_rng(seed)


def _act_nodes(act, x, y):
    """``act`` of ``x`` as nodes and constant inputs (Clip's bounds are inputs since opset 11)."""
    if act == "Clip":
        return [helper.make_node("Clip", [x, "lo", "hi"], [y])], [("lo", np.array(0, F)), ("hi", np.array(6, F))]
    if act == "LeakyRelu":
        return [helper.make_node("LeakyRelu", [x], [y], alpha=0.1)], []
    if act == "HardSigmoid":
        return [helper.make_node("HardSigmoid", [x], [y], alpha=0.3, beta=0.4)], []
    return [helper.make_node(act, [x], [y])], []


def _conv_act(act, c=8, cout=16, k=3, hw=(16, 16), stride=1, pad=1, groups=1, pool=False, residual=False):
    rng = _rng()
    x_shape = (1, c) + hw
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[pad] * 4, strides=[stride] * 2, group=groups)]
    inits = [("w", (0.5 * rng.standard_normal((cout, c // groups, k, k))).astype(F)),
             ("b", rng.standard_normal(cout).astype(F))]
    inputs = [("x", F, x_shape)]
    src = "c"
    if residual:
        out_h = (hw[0] + 2 * pad - k) // stride + 1
        out_w = (hw[1] + 2 * pad - k) // stride + 1
        nodes.append(helper.make_node("Add", ["c", "r"], ["cr"]))
        inputs.append(("r", F, (1, cout, out_h, out_w)))
        src = "cr"
    act_nodes, act_inits = _act_nodes(act, src, "a" if pool else "y")
    nodes += act_nodes
    if pool:
        nodes.append(helper.make_node("MaxPool", ["a"], ["y"], kernel_shape=[2, 2], strides=[2, 2]))
    return make_model(nodes, inputs, [("y", F, None)], inits + act_inits)


def _gemm_act(op, act, m=5, k=24, n=40, **attrs):
    rng = _rng(1)
    ins = ["x", "w", "b"] if op == "Gemm" else ["x", "w"]
    nodes = [helper.make_node(op, ins, ["g"], **attrs)]
    act_nodes, act_inits = _act_nodes(act, "g", "y")
    inits = [("w", (0.5 * rng.standard_normal((k, n))).astype(F)), ("b", rng.standard_normal(n).astype(F))]
    if op == "MatMul":
        inits = inits[:1]
    return make_model(nodes + act_nodes, [("x", F, (m, k))], [("y", F, None)], inits + act_inits)


def _bn_act(act, c=8, hw=(9, 33)):
    rng = _rng(2)
    inits = [("s", (1 + 0.1 * rng.standard_normal(c)).astype(F)), ("bb", rng.standard_normal(c).astype(F)),
             ("mm", (0.1 * rng.standard_normal(c)).astype(F)), ("v", (0.5 + rng.random(c)).astype(F))]
    act_nodes, act_inits = _act_nodes(act, "n", "y")
    nodes = [helper.make_node("BatchNormalization", ["x", "s", "bb", "mm", "v"], ["n"])] + act_nodes
    return make_model(nodes, [("x", F, (1, c) + hw)], [("y", F, None)], inits + act_inits)


def _feeds(model, seed=3, nan_at=((0, 1, 2, 3), (0, 5, 7, 1))):
    rng = _rng(seed)
    feeds = {}
    for vi in model.graph.input:
        shape = [d.dim_value for d in vi.type.tensor_type.shape.dim]
        a = (2 * rng.standard_normal(shape)).astype(F)
        if vi.name == "x":
            for at in nan_at:
                a[tuple(i % s for i, s in zip(at[-a.ndim:], a.shape))] = np.nan
        feeds[vi.name] = a
    return feeds


def _run(model, feeds):
    with tilerun.compile_model(model, num_cores=1) as eng:
        rows = [(r.op_type, r.kernel.name) for r in eng.plan.rows]
        out = eng.run(list(feeds.values()))[0]
    return rows, out


def _unfused(model):
    """``model`` with its first node's output a graph output as well, which blocks every fusion into that node."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    m.graph.output.append(helper.make_empty_tensor_value_info(m.graph.node[0].output[0]))
    m.graph.output[-1].type.tensor_type.elem_type = onnx.TensorProto.FLOAT
    return m


def _assert_like_ort(model, feeds, out):
    ref = reference_outputs(model, feeds, use_ort=True)[0]
    assert np.isnan(ref).any(), "the case must produce NaN in ONNX Runtime"
    np.testing.assert_array_equal(np.isnan(out), np.isnan(ref), err_msg="NaN positions differ from ONNX Runtime")
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)


def test_conv_relu_all_nan_input_gives_all_nan():
    # The first report: 256 outputs, all NaN in ONNX Runtime, none in tilerun.
    m = _conv_act("Relu", c=4, cout=4, hw=(8, 8))
    x = np.full((1, 4, 8, 8), np.nan, F)
    rows, out = _run(m, {"x": x})
    assert {op for op, _ in rows} == {"Conv"}
    assert out.size == 256 and np.isnan(out).all()
    assert np.isnan(reference_outputs(m, {"x": x}, use_ort=True)[0]).all()


FUSED = {
    # name: (model, producer op, a kernel the case runs)
    "conv1x1_relu_direct": (lambda: _conv_act("Relu", k=1, pad=0), "Conv", "f32_conv_gemm"),
    "conv3x3_relu_grid": (lambda: _conv_act("Relu", hw=(40, 40)), "Conv", "f32_conv_gemm"),
    "conv3x3_clip_grid_pixels": (lambda: _conv_act("Clip", c=32, cout=64, hw=(26, 26), stride=2), "Conv",
                                 "f32_pack_pixels"),
    "conv3x3_clip_rows_direct": (lambda: _conv_act("Clip"), "Conv", "f32_conv_stem"),
    "conv3x3_residual_relu_rows_direct": (lambda: _conv_act("Relu", hw=(40, 40), residual=True), "Conv",
                                          "f32_conv_stem"),
    "conv3x3_relu_narrow_grid": (lambda: _conv_act("Relu", hw=(24, 12)), "Conv", "f32_conv_gemm"),
    "conv3x3_clip_stride3_im2col": (lambda: _conv_act("Clip", stride=3), "Conv", "f32_conv_gemm"),
    "conv3x3_leaky": (lambda: _conv_act("LeakyRelu", hw=(40, 40)), "Conv", "f32_conv_gemm"),
    "conv3x3_hardsigmoid_grid_out": (lambda: _conv_act("HardSigmoid", hw=(40, 40)), "Conv", "f32_grid_out"),
    "conv3x3_relu_maxpool": (lambda: _conv_act("Relu", pool=True), "Conv", "f32_conv_maxpool"),
    "conv3x3_residual_relu": (lambda: _conv_act("Relu", hw=(40, 40), residual=True), "Conv", "f32_conv_gemm"),
    "depthwise_relu": (lambda: _conv_act("Relu", c=8, cout=8, groups=8, hw=(120, 120)), "Conv", "f32_conv_dw"),
    "depthwise_clip": (lambda: _conv_act("Clip", c=8, cout=8, groups=8), "Conv", "f32_conv_dw_cv"),
    "gemm_relu": (lambda: _gemm_act("Gemm", "Relu"), "Gemm", "f32_gemm"),
    "gemm_clip_alpha": (lambda: _gemm_act("Gemm", "Clip", alpha=0.5), "Gemm", "f32_gemm"),
    "matmul_relu": (lambda: _gemm_act("MatMul", "Relu"), "MatMul", "f32_gemm"),
    "matmul_clip": (lambda: _gemm_act("MatMul", "Clip"), "MatMul", "f32_gemm"),
    "matmul_leaky": (lambda: _gemm_act("MatMul", "LeakyRelu"), "MatMul", "f32_gemm"),
    "batchnorm_affine_relu": (lambda: _bn_act("Relu"), "ChannelAffine", "f32_channel_affine"),
    "batchnorm_affine_clip": (lambda: _bn_act("Clip"), "ChannelAffine", "f32_channel_affine"),
    "batchnorm_affine_hardsigmoid": (lambda: _bn_act("HardSigmoid"), "ChannelAffine", "f32_channel_affine"),
}


# Cases of the grid's implicit GEMM: they turn off the direct-rows path, which would take their convs.
GRID_CASES = {"conv3x3_relu_grid", "conv3x3_clip_grid_pixels", "conv3x3_relu_narrow_grid", "conv3x3_leaky",
              "conv3x3_hardsigmoid_grid_out", "conv3x3_residual_relu"}


@pytest.mark.parametrize("case", sorted(FUSED))
def test_fused_epilogue_keeps_nan_like_onnxruntime(case, monkeypatch):
    make, producer, kernel = FUSED[case]
    if case in GRID_CASES:
        monkeypatch.setattr(conv_paths, "ROWS_DIRECT", False)
    m = make()
    feeds = _feeds(m)
    rows, out = _run(m, feeds)
    assert {op for op, _ in rows} == {producer}, f"not fused into one {producer}: {rows}"
    assert kernel in {k for _, k in rows}, f"{case} expected to run {kernel}: {rows}"
    um = _unfused(m)
    with tilerun.compile_model(um, num_cores=1) as eng:
        assert {r.op_type for r in eng.plan.rows} != {producer}
        unfused, pre = eng.run(list(feeds.values()))
    assert np.isnan(out).any()
    if "maxpool" in case:
        # Windows (2x2, stride 2) all NaN give NaN; windows without NaN agree; mixed ones are left open.
        n, c, h, w = pre.shape
        win = np.isnan(pre[:, :, :h // 2 * 2, :w // 2 * 2]).reshape(n, c, h // 2, 2, w // 2, 2)
        all_nan, no_nan = win.all(axis=(3, 5)), ~win.any(axis=(3, 5))
        assert all_nan.any() and np.isnan(out[all_nan]).all()
        np.testing.assert_allclose(out[no_nan], unfused[no_nan], rtol=1e-5, atol=1e-5)
        return
    np.testing.assert_array_equal(np.isnan(out), np.isnan(unfused), err_msg="NaN positions differ from unfused")
    np.testing.assert_allclose(out, unfused, rtol=1e-5, atol=1e-5)
    _assert_like_ort(m, feeds, out)


@pytest.mark.parametrize("act", ["Relu", "Clip", "LeakyRelu", "HardSigmoid"])
def test_unfused_activation_keeps_nan(act):
    x = np.array([[np.nan, -1.0, 0.0, 2.5, 7.0, np.nan, -np.inf, np.inf]], F)
    nodes, inits = _act_nodes(act, "x", "y")
    m = make_model(nodes, [("x", F, x.shape)], [("y", F, None)], inits)
    _, out = _run(m, {"x": x})
    _assert_like_ort(m, {"x": x}, out)


def _small_cnn():
    """Conv+Relu, MaxPool, 1x1 Conv+Clip, depthwise Conv+Relu, BN+Relu after a Concat, GAP, Gemm+Relu, Softmax."""
    rng = _rng(4)

    def w(*shape):
        return (0.3 * rng.standard_normal(shape)).astype(F)
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"]),
             helper.make_node("Clip", ["c2", "lo", "hi"], ["r2"]),
             helper.make_node("Conv", ["r2", "w3", "b3"], ["c3"], pads=[1, 1, 1, 1], group=16),
             helper.make_node("Relu", ["c3"], ["r3"]),
             helper.make_node("Concat", ["r3", "p1"], ["cat"], axis=1),
             helper.make_node("BatchNormalization", ["cat", "s", "bb", "mm", "v"], ["n"]),
             helper.make_node("Relu", ["n"], ["r4"]),
             helper.make_node("GlobalAveragePool", ["r4"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("Gemm", ["f", "wf", "bf"], ["fc"], transB=1),
             helper.make_node("Relu", ["fc"], ["r5"]),
             helper.make_node("Softmax", ["r5"], ["y"], axis=1)]
    inits = [("w1", w(8, 3, 3, 3)), ("b1", w(8)), ("w2", w(16, 8, 1, 1)), ("b2", w(16)),
             ("lo", np.array(0, F)), ("hi", np.array(6, F)), ("w3", w(16, 1, 3, 3)), ("b3", w(16)),
             ("s", (1 + w(24)).astype(F)), ("bb", w(24)), ("mm", w(24)), ("v", (0.5 + rng.random(24)).astype(F)),
             ("wf", w(10, 24)), ("bf", w(10))]
    return make_model(nodes, [("x", F, (2, 3, 32, 32))], [("y", F, None)], inits)


def test_small_cnn_with_one_nan_pixel_gives_nan_like_onnxruntime():
    m = _small_cnn()
    x = _rng(5).standard_normal((2, 3, 32, 32)).astype(F)
    x[0, 1, 17, 9] = np.nan  # image 0 only: image 1 stays finite
    rows, out = _run(m, {"x": x})
    assert not {"Relu", "Clip"} & {op for op, _ in rows}, "every activation fuses"
    _assert_like_ort(m, {"x": x}, out)
    assert np.isnan(out[0]).all() and np.isfinite(out[1]).all()


@pytest.mark.slow
def test_squeezenet_with_one_nan_pixel_gives_nan_like_onnxruntime():
    from tilerun.models import light_model_path, randomize_weights
    m = randomize_weights(onnx.load(light_model_path("squeezenet")), seed=0)
    with tilerun.compile_model(m) as eng:
        x = _rng(6).standard_normal(eng.input_shapes[0]).astype(F)
        x[0, 0, 100, 100] = np.nan
        out = eng.run([x])[0]
        name = eng.input_names[0]
    ref = reference_outputs(m, {name: x}, use_ort=True)[0]
    assert np.isnan(ref).all()
    np.testing.assert_array_equal(np.isnan(out), np.isnan(ref))
