"""Data-movement kernels: mapped copies, blocked transposes, concatenation and run-time gather.

They move elements of any dtype tilerun carries: kernels are written per
element size (``b1``/``b2``/``b4``/``b8`` read and write 1-, 2-, 4- or 8-byte
words, so float32 moves as int32 bits) or on plain bytes (``u8_concat``), each
size a thin wrapper around one template, and exported in a dict keyed by what
a lowering chooses by (``MAPPED_COPY_KERNELS[itemsize]`` ...). They do not
interpret values (casts and masks: ``kernels.logical``; comparisons:
``kernels.compare``). Every kernel moves data only within the tile it was
given, so results never depend on tile boundaries. Every kernel reads only the
source elements its geometry names, one scalar index at a time, so it reads
nothing past its inputs (``reads_in_bounds``: a graph input that only these
and other such kernels read is the caller's array itself). Tiles and parameter values
are the lowerings' business (``tilerun.ops.mapped`` and ``tilerun.ops.movement``).

*Mapped copy* (``bN_mapped_copy``, row ``MAPPED``) covers Transpose, Slice,
Pad, Expand, Tile, Split and constant-index Gather: the output is ``rows``
contiguous rows of ``row_len`` elements; a row's source offset is ``base``
plus one entry of a per-axis table for each of the ``n_outer`` outer axes
(``-1`` meaning "fill the row"); a row is a list of ``n_seg`` segments. The
int64 weight ``geom`` (``geom_size`` entries) holds::

    geom[0 : n_outer]                  outer dims
    geom[n_outer : 2*n_outer]          start of each outer axis' table in geom
    geom[2*n_outer : +SEGMENT_SIZE*n_seg]   segments, fields in ``Segment`` order
    then the tables

Segment kinds: ``SEG_COPY`` copies ``src[base + offset + j*step]``,
``SEG_FILL`` writes the fill value, ``SEG_TABLE`` copies
``src[base + geom[offset + j]]``. ``fill`` holds the fill value's bytes in the
low bytes of its slot (as ``fill_bits`` packs them).

``bN_transpose_blocked`` (row ``TRANSPOSE``) is the batched 2-D transpose
``dst[b, c, r] = src[b, r, c]`` in square blocks. ``u8_concat`` (row
``CONCAT``) copies the rows of up to ``CONCAT_INPUTS`` inputs, byte runs side
by side, into a band of each output row (a Concat of more inputs takes one row
per band). ``bN_gather_i64``/``bN_gather_i32`` (row ``GATHER``) gather with
run-time indices and fail the request (status 1) on one out of range.
"""
from collections import namedtuple

import numba
import numpy as np

from .abi import U, i16, i32, i64, slot_address, u8
from .contract import declare_row, tile_kernel

# -- rows ------------------------------------------------------------------------------
MAPPED = declare_row("MAPPED", inputs=("src", "geom"), outputs=("dst",),
                     ints=("n_src", "n_dst", "rows_per_tile", "n_outer", "row_len", "n_seg", "rows", "geom_size",
                           "base", "fill"))
TRANSPOSE = declare_row("TRANSPOSE", inputs=("src",), outputs=("dst",),
                        ints=("n", "batches", "rows", "cols", "block", "blocks_per_tile"))
CONCAT_INPUTS = 8  # inputs one concat row copies (a Concat of more takes several rows)
CONCAT_X = tuple(f"x{k}" for k in range(CONCAT_INPUTS))  # the input slots, in order (all but x0 optional)
CONCAT_RUNS = tuple(f"run{k}" for k in range(CONCAT_INPUTS))  # bytes per row of each input
CONCAT = declare_row("CONCAT", inputs=CONCAT_X[:1] + tuple(x + "?" for x in CONCAT_X[1:]), outputs=("y",),
                     ints=("inputs", "outer", "row_bytes", "y_row_bytes", "y_offset", "chunk_bytes", "total_bytes")
                     + CONCAT_RUNS)
GATHER = declare_row("GATHER", inputs=("x", "indices"), outputs=("y",),
                     ints=("outer", "axis_len", "inner", "n_indices", "rows_per_tile"))

