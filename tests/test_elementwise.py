"""Elementwise activations and broadcasting arithmetic against the reference evaluator."""
import numpy as np
import pytest
from onnx import helper

from oracle import check_against_reference, make_model

F = np.float32


@pytest.mark.parametrize("op,attrs", [
    ("Relu", {}), ("LeakyRelu", {"alpha": 0.1}), ("Sigmoid", {}), ("Tanh", {}),
    ("HardSigmoid", {"alpha": 0.3, "beta": 0.4}), ("HardSwish", {}),
])
def test_activation(op, attrs):
    x = (np.random.default_rng(0).standard_normal((2, 3, 17, 19)) * 4).astype(F)
    m = make_model([helper.make_node(op, ["x"], ["y"], **attrs)], [("x", F, x.shape)], [("y", F, None)])
    check_against_reference(m, {"x": x})


@pytest.mark.parametrize("opset", [9, 13])
def test_clip(opset):
    x = np.random.default_rng(1).standard_normal((4, 1000)).astype(F) * 10
    if opset < 11:
        node = helper.make_node("Clip", ["x"], ["y"], min=0.0, max=6.0)
        inits = []
    else:
        node = helper.make_node("Clip", ["x", "lo", "hi"], ["y"])
        inits = [("lo", np.array(0, F)), ("hi", np.array(6, F))]
    m = make_model([node], [("x", F, x.shape)], [("y", F, None)], inits, opset=opset)
    check_against_reference(m, {"x": x})


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div", "Max", "Min"])
@pytest.mark.parametrize("sa,sb", [
    ((2, 3, 4, 5), (2, 3, 4, 5)), ((2, 3, 4, 5), (3, 1, 1)), ((1, 3, 1, 5), (2, 1, 4, 1)),
    ((5,), (2, 3, 4, 5)), ((2, 3, 4, 5), ()), ((4, 1), (1, 7)), ((2, 1, 3, 1, 2, 1), (1, 4, 1, 5, 1, 3)),
])
def test_broadcast_binary(op, sa, sb):
    rng = np.random.default_rng(hash((op, sa, sb)) % 2**32)
    a = rng.standard_normal(sa).astype(F)
    b = np.asarray(rng.standard_normal(sb) + (3 if op == "Div" else 0), dtype=F)
    m = make_model([helper.make_node(op, ["a", "b"], ["y"])], [("a", F, sa), ("b", F, sb)], [("y", F, None)])
    check_against_reference(m, {"a": a, "b": b})


@pytest.mark.parametrize("op,sa,sb", [
    ("Add", (1, 64, 56, 56), (1, 64, 56, 56)),  # a residual add: one row of 200704 once collapsed
    ("Mul", (2, 48, 60, 60), ()),               # a scalar: one row too
    ("Sub", (1,), (3, 1, 70, 64 * 65)),         # the scalar first
    ("Max", (16, 50000), (16, 50000)),          # rows of 4000
    ("Greater", (1, 32, 80, 80), (1,)),          # a comparison shares the broadcast geometry
])
def test_long_rows_split_into_tiles(op, sa, sb):
    """A same-shape or scalar broadcast collapses to one long row; it still splits over the workers, each
    tile on whole rows of its split, and matches the reference on 1 and 2 cores."""
    import tilerun
    rng = np.random.default_rng(7)
    a, b = rng.standard_normal(sa).astype(F), rng.standard_normal(sb).astype(F)
    out = bool if op == "Greater" else F
    m = make_model([helper.make_node(op, ["a", "b"], ["y"])], [("a", F, sa), ("b", F, sb)], [("y", out, None)])
    check_against_reference(m, {"a": a, "b": b})
    tiles = [o["tiles"] for o in tilerun.compile_model(m, num_cores=2).trace([a, b]).per_op()]
    assert tiles[0] >= 2, f"{op} {sa} {sb} ran as {tiles[0]} tile(s) on 2 workers"


def test_split_long_row_geometry():
    from tilerun.ops.elementwise import split_long_row
    assert split_long_row([200704], [[1], [0]]) == ([49, 4096], [[4096, 1], [0, 0]])
    assert split_long_row([3, 4000], [[4000, 1], [0, 1]]) == ([3, 4000], [[4000, 1], [0, 1]])  # short: as is
    assert split_long_row([10007], [[1]]) == ([10007], [[1]])  # prime: no divisor in range, left whole
    assert split_long_row([], []) == ([], [])  # a scalar


def test_variadic_sum_with_constant():
    rng = np.random.default_rng(2)
    xs = [rng.standard_normal(s).astype(F) for s in [(3, 8, 8), (8, 1), (3, 8, 8)]]
    m = make_model([helper.make_node("Sum", ["a", "b", "c", "k"], ["y"])],
                   [("a", F, xs[0].shape), ("b", F, xs[1].shape), ("c", F, xs[2].shape)], [("y", F, None)],
                   [("k", np.ones((1, 8), F))])
    check_against_reference(m, dict(zip("abc", xs)))


