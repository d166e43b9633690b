"""The ops transformer exports use beyond the engine core, against ONNX Runtime: masks, Einsum, Trilu, Mod, Neg.

Each case compiles a small model with tilerun (1 core and all cores) and
compares with ONNX Runtime; NaN inputs must give NaN where the op passes
them on, and malformed nodes must raise ``ModelError`` naming what was
expected.
"""
import numpy as np
import pytest
from onnx import helper

import tilerun

from oracle import check_against_reference, make_model, run_tilerun

RNG = np.random.default_rng(7)


def _bool(shape):
    return RNG.random(shape) < 0.5


@pytest.mark.parametrize("op", ["And", "Or", "Xor"])
def test_bool_binary_broadcast(op):
    model = make_model([helper.make_node(op, ["a", "b"], ["y"])], [("a", np.bool_, [2, 3, 4]), ("b", np.bool_, [3, 1])],
                       [("y", np.bool_, None)])
    check_against_reference(model, {"a": _bool((2, 3, 4)), "b": _bool((3, 1))}, use_ort=True)


def test_isnan_isinf_flag_nan_and_inf():
    x = np.array([[0.0, np.nan, np.inf, -np.inf, 1e38, -2.0]], np.float32)
    nodes = [helper.make_node("IsNaN", ["x"], ["nan"]),
             helper.make_node("IsInf", ["x"], ["inf"]),
             helper.make_node("IsInf", ["x"], ["pos"], detect_negative=0),
             helper.make_node("IsInf", ["x"], ["neg"], detect_positive=0)]
    model = make_model(nodes, [("x", np.float32, [1, 6])], [(n, np.bool_, None) for n in ("nan", "inf", "pos", "neg")])
    check_against_reference(model, {"x": x}, use_ort=True)


def test_hf_mask_arithmetic_keeps_fill():
    """``Where(IsNaN(s) and mask, -max, s)``: the mask pattern recent transformers exports carry."""
    s = RNG.standard_normal((2, 1, 4, 4)).astype(np.float32)
    s[0, 0, 1, 2] = np.nan
    nodes = [helper.make_node("IsNaN", ["s"], ["isnan"]), helper.make_node("Not", ["m"], ["keep"]),
             helper.make_node("And", ["isnan", "keep"], ["both"]),
             helper.make_node("Where", ["both", "fill", "s"], ["y"])]
    model = make_model(nodes, [("s", np.float32, [2, 1, 4, 4]), ("m", np.bool_, [2, 1, 1, 4])],
                       [("y", np.float32, None)], [("fill", np.array(np.finfo(np.float32).min, np.float32))])
    m = np.array([[[[1, 0, 1, 1]]], [[[1, 1, 1, 0]]]], bool)
    check_against_reference(model, {"s": s, "m": m}, use_ort=True)


@pytest.mark.parametrize("upper,k", [(1, 0), (0, 0), (1, 1), (0, -1), (1, -2), (0, 5)])
def test_trilu_batched(upper, k):
    nodes = [helper.make_node("Trilu", ["x", "k"], ["y"], upper=upper)]
    model = make_model(nodes, [("x", np.float32, [2, 3, 5, 6])], [("y", np.float32, None)],
                       [("k", np.array(k, np.int64))])
    x = RNG.standard_normal((2, 3, 5, 6)).astype(np.float32)
    x[0, 0, 0, 0] = np.nan
    check_against_reference(model, {"x": x}, use_ort=True)


def test_trilu_rank1_is_refused():
    model = make_model([helper.make_node("Trilu", ["x"], ["y"])], [("x", np.float32, [4])], [("y", np.float32, None)])
    with pytest.raises(tilerun.ModelError, match="expected rank"):
        tilerun.compile_model(model)


EINSUMS = [
    ("bhqd,bhkd->bhqk", [(2, 3, 5, 8), (2, 3, 7, 8)]),
    ("bhqk,bhkd->bhqd", [(2, 3, 5, 7), (2, 3, 7, 8)]),
    ("bij,bjk->bik", [(2, 4, 6), (2, 6, 3)]),
    ("bik,kj->bij", [(2, 4, 6), (6, 5)]),
    ("ij->ji", [(3, 5)]),
    ("ij->i", [(3, 5)]),
    ("bsd->bds", [(2, 4, 3)]),
    ("i,j->ij", [(3,), (4,)]),
    ("i,i", [(6,), (6,)]),
    ("...ij,...jk->...ik", [(2, 3, 4, 5), (2, 3, 5, 2)]),
    ("bnd,bnd->bn", [(2, 5, 8), (2, 5, 8)]),
    ("abc,cd->abd", [(2, 3, 4), (4, 5)]),
    ("ibnd,jbnd->bnij", [(5, 2, 3, 4), (6, 2, 3, 4)]),
    ("ij,jk", [(3, 4), (4, 2)]),
]


