"""Lowerings of the Reduce* family and ArgMax/ArgMin (float32 input).

A reduction over several axes becomes one reduction over a single merged axis:
when the reduced axes are adjacent the input is read in place as
``[outer, n, inner]``; otherwise a mapped copy (a plan temporary) first moves
them last (kept axes first), and the kernel reduces contiguous rows. Reduce*
ops run one ``REDUCE`` row with the op's ``R_*`` code, ArgMax/ArgMin one
``ARG_REDUCE`` row. ``axes`` come from the attribute or, from the opset where
the spec moved them there, a constant input; ``noop_with_empty_axes`` and
``keepdims`` follow the spec. Only float32 inputs are lowered, but for
ReduceSum of int32/int64 (mask lengths, token counts): a Cast to float32,
the float reduction and a Cast back, exact while sums stay below 2**24.
"""
import math

import numpy as np

from tilerun.kernels import reduce as K
from tilerun.kernels.simd import VW

from ..errors import node_error
from .base import F32, I64, Lowering, _axis, const_input, expect_dtype, expect_inputs
from .compose import Composer
from .mapped import _in_axes, emit_mapped
from .registry import register

I32 = np.dtype(np.int32)

# The reduction code of each Reduce* op (``REDUCE.op``).
_OPS = {"ReduceSum": K.R_SUM, "ReduceMean": K.R_MEAN, "ReduceMax": K.R_MAX, "ReduceMin": K.R_MIN,
        "ReduceProd": K.R_PROD, "ReduceSumSquare": K.R_SUMSQ, "ReduceL1": K.R_L1, "ReduceL2": K.R_L2,
        "ReduceLogSum": K.R_LOGSUM, "ReduceLogSumExp": K.R_LOGSUMEXP}


def _layout(x, axes):
    """``(source, outer, n, inner, transposed_axes)``: how the kernel sees ``x`` reduced over ``axes``."""
    shape = x.shape
    if axes and axes == list(range(axes[0], axes[-1] + 1)):
        return None, math.prod(shape[:axes[0]]), math.prod(shape[axes[0]:axes[-1] + 1]), \
            math.prod(shape[axes[-1] + 1:])
    kept = [a for a in range(len(shape)) if a not in axes]
    return kept + axes, math.prod(shape[a] for a in kept), math.prod(shape[a] for a in axes), 1


def _emit(node, plan, x, y, axes, kernel, **params):
    """Rows for reducing ``x`` over ``axes`` into ``y`` with ``kernel`` (its op ``params`` given).

    Tiles take outer rows; with fewer outer tiles than workers (a reduction
    over one image's channels) also near-equal runs of the ``inner`` columns.
    """
    perm, outer, n, inner = _layout(x, axes)
    src = x
    if perm is not None:
        src = plan.temp([x.shape[a] for a in perm], x.dtype, "reduce")
        ins = _in_axes(x.shape)
        emit_mapped(node, plan, x, src, [ins[a] for a in perm])
    tiles, per = plan.split(outer, n * inner)
    parts = plan.split_even(inner, n * per, VW) if tiles < plan.num_workers else 1
    plan.add(node, kernel, x=src, y=y, outer=outer, n=n, inner=inner, rows_per_tile=per, inner_tiles=parts,
             **params, tiles=tiles * parts, flops=x.size)


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
        expect_dtype(node, inputs[0], [F32] + ([I64, I32] if node.op_type == "ReduceSum" else []))
        x, axes = inputs[0], self._axes(node, inputs)
        keep = int(node.attrs.get("keepdims", 1))
        shape = [1 if a in axes else d for a, d in enumerate(x.shape)] if keep else \
            [d for a, d in enumerate(x.shape) if a not in axes]
        return [(tuple(shape), x.dtype)]

    def lower(self, node, inputs, outputs, plan):
        x, y = inputs[0], outputs[0]
        axes = self._axes(node, inputs)
        if y.size == 0:
            return
        if not axes:  # noop_with_empty_axes: the input itself
            plan.alias(y, x)
            return
        if x.dtype != F32:  # integer ReduceSum: through float32 and back
            c = Composer(node, plan)
            attrs = {k: node.attrs[k] for k in ("keepdims", "noop_with_empty_axes", "axes") if k in node.attrs}
            total = c.op("ReduceSum", [c.op("Cast", [x], to=1)] + list(inputs[1:2]), **attrs)
            c.op("Cast", [total], out=y, to=int(7 if x.dtype == I64 else 6))
            return
        _emit(node, plan, x, y, axes, K.f32_reduce, op=_OPS[node.op_type])


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
        _emit(node, plan, x, y, [axis], K.f32_arg_reduce, is_min=self.is_min,
              last=int(node.attrs.get("select_last_index", 0)))


register("ArgMax", 1)(type("ArgMax", (ArgReduce,), {"is_min": 0}))
register("ArgMin", 1)(type("ArgMin", (ArgReduce,), {"is_min": 1}))
