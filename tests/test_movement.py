"""Data-movement ops (views, copies, gather, cast) against the reference evaluator, over several dtypes."""
import numpy as np
import pytest
from onnx import TensorProto, helper

import tilerun
from oracle import check_against_reference, make_model

F, I64, B = np.float32, np.int64, np.bool_
DTYPES = [np.float32, np.int64, np.bool_, np.int32, np.uint8, np.int8]


def rand(rng, shape, dtype):
    """Random data of ``dtype`` (booleans half true, integers spread over a wide range)."""
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return np.asarray(rng.random(shape) < 0.5)
    if dtype.kind == "f":
        return np.asarray(rng.standard_normal(shape), dtype)
    info = np.iinfo(dtype)
    return np.asarray(rng.integers(max(info.min, -10**6), min(info.max, 10**6), shape, endpoint=True), dtype)


def run_one(op, x, attrs=None, consts=(), opset=17, extra_inputs=(), n_out=1, use_ort=False):
    """Check one ``op`` node on graph input ``x`` (plus constant and run-time extra inputs)."""
    names = ["x"] + [n for n, _ in consts] + [n for n, _ in extra_inputs]
    node_inputs = list(names)
    outs = [f"y{k}" for k in range(n_out)]
    node = helper.make_node(op, node_inputs, outs, **(attrs or {}))
    inputs = [("x", x.dtype, x.shape)] + [(n, a.dtype, a.shape) for n, a in extra_inputs]
    m = make_model([node], inputs, [(o, x.dtype, None) for o in outs], list(consts), opset=opset)
    feeds = {"x": x, **dict(extra_inputs)}
    return check_against_reference(m, feeds, use_ort=use_ort)


def i64(*v):
    return np.array(v, np.int64)


# -- views -----------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [F, I64, B])
@pytest.mark.parametrize("shape,target", [((2, 3, 4), (0, -1)), ((2, 3, 4), (4, 0, 2)), ((6,), (1, 2, 3)),
                                          ((2, 3, 4), (-1,)), ((1, 1), (1,))])
def test_reshape(dtype, shape, target):
    x = rand(np.random.default_rng(0), shape, dtype)
    run_one("Reshape", x, consts=[("s", i64(*target))])


def test_reshape_allowzero_and_errors():
    x = np.arange(6, dtype=F).reshape(2, 3)
    run_one("Reshape", x, {"allowzero": 1}, consts=[("s", i64(3, 2))], opset=14)
    m = make_model([helper.make_node("Reshape", ["x", "s"], ["y"])], [("x", F, (2, 3))], [("y", F, None)],
                   [("s", i64(4, -1))])
    with pytest.raises(ValueError, match="Reshape"):
        tilerun.compile_model(m)


@pytest.mark.parametrize("axis", [0, 1, 2, -1, -3])
def test_flatten(axis):
    run_one("Flatten", rand(np.random.default_rng(1), (2, 3, 4), I64), {"axis": axis}, opset=13)


@pytest.mark.parametrize("opset", [11, 13])
def test_squeeze_unsqueeze(opset):
    x = rand(np.random.default_rng(2), (1, 3, 1, 4), F)
    if opset < 13:
        run_one("Squeeze", x, {"axes": [0, -2]}, opset=opset)
        run_one("Unsqueeze", x, {"axes": [-1, 1]}, opset=opset)
    else:
        run_one("Squeeze", x, consts=[("a", i64(0, -2))], opset=opset)
        run_one("Unsqueeze", x, consts=[("a", i64(-1, 1))], opset=opset)
    run_one("Squeeze", x, opset=opset)


def test_identity_input_to_output_and_chain():
    x = rand(np.random.default_rng(3), (3, 5), B)
    run_one("Identity", x)
    nodes = [helper.make_node("Identity", ["x"], ["t"]), helper.make_node("Transpose", ["t"], ["y"]),
             helper.make_node("Reshape", ["y", "s"], ["z"])]
    m = make_model(nodes, [("x", B, x.shape)], [("y", B, None), ("z", B, None)], [("s", i64(-1))])
    check_against_reference(m, {"x": x})


