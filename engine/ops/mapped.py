"""The mapped copy: an output described axis by axis becomes one copy row, an alias or a transpose.

An output axis is ``(size, table)`` with ``table`` an int64 array of source
element offsets (-1 = fill value), or ``(size, start, stride)`` when affine.
``emit_mapped`` drops size-1 axes into a base offset and merges adjacent
affine axes that stay in order; what is left becomes a zero-copy alias (one
contiguous, 64-byte-aligned block), the blocked transpose kernel
(``[B, R, C] -> [B, C, R]`` after merging, e.g. NCHW <-> NHWC), or one
*mapped copy* row whose ``geom`` weight follows the layout documented in
``tilerun.kernels.movement``. Kernels come from that family's dicts, by
element size. Used by the movement and pad lowerings, the reductions and
Dropout; this module registers no op.
"""
import numpy as np

from tilerun.kernels import movement as K

ALIAS_ALIGN = 64


def _strides(shape):
    st, acc = [0] * len(shape), 1
    for k in range(len(shape) - 1, -1, -1):
        st[k] = acc
        acc *= shape[k]
    return st


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