@pytest.mark.parametrize("eq,shapes", EINSUMS, ids=[e for e, _ in EINSUMS])
def test_einsum_forms(eq, shapes):
    names = [f"x{k}" for k in range(len(shapes))]
    model = make_model([helper.make_node("Einsum", names, ["y"], equation=eq)],
                       [(n, np.float32, list(s)) for n, s in zip(names, shapes)], [("y", np.float32, None)], opset=12)
    feeds = {n: RNG.standard_normal(s).astype(np.float32) for n, s in zip(names, shapes)}
    check_against_reference(model, feeds, rtol=1e-4, atol=1e-5, use_ort=True)


def test_einsum_nan_propagates():
    a = RNG.standard_normal((1, 2, 3, 4)).astype(np.float32)
    a[0, 1, 2, 3] = np.nan
    model = make_model([helper.make_node("Einsum", ["a", "b"], ["y"], equation="bhqd,bhkd->bhqk")],
                       [("a", np.float32, [1, 2, 3, 4]), ("b", np.float32, [1, 2, 5, 4])], [("y", np.float32, None)])
    (y,) = run_tilerun(model, [a, RNG.standard_normal((1, 2, 5, 4)).astype(np.float32)])
    assert np.isnan(y[0, 1, 2]).all() and not np.isnan(y[0, 0]).any()


@pytest.mark.parametrize("eq,shapes,match", [
    ("ii->i", [(3, 3)], "diagonal"),
    ("ij,jk->ik", [(3, 4), (5, 2)], "sizes 4 and 5"),
    ("ijk->ij", [(3, 4)], "does not match"),
    ("ij,jk,kl->il", [(2, 2), (2, 2), (2, 2)], "at most 2"),
])
def test_einsum_bad_equations(eq, shapes, match):
    names = [f"x{k}" for k in range(len(shapes))]
    model = make_model([helper.make_node("Einsum", names, ["y"], equation=eq)],
                       [(n, np.float32, list(s)) for n, s in zip(names, shapes)], [("y", np.float32, None)])
    with pytest.raises(tilerun.ModelError, match=match):
        tilerun.compile_model(model)


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.int8, np.uint16, np.float32])
@pytest.mark.parametrize("fmod", [0, 1])
def test_mod_broadcast(dtype, fmod):
    a = RNG.integers(-50 if np.dtype(dtype).kind != "u" else 0, 50, (3, 4)).astype(dtype)
    b = RNG.integers(1, 9, (4,)).astype(dtype)
    if np.dtype(dtype).kind == "i":
        b[1] = -b[1]
    if dtype == np.float32:
        a = a + np.float32(0.25)
    model = make_model([helper.make_node("Mod", ["a", "b"], ["y"], fmod=fmod)],
                       [("a", dtype, [3, 4]), ("b", dtype, [4])], [("y", dtype, None)], opset=13)
    # ONNX Runtime refuses fmod=0 on floats: the reference evaluator judges that one.
    check_against_reference(model, {"a": a, "b": b}, rtol=1e-6, atol=1e-6, use_ort=dtype != np.float32 or fmod == 1)


def test_mod_float_nan_and_zero_divisor():
    a = np.array([np.nan, 1.0, 5.5, -5.5], np.float32)
    b = np.array([2.0, 0.0, np.nan, 2.0], np.float32)
    model = make_model([helper.make_node("Mod", ["a", "b"], ["y"], fmod=1)], [("a", np.float32, [4]), ("b", np.float32, [4])],
                       [("y", np.float32, None)], opset=13)
    (y,) = run_tilerun(model, [a, b])
    np.testing.assert_array_equal(np.isnan(y), [True, True, True, False])
    assert y[3] == np.float32(-1.5)


def test_mod_mixed_dtypes_refused():
    model = make_model([helper.make_node("Mod", ["a", "b"], ["y"])], [("a", np.int64, [2]), ("b", np.int32, [2])],
                       [("y", np.int64, None)], opset=13)
    with pytest.raises(tilerun.ModelError, match="int64 and int32"):
        tilerun.compile_model(model)


def test_neg_integers():
    model = make_model([helper.make_node("Neg", ["x"], ["y"])], [("x", np.int64, [5])], [("y", np.int64, None)])
    check_against_reference(model, {"x": np.array([0, 3, -7, 2**40, -(2**62)], np.int64)}, use_ort=True)


