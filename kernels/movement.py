"""Data-movement kernels: mapped copies, concatenation, run-time gather and casts.

They move elements of any dtype tilerun carries: kernels are written per
element size (``b1``/``b2``/``b4``/``b8`` read and write 1-, 2-, 4- or 8-byte words, so
float32 moves as int32 bits) or on plain bytes (``u8_concat``). They do not
interpret values, except ``<dtype>_cast``.

*Mapped copy* (``bN_mapped_copy``) covers Transpose, Slice, Pad, Expand, Tile,
Split and constant-index Gather: the output is a contiguous array of rows; a
row's source offset is the sum of per-axis tables (one int64 entry per index of
each outer axis, ``-1`` meaning "fill value"); a row is a list of segments
(copy with a source step, fill, or copy through a table). Parameter row:
``[src, geom, fill, dst, n_src, n_dst, rows_per_tile]`` where ``geom`` is an
int64 weight laid out by the lowering (see ``tilerun.ops.movement``)::

    geom[0] n_outer  geom[1] row_len  geom[2] n_seg  geom[3] rows  geom[4] len(geom)  geom[5] base
    geom[8 : 8+n_outer]                 outer dims
    geom[8+n_outer : 8+2*n_outer]       start of each outer axis' table in geom
    geom[8+2*n_outer : +4*n_seg]        segments (length, src offset, src step, kind)
    then the tables

Segment kinds: 0 copy ``src[base + off + j*step]``, 1 fill, 2 copy
``src[base + geom[off + j]]``.

Also here: the blocked batched 2-D transpose, Cast (``<src>_cast`` with the
destination dtype code as a parameter), broadcasting comparisons writing bool
bytes, Where and Not. Every kernel moves data only within the tile it was
given, so results never depend on tile boundaries.
"""
import numba
import numpy as np

from .abi import U, f32, i32, i64, u8
from .contract import tile_kernel
from .abi import i8 as s8
from .elementwise import i16, u16, u32, u64

HDR = 8
SEG_COPY, SEG_FILL, SEG_TABLE = 0, 1, 2


@numba.njit(inline="always")
def _fill(dst, o, n, v):
    for j in range(n):
        dst[U(o + j)] = v


@numba.njit
def _mapped(p, tile, src, dst, fillv):
    g = i64(p[1], HDR)
    g = i64(p[1], g[4])
    n_outer, row_len, n_seg, rows, base0 = g[0], g[1], g[2], g[3], g[5]
    seg0 = HDR + 2 * n_outer
    per = p[6]
    lo = tile * per
    hi = min(rows, lo + per)
    for r in range(lo, hi):
        rem = r
        base = base0
        fill = False
        for k in range(n_outer - 1, -1, -1):
            d = g[HDR + k]
            v = g[g[HDR + n_outer + k] + rem % d]
            rem //= d
            if v < 0:
                fill = True
            base += v
        o = r * row_len
        if fill:
            _fill(dst, o, row_len, fillv)
            continue
        for s in range(n_seg):
            q = seg0 + 4 * s
            ln, off, step, kind = g[q], g[q + 1], g[q + 2], g[q + 3]
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


@tile_kernel
def b1_mapped_copy(p, tile, scratch):
    return _mapped(p, tile, u8(p[0], p[4]), u8(p[3], p[5]), u8(p[2], 1)[0])


@tile_kernel
def b4_mapped_copy(p, tile, scratch):
    return _mapped(p, tile, i32(p[0], p[4]), i32(p[3], p[5]), i32(p[2], 1)[0])


@tile_kernel
def b8_mapped_copy(p, tile, scratch):
    return _mapped(p, tile, i64(p[0], p[4]), i64(p[3], p[5]), i64(p[2], 1)[0])


@numba.njit
def _transpose_blocked(p, tile, src, dst):
    """Batched 2-D transpose ``dst[b, c, r] = src[b, r, c]`` in square blocks (cache-friendly)."""
    nb, nr, nc, blk, per = p[3], p[4], p[5], p[6], p[7]
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


@tile_kernel
def b1_transpose_blocked(p, tile, scratch):
    return _transpose_blocked(p, tile, u8(p[0], p[2]), u8(p[1], p[2]))


