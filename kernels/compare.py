"""Broadcasting comparison kernels (Equal, Less, Greater, LessOrEqual, GreaterOrEqual) on any dtype.

Row ``COMPARE``: ``dims`` and the per-input element strides are int64
weights of ``BROADCAST_AXES`` entries (the elementwise family's collapsed
broadcast); the output is ``dims`` contiguous bool bytes and a tile covers
``rows_per_tile`` rows of the last axis. The float32 and common integer
kernels (``<dtype>_equal`` ... ``<dtype>_greater_equal``) have their op
compiled in and ignore ``op``; the wider integer dtypes (``<dtype>_compare``)
take one of the codes ``EQ``..``GE`` from ``op``. ``COMPARE_KERNELS`` maps
(operand dtype, code) to its kernel. ``_extent`` and ``_row_offsets`` address
a broadcast input; Where (``tilerun.kernels.logical``) shares them. This
module does not collapse broadcasts or choose tiles (``tilerun.ops.logical``
does).
"""
import numba
import numpy as np

from .abi import U, f32, i16, i32, i64, u8, u16, u32, u64
from .abi import i8 as s8
from .contract import declare_row, tile_kernel
from .elementwise import BROADCAST_AXES

COMPARE = declare_row("COMPARE", inputs=("a", "b", "dims", "a_strides", "b_strides"), outputs=("y",),
                      ints=("rows_per_tile", "op"))

EQ, LT, GT, LE, GE = range(5)  # comparison codes


# -- broadcasting comparisons ----------------------------------------------------------------
# ``dims`` and the per-input element strides are int64 weights of
# ``BROADCAST_AXES`` entries; the output is ``dims`` contiguous and a tile
# covers ``rows_per_tile`` rows of the last axis.
@numba.njit(inline="always")
def _extent(dims_at, strides_at):
    """Elements spanned by an input of broadcast ``dims`` read with ``strides`` (both weight addresses)."""
    dims = i64(dims_at, BROADCAST_AXES)
    st = i64(strides_at, BROADCAST_AXES)
    n = 1
    for a in range(BROADCAST_AXES):
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
    for k in range(BROADCAST_AXES - 2, -1, -1):
        i = r % dims[k]
        r //= dims[k]
        o0 += i * s0[k]
        o1 += i * s1[k]
    return o0, o1


@numba.njit
def _compare(p, tile, a, b, op):
    dims = i64(p[COMPARE.dims], BROADCAST_AXES)
    sa = i64(p[COMPARE.a_strides], BROADCAST_AXES)
    sb = i64(p[COMPARE.b_strides], BROADCAST_AXES)
    inner = dims[BROADCAST_AXES - 1]
    rows = dims[0] * dims[1] * dims[2] * dims[3] * dims[4]
    y = u8(p[COMPARE.y], rows * inner)
    as5, bs5 = sa[BROADCAST_AXES - 1], sb[BROADCAST_AXES - 1]
    per = p[COMPARE.rows_per_tile]
    lo = tile * per
    hi = min(rows, lo + per)
    for r in range(lo, hi):
        ao, bo = _row_offsets(dims, r, sa, sb)
        yo = r * inner
        for j in range(inner):
            y[U(yo + j)] = np.uint8(_cmp_op(op, a[U(ao + j * as5)], b[U(bo + j * bs5)]))
    return 0


@numba.njit(inline="always")
def _compare_sizes(p):
    """Elements of a comparison row's ``a`` and ``b``."""
    return _extent(p[COMPARE.dims], p[COMPARE.a_strides]), _extent(p[COMPARE.dims], p[COMPARE.b_strides])


@tile_kernel(COMPARE)
def f32_equal(p, tile, scratch):
    na, nb = _compare_sizes(p)
    return _compare(p, tile, f32(p[COMPARE.a], na), f32(p[COMPARE.b], nb), EQ)