# -- mapped copies -----------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_transpose_random(dtype):
    rng = np.random.default_rng(10 + DTYPES.index(dtype))
    for _ in range(3):
        rank = int(rng.integers(1, 6))
        shape = tuple(int(d) for d in rng.integers(1, 6, rank))
        perm = [int(p) for p in rng.permutation(rank)]
        run_one("Transpose", rand(rng, shape, dtype), {"perm": perm})
    run_one("Transpose", rand(rng, (2, 3, 4), dtype))  # default: reversed axes


@pytest.mark.parametrize("dtype", [F, I64, np.uint8])
@pytest.mark.parametrize("shape,perm", [((2, 24, 9, 11), [0, 2, 3, 1]), ((2, 9, 11, 24), [0, 3, 1, 2]),
                                        ((70, 33), [1, 0]), ((3, 40, 50), [0, 2, 1])])
def test_transpose_blocked(dtype, shape, perm):
    run_one("Transpose", rand(np.random.default_rng(4), shape, dtype), {"perm": perm})


@pytest.mark.parametrize("dtype", [F, I64, B])
def test_slice_cases(dtype):
    rng = np.random.default_rng(5)
    x = rand(rng, (5, 7, 9), dtype)
    big = 2**62
    for starts, ends, axes, steps in [
        ((1, 2), (4, -1), (0, 2), (1, 2)),
        ((-1,), (-big,), (1,), (-1,)),           # full reverse of axis 1
        ((8, 10), (0, -100), (-1, 0), (-3, -2)),  # negative steps, clamped ends
        ((0,), (100,), (0,), (1,)),               # out-of-range end
        ((2,), (3,), (0,), (1,)),                 # a contiguous block: aliased
        ((3,), (1,), (2,), (1,)),                 # empty result
    ]:
        run_one("Slice", x, consts=[("s", i64(*starts)), ("e", i64(*ends)), ("a", i64(*axes)),
                                    ("p", i64(*steps))], opset=13)
    run_one("Slice", x, {"starts": [1, 0], "ends": [3, 5], "axes": [2, 1]}, opset=9)


def test_slice_random():
    rng = np.random.default_rng(6)
    for _ in range(6):
        shape = tuple(int(d) for d in rng.integers(1, 8, int(rng.integers(1, 5))))
        x = rand(rng, shape, F)
        axes = [int(a) for a in rng.permutation(len(shape))[:int(rng.integers(1, len(shape) + 1))]]
        st = [int(rng.integers(-9, 9)) for _ in axes]
        en = [int(rng.integers(-9, 9)) for _ in axes]
        sp = [int(rng.choice([-3, -2, -1, 1, 2, 3])) for _ in axes]
        run_one("Slice", x, consts=[("s", i64(*st)), ("e", i64(*en)), ("a", i64(*axes)), ("p", i64(*sp))])


@pytest.mark.parametrize("dtype", [F, I64, B])
@pytest.mark.parametrize("opset", [11, 13, 18])
def test_split(dtype, opset):
    x = rand(np.random.default_rng(7), (4, 6, 5), dtype)
    if opset >= 13:
        run_one("Split", x, {"axis": -2}, consts=[("s", i64(1, 3, 2))], opset=opset, n_out=3)
    else:
        run_one("Split", x, {"axis": 1, "split": [1, 3, 2]}, opset=opset, n_out=3)
    run_one("Split", x, {"axis": 0}, opset=min(opset, 17), n_out=2)
    if opset >= 18:
        run_one("Split", x, {"axis": 2, "num_outputs": 2}, opset=opset, n_out=2)


@pytest.mark.parametrize("dtype", [F, I64, B, np.int8])
@pytest.mark.parametrize("mode", ["constant", "reflect", "edge"])
def test_pad(dtype, mode):
    x = rand(np.random.default_rng(8), (2, 5, 6), dtype)
    pads = i64(0, 2, 3, 1, 1, 4)
    consts = [("p", pads)]
    if mode == "constant":
        consts.append(("v", np.array(7, dtype)))
    run_one("Pad", x, {"mode": mode}, consts=consts, opset=13)
    run_one("Pad", x, {"mode": mode, "pads": [1, 0, 2, 0, 3, 1]}, opset=9)


