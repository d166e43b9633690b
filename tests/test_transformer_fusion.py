"""Transformer fusions: MatMul + bias, Gelu (erf and tanh forms, several export orders), decomposed LayerNorm.

Each graph is checked against ONNX Runtime (1 core and all cores
bit-identical, ``oracle.check_against_reference``) and its plan is checked to
have really fused; the same graph with an intermediate made a graph output
must not fuse and must still agree.
"""
import math

import numpy as np
import pytest
from onnx import helper

import tilerun
from oracle import check_against_reference, make_model

F = np.float32
M, K, N = 20, 24, 40


def _ops(model):
    with tilerun.compile_model(model) as eng:
        return [r.op_type for r in eng.plan.rows]


def _dense(rng):
    return [("w", (rng.standard_normal((K, N)) / math.sqrt(K)).astype(F)), ("b", rng.standard_normal(N).astype(F))]


def _consts(**values):
    return [(k, np.array(v, F)) for k, v in values.items()]


def _gelu_erf_a(h, out):   # x * 0.5 * (1 + erf(x / sqrt2)), Div first
    return [helper.make_node("Div", [h, "sqrt2"], ["g0"]), helper.make_node("Erf", ["g0"], ["g1"]),
            helper.make_node("Add", ["g1", "one"], ["g2"]), helper.make_node("Mul", [h, "half"], ["g3"]),
            helper.make_node("Mul", ["g3", "g2"], [out])]


def _gelu_erf_b(h, out):   # ((x * (1 + erf(x * rsqrt2))) * 0.5), the BERT export order
    return [helper.make_node("Mul", [h, "rsqrt2"], ["g0"]), helper.make_node("Erf", ["g0"], ["g1"]),
            helper.make_node("Add", ["one", "g1"], ["g2"]), helper.make_node("Mul", [h, "g2"], ["g3"]),
            helper.make_node("Mul", ["g3", "half"], [out])]


def _gelu_erf_c(h, out):   # 0.5 * (1 + erf) first, then times x
    return [helper.make_node("Mul", ["rsqrt2", h], ["g0"]), helper.make_node("Erf", ["g0"], ["g1"]),
            helper.make_node("Add", ["g1", "one"], ["g2"]), helper.make_node("Mul", ["half", "g2"], ["g3"]),
            helper.make_node("Mul", ["g3", h], [out])]


def _gelu_tanh_pow(h, out):  # 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3))), GPT-2
    return [helper.make_node("Pow", [h, "three"], ["g0"]), helper.make_node("Mul", ["c", "g0"], ["g1"]),
            helper.make_node("Add", [h, "g1"], ["g2"]), helper.make_node("Mul", ["g2", "s2pi"], ["g3"]),
            helper.make_node("Tanh", ["g3"], ["g4"]), helper.make_node("Add", ["one", "g4"], ["g5"]),
            helper.make_node("Mul", ["half", h], ["g6"]), helper.make_node("Mul", ["g6", "g5"], [out])]


def _gelu_tanh_cube(h, out):  # x*x*x instead of Pow
    return [helper.make_node("Mul", [h, h], ["g0"]), helper.make_node("Mul", ["g0", h], ["g7"]),
            helper.make_node("Mul", ["g7", "c"], ["g1"]),
            helper.make_node("Add", ["g1", h], ["g2"]), helper.make_node("Mul", ["s2pi", "g2"], ["g3"]),
            helper.make_node("Tanh", ["g3"], ["g4"]), helper.make_node("Add", ["g4", "one"], ["g5"]),
            helper.make_node("Mul", [h, "g5"], ["g6"]), helper.make_node("Mul", ["g6", "half"], [out])]


GELU_CONSTS = _consts(sqrt2=math.sqrt(2.0), rsqrt2=1 / math.sqrt(2.0), one=1.0, half=0.5, three=3.0, c=0.044715,
                      s2pi=math.sqrt(2 / math.pi))


def _dense_gelu(rng, form, extra_outputs=()):
    nodes = [helper.make_node("MatMul", ["x", "w"], ["mm"]), helper.make_node("Add", ["mm", "b"], ["h"])]
    nodes += form("h", "y")
    outs = [("y", F, None)] + [(o, F, None) for o in extra_outputs]
    return make_model(nodes, [("x", F, (2, M, K))], outs, _dense(rng) + GELU_CONSTS)


def _x(rng, nan=False):
    x = (2 * rng.standard_normal((2, M, K))).astype(F)
    if nan:
        x[1, 3, 5] = np.nan
    return x