# -- codes and layouts ---------------------------------------------------------------------
SEG_COPY, SEG_FILL, SEG_TABLE = range(3)
Segment = namedtuple("Segment", ("length", "offset", "step", "kind"))  # one segment's fields, in geom order
SEG = Segment(*range(len(Segment._fields)))  # field offsets inside a segment
SEGMENT_SIZE = len(Segment._fields)


def fill_bits(value, dtype):
    """The ``MAPPED.fill`` slot holding ``value`` as ``dtype`` in its low bytes (0 for None)."""
    raw = np.zeros(8, np.uint8)
    if value is not None:
        dtype = np.dtype(dtype)
        raw[:dtype.itemsize] = np.frombuffer(np.asarray(value, dtype).tobytes(), np.uint8)
    return int(raw.view(np.int64)[0])


# -- mapped copy -------------------------------------------------------------------------
@numba.njit(inline="always")
def _fill(dst, o, n, v):
    for j in range(n):
        dst[U(o + j)] = v


@numba.njit
def _mapped(p, tile, src, dst, fillv):
    g = i64(p[MAPPED.geom], p[MAPPED.geom_size])
    n_outer, row_len, n_seg, rows, base0 = (p[MAPPED.n_outer], p[MAPPED.row_len], p[MAPPED.n_seg], p[MAPPED.rows],
                                            p[MAPPED.base])
    seg0 = 2 * n_outer
    per = p[MAPPED.rows_per_tile]
    lo = tile * per
    hi = min(rows, lo + per)
    for r in range(lo, hi):
        rem = r
        base = base0
        fill = False
        for k in range(n_outer - 1, -1, -1):
            d = g[k]
            v = g[g[n_outer + k] + rem % d]
            rem //= d
            if v < 0:
                fill = True
            base += v
        o = r * row_len
        if fill:
            _fill(dst, o, row_len, fillv)
            continue
        for s in range(n_seg):
            q = seg0 + SEGMENT_SIZE * s
            ln, off, step, kind = g[q + SEG.length], g[q + SEG.offset], g[q + SEG.step], g[q + SEG.kind]
            if kind == SEG_FILL:
                _fill(dst, o, ln, fillv)
            elif kind == SEG_TABLE:
                for j in range(ln):
                    dst[U(o + j)] = src[U(base + g[off + j])]
            elif step == 1:
                b = base + off
                for j in range(ln):
                    dst[U(o + j)] = src[U(b + j)]
            else:
                b = base + off
                for j in range(ln):
                    dst[U(o + j)] = src[U(b + j * step)]
            o += ln
    return 0


@tile_kernel(MAPPED, reads_in_bounds=True)
def b1_mapped_copy(p, tile, scratch):
    return _mapped(p, tile, u8(p[MAPPED.src], p[MAPPED.n_src]), u8(p[MAPPED.dst], p[MAPPED.n_dst]),
                   u8(slot_address(p, MAPPED.fill), 1)[0])


@tile_kernel(MAPPED, reads_in_bounds=True)
def b2_mapped_copy(p, tile, scratch):
    return _mapped(p, tile, i16(p[MAPPED.src], p[MAPPED.n_src]), i16(p[MAPPED.dst], p[MAPPED.n_dst]),
                   i16(slot_address(p, MAPPED.fill), 1)[0])


@tile_kernel(MAPPED, reads_in_bounds=True)
def b4_mapped_copy(p, tile, scratch):
    return _mapped(p, tile, i32(p[MAPPED.src], p[MAPPED.n_src]), i32(p[MAPPED.dst], p[MAPPED.n_dst]),
                   i32(slot_address(p, MAPPED.fill), 1)[0])


@tile_kernel(MAPPED, reads_in_bounds=True)
def b8_mapped_copy(p, tile, scratch):
    return _mapped(p, tile, i64(p[MAPPED.src], p[MAPPED.n_src]), i64(p[MAPPED.dst], p[MAPPED.n_dst]),
                   i64(slot_address(p, MAPPED.fill), 1)[0])


