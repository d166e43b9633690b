"""Fused and unfused paths agree with the reference: affine folding, ChannelAffine, epilogues, fast kernels.

Each fused graph is checked against the reference evaluator (1 core and all
cores bit-identical, see ``oracle.check_against_reference``), and its plan is
checked to have really fused. The unfused path is the same graph with the
intermediate tensors also made graph outputs, which blocks every fusion.
"""
import numpy as np
import pytest
from onnx import helper

import tilerun
from oracle import check_against_reference, make_model
from tilerun.kernels.stem import STEM_MAX_CIN
from tilerun.ops import conv_paths

F = np.float32


def _rows(model):
    with tilerun.compile_model(model) as eng:
        return [(r.op_type, r.kernel.name) for r in eng.plan.rows]


def _bn_inits(rng, c, prefix):
    return [(f"{prefix}s", (1 + 0.1 * rng.standard_normal(c)).astype(F)),
            (f"{prefix}b", (0.1 * rng.standard_normal(c)).astype(F)),
            (f"{prefix}m", (0.1 * rng.standard_normal(c)).astype(F)),
            (f"{prefix}v", (0.5 + rng.random(c)).astype(F))]


def _affine_chain(x, out, prefix, act="Relu"):
    """BatchNormalization → Mul(per-channel) → Add(per-channel) [→ act], as the light models write it."""
    nodes = [helper.make_node("BatchNormalization", [x, f"{prefix}s", f"{prefix}b", f"{prefix}m", f"{prefix}v"],
                              [f"{prefix}bn"]),
             helper.make_node("Mul", [f"{prefix}bn", f"{prefix}k"], [f"{prefix}mul"]),
             helper.make_node("Add", [f"{prefix}mul", f"{prefix}a"], [f"{prefix}add" if act else out])]
    if act:
        nodes.append(helper.make_node(act, [f"{prefix}add"], [out]))
    return nodes


def _affine_inits(rng, c, prefix):
    return _bn_inits(rng, c, prefix) + [(f"{prefix}k", (1 + 0.1 * rng.standard_normal((c, 1, 1))).astype(F)),
                                        (f"{prefix}a", (0.1 * rng.standard_normal((c, 1, 1))).astype(F))]


