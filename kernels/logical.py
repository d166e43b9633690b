"""Cast, Where and Not kernels: dtype conversion and bool masks.

``<src>_cast`` (row ``CAST``, in ``CAST_KERNELS`` by source dtype) converts
``n`` elements, a tile ``chunk`` of them, to the dtype whose code
(``CAST_CODES``) is ``to``. ``bN_where`` (row ``WHERE``, in
``WHERE_KERNELS`` by element size) selects ``x`` or ``y`` by a bool mask, the
three broadcast over ``BROADCAST_AXES`` axes as the comparisons
(``tilerun.kernels.compare``) broadcast; a tile covers ``rows_per_tile`` rows
of the last axis. ``u8_not`` (row ``NOT``) negates bool bytes, a tile
``chunk`` of them. This module does not collapse broadcasts or choose tiles
(``tilerun.ops.logical`` does).
"""
import numba
import numpy as np

from .abi import U, f32, i16, i32, i64, u8
from .abi import i8 as s8
from .compare import _extent, _row_offsets
from .contract import declare_row, tile_kernel
from .elementwise import BROADCAST_AXES

# -- rows ------------------------------------------------------------------------------
CAST = declare_row("CAST", inputs=("x",), outputs=("y",), ints=("n", "chunk", "to"))
WHERE = declare_row("WHERE", inputs=("cond", "x", "y", "dims", "cond_strides", "x_strides", "y_strides"),
                    outputs=("out",), ints=("rows_per_tile",))
NOT = declare_row("NOT", inputs=("x",), outputs=("y",), ints=("n", "chunk"))

TO_F32, TO_I64, TO_I32, TO_BOOL, TO_U8, TO_I8 = range(6)  # Cast destination codes
CAST_CODES = {np.dtype(t): c for t, c in [(np.float32, TO_F32), (np.int64, TO_I64), (np.int32, TO_I32),
                                          (np.bool_, TO_BOOL), (np.uint8, TO_U8), (np.int8, TO_I8)]}


# -- cast --------------------------------------------------------------------------------
@numba.njit(inline="always")
def _store(code, y, lo, hi, x):
    # Narrow the way numpy's astype does: wrap for integers, != 0 for bool,
    # truncation toward zero for float to int.
    if code == TO_F32:
        yf = f32(y, hi)
        for i in range(lo, hi):
            yf[U(i)] = np.float32(x[U(i)])
    elif code == TO_I64:
        yl = i64(y, hi)
        for i in range(lo, hi):
            yl[U(i)] = np.int64(x[U(i)])
    elif code == TO_I32:
        yi = i32(y, hi)
        for i in range(lo, hi):
            yi[U(i)] = np.int32(np.int64(x[U(i)]))
    elif code == TO_BOOL:
        yb = u8(y, hi)
        for i in range(lo, hi):
            yb[U(i)] = np.uint8(x[U(i)] != 0)
    else:  # TO_U8 and TO_I8 share the byte pattern of the wrapped value
        yu = u8(y, hi)
        for i in range(lo, hi):
            yu[U(i)] = np.uint8(np.int64(x[U(i)]) & 255)
    return 0


@numba.njit(inline="always")
def _cast(p, tile, x):
    n, chunk = p[CAST.n], p[CAST.chunk]
    lo = tile * chunk
    hi = min(n, lo + chunk)
    return _store(p[CAST.to], p[CAST.y], lo, hi, x)


@tile_kernel(CAST)
def f32_cast(p, tile, scratch):
    return _cast(p, tile, f32(p[CAST.x], p[CAST.n]))


@tile_kernel(CAST)
def i64_cast(p, tile, scratch):
    return _cast(p, tile, i64(p[CAST.x], p[CAST.n]))


@tile_kernel(CAST)
def i32_cast(p, tile, scratch):
    return _cast(p, tile, i32(p[CAST.x], p[CAST.n]))


@tile_kernel(CAST)
def u8_cast(p, tile, scratch):
    return _cast(p, tile, u8(p[CAST.x], p[CAST.n]))


@tile_kernel(CAST)
def i8_cast(p, tile, scratch):
    return _cast(p, tile, s8(p[CAST.x], p[CAST.n]))


# -- Where, Not (broadcast as the comparisons are) ---------------------------------------------
@numba.njit(inline="always")
def _volume(dims_at):
    """Elements of the broadcast output of ``dims`` (a weight address)."""
    dims = i64(dims_at, BROADCAST_AXES)
    n = 1
    for a in range(BROADCAST_AXES):
        n *= dims[a]
    return n


@numba.njit
def _where(p, tile, x, y, out):
    dims = i64(p[WHERE.dims], BROADCAST_AXES)
    sc = i64(p[WHERE.cond_strides], BROADCAST_AXES)
    sx = i64(p[WHERE.x_strides], BROADCAST_AXES)
    sy = i64(p[WHERE.y_strides], BROADCAST_AXES)
    inner = dims[BROADCAST_AXES - 1]
    rows = dims[0] * dims[1] * dims[2] * dims[3] * dims[4]
    c = u8(p[WHERE.cond], _extent(p[WHERE.dims], p[WHERE.cond_strides]))
    cs5, xs5, ys5 = sc[BROADCAST_AXES - 1], sx[BROADCAST_AXES - 1], sy[BROADCAST_AXES - 1]
    per = p[WHERE.rows_per_tile]
    lo = tile * per
    hi = min(rows, lo + per)
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
def _where_sizes(p):
    """Elements of a Where row's ``x``, ``y`` and ``out``."""
    return (_extent(p[WHERE.dims], p[WHERE.x_strides]), _extent(p[WHERE.dims], p[WHERE.y_strides]),
            _volume(p[WHERE.dims]))


@tile_kernel(WHERE)
def b1_where(p, tile, scratch):
    nx, ny, n = _where_sizes(p)
    return _where(p, tile, u8(p[WHERE.x], nx), u8(p[WHERE.y], ny), u8(p[WHERE.out], n))


@tile_kernel(WHERE)
def b2_where(p, tile, scratch):
    nx, ny, n = _where_sizes(p)
    return _where(p, tile, i16(p[WHERE.x], nx), i16(p[WHERE.y], ny), i16(p[WHERE.out], n))


@tile_kernel(WHERE)
def b4_where(p, tile, scratch):
    nx, ny, n = _where_sizes(p)
    return _where(p, tile, i32(p[WHERE.x], nx), i32(p[WHERE.y], ny), i32(p[WHERE.out], n))


@tile_kernel(WHERE)
def b8_where(p, tile, scratch):
    nx, ny, n = _where_sizes(p)
    return _where(p, tile, i64(p[WHERE.x], nx), i64(p[WHERE.y], ny), i64(p[WHERE.out], n))


@tile_kernel(NOT)
def u8_not(p, tile, scratch):
    """Logical not of bool bytes."""
    n, chunk = p[NOT.n], p[NOT.chunk]
    x = u8(p[NOT.x], n)
    y = u8(p[NOT.y], n)
    lo = tile * chunk
    for i in range(lo, min(n, lo + chunk)):
        y[U(i)] = np.uint8(x[U(i)] == 0)
    return 0


# -- what the lowering chooses from ---------------------------------------------------------
CAST_KERNELS = {np.dtype(t): k for t, k in [(np.float32, f32_cast), (np.int64, i64_cast), (np.int32, i32_cast),
                                            (np.bool_, u8_cast), (np.uint8, u8_cast), (np.int8, i8_cast)]}  # by source
WHERE_KERNELS = {1: b1_where, 2: b2_where, 4: b4_where, 8: b8_where}
