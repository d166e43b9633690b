"""Lowerings of data-movement ops, for every dtype tilerun carries.

Views (Reshape, Flatten, Squeeze, Unsqueeze, Identity, same-type Cast, and
Split/Slice pieces that are one contiguous, 64-byte-aligned block) are
zero-copy aliases. Transpose, Slice, Pad, Expand, Tile, Split and
constant-index Gather describe each output axis as a table of source offsets
and run one *mapped copy* kernel (see ``tilerun.kernels.movement``); adjacent
axes that stay in order merge first, and a transpose that moves the last axis
(``[B, R, C] -> [B, C, R]`` after merging, e.g. NCHW <-> NHWC) takes a blocked
kernel. Concat copies rows of bytes. Gather with run-time indices has its own
kernel, which fails the request (status 1) on an out-of-range index; the
row's ``explain`` then names the indices input, the index and the bound.
Shape-like inputs (shape, pads, starts, repeats, axes, split) must be
compile-time constants: run-time ones are rejected with an error naming the
node. Kernels come from the family's dicts, chosen by element size (and index
dtype for Gather).
"""
import numpy as np

from tilerun.kernels import movement as K

from ..errors import node_error
from .base import Lowering, const_input, expect_inputs
from .elementwise import broadcast_shape
from .registry import register

ALIAS_ALIGN = 64


def _strides(shape):
    st, acc = [0] * len(shape), 1
    for k in range(len(shape) - 1, -1, -1):
        st[k] = acc
        acc *= shape[k]
    return st


def _axis(node, axis, rank, what="axis"):
    if not -rank <= axis < max(rank, 1):
        raise node_error(node, f"{what} {axis} is out of range for rank {rank}, expected in [{-rank}, {rank - 1}]")
    return axis % max(rank, 1)


def _ints(node, inputs, k, attr, what):
    """Integer list from input ``k`` (constant) if given, else attribute ``attr`` (None if neither)."""
    if k is not None and len(inputs) > k and inputs[k] is not None:
        return [int(v) for v in np.asarray(const_input(node, inputs[k], what)).reshape(-1)]
    v = node.attrs.get(attr)
    return None if v is None else [int(i) for i in v]


# -- zero-copy views -------------------------------------------------------------
class View(Lowering):
    """An op whose output is its first input's bytes under a new shape."""

    def shape(self, node, inputs):
        """The output shape."""
        raise NotImplementedError

    def infer(self, node, inputs):
        x = inputs[0]
        shape = tuple(int(d) for d in self.shape(node, inputs))
        if int(np.prod(shape, dtype=np.int64)) != x.size:
            raise node_error(node, f"output shape {list(shape)} has {int(np.prod(shape))} elements, "
                                   f"input {x.name!r} of shape {list(x.shape)} has {x.size}")
        return [(shape, x.dtype)]

    def lower(self, node, inputs, outputs, plan):
        plan.alias(outputs[0].name, inputs[0].name)


@register("Reshape", 5)
class Reshape(View):
    """Reshape to a constant shape: 0 copies a dim (unless ``allowzero``), one -1 is inferred."""

    def shape(self, node, inputs):
        expect_inputs(node, inputs, 2)
        want = _ints(node, inputs, 1, None, "Reshape shape")
        src = inputs[0].shape
        allowzero = int(node.attrs.get("allowzero", 0))
        out = []
        for k, d in enumerate(want):
            if d == 0 and not allowzero:
                if k >= len(src):
                    raise node_error(node, f"shape {want} copies dim {k}, but the input has rank {len(src)}")
                d = src[k]
            out.append(d)
        if out.count(-1) > 1 or any(d < -1 for d in out):
            raise node_error(node, f"shape {want} must hold at most one -1 and no other negative dim")
        if -1 in out:
            known = int(np.prod([d for d in out if d != -1], dtype=np.int64))
            size = int(np.prod(src, dtype=np.int64))
            if known == 0 or size % known:
                raise node_error(node, f"cannot infer -1 in shape {want} for input shape {list(src)}")
            out[out.index(-1)] = size // known
        return out


