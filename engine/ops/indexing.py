"""GatherElements, GatherND, CumSum, ScatterND and TopK, composed from Gather, arithmetic, Slice and Concat.

GatherElements and GatherND become one ``Gather`` from the data viewed flat
(GatherND: flat over the indexed leading axes): the flat index is the
indices (negative ones wrapped) times the axis strides, plus a constant
offset per output position; an index out of range is mapped to an index
``Gather`` refuses, so the request fails with Gather's out-of-range error
rather than reading a neighbour. Constant indices give a constant flat
table (a mapped copy). CumSum is a log-step scan: ``ceil(log2 n)`` rows of
``y += y shifted by 2**k`` along the axis (a Slice and a Concat with zeros),
so NaN propagates only forward and integer sums are exact; ``exclusive``
shifts once more, ``reverse`` scans from the other end. ScatterND (with
constant indices) and TopK (``k`` passes of ArgMax) say their own bounds.
Not here: a run-time CumSum ``axis`` (it must be constant) and float64.
"""
import math

import numpy as np

from ..errors import node_error
from .base import F32, Lowering, _axis, const_input, expect_inputs
from .compose import Composer
from .registry import register

I64 = np.dtype(np.int64)
_IDX = (np.dtype(np.int64), np.dtype(np.int32))


def _strides(shape):
    out, acc = [], 1
    for d in reversed(shape):
        out.append(acc)
        acc *= d
    return out[::-1]


def _index_dtype(node, idx):
    if idx.dtype not in _IDX:
        raise node_error(node, f"indices {idx.name!r} have dtype {idx.dtype}, expected int64 or int32")


def _wrapped(c, idx, n):
    """``idx`` as int64 with negative entries wrapped by ``n`` (a scalar or a broadcastable constant)."""
    idx = idx if idx.dtype == I64 else c.op("Cast", [idx], to=7)
    n = c.const(np.asarray(n, I64))
    return idx, c.op("Where", [c.op("Less", [idx, c.const(np.zeros((), I64))]), c.op("Add", [idx, n]), idx]), n


def _out_of_range(c, idx, n):
    """Bool: ``idx`` outside ``[-n, n)``."""
    return c.op("Or", [c.op("Less", [idx, c.op("Neg", [n])]), c.op("GreaterOrEqual", [idx, n])])


@register("GatherElements", 11)
class GatherElements(Lowering):
    """``y[p] = x[p with p[axis] replaced by indices[p]]``; indices have the data's rank."""

    def infer(self, node, inputs):
        expect_inputs(node, inputs, 2)
        x, idx = inputs
        _index_dtype(node, idx)
        if len(idx.shape) != len(x.shape) or not x.shape:
            raise node_error(node, f"indices have shape {list(idx.shape)}, expected the data's rank {len(x.shape)}")
        axis = _axis(node, int(node.attrs.get("axis", 0)), len(x.shape))
        if any(i > d for k, (i, d) in enumerate(zip(idx.shape, x.shape)) if k != axis):
            raise node_error(node, f"indices shape {list(idx.shape)} exceeds data shape {list(x.shape)} off axis {axis}")
        if idx.is_const:
            n = x.shape[axis]
            bad = (idx.const < -n) | (idx.const >= n)
            if bad.any():
                raise node_error(node, f"indices {idx.const[bad][:5].tolist()} out of range for axis {axis} of size {n}")
        return [(tuple(idx.shape), x.dtype)]

    def fold(self, node, arrays, opset):
        x, idx = arrays
        axis = int(node.attrs.get("axis", 0)) % x.ndim
        idx = np.where(idx < 0, idx + x.shape[axis], idx)
        return [np.take_along_axis(x, idx.astype(np.int64), axis)]

    def lower(self, node, inputs, outputs, plan):
        (x, idx), y = inputs, outputs[0]
        axis = int(node.attrs.get("axis", 0)) % len(x.shape)
        st = _strides(x.shape)
        grid = np.indices(idx.shape, dtype=np.int64)
        base = sum(grid[k] * st[k] for k in range(len(st)) if k != axis)
        c = Composer(node, plan)
        flat_x = c.op("Reshape", [x, c.const(np.array([-1], np.int64))])
        n = x.shape[axis]
        if idx.is_const:
            table = base + np.where(idx.const < 0, idx.const + n, idx.const).astype(np.int64) * st[axis]
            c.op("Gather", [flat_x, c.const(table)], out=y, axis=0)
            return
        raw, wrapped, n_const = _wrapped(c, idx, n)
        flat = c.op("Add", [c.op("Mul", [wrapped, c.const(np.array(st[axis], I64))]), c.const(base)])
        flat = c.op("Where", [_out_of_range(c, raw, n_const), c.const(np.array(-x.size - 1, I64)), flat])
        c.op("Gather", [flat_x, flat], out=y, axis=0)