INT_TYPES = [np.int64, np.int32, np.int16, np.int8, np.uint64, np.uint32, np.uint16, np.uint8]


@pytest.mark.parametrize("dtype", INT_TYPES)
def test_integer_arithmetic(dtype):
    """Add/Sub/Mul/Div/Max/Min on every integer dtype, broadcasting, with wraparound and truncating Div."""
    info = np.iinfo(dtype)
    rng = np.random.default_rng(3)
    a = rng.integers(info.min, info.max, size=(3, 4, 5), dtype=dtype, endpoint=True)
    b = rng.integers(max(info.min, -9), 10, size=(4, 1), dtype=dtype)
    b[b == 0] = 7  # the reference raises on a zero divisor
    nodes = [helper.make_node(op, ["a", "b"], [op.lower()]) for op in ["Add", "Sub", "Mul", "Div", "Max", "Min"]]
    nodes.append(helper.make_node("Sum", ["a", "b", "a"], ["sum"]))
    outs = [(n.output[0], dtype, None) for n in nodes]
    m = make_model(nodes, [("a", dtype, a.shape), ("b", dtype, b.shape)], outs, opset=14)
    with np.errstate(over="ignore"):
        check_against_reference(m, {"a": a, "b": b})


def test_integer_div_edge_cases():
    a = np.array([-7, 7, -7, 7, -9223372036854775808, 5], np.int64)
    b = np.array([2, -2, -2, 2, -1, 0], np.int64)
    m = make_model([helper.make_node("Div", ["a", "b"], ["y"])], [("a", np.int64, [6]), ("b", np.int64, [6])],
                   [("y", np.int64, None)])
    import tilerun
    with tilerun.compile_model(m, num_cores=1) as eng:
        y = eng.run([a, b])[0]
    # truncation toward zero; MIN / -1 wraps; a zero divisor gives 0 instead of trapping
    np.testing.assert_array_equal(y, [-3, -3, 3, 3, -9223372036854775808, 0])


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.int64, np.uint8])
@pytest.mark.parametrize("bounds", ["both", "min", "max", "none"])
def test_integer_clip(dtype, bounds):
    x = np.random.default_rng(4).integers(0, 100, size=(3, 50)).astype(dtype)
    names = {"both": ["x", "lo", "hi"], "min": ["x", "lo"], "max": ["x", "", "hi"], "none": ["x"]}[bounds]
    inits = [("lo", np.array(10, dtype)), ("hi", np.array(60, dtype))]
    m = make_model([helper.make_node("Clip", names, ["y"])], [("x", dtype, x.shape)], [("y", dtype, None)],
                   [i for i in inits if i[0] in names], opset=13)
    check_against_reference(m, {"x": x})


@pytest.mark.parametrize("dtype", [np.float64, np.float16])
def test_float64_and_float16_are_refused_naming_the_tensor(dtype):
    import tilerun
    m = make_model([helper.make_node("Add", ["x", "x"], ["y"])], [("x", dtype, [2, 3])], [("y", dtype, None)])
    with pytest.raises(tilerun.ModelError) as e:
        tilerun.compile_model(m, num_cores=1)
    assert "'x'" in str(e.value) and np.dtype(dtype).name in str(e.value) and "float32" in str(e.value)
    m = make_model([helper.make_node("Transpose", ["x"], ["y"])], [("x", dtype, [2, 3])], [("y", dtype, None)])
    with pytest.raises(tilerun.ModelError):
        tilerun.compile_model(m, num_cores=1)


def test_constant_float64_folds_away():
    # A float64 constant subgraph that ends in a Cast to float32 is computed at compile time: fine.
    m = make_model([helper.make_node("Cast", ["k"], ["kf"], to=1), helper.make_node("Add", ["x", "kf"], ["y"])],
                   [("x", F, [2, 3])], [("y", F, None)], [("k", np.arange(3, dtype=np.float64))])
    check_against_reference(m, {"x": np.ones((2, 3), F)})


@pytest.mark.parametrize("ratio,training,with_mask", [(0.5, None, True), (0.0, True, True), (0.3, False, False)])
def test_dropout_inference_and_mask(ratio, training, with_mask):
    x = np.random.default_rng(5).standard_normal((2, 5)).astype(F)
    ins = ["x", "r"] + (["t"] if training is not None else [])
    inits = [("r", np.array(ratio, F))] + ([("t", np.array(training))] if training is not None else [])
    outs = ["y", "mask"] if with_mask else ["y"]
    m = make_model([helper.make_node("Dropout", ins, outs), ],
                   [("x", F, x.shape)], [("y", F, None)] + ([("mask", np.bool_, None)] if with_mask else []),
                   inits, opset=13)
    check_against_reference(m, {"x": x})


def test_training_dropout_is_refused():
    import tilerun
    m = make_model([helper.make_node("Dropout", ["x", "r", "t"], ["y"])], [("x", F, [4])], [("y", F, None)],
                   [("r", np.array(0.5, F)), ("t", np.array(True))], opset=13)
    with pytest.raises(tilerun.ModelError, match="training-mode Dropout"):
        tilerun.compile_model(m, num_cores=1)