def test_pad_negative_crop_and_axes():
    x = rand(np.random.default_rng(9), (4, 6, 7), F)
    # the reference evaluator's numpy pad rejects negative pads: ONNX Runtime is the oracle here
    run_one("Pad", x, consts=[("p", i64(-1, 2, -2, 0, -1, 3))], opset=13, use_ort=True)
    run_one("Pad", x, consts=[("p", i64(1, -2, 0, 2, -1, -3))], opset=13, use_ort=True)
    run_one("Pad", x, {"mode": "reflect"}, consts=[("p", i64(2, 3, 1, 2)), ("v", np.array(0, F)),
                                                   ("a", i64(-1, 0))], opset=18)


@pytest.mark.parametrize("dtype", [F, I64, B])
def test_expand_and_tile(dtype):
    rng = np.random.default_rng(11)
    run_one("Expand", rand(rng, (3, 1, 5), dtype), consts=[("s", i64(2, 1, 4, 1))])
    run_one("Expand", rand(rng, (1,), dtype), consts=[("s", i64(3, 4000))])
    run_one("Tile", rand(rng, (2, 3, 4), dtype), consts=[("r", i64(2, 1, 3))])
    run_one("Tile", rand(rng, (1, 5), dtype), consts=[("r", i64(3, 1))])


# -- gather, concat, cast --------------------------------------------------------------
@pytest.mark.parametrize("dtype", [F, I64, B, np.int32])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_gather_constant_indices(dtype, axis):
    rng = np.random.default_rng(12)
    x = rand(rng, (4, 5, 6), dtype)
    n = x.shape[axis]
    run_one("Gather", x, {"axis": axis}, consts=[("i", np.array([[0, -1, 2], [n - 1, -n, 1]], np.int64))])
    run_one("Gather", x, {"axis": axis}, consts=[("i", rng.integers(-n, n, 40).astype(np.int64))])


@pytest.mark.parametrize("dtype", [F, I64, B])
@pytest.mark.parametrize("idx_dtype", [np.int64, np.int32])
def test_gather_runtime_indices(dtype, idx_dtype):
    rng = np.random.default_rng(13)
    x = rand(rng, (6, 7, 3), dtype)
    idx = np.array([[-1, 0, 3], [5, -6, 2]], idx_dtype)
    for axis in (0, 1, -1):
        n = x.shape[axis]
        run_one("Gather", x, {"axis": axis}, extra_inputs=[("i", np.clip(idx, -n, n - 1))])
    run_one("Gather", x, {"axis": 1}, extra_inputs=[("i", np.array(-2, idx_dtype))])  # scalar index


def test_gather_runtime_out_of_range_fails_request():
    m = make_model([helper.make_node("Gather", ["x", "i"], ["y"], axis=0)], [("x", F, (4, 3)), ("i", I64, (2,))],
                   [("y", F, None)])
    with tilerun.compile_model(m) as eng:
        ok = eng.run([np.ones((4, 3), F), i64(3, -4)])
        np.testing.assert_array_equal(ok[0], np.ones((2, 3), F))
        with pytest.raises(tilerun.RequestError if hasattr(tilerun, "RequestError") else RuntimeError):
            eng.run([np.ones((4, 3), F), i64(0, 4)])
        eng.run([np.ones((4, 3), F), i64(0, 1)])  # the engine keeps serving


@pytest.mark.parametrize("mode", ["single_stream", "multi_stream"])
def test_gather_runtime_fault_names_input_index_and_bound(mode):
    # Indices computed by a node (read back from the request's arena) and indices given as a graph input.
    nodes = [helper.make_node("Add", ["i", "two"], ["j"]),
             helper.make_node("Gather", ["x", "j"], ["y"], axis=1, name="by_j"),
             helper.make_node("Gather", ["x", "i"], ["z"], axis=0, name="by_i")]
    m = make_model(nodes, [("x", F, (3, 4)), ("i", I64, (2, 2))], [("y", F, None), ("z", F, None)],
                   [("two", np.array(2, np.int64))])
    x = np.arange(12, dtype=F).reshape(3, 4)
    with tilerun.compile_model(m, scheduler=mode) as eng:
        with pytest.raises(tilerun.RequestError) as e:
            eng.run([x, np.array([[0, 1], [2, -2]], np.int64)])  # j = [[2, 3], [4, 0]]: 4 is out of axis 1's 0..3
        assert str(e.value) == ("node 'by_j' (Gather): input 'j' holds index 4 at position [1, 0], out of range "
                                "for axis 1 of 'x' of size 4 (expected -4 to 3)")
        with pytest.raises(tilerun.RequestError) as e:  # i out of axis 0's -3..2, j = i + 2 in range
            eng.run_async([x, np.array([[-4, 0], [-5, 1]], np.int64)]).result(timeout=30)
        assert str(e.value) == ("node 'by_i' (Gather): input 'i' holds index -4 at position [0, 0], out of range "
                                "for axis 0 of 'x' of size 3 (expected -3 to 2) (and 1 more out of range)")
        y, z = eng.run([x, np.array([[0, 1], [1, 0]], np.int64)])  # the engine keeps serving
        np.testing.assert_array_equal(z, x[[[0, 1], [1, 0]]])