@register("GatherND", 12)
class GatherND(Lowering):
    """Slices of the data picked by the last axis of ``indices`` (``batch_dims`` leading axes shared)."""

    def _geometry(self, node, x, idx):
        b = int(node.attrs.get("batch_dims", 0))
        k = idx.shape[-1] if idx.shape else 0
        if not idx.shape or b + k > len(x.shape) or tuple(idx.shape[:b]) != tuple(x.shape[:b]) or b >= len(idx.shape):
            raise node_error(node, f"indices shape {list(idx.shape)} with batch_dims {b} does not fit data shape "
                                   f"{list(x.shape)}")
        return b, k

    def infer(self, node, inputs):
        expect_inputs(node, inputs, 2)
        x, idx = inputs
        _index_dtype(node, idx)
        b, k = self._geometry(node, x, idx)
        return [(tuple(idx.shape[:-1]) + tuple(x.shape[b + k:]), x.dtype)]

    def lower(self, node, inputs, outputs, plan):
        (x, idx), y = inputs, outputs[0]
        b, k = self._geometry(node, x, idx)
        dims = np.array(x.shape[b:b + k], np.int64)
        inner = x.shape[b + k:]
        strides = np.array(_strides(x.shape[b:b + k]), np.int64)
        per_batch = int(np.prod(dims, dtype=np.int64))
        lead = idx.shape[:-1]
        batch = (np.indices(lead, dtype=np.int64)[:b] if b else np.zeros((1,) + tuple(lead), np.int64))
        offset = sum(batch[j] * int(np.prod(x.shape[j + 1:b], dtype=np.int64)) for j in range(b)) * per_batch \
            if b else np.zeros(lead, np.int64)
        c = Composer(node, plan)
        flat_x = c.op("Reshape", [x, c.const(np.array([-1] + list(inner), np.int64))])
        if idx.is_const:
            if ((idx.const < -dims) | (idx.const >= dims)).any():
                raise node_error(node, f"indices out of range for data dims {dims.tolist()}")
            table = (np.where(idx.const < 0, idx.const + dims, idx.const).astype(np.int64) * strides).sum(-1) + offset
            c.op("Gather", [flat_x, c.const(table)], out=y, axis=0)
            return
        raw, wrapped, n_const = _wrapped(c, idx, dims)
        axis = c.const(np.array([-1], np.int64))
        flat = c.op("ReduceSum", [c.op("Mul", [wrapped, c.const(strides)]), axis], keepdims=0)
        flat = c.op("Add", [flat, c.const(offset)])
        bad = c.op("ReduceSum", [c.op("Cast", [_out_of_range(c, raw, n_const)], to=7), axis], keepdims=0)
        bad = c.op("Greater", [bad, c.const(np.zeros((), I64))])
        flat = c.op("Where", [bad, c.const(np.array(-math.prod(x.shape) - 1, I64)), flat])
        c.op("Gather", [flat_x, flat], out=y, axis=0)


@register("CumSum", 11)
class CumSum(Lowering):
    """Running sum along a constant ``axis``; ``exclusive`` and ``reverse`` as ONNX says."""

    def infer(self, node, inputs):
        expect_inputs(node, inputs, 2)
        x = inputs[0]
        if x.dtype not in (F32,) + _IDX:
            raise node_error(node, f"input has dtype {x.dtype}, expected float32, int32 or int64")
        if not x.shape:
            raise node_error(node, "input must have rank >= 1, given a scalar")
        self._axis(node, inputs)
        return [(x.shape, x.dtype)]

    def _axis(self, node, inputs):
        a = np.asarray(const_input(node, inputs[1], "CumSum axis")).reshape(-1)
        if a.size != 1:
            raise node_error(node, f"axis must be a scalar, given {a.size} values")
        return _axis(node, int(a[0]), len(inputs[0].shape))

    def lower(self, node, inputs, outputs, plan):
        x, y = inputs[0], outputs[0]
        axis = self._axis(node, inputs)
        n = x.shape[axis]
        reverse = bool(int(node.attrs.get("reverse", 0)))
        c = Composer(node, plan)
        steps = []
        d = 1
        while d < n:
            steps.append(d)
            d *= 2
        exclusive = bool(int(node.attrs.get("exclusive", 0)))
        acc = x
        for k, d in enumerate(steps):
            last = k == len(steps) - 1 and not exclusive
            acc = c.op("Add", [acc, _shift(c, acc, axis, d, reverse)], out=y if last else None)
        if exclusive:
            _shift(c, acc, axis, 1, reverse, out=y)
        elif not steps:
            c.op("Concat", [x], out=y, axis=axis)