@tile_kernel
def b4_transpose_blocked(p, tile, scratch):
    return _transpose_blocked(p, tile, i32(p[0], p[2]), i32(p[1], p[2]))


@tile_kernel
def b8_transpose_blocked(p, tile, scratch):
    return _transpose_blocked(p, tile, i64(p[0], p[2]), i64(p[1], p[2]))


@tile_kernel
def u8_concat(p, tile, scratch):
    """Concatenate rows of bytes: ``[meta, x0..xk-1, y]``, see ``_concat``."""
    return _concat(p, tile)


@numba.njit(inline="always")
def _concat(p, tile):
    # meta = [k, outer, out_row_bytes, chunk_bytes, total_bytes, run_0 .. run_{k-1}] (bytes)
    m = i64(p[0], 5)
    k = m[0]
    m = i64(p[0], 5 + k)
    outer, row, chunk, total = m[1], m[2], m[3], m[4]
    y = u8(p[1 + k], total)
    cur = tile * chunk
    hi = min(total, cur + chunk)
    r = cur // row
    pos = cur - r * row
    s = 0
    while cur < hi:
        run = m[5 + s]
        if pos >= run:
            pos -= run
            s += 1
            if s == k:
                s = 0
                r += 1
            continue
        n = min(run - pos, hi - cur)
        x = u8(p[1 + s], outer * run)
        xo = r * run + pos
        for j in range(n):
            y[U(cur + j)] = x[U(xo + j)]
        cur += n
        pos += n
    return 0


@numba.njit
def _gather(p, tile, src, dst, idx):
    outer, nax, inner, m, per = p[3], p[4], p[5], p[6], p[7]
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


@tile_kernel
def b1_gather_i64(p, tile, scratch):
    return _gather(p, tile, u8(p[0], p[3] * p[4] * p[5]), u8(p[2], p[3] * p[6] * p[5]), i64(p[1], p[6]))


@tile_kernel
def b4_gather_i64(p, tile, scratch):
    return _gather(p, tile, i32(p[0], p[3] * p[4] * p[5]), i32(p[2], p[3] * p[6] * p[5]), i64(p[1], p[6]))


@tile_kernel
def b8_gather_i64(p, tile, scratch):
    return _gather(p, tile, i64(p[0], p[3] * p[4] * p[5]), i64(p[2], p[3] * p[6] * p[5]), i64(p[1], p[6]))


@tile_kernel
def b1_gather_i32(p, tile, scratch):
    return _gather(p, tile, u8(p[0], p[3] * p[4] * p[5]), u8(p[2], p[3] * p[6] * p[5]), i32(p[1], p[6]))


@tile_kernel
def b4_gather_i32(p, tile, scratch):
    return _gather(p, tile, i32(p[0], p[3] * p[4] * p[5]), i32(p[2], p[3] * p[6] * p[5]), i32(p[1], p[6]))


@tile_kernel
def b8_gather_i32(p, tile, scratch):
    return _gather(p, tile, i64(p[0], p[3] * p[4] * p[5]), i64(p[2], p[3] * p[6] * p[5]), i32(p[1], p[6]))


# Cast: destination dtype codes (the lowering passes one as the row's last integer).
F32, I64, I32, BOOL, U8, I8 = range(6)


@numba.njit(inline="always")
def _store(code, y, lo, hi, x):
    # Narrow the way numpy's astype does: wrap for integers, != 0 for bool,
    # truncation toward zero for float to int.
    if code == F32:
        yf = f32(y, hi)
        for i in range(lo, hi):
            yf[U(i)] = np.float32(x[U(i)])
    elif code == I64:
        yl = i64(y, hi)
        for i in range(lo, hi):
            yl[U(i)] = np.int64(x[U(i)])
    elif code == I32:
        yi = i32(y, hi)
        for i in range(lo, hi):
            yi[U(i)] = np.int32(np.int64(x[U(i)]))
    elif code == BOOL:
        yb = u8(y, hi)
        for i in range(lo, hi):
            yb[U(i)] = np.uint8(x[U(i)] != 0)
    else:  # U8 and I8 share the byte pattern of the wrapped value
        yu = u8(y, hi)
        for i in range(lo, hi):
            yu[U(i)] = np.uint8(np.int64(x[U(i)]) & 255)
    return 0


