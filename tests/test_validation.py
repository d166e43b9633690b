"""The API boundary: what ``Engine.run`` refuses (with a message naming expected and given) and accepts.

Refused before any kernel runs: a wrong container, count, name, dtype, shape,
and a batch other than the compiled one. Accepted and computed right:
non-contiguous, read-only and Fortran-ordered arrays, and NaN/Inf values
(compared with onnx's reference evaluator).
"""
import numpy as np
import pytest
from onnx import helper

import tilerun
from tilerun import InputError, TilerunError

from oracle import make_model, reference_outputs


def _add_gather_model(batch="N"):
    """``y = x + b`` (float32 [N, 3]) and ``g = Gather(table, idx)`` (int64 indices [2])."""
    nodes = [helper.make_node("Add", ["x", "b"], ["y"]),
             helper.make_node("Gather", ["table", "idx"], ["g"], axis=0)]
    inits = [("b", np.array([1.0, 2.0, 3.0], np.float32)), ("table", np.arange(12, dtype=np.float32).reshape(4, 3))]
    return make_model(nodes, [("x", np.float32, [batch, 3]), ("idx", np.int64, [2])],
                      [("y", np.float32, None), ("g", np.float32, None)], inits)


@pytest.fixture(scope="module")
def engine():
    with tilerun.compile_model(_add_gather_model(), batch_size=2, num_cores=1) as eng:
        yield eng


def _good():
    return [np.ones((2, 3), np.float32), np.array([0, 3], np.int64)]


def _raises(engine, inputs, *fragments):
    with pytest.raises(InputError) as info:
        engine.run(inputs)
    msg = str(info.value)
    for f in fragments:
        assert f in msg, f"{f!r} not in error message {msg!r}"
    assert isinstance(info.value, TilerunError) and isinstance(info.value, ValueError)
    return msg


def test_wrong_count(engine):
    _raises(engine, _good()[:1], "expected 2 inputs", "['x', 'idx']", "given 1")


def test_wrong_names(engine):
    x, idx = _good()
    _raises(engine, {"x": x, "indices": idx}, "missing ['idx']", "unknown ['indices']")


def test_wrong_container_and_element(engine):
    _raises(engine, 3.0, "given float")
    _raises(engine, [[1.0, 2.0, 3.0], _good()[1]], "input 'x'", "numpy array", "given list")
    _raises(engine, _good()[0], "expected 2 inputs", "given one array")


def test_wrong_dtype(engine):
    x, idx = _good()
    _raises(engine, [x.astype(np.float64), idx], "input 'x'", "expected dtype float32", "given float64")
    _raises(engine, [x, idx.astype(np.int32)], "input 'idx'", "expected dtype int64", "given int32")
    _raises(engine, [x.astype(">f4"), idx], "byte order")


def test_wrong_shape(engine):
    x, idx = _good()
    _raises(engine, [np.ones((2, 4), np.float32), idx], "input 'x'", "expected shape [2, 3]", "given [2, 4]")
    _raises(engine, [np.ones((2, 3, 1), np.float32), idx], "expected shape [2, 3]", "given [2, 3, 1]")
    _raises(engine, [x, np.zeros((3,), np.int64)], "input 'idx'", "expected shape [2]", "given [3]")


def test_batch_larger_than_compiled(engine):
    x, idx = _good()
    _raises(engine, [np.ones((5, 3), np.float32), idx], "batch size 5 is larger than the compiled batch size 2",
            "batch_size=5")
    # a smaller batch runs (batch_size is the largest), but every input must carry the same one
    _raises(engine, [np.ones((1, 3), np.float32), idx], "'batch_size'", "inputs sharing a symbolic dim must agree")


def test_engine_serves_after_refusals(engine):
    x, idx = _good()
    with pytest.raises(InputError):
        engine.run([x[:1], idx])
    y, g = engine.run([x, idx])
    np.testing.assert_array_equal(y, x + np.array([1, 2, 3], np.float32))
    np.testing.assert_array_equal(g, np.arange(12, dtype=np.float32).reshape(4, 3)[[0, 3]])


@pytest.mark.parametrize("layout", ["strided", "fortran", "readonly", "negative_strides", "unaligned"])
def test_unusual_arrays_are_copied_in(engine, layout):
    rng = np.random.default_rng(0)
    base = rng.standard_normal((4, 6)).astype(np.float32)
    idx = np.array([2, 1], np.int64)
    if layout == "strided":
        x = base[::2, ::2]
    elif layout == "fortran":
        x = np.asfortranarray(base[:2, :3])
    elif layout == "readonly":
        x = base[:2, :3].copy()
        x.flags.writeable = False
        idx.flags.writeable = False
    elif layout == "negative_strides":
        x = base[2::-1, 3:0:-1][:2]
    else:
        raw = np.zeros(2 * 3 * 4 + 1, np.uint8)[1:]
        x = raw.view(np.float32).reshape(2, 3)
        x[...] = base[:2, :3]
    assert x.shape == (2, 3)
    before = x.copy()
    y, g = engine.run([x, idx])
    np.testing.assert_array_equal(y, before + np.array([1, 2, 3], np.float32))
    np.testing.assert_array_equal(g, np.arange(12, dtype=np.float32).reshape(4, 3)[[2, 1]])
    np.testing.assert_array_equal(x, before)  # inputs are never written


@pytest.mark.parametrize("op", ["Add", "Mul", "Max", "Relu", "Sigmoid", "Tanh", "Clip", "Softmax", "LeakyRelu"])
def test_nan_and_inf_are_computed(op):
    x = np.array([[np.nan, np.inf, -np.inf, 0.0, 1.5, -2.0]], np.float32)
    if op in ("Add", "Mul", "Max"):
        b = np.array([[1.0, 2.0, -1.0, np.nan, np.inf, 3.0]], np.float32)
        model = make_model([helper.make_node(op, ["x", "b"], ["y"])], [("x", np.float32, [1, 6])],
                           [("y", np.float32, None)], [("b", b)])
    elif op == "Clip":
        model = make_model([helper.make_node("Clip", ["x", "lo", "hi"], ["y"])], [("x", np.float32, [1, 6])],
                           [("y", np.float32, None)],
                           [("lo", np.array(-1.0, np.float32)), ("hi", np.array(1.0, np.float32))])
    else:
        model = make_model([helper.make_node(op, ["x"], ["y"])], [("x", np.float32, [1, 6])],
                           [("y", np.float32, None)])
    with np.errstate(all="ignore"):
        ref = reference_outputs(model, {"x": x})[0]
    with tilerun.compile_model(model, num_cores=1) as eng:
        got = eng.run([x])[0]
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6, equal_nan=True)