def _shift(c, v, axis, d, reverse, out=None):
    """``v`` moved ``d`` places along ``axis`` (towards the end, or the start when ``reverse``), zeros shifted in."""
    n = v.shape[axis]
    zeros_shape = list(v.shape)
    zeros_shape[axis] = min(d, n)
    zeros = c.const(np.zeros(zeros_shape, v.dtype))
    if d >= n:
        return c.op("Concat", [zeros], out=out, axis=axis)
    ax = c.const(np.array([axis], np.int64))
    if reverse:
        part = c.op("Slice", [v, c.const(np.array([d], np.int64)), c.const(np.array([n], np.int64)), ax])
        return c.op("Concat", [part, zeros], out=out, axis=axis)
    part = c.op("Slice", [v, c.const(np.array([0], np.int64)), c.const(np.array([n - d], np.int64)), ax])
    return c.op("Concat", [zeros, part], out=out, axis=axis)


_SCATTER_OPS = {"add": "Add", "mul": "Mul", "max": "Max", "min": "Min"}


@register("ScatterND", 11)
class ScatterND(Lowering):
    """``data`` with the slices that constant ``indices`` name replaced by (or combined with) ``updates``.

    The indices must be compile-time constants (a run-time tensor raises
    ``ConstantRequiredError``): the written rows become a constant table, the
    output a ``Where`` of the data and a ``Gather`` of the updates (after
    the ``reduction`` op, when one is asked), one round per repeat of an
    index, in order: the last update wins without a reduction.
    """

    def infer(self, node, inputs):
        expect_inputs(node, inputs, 3)
        x, idx, upd = inputs
        _index_dtype(node, idx)
        table = const_input(node, idx, "ScatterND indices")
        k = idx.shape[-1] if idx.shape else 0
        want = tuple(idx.shape[:-1]) + tuple(x.shape[k:])
        if not idx.shape or k > len(x.shape) or tuple(upd.shape) != want or upd.dtype != x.dtype:
            raise node_error(node, f"updates have shape {list(upd.shape)} {upd.dtype}, expected {list(want)} "
                                   f"{x.dtype} for indices {list(idx.shape)} into data {list(x.shape)}")
        dims = np.array(x.shape[:k], np.int64)
        if ((table < -dims) | (table >= dims)).any():
            raise node_error(node, f"indices out of range for data dims {dims.tolist()}")
        reduction = node.attrs.get("reduction", "none") or "none"
        if reduction not in ("none",) + tuple(_SCATTER_OPS):
            raise node_error(node, f"reduction {reduction!r} is not one of none, add, mul, max, min")
        return [(x.shape, x.dtype)]

    @staticmethod
    def _rows(table, dims):
        table = np.where(table < 0, table + dims, table).astype(np.int64).reshape(-1, len(dims))
        return (table * np.array(_strides(dims.tolist()), np.int64)).sum(-1)

    def lower(self, node, inputs, outputs, plan):
        (x, idx, upd), y = inputs, outputs[0]
        k = idx.shape[-1]
        dims = np.array(x.shape[:k], np.int64)
        n_rows, inner = int(np.prod(dims)), list(x.shape[k:])
        layers = []  # layer j: the row each update writes as that row's j-th write
        seen = {}
        for u, r in enumerate(self._rows(idx.const, dims).tolist()):
            j = seen[r] = seen.get(r, -1) + 1
            if j == len(layers):
                layers.append(np.full(n_rows, -1, np.int64))
            layers[j][r] = u
        c = Composer(node, plan)
        rows_u = c.op("Reshape", [upd, c.const(np.array([-1] + inner, np.int64))])
        reduction = node.attrs.get("reduction", "none") or "none"
        shape = c.const(np.array(x.shape, np.int64))
        if reduction == "none" and len(layers) == 1 and (layers[0] >= 0).all():
            c.op("Reshape", [c.op("Gather", [rows_u, c.const(layers[0])], axis=0), shape], out=y)
            return
        acc = c.op("Reshape", [x, c.const(np.array([n_rows] + inner, np.int64))])
        for writer in layers:
            picked = c.op("Gather", [rows_u, c.const(np.maximum(writer, 0))], axis=0)
            if reduction != "none":
                picked = c.op(_SCATTER_OPS[reduction], [acc, picked])
            mask = c.const((writer >= 0).reshape([n_rows] + [1] * len(inner)))
            acc = c.op("Where", [mask, picked, acc])
        c.op("Reshape", [acc, shape], out=y)


