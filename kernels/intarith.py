"""Broadcasting integer arithmetic kernels (Add, Sub, Mul, Div, Max, Min, PRelu) for every integer dtype.

Row ``INT_BINARY`` is the elementwise family's ``BINARY`` geometry (``dims``
and per-input strides as int64 weights of ``BROADCAST_AXES`` entries, a tile
``rows_per_tile`` rows of the last axis) plus ``op``, one of the elementwise
op codes ``ADD``..``MIN`` and ``PRELU``. ``<dtype>_arith`` kernels are in
``INT_ARITH_KERNELS`` by dtype. This module does not collapse broadcasts or
choose tiles (``tilerun.ops.elementwise`` does).
"""
import numba
import numpy as np

from .abi import i8, i16, i32, i64, u8, u16, u32, u64
from .contract import declare_row, tile_kernel
from .elementwise import ADD, BROADCAST_AXES, DIV, MAX, MUL, PRELU, SUB, _GEOMETRY

INT_BINARY = declare_row("INT_BINARY", inputs=_GEOMETRY, outputs=("y",), ints=("rows_per_tile", "op"))


# -- integer arithmetic ----------------------------------------------------------------
# One kernel per integer dtype, the op a run-time code (``INT_BINARY.op``):
# integer arithmetic carries shapes and indices, not the hot path, so one
# compiled kernel per dtype beats six. Add/Sub/Mul wrap as numpy does; Div truncates toward
# zero (ONNX), gives 0 on a zero divisor and wraps MIN / -1 instead of trapping.
@numba.njit(inline="always")
def _int_div(a, b):
    if b == 0:
        return a - a
    if b == -1:
        return (a - a) - a  # MIN // -1 traps on x86: negate (wrapping) instead
    q = a // b
    if q < 0 and q * b != a:
        q += 1
    return q


@numba.njit(inline="always")
def _uint_div(a, b):
    if b == 0:
        return a - a
    return a // b


@numba.njit(inline="always")
def _int_arith(op, a, b):
    if op == ADD:
        return a + b
    if op == SUB:
        return a - b
    if op == MUL:
        return a * b
    if op == DIV:
        return _int_div(a, b)
    if op == MAX:
        return a if a >= b else b
    if op == PRELU:
        return a * b if a < 0 else a
    return a if a <= b else b


@numba.njit(inline="always")
def _uint_arith(op, a, b):
    # Unsigned: no sign fix-up in Div, and no mixing with signed literals, which
    # would send uint64 through float64.
    if op == ADD:
        return a + b
    if op == SUB:
        return a - b
    if op == MUL:
        return a * b
    if op == DIV:
        return _uint_div(a, b)
    if op == MAX:
        return a if a >= b else b
    if op == PRELU:
        return a  # never below zero
    return a if a <= b else b


@numba.njit(inline="always")
def _extents(p):
    dims = i64(p[INT_BINARY.dims], BROADCAST_AXES)
    sa = i64(p[INT_BINARY.a_strides], BROADCAST_AXES)
    sb = i64(p[INT_BINARY.b_strides], BROADCAST_AXES)
    na = 1
    nb = 1
    for k in range(BROADCAST_AXES):
        na += (dims[k] - 1) * sa[k]
        nb += (dims[k] - 1) * sb[k]
    return na, nb, dims[0] * dims[1] * dims[2] * dims[3] * dims[4] * dims[5]


@numba.njit(inline="always")
def _int_row(p, r):
    """Offsets into ``a`` and ``b`` of output row ``r`` of a collapsed broadcast."""
    dims = i64(p[INT_BINARY.dims], BROADCAST_AXES)
    sa = i64(p[INT_BINARY.a_strides], BROADCAST_AXES)
    sb = i64(p[INT_BINARY.b_strides], BROADCAST_AXES)
    ao = 0
    bo = 0
    rem = r
    for k in range(4, -1, -1):
        i = rem % dims[k]
        rem //= dims[k]
        ao += i * sa[k]
        bo += i * sb[k]
    return ao, bo