@pytest.mark.parametrize("op,attrs,lo", [
    ("Abs", {}, None), ("Neg", {}, None), ("Exp", {}, None), ("Log", {}, 0.01), ("Sqrt", {}, 0.0),
    ("Reciprocal", {}, 0.1), ("Floor", {}, None), ("Ceil", {}, None), ("Erf", {}, None), ("Sin", {}, None),
    ("Cos", {}, None), ("Softplus", {}, None), ("Sign", {}, None), ("Round", {}, None), ("Elu", {"alpha": 0.7}, None),
    ("Selu", {"alpha": 1.5, "gamma": 1.1}, None), ("Gelu", {}, None), ("Gelu", {"approximate": "tanh"}, None),
])
def test_unary_math(op, attrs, lo):
    x = (np.random.default_rng(6).standard_normal((3, 257)) * 4).astype(F)
    x[0, :4] = [0.5, -0.5, 2.5, 0.0]  # rounding halves, zero
    if lo is not None:
        x = np.abs(x) + F(lo)
    m = make_model([helper.make_node(op, ["x"], ["y"], **attrs)], [("x", F, x.shape)], [("y", F, None)], opset=20)
    check_against_reference(m, {"x": x}, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("exponent", [np.array(2, F), np.full((1, 1), 2, F)])
def test_pow_of_two_is_the_exact_square(exponent):
    """``Pow(x, 2)`` runs as ``x * x`` (no scalar pow per element) and gives the general kernel's result bit
    for bit: NaN, infinities, signed zeros, overflow and subnormals included."""
    import tilerun
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((3, 40, 50)) * 10).astype(F)
    x.flat[:8] = [np.nan, np.inf, -np.inf, -0.0, 0.0, 3e38, -2e20, 1e-30]
    m = make_model([helper.make_node("Pow", ["x", "e"], ["y"])], [("x", F, x.shape)], [("y", F, None)],
                   [("e", exponent)], opset=15)
    with np.errstate(over="ignore", under="ignore"):
        want = (x.astype(np.float64) ** 2).astype(F)
        check_against_reference(m, {"x": x})
    for cores in (1, 2):
        eng = tilerun.compile_model(m, num_cores=cores)
        np.testing.assert_array_equal(eng.run([x])[0], want)
        assert [r.kernel.name for r in eng.plan.rows] == ["f32_mul"]


def test_pow_broadcast():
    rng = np.random.default_rng(7)
    a = (rng.random((2, 3, 4)) * 3).astype(F)
    b = rng.standard_normal((3, 1)).astype(F)
    m = make_model([helper.make_node("Pow", ["a", "b"], ["y"])], [("a", F, a.shape), ("b", F, b.shape)],
                   [("y", F, None)], opset=15)
    check_against_reference(m, {"a": a, "b": b})


@pytest.mark.parametrize("opset", [9, 16])
@pytest.mark.parametrize("slope_shape", [(40, 1), (1,), (3, 40, 50), (50,)])
def test_prelu_is_one_row(opset, slope_shape):
    """PRelu (ONNX defines it by a function only from opset 16) runs as one ``f32_prelu`` row: ONNX Runtime's
    values with NaN, infinities and signed zeros, the slope broadcast from each side's shapes."""
    import tilerun
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((3, 40, 50)) * 4).astype(F)
    x.flat[:6] = [np.nan, np.inf, -np.inf, -0.0, 0.0, -3e38]
    slope = rng.standard_normal(slope_shape).astype(F)
    m = make_model([helper.make_node("PRelu", ["x", "s"], ["y"])], [("x", F, x.shape)], [("y", F, None)],
                   [("s", slope)], opset=opset)
    y = check_against_reference(m, {"x": x}, use_ort=True, rtol=0, atol=0)[0]
    assert np.signbit(y.flat[3]) and not np.signbit(y.flat[4])
    with tilerun.compile_model(m, num_cores=2) as eng:
        assert [r.kernel.name for r in eng.plan.rows] == ["f32_prelu"]


def test_prelu_on_integers_and_a_widening_slope():
    import tilerun
    from tilerun.errors import ModelError
    x = np.arange(-12, 12, dtype=np.int32).reshape(2, 3, 4)
    m = make_model([helper.make_node("PRelu", ["x", "s"], ["y"])], [("x", np.int32, x.shape)],
                   [("y", np.int32, None)], [("s", np.array([2, -3, 5, 7], np.int32))], opset=16)
    check_against_reference(m, {"x": x})
    wide = make_model([helper.make_node("PRelu", ["x", "s"], ["y"])], [("x", F, (3, 1))], [("y", F, None)],
                      [("s", np.ones((1, 4), F))], opset=16)
    with pytest.raises(ModelError, match="must broadcast to X's shape"):
        tilerun.compile_model(wide)
