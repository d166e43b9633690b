"""Bad arguments to ``compile_model`` and ``Engine`` raise ``ArgumentError`` at the call, naming the argument.

Each check runs before any work: a bad argument next to garbage model bytes
is reported as the argument, not as the model. A table of bad arguments
checks that only ``TilerunError`` subclasses ever come out (no bare
``ValueError``/``TypeError``/``ZeroDivisionError`` from deep inside).
"""
import numpy as np
import pytest
from onnx import helper

import tilerun
from tilerun import ArgumentError, ModelError, TilerunError

from oracle import make_model


@pytest.fixture(scope="module")
def model():
    """``y = x + x`` on float32 [N, 3]."""
    return make_model([helper.make_node("Add", ["x", "x"], ["y"])], [("x", np.float32, ["N", 3])],
                      [("y", np.float32, None)])


@pytest.fixture(scope="module")
def engine(model):
    with tilerun.compile_model(model, batch_size=2, num_cores=1) as eng:
        yield eng


BAD_COMPILE = [
    ("num_cores", dict(num_cores=0), "given 0"),
    ("num_cores", dict(num_cores=-2), "given -2"),
    ("num_cores", dict(num_cores="2"), "given '2'"),
    ("num_cores", dict(num_cores=1.5), "given 1.5"),
    ("num_streams", dict(num_streams=0), "given 0"),
    ("num_streams", dict(num_streams=-1), "given -1"),
    ("num_streams", dict(num_streams="2"), "given '2'"),
    ("num_streams", dict(scheduler="single_stream", num_streams=2), "given 2"),
    ("batch_size", dict(batch_size=0), "given 0"),
    ("batch_size", dict(batch_size=-1), "given -1"),
    ("batch_size", dict(batch_size=2.0), "given 2.0"),
    ("batch_size", dict(batch_size="4"), "given '4'"),
    ("batch_size", dict(batch_size=True), "given True"),
    ("scheduler", dict(scheduler="fastest"), "given 'fastest'"),
    ("input_shapes", dict(input_shapes=[1, 3]), "given list"),
    ("input_shapes", dict(input_shapes="x:1x3"), "given str"),
    ("input_shapes", dict(input_shapes={"x": [0, 3]}), "given [0, 3]"),
    ("input_shapes", dict(input_shapes={"x": [-1, 3]}), "given [-1, 3]"),
    ("input_shapes", dict(input_shapes={"x": [1.0, 3]}), "given [1.0, 3]"),
    ("input_shapes", dict(input_shapes={"x": ["N", 3]}), "given ['N', 3]"),
    ("input_shapes", dict(input_shapes={"x": [True, 3]}), "given [True, 3]"),
    ("input_shapes", dict(input_shapes={"x": 3}), "given 3"),
    ("input_shapes", dict(input_shapes={"x": "1x3"}), "given '1x3'"),
    ("input_shapes", dict(input_shapes={"x": np.array(3)}), "given array(3)"),
    ("input_shapes", dict(input_shapes={0: [1, 3]}), "given 0"),
    ("topology", dict(topology="two domains"), "given str"),
    ("work_stealing", dict(work_stealing="no"), "given 'no'"),
]


@pytest.mark.parametrize("name,kwargs,given", BAD_COMPILE, ids=[f"{n}={list(k.values())[-1]!r}"
                                                                 for n, k, _ in BAD_COMPILE])
def test_bad_compile_argument_names_it(model, name, kwargs, given):
    with pytest.raises(ArgumentError) as info:
        tilerun.compile_model(model, **kwargs)
    msg = str(info.value)
    assert msg.startswith(name) and " must be " in msg and given in msg, msg
    assert isinstance(info.value, TilerunError) and isinstance(info.value, ValueError)
    assert not isinstance(info.value, ModelError), "ModelError means a malformed model"


@pytest.mark.parametrize("name,kwargs,given", BAD_COMPILE[:4] + BAD_COMPILE[8:10])
def test_arguments_are_checked_before_the_model_is_read(name, kwargs, given):
    with pytest.raises(ArgumentError, match=name):
        tilerun.compile_model(b"not an onnx model", **kwargs)


def test_model_of_the_wrong_type_is_an_argument_error():
    with pytest.raises(ArgumentError, match="model must be a path, bytes or onnx.ModelProto, given int"):
        tilerun.compile_model(3)


def test_good_arguments_of_every_accepted_kind(model):
    with tilerun.compile_model(model, batch_size=np.int64(2), num_cores=np.int32(1), num_streams=1,
                               input_shapes={"x": (np.int64(2), 3)}, scheduler=tilerun.Scheduler.multi_stream,
                               work_stealing=np.bool_(False)) as eng:
        assert eng.input_shapes == [(2, 3)] and eng.num_streams == 1
        np.testing.assert_array_equal(eng.run([np.ones((2, 3), np.float32)])[0], np.full((2, 3), 2, np.float32))


def test_bad_engine_method_arguments(engine):
    x = np.ones((2, 3), np.float32)
    with pytest.raises(ArgumentError, match="repeat must be a positive integer.*given 'x'"):
        engine.trace([x], repeat="x")
    with pytest.raises(ArgumentError, match="repeat must be a positive integer.*given 0"):
        engine.trace([x], repeat=0)
    with pytest.raises(ArgumentError, match="timeout must be a non-negative number.*given -1"):
        engine.close(timeout=-1)
    np.testing.assert_array_equal(engine.run([x])[0], x + x)  # the refused close left it serving


BAD_ANYTHING = [dict(num_cores=v) for v in (0, -1, "2", None, 2.5, [1], True)] + \
    [dict(num_streams=v) for v in (0, "1", 1.0, 10 ** 6)] + \
    [dict(batch_size=v) for v in (0, -3, "1", 1.5, False, [1])] + \
    [dict(scheduler=v) for v in ("", "SINGLE", 0, None, ["elastic"])] + \
    [dict(input_shapes=v) for v in ([], "x", 1, {"x": None}, {"x": [2]}, {"x": [2, 3, 4]}, {"y": [2, 3]},
                                    {"x": [2, -3]}, {"x": [2, 0]}, {"x": [2, 3.0]}, {"x": [[2], 3]})]


@pytest.mark.parametrize("kwargs", BAD_ANYTHING, ids=[repr(k) for k in BAD_ANYTHING])
def test_compile_raises_only_tilerun_errors(model, kwargs):
    try:
        tilerun.compile_model(model, **kwargs).close()
    except TilerunError:
        pass


BAD_INPUTS = [None, 3, "x", b"x", [None], [[1.0, 2.0, 3.0]], {"x": "str"}, {"y": np.ones((2, 3), np.float32)},
              [np.ones((2, 3), np.float64)], [np.ones((3, 2), np.float32)], [np.ones((2, 3), np.float32)] * 2,
              [np.array([object()] * 6).reshape(2, 3)], np.ones((2, 3), np.int32)]


@pytest.mark.parametrize("inputs", BAD_INPUTS, ids=range(len(BAD_INPUTS)))
@pytest.mark.parametrize("call", ["run", "run_async", "trace"])
def test_engine_raises_only_tilerun_errors(engine, inputs, call):
    with pytest.raises(TilerunError):
        getattr(engine, call)(inputs)