@numba.njit
def _int_binary(p, tile, a, b, y):
    dims = i64(p[INT_BINARY.dims], BROADCAST_AXES)
    as5 = i64(p[INT_BINARY.a_strides], BROADCAST_AXES)[5]
    bs5 = i64(p[INT_BINARY.b_strides], BROADCAST_AXES)[5]
    per = p[INT_BINARY.rows_per_tile]
    op = p[INT_BINARY.op]
    inner = dims[5]
    rows = dims[0] * dims[1] * dims[2] * dims[3] * dims[4]
    lo = tile * per
    for r in range(lo, min(rows, lo + per)):
        ao, bo = _int_row(p, r)
        for j in range(inner):
            y[r * inner + j] = _int_arith(op, a[ao + j * as5], b[bo + j * bs5])
    return 0


@numba.njit
def _uint_binary(p, tile, a, b, y):
    # _int_binary with the unsigned ops (a separate loop: a function argument would defeat caching)
    dims = i64(p[INT_BINARY.dims], BROADCAST_AXES)
    as5 = i64(p[INT_BINARY.a_strides], BROADCAST_AXES)[5]
    bs5 = i64(p[INT_BINARY.b_strides], BROADCAST_AXES)[5]
    per = p[INT_BINARY.rows_per_tile]
    op = p[INT_BINARY.op]
    inner = dims[5]
    rows = dims[0] * dims[1] * dims[2] * dims[3] * dims[4]
    lo = tile * per
    for r in range(lo, min(rows, lo + per)):
        ao, bo = _int_row(p, r)
        for j in range(inner):
            y[r * inner + j] = _uint_arith(op, a[ao + j * as5], b[bo + j * bs5])
    return 0


@tile_kernel(INT_BINARY)
def i64_arith(p, tile, scratch):
    na, nb, n = _extents(p)
    return _int_binary(p, tile, i64(p[INT_BINARY.a], na), i64(p[INT_BINARY.b], nb), i64(p[INT_BINARY.y], n))


@tile_kernel(INT_BINARY)
def i32_arith(p, tile, scratch):
    na, nb, n = _extents(p)
    return _int_binary(p, tile, i32(p[INT_BINARY.a], na), i32(p[INT_BINARY.b], nb), i32(p[INT_BINARY.y], n))


@tile_kernel(INT_BINARY)
def i16_arith(p, tile, scratch):
    na, nb, n = _extents(p)
    return _int_binary(p, tile, i16(p[INT_BINARY.a], na), i16(p[INT_BINARY.b], nb), i16(p[INT_BINARY.y], n))


@tile_kernel(INT_BINARY)
def i8_arith(p, tile, scratch):
    na, nb, n = _extents(p)
    return _int_binary(p, tile, i8(p[INT_BINARY.a], na), i8(p[INT_BINARY.b], nb), i8(p[INT_BINARY.y], n))


@tile_kernel(INT_BINARY)
def u64_arith(p, tile, scratch):
    na, nb, n = _extents(p)
    return _uint_binary(p, tile, u64(p[INT_BINARY.a], na), u64(p[INT_BINARY.b], nb), u64(p[INT_BINARY.y], n))


@tile_kernel(INT_BINARY)
def u32_arith(p, tile, scratch):
    na, nb, n = _extents(p)
    return _uint_binary(p, tile, u32(p[INT_BINARY.a], na), u32(p[INT_BINARY.b], nb), u32(p[INT_BINARY.y], n))


@tile_kernel(INT_BINARY)
def u16_arith(p, tile, scratch):
    na, nb, n = _extents(p)
    return _uint_binary(p, tile, u16(p[INT_BINARY.a], na), u16(p[INT_BINARY.b], nb), u16(p[INT_BINARY.y], n))


@tile_kernel(INT_BINARY)
def u8_arith(p, tile, scratch):
    na, nb, n = _extents(p)
    return _uint_binary(p, tile, u8(p[INT_BINARY.a], na), u8(p[INT_BINARY.b], nb), u8(p[INT_BINARY.y], n))


INT_ARITH_KERNELS = {np.dtype(t): k for t, k in [
    (np.int64, i64_arith), (np.int32, i32_arith), (np.int16, i16_arith), (np.int8, i8_arith),
    (np.uint64, u64_arith), (np.uint32, u32_arith), (np.uint16, u16_arith), (np.uint8, u8_arith)]}