@pytest.mark.parametrize("dtype", [F, I64, B, np.int8])
def test_concat(dtype):
    rng = np.random.default_rng(14)
    for axis, shapes in [(1, [(2, 3, 4), (2, 1, 4), (2, 5, 4)]), (-1, [(3, 2), (3, 7)]), (0, [(2, 3), (5, 3)]),
                         (0, [(4, 4)]), (2, [(1, 2, 1), (1, 2, 3), (1, 2, 1), (1, 2, 2)])]:
        xs = {f"x{k}": rand(rng, s, dtype) for k, s in enumerate(shapes)}
        node = helper.make_node("Concat", list(xs) + ["c"], ["y"], axis=axis)
        c = rand(rng, tuple(1 if k == axis % len(shapes[0]) else d for k, d in enumerate(shapes[0])), dtype)
        m = make_model([node], [(n, a.dtype, a.shape) for n, a in xs.items()], [("y", dtype, None)], [("c", c)])
        check_against_reference(m, xs)


def test_concat_large_rows_split_across_tiles():
    rng = np.random.default_rng(15)
    xs = {"a": rng.standard_normal((3, 50000)).astype(F), "b": rng.standard_normal((3, 70001)).astype(F)}
    m = make_model([helper.make_node("Concat", ["a", "b"], ["y"], axis=1)],
                   [(n, F, a.shape) for n, a in xs.items()], [("y", F, None)])
    check_against_reference(m, xs)


_ONNX = {np.dtype(F): TensorProto.FLOAT, np.dtype(I64): TensorProto.INT64, np.dtype(np.int32): TensorProto.INT32,
         np.dtype(B): TensorProto.BOOL, np.dtype(np.uint8): TensorProto.UINT8, np.dtype(np.int8): TensorProto.INT8}


@pytest.mark.parametrize("src", DTYPES)
def test_cast_all_pairs(src):
    rng = np.random.default_rng(16)
    if np.dtype(src).kind == "f":
        x = (rng.standard_normal((3, 70)) * 50).astype(F)
        x[0, :4] = [0.0, -0.0, 2.7, -2.7]
    else:
        x = rand(rng, (3, 70), src)
    for dst in DTYPES:
        node = helper.make_node("Cast", ["x"], ["y"], to=_ONNX[np.dtype(dst)])
        m = make_model([node], [("x", x.dtype, x.shape)], [("y", dst, None)])
        check_against_reference(m, {"x": x})


def test_runtime_chain_over_several_ops():
    """A small pipeline mixing views and copies on run-time tensors, as a transformer would."""
    rng = np.random.default_rng(17)
    x = rng.standard_normal((2, 8, 12)).astype(F)
    nodes = [helper.make_node("Reshape", ["x", "s"], ["r"]),                   # (2, 8, 3, 4)
             helper.make_node("Transpose", ["r"], ["t"], perm=[0, 2, 1, 3]),    # (2, 3, 8, 4)
             helper.make_node("Slice", ["t", "st", "en", "ax"], ["sl"]),        # (2, 3, 8, 2)
             helper.make_node("Concat", ["sl", "sl"], ["c"], axis=-1),
             helper.make_node("Cast", ["c"], ["y"], to=TensorProto.INT64)]
    m = make_model(nodes, [("x", F, x.shape)], [("y", I64, None), ("c", F, None)],
                   [("s", i64(0, 0, 3, -1)), ("st", i64(1)), ("en", i64(4)), ("ax", i64(3))])
    check_against_reference(m, {"x": x * 10})