def test_and_on_float_refused():
    model = make_model([helper.make_node("And", ["a", "b"], ["y"])], [("a", np.float32, [2]), ("b", np.bool_, [2])],
                       [("y", np.bool_, None)])
    with pytest.raises(tilerun.ModelError, match="expected bool"):
        tilerun.compile_model(model)


def _gather_model(op, data_shape, idx_shape, dtype=np.float32, idx_dtype=np.int64, **attrs):
    return make_model([helper.make_node(op, ["x", "i"], ["y"], **attrs)],
                      [("x", dtype, list(data_shape)), ("i", idx_dtype, list(idx_shape))], [("y", dtype, None)])


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("idx_dtype", [np.int64, np.int32])
def test_gather_elements_run_time_indices(axis, idx_dtype):
    x = RNG.standard_normal((3, 4, 5)).astype(np.float32)
    n = x.shape[axis]
    shape = list(x.shape)
    shape[axis] = 2
    i = RNG.integers(-n, n, shape).astype(idx_dtype)
    check_against_reference(_gather_model("GatherElements", x.shape, shape, idx_dtype=idx_dtype, axis=axis),
                            {"x": x, "i": i}, use_ort=True)


def test_gather_elements_wide_axis_folds():
    """Constant inputs fold with numpy (onnx's reference evaluator fails past 64 entries on the axis)."""
    table = np.arange(512, dtype=np.int64)[None]
    nodes = [helper.make_node("GatherElements", ["t", "i"], ["g"], axis=1), helper.make_node("Add", ["g", "x"], ["y"])]
    model = make_model(nodes, [("x", np.int64, [1, 16])], [("y", np.int64, None)],
                       [("t", table), ("i", np.arange(100, 116, dtype=np.int64)[None])])
    check_against_reference(model, {"x": np.ones((1, 16), np.int64)}, use_ort=True)


def test_gather_elements_out_of_range_fails_the_request():
    model = _gather_model("GatherElements", (2, 3), (2, 3), axis=1)
    with tilerun.compile_model(model) as eng:
        with pytest.raises(tilerun.TilerunError, match="out of range"):
            eng.run([np.zeros((2, 3), np.float32), np.array([[0, 1, 3], [0, 0, 0]], np.int64)])
        (y,) = eng.run([np.arange(6, dtype=np.float32).reshape(2, 3), np.array([[2, 1, 0], [0, -1, 0]], np.int64)])
    np.testing.assert_array_equal(y, [[2, 1, 0], [3, 5, 3]])


@pytest.mark.parametrize("data_shape,idx_shape,batch_dims,dtype", [
    ((4, 5, 6), (3, 2), 0, np.float32),
    ((4, 5, 6), (2, 3, 1), 0, np.float32),
    ((2, 5, 6), (2, 3, 1), 1, np.float32),
    ((3, 7), (3, 7, 2), 0, np.bool_),
])
def test_gather_nd(data_shape, idx_shape, batch_dims, dtype):
    rng = np.random.default_rng(5)
    x = rng.standard_normal(data_shape).astype(np.float32) if dtype == np.float32 else rng.random(data_shape) < 0.5
    k = idx_shape[-1]
    dims = np.array(data_shape[batch_dims:batch_dims + k])
    i = (rng.integers(0, 1 << 20, idx_shape) % dims - (rng.random(idx_shape) < 0.3) * dims).astype(np.int64)
    model = _gather_model("GatherND", data_shape, idx_shape, dtype=dtype, batch_dims=batch_dims)
    check_against_reference(model, {"x": x, "i": i}, use_ort=True)


def test_gather_nd_out_of_range_fails_the_request():
    model = _gather_model("GatherND", (4, 5), (2, 2))
    with tilerun.compile_model(model) as eng:
        with pytest.raises(tilerun.TilerunError, match="out of range"):
            eng.run([np.zeros((4, 5), np.float32), np.array([[0, 0], [1, 5]], np.int64)])


@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.int32])
@pytest.mark.parametrize("exclusive,reverse", [(0, 0), (1, 0), (0, 1), (1, 1)])
@pytest.mark.parametrize("axis,n", [(1, 7), (0, 1), (-1, 16)])
def test_cumsum(dtype, exclusive, reverse, axis, n):
    shape = (n, 7, 3) if axis == 0 else (2, n) if axis == 1 else (3, n)
    x = (RNG.standard_normal(shape) * 10).astype(dtype)
    model = make_model([helper.make_node("CumSum", ["x", "a"], ["y"], exclusive=exclusive, reverse=reverse)],
                       [("x", dtype, list(shape))], [("y", dtype, None)], [("a", np.array(axis, np.int64))])
    check_against_reference(model, {"x": x}, rtol=1e-5, atol=1e-4, use_ort=True)


