"""Softmax and LogSoftmax kernels on float32, along a contiguous or a strided axis.

* ``SOFTMAX_ROWS`` (``f32_softmax_rows`` / ``f32_logsoftmax_rows``, in
  ``SOFTMAX_ROWS_KERNELS``): normalize ``rows`` contiguous rows of ``n``.
* ``SOFTMAX_COLS`` (``f32_softmax_cols`` / ``f32_logsoftmax_cols``, in
  ``SOFTMAX_COLS_KERNELS``): normalize along an axis of stride ``inner`` of an
  ``[outer, n, inner]`` view; an item is ``block`` columns of one outer index;
  ``2*block`` float32 of scratch.

A tile owns whole rows or column blocks, so results never depend on the
tiling. Both read only inside ``x`` (a graph input is read in place).
``exp`` is a polynomial in plain arithmetic (``kernels.mathfn``) so that the
loops vectorize. This module does not choose the layout or the
tiles (the lowering in ``engine/ops/normalize.py`` does).
"""
import numba
import numpy as np

from .abi import U, f32
from .contract import declare_row, tile_kernel
from .mathfn import exp_f32 as _exp
from .reduce import row_max, row_sum, select_max

SOFTMAX, LOGSOFTMAX = 0, 1

SOFTMAX_ROWS = declare_row("SOFTMAX_ROWS", inputs=("x",), outputs=("y",), ints=("rows", "n", "rows_per_tile"))
SOFTMAX_COLS = declare_row("SOFTMAX_COLS", inputs=("x",), outputs=("y",),
                           ints=("outer", "n", "inner", "block", "items_per_tile"))


@numba.njit(inline="always")
def _softmax_rows(p, tile, op):
    rows, n, per = p[SOFTMAX_ROWS.rows], p[SOFTMAX_ROWS.n], p[SOFTMAX_ROWS.rows_per_tile]
    x = f32(p[SOFTMAX_ROWS.x], rows * n)
    y = f32(p[SOFTMAX_ROWS.y], rows * n)
    for r in range(tile * per, min(rows, tile * per + per)):
        base = r * n
        m = row_max(x, base, n)
        for i in range(n):
            y[U(base + i)] = _exp(x[U(base + i)] - m)
        s = row_sum(y, base, n)
        if op == SOFTMAX:
            inv = np.float32(1.0 / s)
            for i in range(n):
                y[U(base + i)] = y[U(base + i)] * inv
        else:
            shift = m + np.float32(np.log(s))
            for i in range(n):
                y[U(base + i)] = x[U(base + i)] - shift
    return 0


@tile_kernel(SOFTMAX_ROWS, reads_in_bounds=True)
def f32_softmax_rows(p, tile, scratch):
    return _softmax_rows(p, tile, SOFTMAX)


@tile_kernel(SOFTMAX_ROWS, reads_in_bounds=True)
def f32_logsoftmax_rows(p, tile, scratch):
    return _softmax_rows(p, tile, LOGSOFTMAX)


@numba.njit(inline="always")
def _softmax_cols(p, tile, scratch, op):
    outer, n, inner = p[SOFTMAX_COLS.outer], p[SOFTMAX_COLS.n], p[SOFTMAX_COLS.inner]
    block, per = p[SOFTMAX_COLS.block], p[SOFTMAX_COLS.items_per_tile]
    x = f32(p[SOFTMAX_COLS.x], outer * n * inner)
    y = f32(p[SOFTMAX_COLS.y], outer * n * inner)
    mx = f32(scratch, block)
    sm = f32(scratch + 4 * block, block)
    nb = (inner + block - 1) // block
    for item in range(tile * per, min(outer * nb, tile * per + per)):
        o = item // nb
        j0 = (item % nb) * block
        w = min(block, inner - j0)
        base = o * n * inner + j0
        for j in range(w):
            mx[U(j)] = x[U(base + j)]
            sm[U(j)] = 0
        for k in range(1, n):
            off = base + k * inner
            for j in range(w):
                mx[U(j)] = select_max(mx[U(j)], x[U(off + j)])
        for k in range(n):
            off = base + k * inner
            for j in range(w):
                e = _exp(x[U(off + j)] - mx[U(j)])
                y[U(off + j)] = e
                sm[U(j)] += e
        if op == SOFTMAX:
            for j in range(w):
                sm[U(j)] = np.float32(1) / sm[U(j)]
            for k in range(n):
                off = base + k * inner
                for j in range(w):
                    y[U(off + j)] = y[U(off + j)] * sm[U(j)]
        else:
            for j in range(w):
                mx[U(j)] = mx[U(j)] + np.log(sm[U(j)])
            for k in range(n):
                off = base + k * inner
                for j in range(w):
                    y[U(off + j)] = x[U(off + j)] - mx[U(j)]
    return 0


def _softmax_cols_scratch(args):
    return 2 * args["block"] * 4


@tile_kernel(SOFTMAX_COLS, reads_in_bounds=True, scratch=_softmax_cols_scratch)
def f32_softmax_cols(p, tile, scratch):
    return _softmax_cols(p, tile, scratch, SOFTMAX)


@tile_kernel(SOFTMAX_COLS, reads_in_bounds=True, scratch=_softmax_cols_scratch)
def f32_logsoftmax_cols(p, tile, scratch):
    return _softmax_cols(p, tile, scratch, LOGSOFTMAX)


# The softmax kernels by op (``SOFTMAX`` or ``LOGSOFTMAX``), one dict per layout.
SOFTMAX_ROWS_KERNELS = {SOFTMAX: f32_softmax_rows, LOGSOFTMAX: f32_logsoftmax_rows}
SOFTMAX_COLS_KERNELS = {SOFTMAX: f32_softmax_cols, LOGSOFTMAX: f32_logsoftmax_cols}