@numba.njit(inline="always")
def _cast(p, tile, x):
    n, chunk, code = p[2], p[3], p[4]
    lo = tile * chunk
    hi = min(n, lo + chunk)
    return _store(code, p[1], lo, hi, x)


@tile_kernel
def f32_cast(p, tile, scratch):
    return _cast(p, tile, f32(p[0], p[2]))


@tile_kernel
def i64_cast(p, tile, scratch):
    return _cast(p, tile, i64(p[0], p[2]))


@tile_kernel
def i32_cast(p, tile, scratch):
    return _cast(p, tile, i32(p[0], p[2]))


@tile_kernel
def u8_cast(p, tile, scratch):
    return _cast(p, tile, u8(p[0], p[2]))


@tile_kernel
def i8_cast(p, tile, scratch):
    return _cast(p, tile, s8(p[0], p[2]))


# -- comparisons, Where, Not -------------------------------------------------------
# Broadcasting rows as in the elementwise family: ``dims`` and per-input element
# strides are 6-int64 weights, the output is ``dims`` contiguous, a tile covers
# ``per`` rows of the last axis. Comparisons write bool (one byte, 0 or 1).
EQ, LT, GT, LE, GE = range(5)
NAX = 6


@numba.njit(inline="always")
def _extent(p, k):
    """Elements spanned by the input whose stride weight is at ``p[k]`` (dims at ``p[2]``)."""
    dims = i64(p[2], NAX)
    st = i64(p[k], NAX)
    n = 1
    for a in range(NAX):
        n += (dims[a] - 1) * st[a]
    return n


@numba.njit(inline="always")
def _cmp_op(op, a, b):
    if op == EQ:
        return a == b
    if op == LT:
        return a < b
    if op == GT:
        return a > b
    if op == LE:
        return a <= b
    return a >= b


@numba.njit(inline="always")
def _row_offsets(dims, r, s0, s1):
    o0 = 0
    o1 = 0
    for k in range(NAX - 2, -1, -1):
        i = r % dims[k]
        r //= dims[k]
        o0 += i * s0[k]
        o1 += i * s1[k]
    return o0, o1


@numba.njit
def _compare(p, tile, a, b, op):
    # [a, b, dims, a_strides, b_strides, y, per]
    dims, sa, sb = i64(p[2], NAX), i64(p[3], NAX), i64(p[4], NAX)
    inner = dims[NAX - 1]
    rows = dims[0] * dims[1] * dims[2] * dims[3] * dims[4]
    y = u8(p[5], rows * inner)
    as5, bs5 = sa[NAX - 1], sb[NAX - 1]
    lo = tile * p[6]
    hi = min(rows, lo + p[6])
    for r in range(lo, hi):
        ao, bo = _row_offsets(dims, r, sa, sb)
        yo = r * inner
        for j in range(inner):
            y[U(yo + j)] = np.uint8(_cmp_op(op, a[U(ao + j * as5)], b[U(bo + j * bs5)]))
    return 0


@tile_kernel
def f32_equal(p, tile, scratch):
    return _compare(p, tile, f32(p[0], _extent(p, 3)), f32(p[1], _extent(p, 4)), EQ)


@tile_kernel
def f32_less(p, tile, scratch):
    return _compare(p, tile, f32(p[0], _extent(p, 3)), f32(p[1], _extent(p, 4)), LT)


@tile_kernel
def f32_greater(p, tile, scratch):
    return _compare(p, tile, f32(p[0], _extent(p, 3)), f32(p[1], _extent(p, 4)), GT)


@tile_kernel
def f32_less_equal(p, tile, scratch):
    return _compare(p, tile, f32(p[0], _extent(p, 3)), f32(p[1], _extent(p, 4)), LE)


@tile_kernel
def f32_greater_equal(p, tile, scratch):
    return _compare(p, tile, f32(p[0], _extent(p, 3)), f32(p[1], _extent(p, 4)), GE)


