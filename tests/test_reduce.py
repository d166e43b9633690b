"""Reduce* and ArgMax/ArgMin against the reference evaluator: axis sets, keepdims, and 1 vs all cores."""
import numpy as np
import pytest
from onnx import helper

from oracle import check_against_reference, make_model

F = np.float32
OPS = ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceSumSquare", "ReduceL1",
       "ReduceL2", "ReduceLogSum", "ReduceLogSumExp"]


@pytest.mark.parametrize("axes,keepdims", [([1], 1), ([0, 2], 0), ([-1, 1], 1), ([1, 2, 3], 0), (None, 1)])
def test_reductions_over_axis_sets(axes, keepdims):
    """Adjacent axes read in place; separated ones go through a transposing copy first."""
    x = (np.random.default_rng(0).random((3, 4, 5, 6)) + 0.5).astype(F)
    nodes, inits = [], []
    for op in OPS:
        ins = ["x"] + (["axes"] if axes is not None else [])
        nodes.append(helper.make_node(op, ins, [op], keepdims=keepdims))
    if axes is not None:
        inits.append(("axes", np.array(axes, np.int64)))
    m = make_model(nodes, [("x", F, x.shape)], [(op, F, None) for op in OPS], inits, opset=18)
    check_against_reference(m, {"x": x}, rtol=1e-4, atol=1e-4)


def test_reductions_over_one_images_channels_split_their_columns():
    """One outer row ([1, C, H, W] over C): the tiles split the H*W columns (runs of whole vectors and a
    ragged last one), every Reduce* op and ArgMax/ArgMin match the reference with NaN and infinities in
    their columns, 1 and 2 cores bit-identical."""
    import tilerun
    x = (np.random.default_rng(5).random((1, 24, 61, 70)) + 0.5).astype(F)
    x[0, 3, 0, 5] = np.nan
    x[0, 7, 60, 69] = -np.inf
    x[0, 9, 30, 1] = np.inf
    nodes = [helper.make_node(op, ["x", "axes"], [op], keepdims=1) for op in OPS]
    nodes += [helper.make_node(op, ["x"], [op], axis=1, select_last_index=1) for op in ("ArgMax", "ArgMin")]
    m = make_model(nodes, [("x", F, x.shape)], [(op, F, None) for op in OPS] + [("ArgMax", np.int64, None),
                   ("ArgMin", np.int64, None)], [("axes", np.array([1], np.int64))], opset=18)
    with np.errstate(invalid="ignore", over="ignore"):
        check_against_reference(m, {"x": x}, rtol=1e-4, atol=1e-4)
    tiles = [o["tiles"] for o in tilerun.compile_model(m, num_cores=2).trace([x]).per_op()]
    assert min(tiles) >= 2, f"tiles per op on 2 workers: {tiles}"


@pytest.mark.parametrize("width", [37, 203])
def test_reductions_over_the_last_axis_propagate_nan_and_infinities(width):
    """Contiguous rows (the register-accumulator loops): a row with NaN, with -inf, with +inf. Rows of 203
    take Max/Min four vectors at a time, with the +inf in the scalar tail."""
    x = (np.random.default_rng(4).random((6, width)) + 0.5).astype(F)
    x[1, width - 34] = np.nan
    x[2, 7] = -np.inf
    x[3, width - 4] = np.inf
    nodes = [helper.make_node(op, ["x", "axes"], [op], keepdims=0) for op in OPS]
    m = make_model(nodes, [("x", F, x.shape)], [(op, F, None) for op in OPS], [("axes", np.array([-1], np.int64))],
                   opset=18)
    check_against_reference(m, {"x": x}, rtol=1e-5, atol=1e-5)


def test_reduce_noop_and_empty_axes():
    x = np.random.default_rng(1).standard_normal((2, 3)).astype(F)
    nodes = [helper.make_node("ReduceSum", ["x"], ["noop"], noop_with_empty_axes=1),
             helper.make_node("ReduceMax", ["x"], ["all"], keepdims=0)]
    m = make_model(nodes, [("x", F, x.shape)], [("noop", F, None), ("all", F, None)], opset=18)
    check_against_reference(m, {"x": x})


@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize("axis,keepdims,last", [(0, 1, 0), (1, 0, 1), (-1, 1, 1), (2, 0, 0)])
def test_arg_reduce_ties_and_nan(op, axis, keepdims, last):
    x = np.random.default_rng(2).integers(0, 3, (4, 5, 6)).astype(F)  # many ties
    x[1, 2, 3] = np.nan
    node = helper.make_node(op, ["x"], ["y"], axis=axis, keepdims=keepdims, select_last_index=last)
    m = make_model([node], [("x", F, x.shape)], [("y", np.int64, None)], opset=13)
    check_against_reference(m, {"x": x})


def test_large_reduction_split_across_tiles():
    x = np.random.default_rng(3).standard_normal((64, 300, 8)).astype(F)
    nodes = [helper.make_node("ReduceMean", ["x"], ["m"], axes=[1]), helper.make_node("ArgMax", ["x"], ["a"], axis=1)]
    m = make_model(nodes, [("x", F, x.shape)], [("m", F, None), ("a", np.int64, None)], opset=13)
    check_against_reference(m, {"x": x}, rtol=1e-4, atol=1e-5)