@tile_kernel(COMPARE)
def f32_less(p, tile, scratch):
    na, nb = _compare_sizes(p)
    return _compare(p, tile, f32(p[COMPARE.a], na), f32(p[COMPARE.b], nb), LT)


@tile_kernel(COMPARE)
def f32_greater(p, tile, scratch):
    na, nb = _compare_sizes(p)
    return _compare(p, tile, f32(p[COMPARE.a], na), f32(p[COMPARE.b], nb), GT)


@tile_kernel(COMPARE)
def f32_less_equal(p, tile, scratch):
    na, nb = _compare_sizes(p)
    return _compare(p, tile, f32(p[COMPARE.a], na), f32(p[COMPARE.b], nb), LE)


@tile_kernel(COMPARE)
def f32_greater_equal(p, tile, scratch):
    na, nb = _compare_sizes(p)
    return _compare(p, tile, f32(p[COMPARE.a], na), f32(p[COMPARE.b], nb), GE)


@tile_kernel(COMPARE)
def i64_equal(p, tile, scratch):
    na, nb = _compare_sizes(p)
    return _compare(p, tile, i64(p[COMPARE.a], na), i64(p[COMPARE.b], nb), EQ)


@tile_kernel(COMPARE)
def i64_less(p, tile, scratch):
    na, nb = _compare_sizes(p)
    return _compare(p, tile, i64(p[COMPARE.a], na), i64(p[COMPARE.b], nb), LT)


@tile_kernel(COMPARE)
def i64_greater(p, tile, scratch):
    na, nb = _compare_sizes(p)
    return _compare(p, tile, i64(p[COMPARE.a], na), i64(p[COMPARE.b], nb), GT)


@tile_kernel(COMPARE)
def i64_less_equal(p, tile, scratch):
    na, nb = _compare_sizes(p)
    return _compare(p, tile, i64(p[COMPARE.a], na), i64(p[COMPARE.b], nb), LE)


@tile_kernel(COMPARE)
def i64_greater_equal(p, tile, scratch):
    na, nb = _compare_sizes(p)
    return _compare(p, tile, i64(p[COMPARE.a], na), i64(p[COMPARE.b], nb), GE)


@tile_kernel(COMPARE)
def i32_equal(p, tile, scratch):
    na, nb = _compare_sizes(p)
    return _compare(p, tile, i32(p[COMPARE.a], na), i32(p[COMPARE.b], nb), EQ)


@tile_kernel(COMPARE)
def i32_less(p, tile, scratch):
    na, nb = _compare_sizes(p)
    return _compare(p, tile, i32(p[COMPARE.a], na), i32(p[COMPARE.b], nb), LT)


@tile_kernel(COMPARE)
def i32_greater(p, tile, scratch):
    na, nb = _compare_sizes(p)
    return _compare(p, tile, i32(p[COMPARE.a], na), i32(p[COMPARE.b], nb), GT)


@tile_kernel(COMPARE)
def i32_less_equal(p, tile, scratch):
    na, nb = _compare_sizes(p)
    return _compare(p, tile, i32(p[COMPARE.a], na), i32(p[COMPARE.b], nb), LE)


@tile_kernel(COMPARE)
def i32_greater_equal(p, tile, scratch):
    na, nb = _compare_sizes(p)
    return _compare(p, tile, i32(p[COMPARE.a], na), i32(p[COMPARE.b], nb), GE)


@tile_kernel(COMPARE)
def u8_equal(p, tile, scratch):
    """Equality of any 1-byte dtype (bool, uint8, int8): equal bytes are equal values."""
    na, nb = _compare_sizes(p)
    return _compare(p, tile, u8(p[COMPARE.a], na), u8(p[COMPARE.b], nb), EQ)


@tile_kernel(COMPARE)
def u8_less(p, tile, scratch):
    na, nb = _compare_sizes(p)
    return _compare(p, tile, u8(p[COMPARE.a], na), u8(p[COMPARE.b], nb), LT)


