"""Softmax and LogSoftmax kernels on float32, along a contiguous or a strided axis.

* ``SOFTMAX_ROWS`` (``f32_softmax_rows`` / ``f32_logsoftmax_rows``, in
  ``SOFTMAX_ROWS_KERNELS``): normalize ``rows`` contiguous rows of ``n``.
* ``SOFTMAX_COLS`` (``f32_softmax_cols`` / ``f32_logsoftmax_cols``, in
  ``SOFTMAX_COLS_KERNELS``): normalize along an axis of stride ``inner`` of an
  ``[outer, n, inner]`` view; an item is ``block`` columns of one outer index;
  ``2*block`` float32 of scratch.

A tile owns whole rows or column blocks, so results never depend on the
tiling. Both read only inside ``x`` (a graph input is read in place).
Rows take their exponentials and the sum in one vector pass (``vact.v_exp4``,
four vectors at a time, partial sums per lane); columns take ``exp`` as a
polynomial in plain arithmetic (``kernels.mathfn``), whose loops vectorize.
This module does not choose the layout or the tiles (the lowering in
``engine/ops/normalize.py`` does).
"""
import numba
import numpy as np

from .abi import U, f32
from .contract import declare_row, tile_kernel
from .mathfn import exp_f32 as _exp
from .reduce import row_max, select_max
from .simd import VW, v_add, v_lanes_sum, v_load, v_load_n, v_splat, v_store, v_store_n, v_sub, v_zero
from .vact import v_exp4

SOFTMAX, LOGSOFTMAX = 0, 1

SOFTMAX_ROWS = declare_row("SOFTMAX_ROWS", inputs=("x",), outputs=("y",), ints=("rows", "n", "rows_per_tile"))
SOFTMAX_COLS = declare_row("SOFTMAX_COLS", inputs=("x",), outputs=("y",),
                           ints=("outer", "n", "inner", "block", "items_per_tile"))


@numba.njit(inline="always")
def _exp_row(xa, ya, n, m):
    """``exp(x - m)`` of the ``n`` floats at address ``xa`` into ``ya``; returns their sum (float32, lane-wise
    partial sums, so the order depends only on ``n``). One pass: the row is read once while it is in cache."""
    mv = v_splat(m)
    s0 = v_zero()
    s1 = v_zero()
    s2 = v_zero()
    s3 = v_zero()
    step = 4 * VW
    q = 0
    while q + 4 * VW <= n:
        at = xa + q * 4
        e0, e1, e2, e3 = v_exp4(v_sub(v_load(at), mv), v_sub(v_load(at + step), mv),
                                v_sub(v_load(at + 2 * step), mv), v_sub(v_load(at + 3 * step), mv))
        out = ya + q * 4
        v_store(out, e0)
        v_store(out + step, e1)
        v_store(out + 2 * step, e2)
        v_store(out + 3 * step, e3)
        s0 = v_add(s0, e0)
        s1 = v_add(s1, e1)
        s2 = v_add(s2, e2)
        s3 = v_add(s3, e3)
        q += 4 * VW
    while q < n:  # the last vectors one at a time; the masked reload adds only the row's own lanes
        k = n - q
        e = v_exp4(v_sub(v_load_n(xa + q * 4, k), mv), mv, mv, mv)[0]
        v_store_n(ya + q * 4, e, k)
        s0 = v_add(s0, v_load_n(ya + q * 4, k))
        q += VW
    return v_lanes_sum(v_add(v_add(s0, s1), v_add(s2, s3)))


@numba.njit(inline="always")
def _softmax_rows(p, tile, op):
    rows, n, per = p[SOFTMAX_ROWS.rows], p[SOFTMAX_ROWS.n], p[SOFTMAX_ROWS.rows_per_tile]
    x = f32(p[SOFTMAX_ROWS.x], rows * n)
    y = f32(p[SOFTMAX_ROWS.y], rows * n)
    for r in range(tile * per, min(rows, tile * per + per)):
        base = r * n
        m = row_max(x, base, n)
        s = _exp_row(p[SOFTMAX_ROWS.x] + 4 * base, p[SOFTMAX_ROWS.y] + 4 * base, n, m)
        if op == SOFTMAX:
            inv = np.float32(1.0 / s)
            for i in range(n):
                y[U(base + i)] = y[U(base + i)] * inv
        else:
            ls = np.float32(np.log(s))  # (x - m) - log(s): m + log(s) would round log(s) away next to a large m
            for i in range(n):
                y[U(base + i)] = (x[U(base + i)] - m) - ls
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
                sm[U(j)] = np.log(sm[U(j)])
            for k in range(n):
                off = base + k * inner
                for j in range(w):
                    y[U(off + j)] = (x[U(off + j)] - mx[U(j)]) - sm[U(j)]
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
