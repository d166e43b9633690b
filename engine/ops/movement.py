"""Lowerings of data-movement ops that permute, select or join: Transpose, Slice, Split, Gather, Concat.

Transpose, Slice, Split and constant-index Gather describe each output axis
as a table of source offsets and run one mapped copy (``tilerun.ops.mapped``),
which may come out as a zero-copy alias (a piece that is one contiguous,
64-byte-aligned block) or a blocked transpose. Concat copies rows of bytes,
or has its inputs written straight into the output when it can. Gather with
run-time indices has its own kernel, which fails the request (status 1) on
an out-of-range index; the row's ``explain`` then names the indices input, the
index and the bound. Shape-like inputs (starts, ends, axes, steps, split)
must be compile-time constants: run-time ones are rejected with an error
naming the node. Kernels come from ``tilerun.kernels.movement``'s dicts,
chosen by element size (and index dtype for Gather). Not here: views
(``tilerun.ops.views``), Pad, Expand and Tile (``tilerun.ops.pad``), Cast
(``tilerun.ops.logical``).
"""
import numpy as np

from tilerun.kernels import movement as K

from ..errors import node_error
from .base import Lowering, _axis, _ints, expect_inputs
from .mapped import ALIAS_ALIGN, _affine, _in_axes, _strides, emit_mapped
from .registry import register


@register("Transpose", 1)
class Transpose(Lowering):
    """Any permutation (default: reverse the axes)."""

    def _perm(self, node, x):
        perm = node.attrs.get("perm")
        perm = list(range(len(x.shape)))[::-1] if perm is None else [int(p) for p in perm]
        if sorted(perm) != list(range(len(x.shape))):
            raise node_error(node, f"perm {perm} is not a permutation of the {len(x.shape)} axes of {list(x.shape)}")
        return perm

    def infer(self, node, inputs):
        expect_inputs(node, inputs, 1)
        x = inputs[0]
        return [(tuple(x.shape[p] for p in self._perm(node, x)), x.dtype)]

    def lower(self, node, inputs, outputs, plan):
        x = inputs[0]
        ins = _in_axes(x.shape)
        emit_mapped(node, plan, x, outputs[0], [ins[p] for p in self._perm(node, x)])


class _Slicing(Lowering):
    """Ops whose output is a per-axis affine selection of the input: ``axes_of`` says which."""

    def axes_of(self, node, inputs):
        """Per output axis ``(size, start, step)`` in input elements of that axis."""
        raise NotImplementedError

    def infer(self, node, inputs):
        x = inputs[0]
        return [(tuple(a[0] for a in self.axes_of(node, inputs)), x.dtype)]

    def lower(self, node, inputs, outputs, plan):
        x = inputs[0]
        st = _strides(x.shape)
        axes = [_affine(n, s * st[k], p * st[k]) for k, (n, s, p) in enumerate(self.axes_of(node, inputs))]
        emit_mapped(node, plan, x, outputs[0], axes)


@register("Slice", 1)
class Slice(_Slicing):
    """Slice with constant starts/ends/axes/steps (attributes in opset 1, inputs from 10)."""
    from_inputs = False

    def axes_of(self, node, inputs):
        x = inputs[0]
        if self.from_inputs:
            expect_inputs(node, inputs, 3, 5)
            starts, ends = _ints(node, inputs, 1, None, "starts"), _ints(node, inputs, 2, None, "ends")
            axes, steps = _ints(node, inputs, 3, None, "axes"), _ints(node, inputs, 4, None, "steps")
        else:
            starts, ends, axes, steps = (node.attrs.get(a) for a in ("starts", "ends", "axes", None))
        rank = len(x.shape)
        axes = list(range(len(starts))) if axes is None else [_axis(node, a, rank, "Slice axis") for a in axes]
        steps = [1] * len(starts) if steps is None else steps
        if not len(starts) == len(ends) == len(axes) == len(steps) or len(set(axes)) != len(axes):
            raise node_error(node, f"starts {starts}, ends {ends}, axes {axes}, steps {steps}: expected equal "
                                   f"lengths and distinct axes")
        out = [(d, 0, 1) for d in x.shape]
        for a, s, e, p in zip(axes, starts, ends, steps):
            if p == 0:
                raise node_error(node, "steps must be non-zero, given 0")
            r = range(*slice(int(s), int(e), int(p)).indices(x.shape[a]))
            out[a] = (len(r), r.start if len(r) else 0, p)
        return out