@register("Flatten", 1)
class Flatten(View):
    """Flatten to 2-D at ``axis`` (negative axes from opset 11)."""

    def shape(self, node, inputs):
        s = inputs[0].shape
        a = int(node.attrs.get("axis", 1))
        a = a + len(s) if a < 0 else a
        if not 0 <= a <= len(s):
            raise node_error(node, f"axis {node.attrs.get('axis')} out of range for rank {len(s)}")
        return [int(np.prod(s[:a], dtype=np.int64)), int(np.prod(s[a:], dtype=np.int64))]


@register("Squeeze", 1)
class Squeeze(View):
    """Drop size-1 axes: those named (attribute before opset 13, input from 13) or all."""
    from_input = False

    def shape(self, node, inputs):
        s = inputs[0].shape
        axes = _ints(node, inputs, 1 if self.from_input else None, "axes", "Squeeze axes")
        if axes is None:
            return [d for d in s if d != 1]
        axes = {_axis(node, a, len(s), "Squeeze axis") for a in axes}
        bad = [a for a in axes if s[a] != 1]
        if bad:
            raise node_error(node, f"cannot squeeze axes {bad} of shape {list(s)}: expected size 1")
        return [d for k, d in enumerate(s) if k not in axes]


@register("Squeeze", 13)
class Squeeze13(Squeeze):
    """Squeeze with axes as an input."""
    from_input = True


@register("Unsqueeze", 1)
class Unsqueeze(View):
    """Insert size-1 axes at ``axes`` (attribute before opset 13, input from 13)."""
    from_input = False

    def shape(self, node, inputs):
        s = list(inputs[0].shape)
        axes = _ints(node, inputs, 1 if self.from_input else None, "axes", "Unsqueeze axes")
        if not axes:
            raise node_error(node, "expected axes, given none")
        rank = len(s) + len(axes)
        axes = sorted(_axis(node, a, rank, "Unsqueeze axis") for a in axes)
        if len(set(axes)) != len(axes):
            raise node_error(node, f"axes {axes} repeat an axis")
        for a in axes:
            s.insert(a, 1)
        return s


@register("Unsqueeze", 13)
class Unsqueeze13(Unsqueeze):
    """Unsqueeze with axes as an input."""
    from_input = True


@register("Identity", 1)
class Identity(View):
    """The input itself (a graph input passed straight to a graph output is aliased too)."""

    def shape(self, node, inputs):
        return inputs[0].shape



# -- the mapped copy -------------------------------------------------------------
# An output axis is ``(size, table)`` with ``table`` an int64 array of source
# element offsets (-1 = fill value), or ``(size, start, stride)`` when affine.
def _affine(size, start, stride):
    return (int(size), int(start), int(stride))


def _collapse(axes):
    """Drop size-1 affine axes into a base offset and merge adjacent affine axes in order."""
    base, kept = 0, []
    for ax in axes:
        if ax[0] == 1 and len(ax) == 3:
            base += ax[1]
        elif ax[0] == 1 and ax[1][0] >= 0:
            base += int(ax[1][0])
        else:
            kept.append(ax)
    merged = []
    for ax in kept:
        if merged and len(ax) == 3 and len(merged[-1]) == 3 and merged[-1][2] == ax[2] * ax[0]:
            d, s, _ = merged[-1]
            merged[-1] = _affine(d * ax[0], s + ax[1], ax[2])
        else:
            merged.append(ax)
    return base, merged


def _table(ax):
    return ax[1] if len(ax) == 2 else ax[1] + ax[2] * np.arange(ax[0], dtype=np.int64)