# -- comparisons, Where, Not -----------------------------------------------------------
@pytest.mark.parametrize("op,dtype", [(op, dt) for op in ["Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"]
                                      for dt in [F, I64, np.int32, np.uint8, np.int8] + ([B] if op == "Equal" else [])])
def test_compare_broadcast(op, dtype):
    rng = np.random.default_rng(18)
    for sa, sb in [((3, 4, 5), (3, 4, 5)), ((3, 1, 5), (4, 1)), ((2, 3), ())]:
        a = rand(rng, sa, dtype)
        b = a.reshape(-1)[:int(np.prod(sb))].reshape(sb).copy() if rng.random() < 0.5 else rand(rng, sb, dtype)
        if dtype == F:
            a.reshape(-1)[:2] = [np.nan, -0.0]
        m = make_model([helper.make_node(op, ["a", "b"], ["y"])], [("a", dtype, sa), ("b", dtype, sb)],
                       [("y", B, None)])
        check_against_reference(m, {"a": a, "b": b})


@pytest.mark.parametrize("op", ["Equal", "Less", "GreaterOrEqual"])
def test_compare_int8_signs(op):
    a = np.array([[-128, -1, 0, 1, 127, -5]], np.int8)
    b = np.array([[127, 1, 0, -1, -128, -5], [-1, -1, -1, -1, -1, -1]], np.int8)
    m = make_model([helper.make_node(op, ["a", "b"], ["y"])], [("a", np.int8, a.shape), ("b", np.int8, b.shape)],
                   [("y", B, None)])
    check_against_reference(m, {"a": a, "b": b})


@pytest.mark.parametrize("dtype", [F, I64, B, np.uint8])
def test_where_and_not(dtype):
    rng = np.random.default_rng(20)
    c = rng.random((3, 1, 5)) < 0.5
    x, y = rand(rng, (4, 5), dtype), rand(rng, (3, 4, 1), dtype)
    nodes = [helper.make_node("Not", ["c"], ["nc"]), helper.make_node("Where", ["nc", "x", "y"], ["z"])]
    m = make_model(nodes, [("c", B, c.shape), ("x", dtype, x.shape), ("y", dtype, y.shape)],
                   [("z", dtype, None), ("nc", B, None)])
    check_against_reference(m, {"c": c, "x": x, "y": y})


def test_compare_feeds_where_mask():
    """An attention-style mask: positions >= a run-time length are replaced by a constant."""
    rng = np.random.default_rng(21)
    s = rng.standard_normal((2, 4, 6)).astype(F)
    nodes = [helper.make_node("Less", ["pos", "n"], ["keep"]), helper.make_node("Where", ["keep", "s", "neg"], ["y"])]
    m = make_model(nodes, [("s", F, s.shape), ("n", I64, (2, 1, 1))], [("y", F, None)],
                   [("pos", np.arange(6, dtype=np.int64)), ("neg", np.array(-1e4, F))])
    check_against_reference(m, {"s": s, "n": np.array([3, 6], np.int64).reshape(2, 1, 1)})


# -- errors at compile time -----------------------------------------------------------------
BAD = [
    ("Transpose", {"perm": [0, 0, 1]}, [], "permutation"),
    ("Slice", {}, [("s", i64(0)), ("e", i64(2)), ("a", i64(0)), ("p", i64(0))], "non-zero"),
    ("Split", {"axis": 1}, [("s", i64(1, 1))], "summing"),
    ("Gather", {"axis": 1}, [("i", i64(0, 3))], "out of range"),
    ("Gather", {"axis": 3}, [("i", i64(0))], "out of range"),
    ("Pad", {"mode": "bogus"}, [("p", i64(0, 0, 0, 0, 0, 0))], "mode"),
    ("Pad", {}, [("p", i64(0, -3, 0, 0, -3, 0))], "do not fit"),
    ("Expand", {}, [("s", i64(5, 1))], "broadcast"),
    ("Tile", {}, [("r", i64(2, 2))], "repeats"),
    ("Squeeze", {}, [("a", i64(1))], "size 1"),
    ("Reshape", {}, [("s", i64(-1, -1))], "-1"),
]