@tile_kernel
def i64_equal(p, tile, scratch):
    return _compare(p, tile, i64(p[0], _extent(p, 3)), i64(p[1], _extent(p, 4)), EQ)


@tile_kernel
def i64_less(p, tile, scratch):
    return _compare(p, tile, i64(p[0], _extent(p, 3)), i64(p[1], _extent(p, 4)), LT)


@tile_kernel
def i64_greater(p, tile, scratch):
    return _compare(p, tile, i64(p[0], _extent(p, 3)), i64(p[1], _extent(p, 4)), GT)


@tile_kernel
def i64_less_equal(p, tile, scratch):
    return _compare(p, tile, i64(p[0], _extent(p, 3)), i64(p[1], _extent(p, 4)), LE)


@tile_kernel
def i64_greater_equal(p, tile, scratch):
    return _compare(p, tile, i64(p[0], _extent(p, 3)), i64(p[1], _extent(p, 4)), GE)


@tile_kernel
def i32_equal(p, tile, scratch):
    return _compare(p, tile, i32(p[0], _extent(p, 3)), i32(p[1], _extent(p, 4)), EQ)


@tile_kernel
def i32_less(p, tile, scratch):
    return _compare(p, tile, i32(p[0], _extent(p, 3)), i32(p[1], _extent(p, 4)), LT)


@tile_kernel
def i32_greater(p, tile, scratch):
    return _compare(p, tile, i32(p[0], _extent(p, 3)), i32(p[1], _extent(p, 4)), GT)


@tile_kernel
def i32_less_equal(p, tile, scratch):
    return _compare(p, tile, i32(p[0], _extent(p, 3)), i32(p[1], _extent(p, 4)), LE)


@tile_kernel
def i32_greater_equal(p, tile, scratch):
    return _compare(p, tile, i32(p[0], _extent(p, 3)), i32(p[1], _extent(p, 4)), GE)


@tile_kernel
def u8_equal(p, tile, scratch):
    """Equality of any 1-byte dtype (bool, uint8, int8): equal bytes are equal values."""
    return _compare(p, tile, u8(p[0], _extent(p, 3)), u8(p[1], _extent(p, 4)), EQ)


@tile_kernel
def u8_less(p, tile, scratch):
    return _compare(p, tile, u8(p[0], _extent(p, 3)), u8(p[1], _extent(p, 4)), LT)


@tile_kernel
def u8_greater(p, tile, scratch):
    return _compare(p, tile, u8(p[0], _extent(p, 3)), u8(p[1], _extent(p, 4)), GT)


@tile_kernel
def u8_less_equal(p, tile, scratch):
    return _compare(p, tile, u8(p[0], _extent(p, 3)), u8(p[1], _extent(p, 4)), LE)


@tile_kernel
def u8_greater_equal(p, tile, scratch):
    return _compare(p, tile, u8(p[0], _extent(p, 3)), u8(p[1], _extent(p, 4)), GE)


@tile_kernel
def i8_less(p, tile, scratch):
    return _compare(p, tile, s8(p[0], _extent(p, 3)), s8(p[1], _extent(p, 4)), LT)


@tile_kernel
def i8_greater(p, tile, scratch):
    return _compare(p, tile, s8(p[0], _extent(p, 3)), s8(p[1], _extent(p, 4)), GT)


@tile_kernel
def i8_less_equal(p, tile, scratch):
    return _compare(p, tile, s8(p[0], _extent(p, 3)), s8(p[1], _extent(p, 4)), LE)


@tile_kernel
def i8_greater_equal(p, tile, scratch):
    return _compare(p, tile, s8(p[0], _extent(p, 3)), s8(p[1], _extent(p, 4)), GE)