def _segments(ax, at):
    """``K.Segment``s of the last axis; tables go at ``geom[at:]``.

    Greedy runs of fills and of constant-step copies, found with numpy so that
    the cost follows the number of segments, not the axis length (a huge
    reflect pad must not take minutes to plan).
    """
    if len(ax) == 3:
        return [K.Segment(ax[0], ax[1], ax[2], K.SEG_COPY)], []
    t = np.asarray(ax[1], np.int64)
    n = len(t)
    limit = max(8, n // 16)
    fill = t < 0
    d = np.diff(t)
    valid = ~fill[:-1] & ~fill[1:]
    first = np.ones(len(d), bool)
    first[1:] = ~valid[1:] | ~valid[:-1] | (d[1:] != d[:-1])
    starts = np.flatnonzero(first)
    run_last = np.append(starts[1:] - 1, len(d) - 1)
    run_end = run_last[np.cumsum(first) - 1]  # last diff index of the equal-step run holding each index
    copies = np.flatnonzero(~fill)
    segs, i = [], 0
    while i < n and len(segs) <= limit:
        if fill[i]:
            k = np.searchsorted(copies, i)
            j = int(copies[k]) if k < len(copies) else n
            segs.append(K.Segment(j - i, 0, 0, K.SEG_FILL))
        elif i + 1 < n and valid[i]:
            j = int(run_end[i]) + 2
            segs.append(K.Segment(j - i, int(t[i]), int(d[i]), K.SEG_COPY))
        else:
            j = i + 1
            segs.append(K.Segment(1, int(t[i]), 1, K.SEG_COPY))
        i = j
    if len(segs) <= limit:
        return segs, []
    # Too fragmented (e.g. a shuffling Gather): copy runs through the table itself.
    bounds = np.concatenate([[0], np.flatnonzero(fill[1:] != fill[:-1]) + 1, [n]])
    out = [K.Segment(int(b - a), 0, 0, K.SEG_FILL) if fill[a] else K.Segment(int(b - a), at + int(a), 0, K.SEG_TABLE)
           for a, b in zip(bounds[:-1], bounds[1:])]
    return out, [t]


def _split_long_axis(axes, workers):
    """Cut a long affine last axis in two when there are too few rows to share among workers."""
    rows = int(np.prod([a[0] for a in axes[:-1]], dtype=np.int64))
    d, start, stride = axes[-1]
    want = -(-8 * workers // max(rows, 1))
    if rows >= 4 * workers or d < 8192:
        return axes
    for a in range(max(want, 2), d // 1024 + 1):
        if d % a == 0:
            return axes[:-1] + [_affine(a, start, stride * (d // a)), _affine(d // a, 0, stride)]
    return axes


def emit_mapped(node, plan, src, dst, axes, fill=None):
    """Emit the copy ``dst[...] = src[offsets given by axes]``, an alias, or a blocked transpose."""
    out_size = int(np.prod([a[0] for a in axes], dtype=np.int64))
    if out_size == 0:
        return
    es = dst.dtype.itemsize
    base, axes = _collapse(axes)
    if not axes:
        axes = [_affine(1, 0, 1)]
    if len(axes) == 1 and len(axes[0]) == 3 and axes[0][2] == 1 and (base + axes[0][1]) * es % ALIAS_ALIGN == 0:
        plan.alias(dst.name, src.name, (base + axes[0][1]) * es)
        return
    if _try_blocked_transpose(node, plan, src, dst, base, axes, es):
        return
    if len(axes[-1]) == 3:
        axes = _split_long_axis(axes, plan.num_workers)
    geom, layout = _geometry(base, axes)
    tiles, per = plan.split(layout["rows"], axes[-1][0])
    # Slots get names: a caller's handle may carry a TensorRef as its name.
    plan.add(node, K.MAPPED_COPY_KERNELS[es], src=src.name, geom=plan.weight(geom, "map"), dst=dst.name,
             n_src=src.size, n_dst=dst.size, rows_per_tile=per, fill=K.fill_bits(fill, dst.dtype), **layout,
             tiles=tiles)


def _geometry(base, axes):
    """The mapped copy's int64 ``geom`` weight and the ``MAPPED`` slots that describe it.

    Layout in ``tilerun.kernels.movement``; returns ``(geom, {n_outer,
    row_len, n_seg, rows, geom_size, base})``.
    """
    outer, last = axes[:-1], axes[-1]
    tables = [_table(a) for a in outer]
    seg_at = 2 * len(outer)
    segs, extra = _segments(last, 0)
    if extra:  # table segments index geom directly: their table goes after the outer ones
        segs, extra = _segments(last, seg_at + K.SEGMENT_SIZE * len(segs) + sum(len(t) for t in tables))
    sizes = [len(t) for t in tables]
    tab_at = list(seg_at + K.SEGMENT_SIZE * len(segs) + np.cumsum([0] + sizes))[:len(tables)]
    rows = int(np.prod([a[0] for a in outer], dtype=np.int64))
    geom = np.concatenate([
        np.array([a[0] for a in outer] + tab_at, np.int64),
        np.array(segs, np.int64).reshape(-1)] + [np.asarray(t, np.int64) for t in tables + extra])
    return geom, dict(n_outer=len(outer), row_len=int(last[0]), n_seg=len(segs), rows=rows, geom_size=len(geom),
                      base=int(base))


def _try_blocked_transpose(node, plan, src, dst, base, axes, es):
    """Use the blocked kernel for ``[B, R, C] -> [B, C, R]`` after collapsing (e.g. NCHW <-> NHWC)."""
    if base != 0 or any(len(a) != 3 or a[1] != 0 for a in axes) or len(axes) not in (2, 3):
        return False
    if len(axes) == 2:
        axes = [_affine(1, 0, 0)] + axes
    (nb, _, sb), (nc, _, s1), (nr, _, sc) = axes
    if s1 != 1 or sc != nc or (nb > 1 and sb != nr * nc) or nr < 8 or nc < 8:
        return False
    blk = 64 if es == 1 else 16
    rblocks = -(-nr // blk)
    tiles, per = plan.split(nb * rblocks, blk * nc)
    plan.add(node, K.TRANSPOSE_KERNELS[es], src=src.name, dst=dst.name, n=dst.size, batches=nb, rows=nr, cols=nc,
             block=blk, blocks_per_tile=per, tiles=tiles)
    return True


def _in_axes(shape):
    return [_affine(d, 0, s) for d, s in zip(shape, _strides(shape))]


# -- copying ops -----------------------------------------------------------------
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


@register("Pad", 2)
class Pad(Lowering):
    """Pad with constant/reflect/edge (and wrap) modes; negative pads crop."""
    from_inputs = False

    def params(self, node, inputs):
        """``(pads_begin, pads_end, mode, value)`` over every axis."""
        x = inputs[0]
        rank = len(x.shape)
        mode = node.attrs.get("mode", "constant")
        mode = mode.decode() if isinstance(mode, bytes) else mode  # schema defaults come as bytes
        if self.from_inputs:
            expect_inputs(node, inputs, 2, 4)
            pads, value = _ints(node, inputs, 1, None, "pads"), 0
            if len(inputs) > 2 and inputs[2] is not None:
                value = np.asarray(const_input(node, inputs[2], "constant_value")).reshape(-1)[0]
            axes = _ints(node, inputs, 3, None, "axes")
        else:
            pads, value, axes = list(node.attrs.get("pads", [])), node.attrs.get("value", 0.0), None
        axes = list(range(rank)) if axes is None else [_axis(node, a, rank, "Pad axis") for a in axes]
        if len(pads) != 2 * len(axes):
            raise node_error(node, f"pads {pads} must hold 2 x {len(axes)} values")
        if mode not in ("constant", "reflect", "edge", "wrap"):
            raise node_error(node, f"mode {mode!r} is not one of constant, reflect, edge, wrap")
        b, e = [0] * rank, [0] * rank
        for k, a in enumerate(axes):
            b[a], e[a] = pads[k], pads[k + len(axes)]
        for a in range(rank):
            if x.shape[a] + b[a] + e[a] < 0 or (mode != "constant" and x.shape[a] == 0 and b[a] + e[a] > 0):
                raise node_error(node, f"pads {b[a]}, {e[a]} do not fit axis {a} of shape {list(x.shape)}")
        return b, e, mode, value

    def infer(self, node, inputs):
        x = inputs[0]
        b, e, _, _ = self.params(node, inputs)
        return [(tuple(d + p + q for d, p, q in zip(x.shape, b, e)), x.dtype)]

    def lower(self, node, inputs, outputs, plan):
        x = inputs[0]
        b, e, mode, value = self.params(node, inputs)
        axes = []
        for d, p, q, s in zip(x.shape, b, e, _strides(x.shape)):
            j = np.arange(d + p + q, dtype=np.int64) - p
            if p <= 0 and q <= 0:
                axes.append(_affine(d + p + q, -p * s, s))
                continue
            if mode == "constant":
                t = np.where((j >= 0) & (j < d), j, -1)
            elif mode == "edge":
                t = np.clip(j, 0, d - 1)
            elif mode == "wrap":
                t = j % d
            elif d == 1:
                t = np.zeros_like(j)
            else:
                t = j % (2 * (d - 1))
                t = np.where(t >= d, 2 * (d - 1) - t, t)
            axes.append((len(t), np.where(t >= 0, t * s, -1).astype(np.int64)))
        emit_mapped(node, plan, x, outputs[0], axes, fill=value)


@register("Pad", 11)
class Pad11(Pad):
    """Pad with pads, constant value and axes as inputs."""
    from_inputs = True


@register("Expand", 8)
class Expand(Lowering):
    """Broadcast to a constant shape (numpy rules, both ways)."""

    def infer(self, node, inputs):
        expect_inputs(node, inputs, 2)
        shape = _ints(node, inputs, 1, None, "Expand shape")
        return [(broadcast_shape(node, [inputs[0].shape, shape]), inputs[0].dtype)]

    def lower(self, node, inputs, outputs, plan):
        x, y = inputs[0], outputs[0]
        pad = len(y.shape) - len(x.shape)
        xs = (1,) * pad + tuple(x.shape)
        st = _strides(xs)
        axes = [_affine(n, 0, 0 if d == 1 else s) for n, d, s in zip(y.shape, xs, st)]
        emit_mapped(node, plan, x, y, axes)


@register("Tile", 6)
class Tile(Lowering):
    """Repeat the input ``repeats[k]`` times along each axis (constant repeats)."""

    def _reps(self, node, inputs):
        expect_inputs(node, inputs, 2)
        reps = _ints(node, inputs, 1, None, "Tile repeats")
        if len(reps) != len(inputs[0].shape) or min(reps, default=0) < 0:
            raise node_error(node, f"repeats {reps}: expected {len(inputs[0].shape)} non-negative values")
        return reps

    def infer(self, node, inputs):
        reps = self._reps(node, inputs)
        return [(tuple(d * r for d, r in zip(inputs[0].shape, reps)), inputs[0].dtype)]

    def lower(self, node, inputs, outputs, plan):
        x = inputs[0]
        axes = []
        for r, (d, _, s) in zip(self._reps(node, inputs), _in_axes(x.shape)):
            axes += [_affine(r, 0, 0), _affine(d, 0, s)]  # output viewed as (r0, d0, r1, d1, ...)
        emit_mapped(node, plan, x, outputs[0], axes)


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
        if idx.const is not None:
            bad = (idx.const < -x.shape[axis]) | (idx.const >= x.shape[axis])
            if bad.any():
                raise node_error(node, f"indices {idx.const[bad][:5].tolist()} out of range for axis {axis} "
                                       f"of size {x.shape[axis]}")
        return [(x.shape[:axis] + tuple(idx.shape) + x.shape[axis + 1:], x.dtype)]

    def lower(self, node, inputs, outputs, plan):
        (x, idx), y = inputs, outputs[0]
        axis = int(node.attrs.get("axis", 0)) % len(x.shape)
        n = x.shape[axis]
        if idx.const is not None:
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
            v.const is not None or v.name in g.inputs or v.name in g.outputs or v.name in plan.aliases
            or v.name not in plan.tensors or off % ALIAS_ALIGN for v, off in zip(inputs, offsets)):
        return False
    for v, off in zip(inputs, offsets):
        plan.alias(v.name, y.name, int(off))
    return True