@register("TopK", 1)
@register("TopK", 10)
class TopK(Lowering):
    """The ``k`` largest (or smallest) values along ``axis`` and their indices, sorted, ties by lower index.

    ``k`` rounds of ArgMax (ArgMin), ReduceMax (ReduceMin) and masking the
    picked element with -inf (+inf): cost ``k`` passes over the input, meant
    for the small ``k`` of classifier heads and sampling. ``k`` must be a
    compile-time constant. int32/int64 inputs are ranked as float32 (ties
    among values beyond 2**24 may pick either) and their values gathered
    exactly. Not exact where the input itself holds -inf
    (+inf for ``largest=0``) and ``k`` reaches those elements: the value is
    right, the index may repeat an earlier one.
    """

    def _k(self, node, inputs):
        if node.attrs.get("k") is not None and len(inputs) < 2:
            return int(node.attrs["k"])
        k = np.asarray(const_input(node, inputs[1], "TopK k")).reshape(-1)
        if k.size != 1:
            raise node_error(node, f"k must hold one value, given {k.size}")
        return int(k[0])

    def infer(self, node, inputs):
        expect_inputs(node, inputs, 1, 2)
        x = inputs[0]
        if x.dtype not in (F32,) + _IDX:
            raise node_error(node, f"input has dtype {x.dtype}, expected float32, int32 or int64")
        axis = _axis(node, int(node.attrs.get("axis", -1)), len(x.shape))
        k = self._k(node, inputs)
        if not 0 <= k <= x.shape[axis]:
            raise node_error(node, f"k {k} is out of range for axis {axis} of size {x.shape[axis]}")
        shape = list(x.shape)
        shape[axis] = k
        return [(tuple(shape), x.dtype), (tuple(shape), I64)]

    def lower(self, node, inputs, outputs, plan):
        x = inputs[0]
        axis = int(node.attrs.get("axis", -1)) % len(x.shape)
        k = self._k(node, inputs)
        if k == 0:
            return
        largest = int(node.attrs.get("largest", 1))
        c = Composer(node, plan)
        source, x = x, (x if x.dtype == F32 else c.op("Cast", [x], to=1))
        iota_shape = [1] * len(x.shape)
        iota_shape[axis] = x.shape[axis]
        iota = c.const(np.arange(x.shape[axis], dtype=np.int64).reshape(iota_shape))
        fill = c.const(np.array(-np.inf if largest else np.inf, F32))
        axes = c.const(np.array([axis], np.int64))
        pick, reduce = ("ArgMax", "ReduceMax") if largest else ("ArgMin", "ReduceMin")
        values, indices, cur = [], [], x
        exact = source.dtype == F32
        for j in range(k):
            indices.append(c.op(pick, [cur], axis=axis, keepdims=1, select_last_index=0))
            if exact:
                values.append(c.op(reduce, [cur, axes], keepdims=1))
            if j < k - 1:
                cur = c.op("Where", [c.op("Equal", [iota, indices[-1]]), fill, cur])
        values_out = outputs[0]
        indices_out = outputs[1] if len(outputs) > 1 else None
        if exact:
            for out, parts in ((values_out, values), (indices_out, indices)):
                if out is not None:
                    c.op("Concat", parts, out=out, axis=axis)
            return
        picked = c.op("Concat", indices, out=indices_out, axis=axis)  # integer values: gathered exactly
        if values_out is not None:
            c.op("GatherElements", [source, picked], out=values_out, axis=axis)