def test_matmul_bias_fuses_into_one_gemm():
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["mm"]), helper.make_node("Add", ["b", "mm"], ["y"])]
    m = make_model(nodes, [("x", F, (2, M, K))], [("y", F, None)], _dense(rng))
    check_against_reference(m, {"x": _x(rng)}, use_ort=True)
    assert _ops(m) == ["MatMul"]
    mu = make_model(nodes, [("x", F, (2, M, K))], [("y", F, None), ("mm", F, None)], _dense(rng))
    check_against_reference(mu, {"x": _x(rng)}, use_ort=True)
    assert _ops(mu) == ["MatMul", "Add"]


def test_row_broadcast_bias_is_not_fused():
    rng = np.random.default_rng(1)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["mm"]), helper.make_node("Add", ["mm", "b"], ["y"])]
    inits = [("w", rng.standard_normal((K, N)).astype(F)), ("b", rng.standard_normal((M, 1)).astype(F))]
    m = make_model(nodes, [("x", F, (2, M, K))], [("y", F, None)], inits)
    check_against_reference(m, {"x": _x(rng)}, use_ort=True)
    assert _ops(m) == ["MatMul", "Add"]


@pytest.mark.parametrize("form", [_gelu_erf_a, _gelu_erf_b, _gelu_erf_c, _gelu_tanh_pow, _gelu_tanh_cube])
def test_gelu_forms_fuse_into_the_gemm_epilogue(form):
    rng = np.random.default_rng(2)
    m = _dense_gelu(rng, form)
    check_against_reference(m, {"x": _x(rng)}, use_ort=True, rtol=1e-4, atol=1e-5)
    assert _ops(m) == ["MatMul"]


def test_gelu_with_a_shared_intermediate_stays_unfused():
    rng = np.random.default_rng(3)
    m = _dense_gelu(rng, _gelu_erf_b, extra_outputs=("g1",))
    check_against_reference(m, {"x": _x(rng)}, use_ort=True, rtol=1e-4, atol=1e-5)
    assert "Erf" in _ops(m)


def test_not_a_gelu_is_left_alone():
    rng = np.random.default_rng(4)
    form = _gelu_erf_b
    nodes = [helper.make_node("MatMul", ["x", "w"], ["mm"]), helper.make_node("Add", ["mm", "b"], ["h"])]
    nodes += form("h", "y")
    consts = [(k, (v * 1.5 if k == "half" else v)) for k, v in GELU_CONSTS]  # 0.75 * x * (1 + erf): not Gelu
    m = make_model(nodes, [("x", F, (2, M, K))], [("y", F, None)], _dense(rng) + consts)
    check_against_reference(m, {"x": _x(rng)}, use_ort=True, rtol=1e-4, atol=1e-5)
    assert "Erf" in _ops(m)


@pytest.mark.parametrize("form", [_gelu_erf_b, _gelu_tanh_pow])
def test_fused_gelu_propagates_nan(form):
    rng = np.random.default_rng(5)
    m = _dense_gelu(rng, form)
    y = check_against_reference(m, {"x": _x(rng, nan=True)}, use_ort=True, rtol=1e-4, atol=1e-5)[0]
    assert np.isnan(y[1, 3]).all() and not np.isnan(y[0]).any()


def test_erf_op_matches_onnxruntime():
    x = np.linspace(-7, 7, 3001).astype(F)
    x[10] = np.nan
    m = make_model([helper.make_node("Erf", ["x"], ["y"])], [("x", F, x.shape)], [("y", F, None)])
    y = check_against_reference(m, {"x": x}, use_ort=True, rtol=0, atol=1e-6)[0]
    assert np.isnan(y[10])


def _layernorm_nodes(opset, square="Pow", affine=True):
    if opset >= 18:
        means = [helper.make_node("ReduceMean", ["x", "ax"], ["mean"]),
                 helper.make_node("ReduceMean", ["sq", "ax"], ["var"])]
    else:
        means = [helper.make_node("ReduceMean", ["x"], ["mean"], axes=[-1]),
                 helper.make_node("ReduceMean", ["sq"], ["var"], axes=[-1])]
    sq = helper.make_node("Pow", ["d", "two"], ["sq"]) if square == "Pow" else \
        helper.make_node("Mul", ["d", "d"], ["sq"])
    nodes = [means[0], helper.make_node("Sub", ["x", "mean"], ["d"]), sq, means[1],
             helper.make_node("Add", ["var", "eps"], ["ve"]), helper.make_node("Sqrt", ["ve"], ["s"]),
             helper.make_node("Div", ["d", "s"], ["n" if affine else "y"])]
    if affine:
        nodes += [helper.make_node("Mul", ["n", "gamma"], ["nm"]), helper.make_node("Add", ["beta", "nm"], ["y"])]
    return nodes