@register("Slice", 10)
class Slice10(Slice):
    """Slice with its parameters as inputs."""
    from_inputs = True


@register("Split", 2)
class Split(Lowering):
    """Split along ``axis``: sizes from the attribute (< 13), the input (13+), ``num_outputs`` (18+) or equal."""

    def sizes(self, node, inputs):
        """The size of every output along the axis, and the axis."""
        x = inputs[0]
        axis = _axis(node, int(node.attrs.get("axis", 0)), len(x.shape))
        d, n = x.shape[axis], len(node.outputs)
        sizes = _ints(node, inputs, 1, "split", "split sizes")
        if sizes is None:
            k = int(node.attrs.get("num_outputs") or n)
            chunk = -(-d // k)
            sizes = [chunk] * (k - 1) + [d - chunk * (k - 1)]
            if node.attrs.get("num_outputs") is None and d % k:
                raise node_error(node, f"cannot split axis of size {d} into {k} equal outputs")
        if len(sizes) != n or sum(sizes) != d or min(sizes) < 0:
            raise node_error(node, f"split sizes {sizes} must be {n} non-negative sizes summing to {d}")
        return sizes, axis

    def infer(self, node, inputs):
        x = inputs[0]
        sizes, axis = self.sizes(node, inputs)
        return [(x.shape[:axis] + (s,) + x.shape[axis + 1:], x.dtype) for s in sizes]

    def lower(self, node, inputs, outputs, plan):
        x = inputs[0]
        sizes, axis = self.sizes(node, inputs)
        ins, st, off = _in_axes(x.shape), _strides(x.shape), 0
        for s, y in zip(sizes, outputs):
            if y is not None:
                emit_mapped(node, plan, x, y, ins[:axis] + [_affine(s, off * st[axis], st[axis])] + ins[axis + 1:])
            off += s


register("Split", 13)(type("Split13", (Split,), {}))
register("Split", 18)(type("Split18", (Split,), {}))


@register("Gather", 1)
class Gather(Lowering):
    """Gather along ``axis``; constant indices are checked now, run-time ones by the kernel (status 1)."""

    def infer(self, node, inputs):
        expect_inputs(node, inputs, 2)
        x, idx = inputs
        if not x.shape:
            raise node_error(node, "data must have rank >= 1, given a scalar")
        axis = _axis(node, int(node.attrs.get("axis", 0)), len(x.shape))
        if idx.dtype not in (np.dtype(np.int64), np.dtype(np.int32)):
            raise node_error(node, f"indices {idx.name!r} have dtype {idx.dtype}, expected int64 or int32")
        if idx.is_const:
            bad = (idx.const < -x.shape[axis]) | (idx.const >= x.shape[axis])
            if bad.any():
                raise node_error(node, f"indices {idx.const[bad][:5].tolist()} out of range for axis {axis} "
                                       f"of size {x.shape[axis]}")
        return [(x.shape[:axis] + tuple(idx.shape) + x.shape[axis + 1:], x.dtype)]

    def lower(self, node, inputs, outputs, plan):
        (x, idx), y = inputs, outputs[0]
        axis = int(node.attrs.get("axis", 0)) % len(x.shape)
        n = x.shape[axis]
        if idx.is_const:
            st = _strides(x.shape)
            table = (np.where(idx.const < 0, idx.const + n, idx.const).astype(np.int64) * st[axis]).reshape(-1)
            ins = _in_axes(x.shape)
            emit_mapped(node, plan, x, y, ins[:axis] + [(len(table), table)] + ins[axis + 1:])
            return
        if y.size == 0:
            return
        outer = int(np.prod(x.shape[:axis], dtype=np.int64))
        inner = int(np.prod(x.shape[axis + 1:], dtype=np.int64))
        m = idx.size
        tiles, per = plan.split(outer * m, inner)
        plan.add(node, K.GATHER_KERNELS[(x.dtype.itemsize, idx.dtype)], x=x, indices=idx, y=y, outer=outer,
                 axis_len=n, inner=inner, n_indices=m, rows_per_tile=per, tiles=tiles,
                 explain=lambda read: index_fault(read(idx.name), idx.name, x.name, axis, n))


def index_fault(indices, name, data, axis, n):
    """What is wrong with run-time ``indices`` (input ``name``) into axis ``axis`` (size ``n``) of ``data``."""
    bad = np.argwhere((indices < -n) | (indices >= n))
    if not len(bad):
        return None
    at = tuple(int(k) for k in bad[0])
    more = f" (and {len(bad) - 1} more out of range)" if len(bad) > 1 else ""
    return (f"input {name!r} holds index {int(indices[at])} at position {list(at)}, out of range for axis {axis} "
            f"of {data!r} of size {n} (expected {-n} to {n - 1}){more}")


@register("Gather", 13)
class Gather13(Gather):
    """Gather (opset 13 only widens the types)."""


@register("Concat", 4)
class Concat(Lowering):
    """Concatenate any number of inputs along ``axis``, copying rows of bytes.

    One ``u8_concat`` row copies up to ``K.CONCAT_INPUTS`` inputs into their
    band of each output row; more inputs take one row per band.
    """

    def infer(self, node, inputs):
        expect_inputs(node, inputs, 1, len(inputs))
        x0 = inputs[0]
        axis = _axis(node, int(node.attrs.get("axis", 0)), len(x0.shape))
        for v in inputs[1:]:
            if v.dtype != x0.dtype or len(v.shape) != len(x0.shape) or any(
                    a != b for k, (a, b) in enumerate(zip(v.shape, x0.shape)) if k != axis):
                raise node_error(node, f"input {v.name!r} of shape {list(v.shape)} and dtype {v.dtype} does not "
                                       f"match {list(x0.shape)} {x0.dtype} off axis {axis}")
        total = sum(v.shape[axis] for v in inputs)
        return [(x0.shape[:axis] + (total,) + x0.shape[axis + 1:], x0.dtype)]

    def lower(self, node, inputs, outputs, plan):
        y = outputs[0]
        if y.size == 0:
            return
        axis = int(node.attrs.get("axis", 0)) % len(y.shape)
        es = y.dtype.itemsize
        outer = int(np.prod(y.shape[:axis], dtype=np.int64))
        if outer == 1 and _place_inputs_in_output(plan, inputs, y):
            return
        runs = [v.size // max(outer, 1) * es for v in inputs]
        y_row, offset = sum(runs), 0
        for at in range(0, len(inputs), K.CONCAT_INPUTS):
            band, band_runs = inputs[at:at + K.CONCAT_INPUTS], runs[at:at + K.CONCAT_INPUTS]
            width = sum(band_runs)
            if width:
                tiles, per = plan.split(outer * width // es, 1, granule=64)
                unused = K.CONCAT_INPUTS - len(band)
                slots = dict(zip(K.CONCAT_X, list(band) + [None] * unused))
                slots.update(zip(K.CONCAT_RUNS, band_runs + [0] * unused))
                plan.add(node, K.u8_concat, y=y, inputs=len(band), outer=outer, row_bytes=width, y_row_bytes=y_row,
                         y_offset=offset, chunk_bytes=per * es, total_bytes=outer * width, tiles=tiles, **slots)
            offset += width


def _place_inputs_in_output(plan, inputs, y):
    """Zero-copy Concat: make each input a view of its block of ``y`` (all inputs or none).

    Applies when every input is a contiguous block of the output (one outer row)
    computed by an earlier row: not a graph input or output, not a constant, not
    already a view, not repeated, and starting 64-byte aligned. The producers
    then write straight into the output.
    """
    g = plan.graph
    names = [v.name for v in inputs]
    offsets = np.cumsum([0] + [v.nbytes for v in inputs[:-1]])
    if len(set(names)) != len(names) or any(
            v.is_const or v.name in g.inputs or v.name in g.outputs or v.name in plan.aliases
            or v.name not in plan.tensors or off % ALIAS_ALIGN for v, off in zip(inputs, offsets)):
        return False
    for v, off in zip(inputs, offsets):
        plan.alias(v.name, y.name, int(off))
    return True
