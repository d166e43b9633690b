"""Lowerings of the Reduce* family and ArgMax/ArgMin (float32 input).

A reduction over several axes becomes one reduction over a single merged axis:
when the reduced axes are adjacent the input is read in place as
``[outer, n, inner]``; otherwise a mapped copy first moves them last (kept
axes first), and the kernel reduces contiguous rows. ``axes`` come from the
attribute or, from the opset where the spec moved them there, a constant
input; ``noop_with_empty_axes`` and ``keepdims`` follow the spec.
"""
import math

import numpy as np

from ..errors import node_error
from .base import F32, I64, Lowering, const_input, expect_dtype, expect_inputs
from .movement import _axis, _in_axes, emit_mapped
from .registry import register

_OPS = {"ReduceSum": 0, "ReduceMean": 1, "ReduceMax": 2, "ReduceMin": 3, "ReduceProd": 4, "ReduceSumSquare": 5,
        "ReduceL1": 6, "ReduceL2": 7, "ReduceLogSum": 8, "ReduceLogSumExp": 9}


class _Temp:
    """A plan temporary seen as a value by ``emit_mapped``."""

    def __init__(self, name, shape, dtype):
        self.name, self.shape, self.dtype = name, tuple(shape), np.dtype(dtype)
        self.size = math.prod(self.shape)


def _layout(x, axes):
    """``(source, outer, n, inner, transposed_axes)``: how the kernel sees ``x`` reduced over ``axes``."""
    shape = x.shape
    if axes and axes == list(range(axes[0], axes[-1] + 1)):
        return None, math.prod(shape[:axes[0]]), math.prod(shape[axes[0]:axes[-1] + 1]), \
            math.prod(shape[axes[-1] + 1:])
    kept = [a for a in range(len(shape)) if a not in axes]
    return kept + axes, math.prod(shape[a] for a in kept), math.prod(shape[a] for a in axes), 1


def _emit(node, plan, x, y, axes, kernel, ints):
    """Rows for reducing ``x`` over ``axes`` into ``y`` with ``kernel``."""
    perm, outer, n, inner = _layout(x, axes)
    src = x
    if perm is not None:
        src = _Temp(plan.temp([x.shape[a] for a in perm], x.dtype, "reduce"), [x.shape[a] for a in perm], x.dtype)
        ins = _in_axes(x.shape)
        emit_mapped(node, plan, x, src, [ins[a] for a in perm])
    plan.need_scratch(16 * max(inner, 1))
    tiles, per = plan.split(outer, n * inner)
    plan.add(node, kernel, [src.name], [y.name], [outer, n, inner, per] + ints, tiles, flops=x.size)


class Reduce(Lowering):
    """ReduceSum/Mean/Max/Min/Prod/SumSquare/L1/L2/LogSum/LogSumExp over constant axes."""

    def _axes(self, node, inputs):
        x = inputs[0]
        rank = len(x.shape)
        if len(inputs) > 1 and inputs[1] is not None:
            axes = [int(a) for a in np.asarray(const_input(node, inputs[1], "axes")).reshape(-1)]
        else:
            axes = node.attrs.get("axes")
            axes = None if axes is None else [int(a) for a in axes]
        if not axes:
            if int(node.attrs.get("noop_with_empty_axes", 0)):
                return []
            return list(range(rank))
        axes = sorted({_axis(node, a, rank, "reduce axis") for a in axes})
        if len(axes) != len(set(axes)):
            raise node_error(node, f"axes {axes} repeat an axis")
        return axes

    def infer(self, node, inputs):
        expect_inputs(node, inputs, 1, 2)
        expect_dtype(node, inputs[0], [F32])
        x, axes = inputs[0], self._axes(node, inputs)
        keep = int(node.attrs.get("keepdims", 1))
        shape = [1 if a in axes else d for a, d in enumerate(x.shape)] if keep else \
            [d for a, d in enumerate(x.shape) if a not in axes]
        return [(tuple(shape), F32)]

    def lower(self, node, inputs, outputs, plan):
        x, y = inputs[0], outputs[0]
        axes = self._axes(node, inputs)
        if y.size == 0:
            return
        if not axes:  # noop_with_empty_axes: the input itself
            plan.alias(y.name, x.name)
            return
        _emit(node, plan, x, y, axes, "f32_reduce", [_OPS[node.op_type]])


for _op in _OPS:
    register(_op, 1)(type(_op, (Reduce,), {}))
    register(_op, 13 if _op == "ReduceSum" else 18)(type(_op + "Axes", (Reduce,), {}))


class ArgReduce(Lowering):
    """ArgMax/ArgMin over one axis, int64 indices; ``select_last_index`` from opset 12."""
    is_min = 0

    def infer(self, node, inputs):
        expect_inputs(node, inputs, 1)
        expect_dtype(node, inputs[0], [F32])
        x = inputs[0]
        axis = _axis(node, int(node.attrs.get("axis", 0)), len(x.shape))
        if x.shape[axis] == 0:
            raise node_error(node, f"cannot take the arg of an empty axis {axis} of shape {list(x.shape)}")
        keep = int(node.attrs.get("keepdims", 1))
        shape = [1 if a == axis else d for a, d in enumerate(x.shape)] if keep else \
            [d for a, d in enumerate(x.shape) if a != axis]
        return [(tuple(shape), I64)]

    def lower(self, node, inputs, outputs, plan):
        x, y = inputs[0], outputs[0]
        if y.size == 0:
            return
        axis = _axis(node, int(node.attrs.get("axis", 0)), len(x.shape))
        _emit(node, plan, x, y, [axis], "f32_arg_reduce", [self.is_min, int(node.attrs.get("select_last_index", 0))])


register("ArgMax", 1)(type("ArgMax", (ArgReduce,), {"is_min": 0}))
register("ArgMin", 1)(type("ArgMin", (ArgReduce,), {"is_min": 1}))