@pytest.mark.parametrize("opset,square,affine", [(13, "Pow", True), (18, "Mul", True), (17, "Pow", False)])
def test_decomposed_layernorm_becomes_one_node(opset, square, affine):
    rng = np.random.default_rng(6)
    x = (3 * rng.standard_normal((2, 7, N)) + 1).astype(F)
    x[1, 2, 3] = np.nan
    inits = [("ax", np.array([-1], np.int64)), ("two", np.array(2.0, F)), ("eps", np.array(1e-5, F)),
             ("gamma", (1 + 0.1 * rng.standard_normal(N)).astype(F)), ("beta", rng.standard_normal(N).astype(F))]
    m = make_model(_layernorm_nodes(opset, square, affine), [("x", F, x.shape)], [("y", F, None)], inits, opset=opset)
    y = check_against_reference(m, {"x": x}, use_ort=True, rtol=1e-4, atol=1e-4)[0]
    assert _ops(m) == ["LayerNormalization"]
    assert np.isnan(y[1, 2]).all() and not np.isnan(y[0]).any()
    mu = make_model(_layernorm_nodes(opset, square, affine), [("x", F, x.shape)], [("y", F, None), ("d", F, None)],
                    inits, opset=opset)
    check_against_reference(mu, {"x": x}, use_ort=True, rtol=1e-4, atol=1e-4)
    assert "LayerNormalization" not in _ops(mu)


def _residual_ln_model(rng, extra_outputs=(), sum_reader=False, skip_shape=(2, M, N), bias=True):
    """``LayerNorm(MatMul(x, w) + skip)``; ``sum_reader`` also reads the sum (a pre-LN decoder's next residual)."""
    nodes = [helper.make_node("MatMul", ["x", "w"], ["mm"]), helper.make_node("Add", ["mm", "skip"], ["s"]),
             helper.make_node("LayerNormalization", ["s", "gamma"] + (["beta"] if bias else []), ["y"],
                              epsilon=1e-5)]
    outs = [("y", F, None)] + [(o, F, None) for o in extra_outputs]
    if sum_reader:
        nodes.append(helper.make_node("Mul", ["s", "two"], ["z"]))
        outs.append(("z", F, None))
    inits = [("w", (rng.standard_normal((K, N)) / math.sqrt(K)).astype(F)), ("two", np.array(2.0, F)),
             ("gamma", (1 + 0.1 * rng.standard_normal(N)).astype(F)), ("beta", rng.standard_normal(N).astype(F))]
    return make_model(nodes, [("x", F, (2, M, K)), ("skip", F, skip_shape)], outs, inits)


@pytest.mark.parametrize("sum_reader,bias", [(False, True), (True, True), (False, False)])
def test_residual_add_folds_into_the_layernorm(sum_reader, bias):
    rng = np.random.default_rng(7)
    m = _residual_ln_model(rng, sum_reader=sum_reader, bias=bias)
    skip = rng.standard_normal((2, M, N)).astype(F)
    skip[1, 4, 6] = np.nan
    outs = check_against_reference(m, {"x": _x(rng), "skip": skip}, use_ort=True, rtol=1e-4, atol=1e-4)
    assert _ops(m) == ["MatMul", "AddLayerNormalization"] + (["Mul"] if sum_reader else [])
    assert np.isnan(outs[0][1, 4]).all() and not np.isnan(outs[0][0]).any()
    if sum_reader:
        assert np.isnan(outs[1][1, 4, 6]) and np.isnan(outs[1]).sum() == 1


def test_residual_add_kept_as_output_still_folds():
    rng = np.random.default_rng(8)
    m = _residual_ln_model(rng, extra_outputs=("s",))
    check_against_reference(m, {"x": _x(rng), "skip": rng.standard_normal((2, M, N)).astype(F)}, use_ort=True,
                            rtol=1e-4, atol=1e-4)
    assert _ops(m) == ["MatMul", "AddLayerNormalization"]


def test_broadcast_add_before_layernorm_is_not_folded():
    rng = np.random.default_rng(9)
    m = _residual_ln_model(rng, skip_shape=(1, M, N))
    check_against_reference(m, {"x": _x(rng), "skip": rng.standard_normal((1, M, N)).astype(F)}, use_ort=True,
                            rtol=1e-4, atol=1e-4)
    assert _ops(m) == ["MatMul", "Add", "LayerNormalization"]