@pytest.mark.parametrize("op,attrs,consts,msg", BAD, ids=[f"{b[0]}-{b[3]}" for b in BAD])
def test_bad_nodes_raise_naming_the_node(op, attrs, consts, msg):
    node = helper.make_node(op, ["x"] + [n for n, _ in consts], ["y"], name="bad", **attrs)
    m = make_model([node], [("x", F, (2, 3, 4))], [("y", F, None)], consts, opset=17)
    with pytest.raises(tilerun.ModelError, match=f"(?s)'bad'.*{msg}"):
        tilerun.compile_model(m)


def test_runtime_shape_parameters_key_the_plan_and_bad_shapes_are_rejected():
    node = helper.make_node("Slice", ["x", "s", "e"], ["y"], name="dyn")
    m = make_model([node], [("x", F, (4,)), ("s", I64, (1,)), ("e", I64, (1,))], [("y", F, None)])
    x = np.arange(4, dtype=F)
    with tilerun.compile_model(m) as eng:  # starts and ends given per request: a plan per value
        for s, e in [(1, 3), (0, 4), (2, 3)]:
            np.testing.assert_array_equal(eng.run([x, np.array([s]), np.array([e])])[0], x[s:e])
    m = make_model([helper.make_node("Concat", ["x", "z"], ["y"], axis=0, name="cat")],
                   [("x", F, (4, 2)), ("z", F, (4, 3))], [("y", F, None)])
    with pytest.raises(tilerun.ModelError, match="'cat'.*does not"):
        tilerun.compile_model(m)


def test_scalar_empty_and_wrap_edges():
    """0-d tensors, an empty Slice result, Pad wrap (opset 19) and reflect wider than the axis."""
    x0 = np.array(1.5, F)
    cases = [
        ([helper.make_node("Reshape", ["x", "s"], ["y"])], [("x", F, (1, 1))], [("s", np.zeros(0, np.int64))],
         {"x": np.ones((1, 1), F)}, 17),
        ([helper.make_node("Gather", ["x", "i"], ["y"])], [("x", F, (5,)), ("i", I64, ())], [],
         {"x": np.arange(5, dtype=F), "i": np.array(-1, np.int64)}, 17),
        ([helper.make_node("Expand", ["x", "s"], ["y"])], [("x", F, ())], [("s", i64(2, 3))], {"x": x0}, 17),
        ([helper.make_node("Cast", ["x"], ["y"], to=TensorProto.INT32)], [("x", F, ())], [], {"x": x0}, 17),
        ([helper.make_node("Slice", ["x", "s", "e"], ["y"])], [("x", F, (3, 4))], [("s", i64(5)), ("e", i64(9))],
         {"x": np.ones((3, 4), F)}, 17),
        ([helper.make_node("Pad", ["x", "p"], ["y"], mode="wrap")], [("x", F, (2, 3))], [("p", i64(1, 4, 1, 5))],
         {"x": np.arange(6, dtype=F).reshape(2, 3)}, 19),
        ([helper.make_node("Pad", ["x", "p"], ["y"], mode="reflect")], [("x", I64, (3, 4))], [("p", i64(2, 3, 2, 3))],
         {"x": np.arange(12, dtype=np.int64).reshape(3, 4)}, 17),
    ]
    for nodes, ins, inits, feeds, opset in cases:
        m = make_model(nodes, ins, [("y", ins[0][1] if nodes[0].op_type != "Cast" else np.int32, None)], inits,
                       opset=opset)
        check_against_reference(m, feeds)


def test_concat_in_place_when_inputs_are_output_blocks():
    """Batch-1 channel concat of computed tensors: producers write into the output (no Concat row)."""
    rng = np.random.default_rng(22)
    a, b = rng.standard_normal((1, 16, 4, 4)).astype(F), rng.standard_normal((1, 8, 4, 4)).astype(F)
    nodes = [helper.make_node("Relu", ["a"], ["ra"]), helper.make_node("Sigmoid", ["b"], ["sb"]),
             helper.make_node("Concat", ["ra", "sb"], ["c1"], axis=1),
             helper.make_node("Tanh", ["c1"], ["t"]),
             helper.make_node("Concat", ["c1", "t"], ["c2"], axis=1),       # DenseNet-style growth
             helper.make_node("Concat", ["ra", "c2", "ra"], ["c3"], axis=1)]  # repeated/aliased: copies
    m = make_model(nodes, [("a", F, a.shape), ("b", F, b.shape)], [("c2", F, None), ("c3", F, None), ("ra", F, None)])
    check_against_reference(m, {"a": a, "b": b})  # ra is a graph output: the first Concat copies
    m = make_model(nodes, [("a", F, a.shape), ("b", F, b.shape)], [("c2", F, None), ("c3", F, None)])
    check_against_reference(m, {"a": a, "b": b})
    with tilerun.compile_model(m) as eng:
        kernels = [r.kernel.name for r in eng.plan.rows]
    assert kernels.count("u8_concat") == 1, kernels  # only c3, whose inputs are already views