def test_conv_bn_mul_add_relu_folds_into_one_conv():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 6, 10, 10)).astype(F)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1])] + _affine_chain("c", "y", "p")
    inits = [("w", (0.3 * rng.standard_normal((8, 6, 3, 3))).astype(F))] + _affine_inits(rng, 8, "p")
    m = make_model(nodes, [("x", F, x.shape)], [("y", F, None)], inits)
    check_against_reference(m, {"x": x}, rtol=1e-4, atol=1e-4)
    assert {op for op, _ in _rows(m)} == {"Conv"}
    # unfused: every intermediate is an output too, so nothing folds
    names = ["c", "pbn", "pmul", "padd"]
    mu = make_model(nodes, [("x", F, x.shape)], [("y", F, None)] + [(n, F, None) for n in names], inits)
    outs = check_against_reference(mu, {"x": x}, rtol=1e-4, atol=1e-4)
    assert sum(k in ("f32_conv_gemm", "f32_conv_stem") for _, k in _rows(mu)) == 1
    assert {op for op, _ in _rows(mu)} > {"Conv"}
    fused = check_against_reference(m, {"x": x}, rtol=1e-4, atol=1e-4)[0]
    np.testing.assert_allclose(fused, outs[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("act", ["Relu", None])
def test_preactivation_chain_becomes_one_channel_affine(act):
    # DenseNet's BN → Mul → Add → Relu after a Concat: not foldable into a conv, one fused pass instead.
    rng = np.random.default_rng(1)
    a = rng.standard_normal((2, 3, 9, 7)).astype(F)
    b = rng.standard_normal((2, 5, 9, 7)).astype(F)
    nodes = [helper.make_node("Concat", ["a", "b"], ["cat"], axis=1)] + _affine_chain("cat", "y", "p", act)
    m = make_model(nodes, [("a", F, a.shape), ("b", F, b.shape)], [("y", F, None)], _affine_inits(rng, 8, "p"))
    check_against_reference(m, {"a": a, "b": b}, rtol=1e-5, atol=1e-5)
    rows = _rows(m)
    assert [k for _, k in rows if k == "f32_channel_affine"] == ["f32_channel_affine"]
    assert not any(op in ("Relu", "Mul", "Add", "BatchNormalization") for op, _ in rows)


def test_lone_batchnorm_with_clip():
    rng = np.random.default_rng(2)
    x = (3 * rng.standard_normal((1, 4, 5, 33))).astype(F)
    nodes = [helper.make_node("BatchNormalization", ["x", "ps", "pb", "pm", "pv"], ["bn"]),
             helper.make_node("Clip", ["bn", "lo", "hi"], ["y"])]
    inits = _bn_inits(rng, 4, "p") + [("lo", np.array(-1, F)), ("hi", np.array(1.5, F))]
    m = make_model(nodes, [("x", F, x.shape)], [("y", F, None)], inits)
    check_against_reference(m, {"x": x}, rtol=1e-5, atol=1e-5)
    assert [k for _, k in _rows(m)] == ["f32_channel_affine"]


@pytest.mark.parametrize("act", [("Relu", {}), ("Clip", {}), ("LeakyRelu", {"alpha": 0.1}), ("HardSwish", {})])
@pytest.mark.parametrize("m_rows", [1, 3, 20])
def test_gemm_bias_activation_fused(act, m_rows):
    rng = np.random.default_rng(3)
    k, n = 300, 70
    a = rng.standard_normal((m_rows, k)).astype(F)
    ins = ["g"] + (["lo", "hi"] if act[0] == "Clip" else [])
    nodes = [helper.make_node("Gemm", ["a", "w", "b"], ["g"], transB=1),
             helper.make_node(act[0], ins, ["y"], **act[1])]
    inits = [("w", (rng.standard_normal((n, k)) / np.sqrt(k)).astype(F)), ("b", rng.standard_normal(n).astype(F)),
             ("lo", np.array(-0.5, F)), ("hi", np.array(0.5, F))]
    m = make_model(nodes, [("a", F, a.shape)], [("y", F, None)], inits)
    check_against_reference(m, {"a": a}, rtol=1e-4, atol=1e-4)
    assert [op for op, _ in _rows(m)] == ["Gemm"]


def test_matmul_constant_batched_b_packed():
    rng = np.random.default_rng(4)
    a = rng.standard_normal((3, 5, 40)).astype(F)
    w = rng.standard_normal((3, 40, 45)).astype(F)
    m = make_model([helper.make_node("MatMul", ["a", "w"], ["y"])], [("a", F, a.shape)], [("y", F, None)], [("w", w)])
    check_against_reference(m, {"a": a}, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("xshape,k,stride,pads,dil,kernel", [
    ((1, 24, 40, 37), 3, 2, [1, 1, 1, 1], 1, "f32_conv_dw_cv"),   # stride 2, channels not a multiple of a vector
    ((1, 16, 21, 50), 3, 1, [1, 1, 1, 1], 1, "f32_conv_dw_cv"),   # stride 1, rows wider than a vector
    ((2, 40, 14, 13), 5, 2, [2, 1, 2, 2], 1, "f32_conv_dw_cv"),   # two images, asymmetric pads, 5x5
    ((1, 5, 7, 7), 5, 1, [2, 2, 2, 2], 1, "f32_conv_dw_cv"),      # fewer channels than a vector
    ((1, 32, 7, 7), 3, 1, [1, 1, 1, 1], 1, "f32_conv_dw_cv"),     # small planes
    ((1, 20, 100, 97), 3, 1, [1, 1, 1, 1], 1, "f32_conv_dw_cv"),  # large planes: several row bands per group
    ((1, 17, 90, 90), 5, 2, [2, 2, 2, 2], 1, "f32_conv_dw_cv"),   # the same at stride 2, 5x5
    ((1, 20, 23, 23), 7, 1, [3, 3, 3, 3], 1, "f32_conv_dw_cv"),   # 7x7: the tap loop not specialized
    ((1, 4, 113, 114), 3, 1, [1, 1, 1, 1], 1, "f32_conv_dw"),     # large planes: vectors along rows
    ((2, 8, 15, 15), 5, 1, [2, 2, 2, 2], 2, "f32_conv_dw"),       # dilated, padded
    ((1, 8, 17, 19), 3, 3, [0, 1, 2, 1], 1, "f32_conv_dw"),       # stride 3: the plain path
])
@pytest.mark.parametrize("act", [None, "Clip6", "Sigmoid"])
def test_depthwise_paths(xshape, k, stride, pads, dil, kernel, act):
    rng = np.random.default_rng(5)
    c = xshape[1]
    x = rng.standard_normal(xshape).astype(F)
    x[-1, -1, 3, 4] = np.nan
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c" if act else "y"], group=c, strides=[stride] * 2,
                              pads=pads, dilations=[dil] * 2)]
    if act == "Clip6":
        nodes.append(helper.make_node("Clip", ["c", "lo", "hi"], ["y"]))
    elif act:
        nodes.append(helper.make_node(act, ["c"], ["y"]))
    inits = [("w", rng.standard_normal((c, 1, k, k)).astype(F)), ("b", rng.standard_normal(c).astype(F)),
             ("lo", np.array(0, F)), ("hi", np.array(6, F))]
    m = make_model(nodes, [("x", F, x.shape)], [("y", F, None)], inits)
    # ORT as the oracle: the reference evaluator spreads a NaN over a dilated kernel's gaps.
    y = check_against_reference(m, {"x": x}, rtol=1e-4, atol=1e-4 * k * k, use_ort=True)[0]
    assert [kern for _, kern in _rows(m)] == [kernel]
    assert np.isnan(y[-1, -1]).any() and not np.isnan(y[:, :-1]).any()


@pytest.mark.parametrize("xshape,wshape,stride,pads", [
    ((1, 40, 14, 14), (96, 40, 3, 3), 1, [1, 1, 1, 1]),   # few pixels: channel tiles over shared columns
    ((1, 24, 29, 31), (40, 24, 3, 3), 2, [1, 1, 1, 1]),   # stride-2 columns
    ((1, 48, 15, 15), (64, 48, 1, 1), 2, [0, 0, 0, 0]),   # strided 1x1
    ((1, 3, 45, 47), (16, 3, 7, 7), 2, [3, 3, 3, 3]),     # stem-like
    ((1, 24, 13, 13), (48, 24, 3, 3), 1, [1, 1, 1, 1]),   # small plane: the pixels' columns packed
])
def test_conv_column_paths_with_residual(xshape, wshape, stride, pads):
    rng = np.random.default_rng(6)
    x = rng.standard_normal(xshape).astype(F)
    oh = (xshape[2] + pads[0] + pads[2] - wshape[2]) // stride + 1
    ow = (xshape[3] + pads[1] + pads[3] - wshape[3]) // stride + 1
    r = rng.standard_normal((1, wshape[0], oh, ow)).astype(F)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], strides=[stride] * 2, pads=pads),
             helper.make_node("Add", ["c", "r"], ["s"]), helper.make_node("Relu", ["s"], ["y"])]
    w = (rng.standard_normal(wshape) / np.sqrt(np.prod(wshape[1:]))).astype(F)
    m = make_model(nodes, [("x", F, x.shape), ("r", F, r.shape)], [("y", F, None)],
                   [("w", w), ("b", rng.standard_normal(wshape[0]).astype(F))])
    check_against_reference(m, {"x": x, "r": r}, rtol=1e-4, atol=1e-4)
    assert {op for op, _ in _rows(m)} == {"Conv"}