@numba.njit
def _where(p, tile, x, y, out):
    # [cond, x, y, dims, c_strides, x_strides, y_strides, out, per]
    dims, sc, sx, sy = i64(p[3], NAX), i64(p[4], NAX), i64(p[5], NAX), i64(p[6], NAX)
    inner = dims[NAX - 1]
    rows = dims[0] * dims[1] * dims[2] * dims[3] * dims[4]
    nc = 1
    for a in range(NAX):
        nc += (dims[a] - 1) * sc[a]
    c = u8(p[0], nc)
    cs5, xs5, ys5 = sc[NAX - 1], sx[NAX - 1], sy[NAX - 1]
    lo = tile * p[8]
    hi = min(rows, lo + p[8])
    for r in range(lo, hi):
        co, xo = _row_offsets(dims, r, sc, sx)
        _, yo = _row_offsets(dims, r, sc, sy)
        oo = r * inner
        for j in range(inner):
            if c[U(co + j * cs5)] != 0:
                out[U(oo + j)] = x[U(xo + j * xs5)]
            else:
                out[U(oo + j)] = y[U(yo + j * ys5)]
    return 0


@numba.njit(inline="always")
def _where_extent(p, k):
    dims = i64(p[3], NAX)
    st = i64(p[k], NAX)
    n = 1
    for a in range(NAX):
        n += (dims[a] - 1) * st[a]
    return n


@numba.njit(inline="always")
def _out_size(p):
    dims = i64(p[3], NAX)
    n = 1
    for a in range(NAX):
        n *= dims[a]
    return n


@tile_kernel
def b1_where(p, tile, scratch):
    return _where(p, tile, u8(p[1], _where_extent(p, 5)), u8(p[2], _where_extent(p, 6)), u8(p[7], _out_size(p)))


@tile_kernel
def b4_where(p, tile, scratch):
    return _where(p, tile, i32(p[1], _where_extent(p, 5)), i32(p[2], _where_extent(p, 6)), i32(p[7], _out_size(p)))


@tile_kernel
def b8_where(p, tile, scratch):
    return _where(p, tile, i64(p[1], _where_extent(p, 5)), i64(p[2], _where_extent(p, 6)), i64(p[7], _out_size(p)))


@tile_kernel
def u8_not(p, tile, scratch):
    """Logical not of bool bytes: ``[x, y, n, chunk]``."""
    n, chunk = p[2], p[3]
    x = u8(p[0], n)
    y = u8(p[1], n)
    lo = tile * chunk
    for i in range(lo, min(n, lo + chunk)):
        y[U(i)] = np.uint8(x[U(i)] == 0)
    return 0


# -- 2-byte elements (int16, uint16) ------------------------------------------------------
@tile_kernel
def b2_mapped_copy(p, tile, scratch):
    return _mapped(p, tile, i16(p[0], p[4]), i16(p[3], p[5]), i16(p[2], 1)[0])


@tile_kernel
def b2_transpose_blocked(p, tile, scratch):
    return _transpose_blocked(p, tile, i16(p[0], p[2]), i16(p[1], p[2]))


@tile_kernel
def b2_gather_i64(p, tile, scratch):
    return _gather(p, tile, i16(p[0], p[3] * p[4] * p[5]), i16(p[2], p[3] * p[6] * p[5]), i64(p[1], p[6]))


@tile_kernel
def b2_gather_i32(p, tile, scratch):
    return _gather(p, tile, i16(p[0], p[3] * p[4] * p[5]), i16(p[2], p[3] * p[6] * p[5]), i32(p[1], p[6]))


@tile_kernel
def b2_where(p, tile, scratch):
    return _where(p, tile, i16(p[1], _where_extent(p, 5)), i16(p[2], _where_extent(p, 6)), i16(p[7], _out_size(p)))


# Comparisons of the wider integer dtypes: one kernel per dtype, the op code
# (EQ..GE) as the row's last integer: [a, b, dims, a_strides, b_strides, y, per, op].
@tile_kernel
def i16_compare(p, tile, scratch):
    return _compare(p, tile, i16(p[0], _extent(p, 3)), i16(p[1], _extent(p, 4)), p[7])


@tile_kernel
def u16_compare(p, tile, scratch):
    return _compare(p, tile, u16(p[0], _extent(p, 3)), u16(p[1], _extent(p, 4)), p[7])


@tile_kernel
def u32_compare(p, tile, scratch):
    return _compare(p, tile, u32(p[0], _extent(p, 3)), u32(p[1], _extent(p, 4)), p[7])


@tile_kernel
def u64_compare(p, tile, scratch):
    return _compare(p, tile, u64(p[0], _extent(p, 3)), u64(p[1], _extent(p, 4)), p[7])