# -- the wider integer dtypes (2-byte moves, one-kernel-per-dtype comparisons) ----------------
WIDE_INTS = [np.int16, np.uint16, np.uint32, np.uint64]


@pytest.mark.parametrize("dtype", WIDE_INTS)
def test_wide_int_compare(dtype):
    rng = np.random.default_rng(30)
    a, b = rand(rng, (3, 4, 5), dtype), rand(rng, (4, 1), dtype)
    b[0, 0] = a[0, 0, 0]
    ops = ["Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"]
    m = make_model([helper.make_node(op, ["a", "b"], [op]) for op in ops],
                   [("a", dtype, a.shape), ("b", dtype, b.shape)], [(op, B, None) for op in ops])
    check_against_reference(m, {"a": a, "b": b})


@pytest.mark.parametrize("dtype", [np.int16, np.uint16])
def test_two_byte_moves(dtype):
    rng = np.random.default_rng(31)
    x = rand(rng, (2, 9, 10), dtype)
    idx = np.array([1, 0, 8], np.int64)
    c = rng.random((9, 1)) < 0.5
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 1]),
             helper.make_node("Gather", ["x", "idx"], ["g"], axis=1),
             helper.make_node("Slice", ["x", "s", "e"], ["t2"]),
             helper.make_node("Where", ["c", "x", "t2"], ["w"]),
             helper.make_node("Pad", ["x", "pads"], ["p"], mode="edge")]
    m = make_model(nodes, [("x", dtype, x.shape), ("idx", I64, idx.shape), ("c", B, c.shape)],
                   [(o, dtype, None) for o in ("t", "g", "w", "p")],
                   [("s", i64(0)), ("e", i64(1)), ("pads", i64(0, 1, 2, 0, 1, 0))])
    check_against_reference(m, {"x": x, "idx": idx, "c": c})


@pytest.mark.parametrize("dtype", [np.int16, np.uint16, np.int64, F])
def test_pad_constant_fill_of_every_width(dtype):
    """The fill value travels in the row's ``fill`` slot: negative and 2-byte values keep their bytes."""
    x = rand(np.random.default_rng(32), (3, 4), dtype)
    value = np.array(-3 if np.dtype(dtype).kind != "u" else 65533, dtype)
    run_one("Pad", x, {"mode": "constant"}, consts=[("p", i64(1, 2, 0, 3)), ("v", value)], opset=13)


@pytest.mark.parametrize("dtype", [F, np.int8])
def test_concat_of_more_inputs_than_one_row_holds(dtype):
    """Inputs past ``CONCAT_INPUTS`` take another ``u8_concat`` row writing its own band of each output row."""
    from tilerun.kernels.movement import CONCAT_INPUTS
    rng = np.random.default_rng(33)
    widths = [1 + (5 * k) % 7 for k in range(CONCAT_INPUTS + 3)]
    xs = {f"x{k}": rand(rng, (4, w, 3), dtype) for k, w in enumerate(widths)}
    empty = rand(rng, (4, 0, 3), dtype)  # an empty input inside the first band
    names = list(xs)[:2] + ["e"] + list(xs)[2:]
    m = make_model([helper.make_node("Concat", names, ["y"], axis=1)],
                   [(n, a.dtype, a.shape) for n, a in xs.items()], [("y", dtype, None)], [("e", empty)])
    check_against_reference(m, xs)
    with tilerun.compile_model(m) as eng:
        kernels = [r.kernel.name for r in eng.plan.rows]
    assert kernels == ["u8_concat"] * -(-len(names) // CONCAT_INPUTS), kernels