def test_mobilenet_block_fuses_to_three_convs():
    # expand 1x1 + Clip, depthwise 3x3 + Clip, project 1x1 + residual Add: three rows, nothing else.
    rng = np.random.default_rng(7)
    c, e = 8, 48
    x = rng.standard_normal((1, c, 12, 12)).astype(F)
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["e"]), helper.make_node("Clip", ["e", "lo", "hi"], ["ec"]),
             helper.make_node("Conv", ["ec", "w2", "b2"], ["d"], group=e, pads=[1, 1, 1, 1]),
             helper.make_node("Clip", ["d", "lo", "hi"], ["dc"]),
             helper.make_node("Conv", ["dc", "w3", "b3"], ["p"]), helper.make_node("Add", ["x", "p"], ["y"])]
    inits = [("w1", (rng.standard_normal((e, c, 1, 1)) / np.sqrt(c)).astype(F)), ("b1", np.zeros(e, F)),
             ("w2", (rng.standard_normal((e, 1, 3, 3)) / 3).astype(F)), ("b2", np.zeros(e, F)),
             ("w3", (rng.standard_normal((c, e, 1, 1)) / np.sqrt(e)).astype(F)), ("b3", np.zeros(c, F)),
             ("lo", np.array(0, F)), ("hi", np.array(6, F))]
    m = make_model(nodes, [("x", F, x.shape)], [("y", F, None)], inits, opset=13)
    check_against_reference(m, {"x": x}, rtol=1e-4, atol=1e-4)
    assert [k for _, k in _rows(m)] == ["f32_conv_gemm", "f32_conv_dw_cv", "f32_conv_gemm"]