# -- blocked transpose ---------------------------------------------------------------------
@numba.njit
def _transpose_blocked(p, tile, src, dst):
    """Batched 2-D transpose ``dst[b, c, r] = src[b, r, c]`` in square blocks (cache-friendly)."""
    nb, nr, nc = p[TRANSPOSE.batches], p[TRANSPOSE.rows], p[TRANSPOSE.cols]
    blk, per = p[TRANSPOSE.block], p[TRANSPOSE.blocks_per_tile]
    rblocks = (nr + blk - 1) // blk
    lo = tile * per
    hi = min(nb * rblocks, lo + per)
    for t in range(lo, hi):
        b = t // rblocks
        r0 = (t % rblocks) * blk
        r1 = min(nr, r0 + blk)
        sb = b * nr * nc
        for c0 in range(0, nc, blk):
            c1 = min(nc, c0 + blk)
            for c in range(c0, c1):
                o = sb + c * nr
                for r in range(r0, r1):
                    dst[U(o + r)] = src[U(sb + r * nc + c)]
    return 0


@tile_kernel(TRANSPOSE, reads_in_bounds=True)
def b1_transpose_blocked(p, tile, scratch):
    n = p[TRANSPOSE.n]
    return _transpose_blocked(p, tile, u8(p[TRANSPOSE.src], n), u8(p[TRANSPOSE.dst], n))


@tile_kernel(TRANSPOSE, reads_in_bounds=True)
def b2_transpose_blocked(p, tile, scratch):
    n = p[TRANSPOSE.n]
    return _transpose_blocked(p, tile, i16(p[TRANSPOSE.src], n), i16(p[TRANSPOSE.dst], n))


@tile_kernel(TRANSPOSE, reads_in_bounds=True)
def b4_transpose_blocked(p, tile, scratch):
    n = p[TRANSPOSE.n]
    return _transpose_blocked(p, tile, i32(p[TRANSPOSE.src], n), i32(p[TRANSPOSE.dst], n))


@tile_kernel(TRANSPOSE, reads_in_bounds=True)
def b8_transpose_blocked(p, tile, scratch):
    n = p[TRANSPOSE.n]
    return _transpose_blocked(p, tile, i64(p[TRANSPOSE.src], n), i64(p[TRANSPOSE.dst], n))


# -- concat ------------------------------------------------------------------------------
@tile_kernel(CONCAT, reads_in_bounds=True)
def u8_concat(p, tile, scratch):
    """Copy the ``inputs`` inputs' rows side by side into ``y`` (bytes).

    Input ``s`` holds ``outer`` rows of ``run<s>`` bytes; output row ``r``'s
    band ``[y_offset, y_offset + row_bytes)`` (``row_bytes`` the sum of the
    runs) receives them in order, the row itself ``y_row_bytes`` long. Tiles
    cover ``chunk_bytes`` of the ``total_bytes = outer * row_bytes`` bytes
    copied.
    """
    k = p[CONCAT.inputs]
    outer, row, chunk, total = p[CONCAT.outer], p[CONCAT.row_bytes], p[CONCAT.chunk_bytes], p[CONCAT.total_bytes]
    y_row, y_off = p[CONCAT.y_row_bytes], p[CONCAT.y_offset]
    y = u8(p[CONCAT.y], outer * y_row)
    cur = tile * chunk
    hi = min(total, cur + chunk)
    r = cur // row
    pos = cur - r * row
    s = 0
    while cur < hi:
        run = p[CONCAT.run0 + s]
        if pos >= run:
            pos -= run
            s += 1
            if s == k:
                s = 0
                r += 1
            continue
        n = min(run - pos, hi - cur)
        x = u8(p[CONCAT.x0 + s], outer * run)
        xo = r * run + pos
        yo = r * (y_row - row) + y_off + cur
        for j in range(n):
            y[U(yo + j)] = x[U(xo + j)]
        cur += n
        pos += n
    return 0