@tile_kernel(COMPARE)
def u8_greater(p, tile, scratch):
    na, nb = _compare_sizes(p)
    return _compare(p, tile, u8(p[COMPARE.a], na), u8(p[COMPARE.b], nb), GT)


@tile_kernel(COMPARE)
def u8_less_equal(p, tile, scratch):
    na, nb = _compare_sizes(p)
    return _compare(p, tile, u8(p[COMPARE.a], na), u8(p[COMPARE.b], nb), LE)


@tile_kernel(COMPARE)
def u8_greater_equal(p, tile, scratch):
    na, nb = _compare_sizes(p)
    return _compare(p, tile, u8(p[COMPARE.a], na), u8(p[COMPARE.b], nb), GE)


@tile_kernel(COMPARE)
def i8_less(p, tile, scratch):
    na, nb = _compare_sizes(p)
    return _compare(p, tile, s8(p[COMPARE.a], na), s8(p[COMPARE.b], nb), LT)


@tile_kernel(COMPARE)
def i8_greater(p, tile, scratch):
    na, nb = _compare_sizes(p)
    return _compare(p, tile, s8(p[COMPARE.a], na), s8(p[COMPARE.b], nb), GT)


@tile_kernel(COMPARE)
def i8_less_equal(p, tile, scratch):
    na, nb = _compare_sizes(p)
    return _compare(p, tile, s8(p[COMPARE.a], na), s8(p[COMPARE.b], nb), LE)


@tile_kernel(COMPARE)
def i8_greater_equal(p, tile, scratch):
    na, nb = _compare_sizes(p)
    return _compare(p, tile, s8(p[COMPARE.a], na), s8(p[COMPARE.b], nb), GE)


# The wider integer dtypes: one kernel per dtype, the op from ``COMPARE.op``.
@tile_kernel(COMPARE)
def i16_compare(p, tile, scratch):
    na, nb = _compare_sizes(p)
    return _compare(p, tile, i16(p[COMPARE.a], na), i16(p[COMPARE.b], nb), p[COMPARE.op])


@tile_kernel(COMPARE)
def u16_compare(p, tile, scratch):
    na, nb = _compare_sizes(p)
    return _compare(p, tile, u16(p[COMPARE.a], na), u16(p[COMPARE.b], nb), p[COMPARE.op])


@tile_kernel(COMPARE)
def u32_compare(p, tile, scratch):
    na, nb = _compare_sizes(p)
    return _compare(p, tile, u32(p[COMPARE.a], na), u32(p[COMPARE.b], nb), p[COMPARE.op])


@tile_kernel(COMPARE)
def u64_compare(p, tile, scratch):
    na, nb = _compare_sizes(p)
    return _compare(p, tile, u64(p[COMPARE.a], na), u64(p[COMPARE.b], nb), p[COMPARE.op])


# -- what the lowering chooses from ---------------------------------------------------------
_BY_OP = {np.float32: (f32_equal, f32_less, f32_greater, f32_less_equal, f32_greater_equal),
          np.int64: (i64_equal, i64_less, i64_greater, i64_less_equal, i64_greater_equal),
          np.int32: (i32_equal, i32_less, i32_greater, i32_less_equal, i32_greater_equal),
          np.uint8: (u8_equal, u8_less, u8_greater, u8_less_equal, u8_greater_equal),
          np.int8: (u8_equal, i8_less, i8_greater, i8_less_equal, i8_greater_equal),
          np.bool_: (u8_equal,)}
_BY_DTYPE = {np.int16: i16_compare, np.uint16: u16_compare, np.uint32: u32_compare, np.uint64: u64_compare}
COMPARE_KERNELS = {(np.dtype(t), op): k for t, ks in _BY_OP.items() for op, k in zip((EQ, LT, GT, LE, GE), ks)}
COMPARE_KERNELS.update({(np.dtype(t), op): k for t, k in _BY_DTYPE.items() for op in (EQ, LT, GT, LE, GE)})
# ^ by (operand dtype, comparison code); bool compares for equality only