@pytest.mark.parametrize("xshape,wshape,conv,pool", [
    ((1, 3, 47, 45), (16, 3, 3, 3), {"strides": [2, 2]}, {"kernel_shape": [3, 3], "strides": [2, 2]}),  # squeezenet
    ((1, 3, 64, 70), (8, 3, 7, 7), {"strides": [2, 2], "pads": [3, 3, 3, 3]},                        # resnet stem
     {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ((2, 12, 30, 34), (20, 12, 3, 3), {"pads": [1, 1, 1, 1]}, {"kernel_shape": [2, 2], "strides": [2, 2]}),  # vgg
    ((1, 8, 37, 41), (12, 8, 3, 3), {"pads": [1, 1, 1, 1]},                                          # ceil, odd
     {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 0, 1, 2], "ceil_mode": 1}),
    ((1, 40, 20, 20), (24, 40, 3, 3), {"pads": [1, 1, 1, 1]},                                        # K in slices
     {"kernel_shape": [3, 3], "strides": [1, 1], "pads": [1, 1, 1, 1]}),
])
@pytest.mark.parametrize("act", [None, "Relu"])
def test_conv_maxpool_fused(xshape, wshape, conv, pool, act, monkeypatch):
    # The conv computes bands of rows into scratch and pools them there (tiles
    # share their windows' border rows); the conv output never exists. Winograd,
    # which would take the last shape and leave the pool unfused, is off.
    monkeypatch.setattr(conv_paths, "WINOGRAD", False)
    rng = np.random.default_rng(7)
    x = rng.standard_normal(xshape).astype(F)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], **conv)]
    if act:
        nodes.append(helper.make_node(act, ["c"], ["a"]))
    nodes.append(helper.make_node("MaxPool", ["a" if act else "c"], ["y"], **pool))
    w = (rng.standard_normal(wshape) / np.sqrt(np.prod(wshape[1:]))).astype(F)
    m = make_model(nodes, [("x", F, x.shape)], [("y", F, None)], [("w", w), ("b", rng.standard_normal(wshape[0]).astype(F))])
    check_against_reference(m, {"x": x}, rtol=1e-4, atol=1e-4)
    # Few input channels (the stems) pool inside the stem kernel; the others on the conv's bands.
    expect = ["f32_conv_stem"] if xshape[1] <= STEM_MAX_CIN else ["f32_pad_planes", "f32_conv_maxpool"]
    assert [k for _, k in _rows(m)] == expect


@pytest.mark.parametrize("case", ["tanh", "two_consumers", "narrow", "stride3"])
def test_conv_maxpool_not_fused(case):
    # Shapes and graphs the fused path does not take still run, as two ops.
    rng = np.random.default_rng(8)
    xshape = (1, 6, 11, 11) if case == "narrow" else (1, 6, 24, 24)
    x = rng.standard_normal(xshape).astype(F)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1])]
    src = "c"
    if case == "tanh":  # an activation the micro-kernel does not apply in registers
        nodes.append(helper.make_node("Tanh", ["c"], ["s"]))
        src = "s"
    nodes.append(helper.make_node("MaxPool", [src], ["y"], kernel_shape=[3, 3], strides=[3 if case == "stride3" else 2] * 2))
    outs = [("y", F, None)] + ([("c", F, None)] if case == "two_consumers" else [])
    m = make_model(nodes, [("x", F, x.shape)], outs, [("w", rng.standard_normal((8, 6, 3, 3)).astype(F))])
    check_against_reference(m, {"x": x}, rtol=1e-4, atol=1e-4)
    assert "MaxPool" in {op for op, _ in _rows(m)}