# -- gather with run-time indices --------------------------------------------------------------
@numba.njit
def _gather(p, tile, src, dst, idx):
    outer, nax, inner, m = p[GATHER.outer], p[GATHER.axis_len], p[GATHER.inner], p[GATHER.n_indices]
    per = p[GATHER.rows_per_tile]
    lo = tile * per
    hi = min(outer * m, lo + per)
    for r in range(lo, hi):
        o = r // m
        j = np.int64(idx[U(r - o * m)])
        if j < 0:
            j += nax
        if j < 0 or j >= nax:
            return 1  # out-of-range run-time index: fail the request
        b = (o * nax + j) * inner
        d = r * inner
        for q in range(inner):
            dst[U(d + q)] = src[U(b + q)]
    return 0


@numba.njit(inline="always")
def _gather_sizes(p):
    """Elements of ``x``, of ``y`` and of ``indices``."""
    outer, inner, m = p[GATHER.outer], p[GATHER.inner], p[GATHER.n_indices]
    return outer * p[GATHER.axis_len] * inner, outer * m * inner, m


@tile_kernel(GATHER, reads_in_bounds=True)
def b1_gather_i64(p, tile, scratch):
    nx, ny, m = _gather_sizes(p)
    return _gather(p, tile, u8(p[GATHER.x], nx), u8(p[GATHER.y], ny), i64(p[GATHER.indices], m))


@tile_kernel(GATHER, reads_in_bounds=True)
def b2_gather_i64(p, tile, scratch):
    nx, ny, m = _gather_sizes(p)
    return _gather(p, tile, i16(p[GATHER.x], nx), i16(p[GATHER.y], ny), i64(p[GATHER.indices], m))


@tile_kernel(GATHER, reads_in_bounds=True)
def b4_gather_i64(p, tile, scratch):
    nx, ny, m = _gather_sizes(p)
    return _gather(p, tile, i32(p[GATHER.x], nx), i32(p[GATHER.y], ny), i64(p[GATHER.indices], m))


@tile_kernel(GATHER, reads_in_bounds=True)
def b8_gather_i64(p, tile, scratch):
    nx, ny, m = _gather_sizes(p)
    return _gather(p, tile, i64(p[GATHER.x], nx), i64(p[GATHER.y], ny), i64(p[GATHER.indices], m))


@tile_kernel(GATHER, reads_in_bounds=True)
def b1_gather_i32(p, tile, scratch):
    nx, ny, m = _gather_sizes(p)
    return _gather(p, tile, u8(p[GATHER.x], nx), u8(p[GATHER.y], ny), i32(p[GATHER.indices], m))


@tile_kernel(GATHER, reads_in_bounds=True)
def b2_gather_i32(p, tile, scratch):
    nx, ny, m = _gather_sizes(p)
    return _gather(p, tile, i16(p[GATHER.x], nx), i16(p[GATHER.y], ny), i32(p[GATHER.indices], m))


@tile_kernel(GATHER, reads_in_bounds=True)
def b4_gather_i32(p, tile, scratch):
    nx, ny, m = _gather_sizes(p)
    return _gather(p, tile, i32(p[GATHER.x], nx), i32(p[GATHER.y], ny), i32(p[GATHER.indices], m))


@tile_kernel(GATHER, reads_in_bounds=True)
def b8_gather_i32(p, tile, scratch):
    nx, ny, m = _gather_sizes(p)
    return _gather(p, tile, i64(p[GATHER.x], nx), i64(p[GATHER.y], ny), i32(p[GATHER.indices], m))


# -- what the lowerings choose from ---------------------------------------------------------
MAPPED_COPY_KERNELS = {1: b1_mapped_copy, 2: b2_mapped_copy, 4: b4_mapped_copy, 8: b8_mapped_copy}
TRANSPOSE_KERNELS = {1: b1_transpose_blocked, 2: b2_transpose_blocked, 4: b4_transpose_blocked,
                     8: b8_transpose_blocked}
GATHER_KERNELS = {(size, np.dtype(t)): k for size, t, k in [
    (1, np.int64, b1_gather_i64), (2, np.int64, b2_gather_i64), (4, np.int64, b4_gather_i64),
    (8, np.int64, b8_gather_i64), (1, np.int32, b1_gather_i32), (2, np.int32, b2_gather_i32),
    (4, np.int32, b4_gather_i32), (8, np.int32, b8_gather_i32)]}  # by (element size, index dtype)