def test_cumsum_nan_propagates_forward_only():
    x = np.array([[1.0, 2.0, np.nan, 4.0]], np.float32)
    model = make_model([helper.make_node("CumSum", ["x", "a"], ["y"])], [("x", np.float32, [1, 4])],
                       [("y", np.float32, None)], [("a", np.array(1, np.int64))])
    (y,) = run_tilerun(model, [x])
    np.testing.assert_array_equal(np.isnan(y), [[False, False, True, True]])
    assert y[0, 1] == 3.0


def test_cumsum_run_time_axis_keys_the_plan():
    """The axis given at run time: the engine builds a plan per axis value."""
    model = make_model([helper.make_node("CumSum", ["x", "a"], ["y"])], [("x", np.float32, [2, 3]), ("a", np.int64, [])],
                       [("y", np.float32, None)])
    x = RNG.standard_normal((2, 3)).astype(np.float32)
    with tilerun.compile_model(model) as eng:
        for axis in (0, 1, -1):
            np.testing.assert_allclose(eng.run([x, np.array(axis, np.int64)])[0], np.cumsum(x, axis=axis), rtol=1e-6)


@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
def test_scatter_nd_repeated_indices(reduction):
    x = RNG.standard_normal((4, 3, 2)).astype(np.float32)
    idx = np.array([[1], [3], [1], [1]], np.int64)  # row 1 three times
    upd = RNG.standard_normal((4, 3, 2)).astype(np.float32)
    model = make_model([helper.make_node("ScatterND", ["x", "i", "u"], ["y"], reduction=reduction)],
                       [("x", np.float32, [4, 3, 2]), ("u", np.float32, [4, 3, 2])], [("y", np.float32, None)],
                       [("i", idx)], opset=18)
    if reduction == "none":  # ONNX leaves repeated indices undefined without a reduction: the last update wins
        (y,) = run_tilerun(model, [x, upd])
        want = x.copy()
        for k, r in enumerate(idx[:, 0]):
            want[r] = upd[k]
        np.testing.assert_array_equal(y, want)
    else:
        check_against_reference(model, {"x": x, "u": upd}, use_ort=True)


def test_scatter_nd_element_indices_int64_data():
    x = np.arange(12, dtype=np.int64).reshape(3, 4)
    idx = np.array([[0, 1], [2, -1], [1, 0]], np.int64)
    model = make_model([helper.make_node("ScatterND", ["x", "i", "u"], ["y"])],
                       [("x", np.int64, [3, 4]), ("u", np.int64, [3])], [("y", np.int64, None)], [("i", idx)])
    check_against_reference(model, {"x": x, "u": np.array([-5, -6, -7], np.int64)}, use_ort=True)


def test_scatter_nd_out_of_range_refused():
    model = make_model([helper.make_node("ScatterND", ["x", "i", "u"], ["y"])],
                       [("x", np.float32, [3, 4]), ("u", np.float32, [1, 4])], [("y", np.float32, None)],
                       [("i", np.array([[3]], np.int64))])
    with pytest.raises(tilerun.ModelError, match="out of range"):
        tilerun.compile_model(model)


@pytest.mark.parametrize("dtype", [np.float32, np.int64])
@pytest.mark.parametrize("largest,axis,k", [(1, -1, 3), (0, 1, 2), (1, 0, 4)])
def test_topk(dtype, largest, axis, k):
    x = RNG.integers(-5, 5, (4, 6, 5)).astype(dtype)  # many ties: lower index first
    if dtype == np.float32:
        x = x + RNG.standard_normal(x.shape).astype(np.float32) * (RNG.random(x.shape) < 0.5)
    model = make_model([helper.make_node("TopK", ["x", "k"], ["v", "i"], axis=axis, largest=largest)],
                       [("x", dtype, [4, 6, 5])], [("v", dtype, None), ("i", np.int64, None)],
                       [("k", np.array([k], np.int64))], opset=11)
    check_against_reference(model, {"x": x}, use_ort=True)


def test_topk_k_too_large_refused():
    model = make_model([helper.make_node("TopK", ["x", "k"], ["v", "i"])], [("x", np.float32, [2, 3])],
                       [("v", np.float32, None), ("i", np.int64, None)], [("k", np.array([4], np.int64))], opset=11)
    with pytest.raises(tilerun.ModelError, match="k 4 is out of range"):
        tilerun.compile_model(model)
