"""Reduction kernels on float32 (Reduce*, ArgMax/ArgMin) and the row reductions other families share.

* ``REDUCE`` (``f32_reduce``): the Reduce* family over the middle axis of an
  ``[outer, n, inner]`` view, the reduction one of the ``R_*`` codes in
  ``op``; ``16*inner`` bytes of scratch. A tile is ``rows_per_tile`` outer
  rows x one of ``inner_tiles`` near-equal runs of ``VW``-column groups of
  ``inner``, so a reduction with few outer rows (over the channels of one
  image) still splits.
* ``ARG_REDUCE`` (``f32_arg_reduce``): ArgMax (ArgMin with ``is_min``) over
  the same view and tiles, int64 indices; ``8*inner`` bytes of scratch.

``row_max``, ``row_sum`` and ``select_max`` are the vectorizable row
reductions of the softmax, normalization and pooling kernels. Sums accumulate
in float64. This module does not merge reduced axes or pick tiles (the
lowering in ``engine/ops/reduce.py`` does).
"""
import numba
import numpy as np
from numba import types

from .abi import U, _view, f32, i64
from .contract import declare_row, tile_kernel
from .mathfn import exp_f32
from .simd import VW, v_lanes_extreme, v_load, v_max, v_min

# Reduce* op codes (``REDUCE.op``).
R_SUM, R_MEAN, R_MAX, R_MIN, R_PROD, R_SUMSQ, R_L1, R_L2, R_LOGSUM, R_LOGSUMEXP = range(10)

REDUCE = declare_row("REDUCE", inputs=("x",), outputs=("y",),
                     ints=("outer", "n", "inner", "rows_per_tile", "inner_tiles", "op"))
ARG_REDUCE = declare_row("ARG_REDUCE", inputs=("x",), outputs=("y",),
                         ints=("outer", "n", "inner", "rows_per_tile", "inner_tiles", "is_min", "last"))


@numba.njit(inline="always")
def row_max(x, base, n):
    """Max of ``x[base:base+n]`` (n ≥ 1) as float32, NaN if any element is NaN (``_row_extreme``'s vectors:
    a scalar compare-select loop does not vectorize, even with fast-math flags)."""
    return np.float32(_row_extreme(x, base, n, False))


# Sums: reassociation lets LLVM vectorize them; the order still depends only on the
# row length, never on tiles or addresses, so results stay bit-identical across tilings.
@numba.njit(fastmath={"reassoc", "nsz"})
def row_sum(x, base, n):
    """Sum of ``x[base:base+n]`` accumulated in float64."""
    s = 0.0
    for i in range(n):
        s += x[U(base + i)]
    return s


@numba.njit(inline="always")
def select_max(a, b):
    """max as a plain select, which LLVM vectorizes (the builtin's NaN handling blocks it)."""
    return a if a >= b else b


# -- reductions over one (merged) axis ------------------------------------------------------
# x is viewed as [outer, n, inner]; y as [outer, inner]. A tile owns whole outer
# rows and sweeps n in order, accumulating in float64 scratch (2*inner doubles),
# so every result depends only on the shape. The op is one of the R_* codes.
_f64_ptr, _f64 = _view(types.float64)


@numba.njit(inline="always")
def _reduce_init(op):
    if op == R_MAX:
        return -np.inf
    if op == R_MIN:
        return np.inf
    if op == R_PROD:
        return 1.0
    return 0.0


@numba.njit(fastmath={"reassoc", "nsz"})
def _sum_of(x, base, n, op):
    """Sum of ``x[base:base+n]`` (R_SUM, R_MEAN, R_LOGSUM), of squares (R_SUMSQ, R_L2) or of magnitudes (R_L1),
    in float64."""
    s = 0.0
    if op == R_SUMSQ or op == R_L2:
        for i in range(n):
            v = np.float64(x[U(base + i)])
            s += v * v
    elif op == R_L1:
        for i in range(n):
            s += abs(np.float64(x[U(base + i)]))
    else:
        for i in range(n):
            s += x[U(base + i)]
    return s


@numba.njit(fastmath={"reassoc", "nsz"})
def _exp_sum(x, base, n, m):
    """Sum of ``exp(x[k] - m)`` over ``x[base:base+n]`` for a finite max ``m``: float32 exps (``mathfn.exp_f32``,
    so the loop vectorizes), summed in float64."""
    s = 0.0
    for k in range(n):
        s += np.float64(exp_f32(x[U(base + k)] - m))
    return s


@numba.njit
def _has_nan(x, base, n):
    """True when ``x[base:base+n]`` holds a NaN (an or over the row, which vectorizes)."""
    nan = False
    for k in range(n):
        v = x[U(base + k)]
        nan |= v != v
    return nan


@numba.njit(inline="always")
def _v_extreme(a, b, is_min):
    return v_min(a, b) if is_min else v_max(a, b)


@numba.njit
def _row_extreme(x, base, n, is_min):
    """Max (min) of ``x[base:base+n]`` as float64, NaN if any element is NaN; -inf (+inf) for ``n == 0``.

    NaN is found by its own pass; the extreme is then taken four vectors at a
    time (LLVM does not vectorize a scalar compare-select loop).
    """
    if _has_nan(x, base, n):
        return np.nan
    a = np.float32(np.inf if is_min else -np.inf)
    k = 0
    if n >= 4 * VW:
        at = x.ctypes.data + base * 4
        s = VW * 4
        m0, m1, m2, m3 = v_load(at), v_load(at + s), v_load(at + 2 * s), v_load(at + 3 * s)
        for k in range(4 * VW, n - 4 * VW + 1, 4 * VW):
            q = at + k * 4
            m0 = _v_extreme(m0, v_load(q), is_min)
            m1 = _v_extreme(m1, v_load(q + s), is_min)
            m2 = _v_extreme(m2, v_load(q + 2 * s), is_min)
            m3 = _v_extreme(m3, v_load(q + 3 * s), is_min)
        k = n - n % (4 * VW)
        a = v_lanes_extreme(_v_extreme(_v_extreme(m0, m1, is_min), _v_extreme(m2, m3, is_min), is_min), is_min)
    for j in range(k, n):
        v = x[U(base + j)]
        a = v if (v < a if is_min else v > a) else a
    return np.float64(a)


@numba.njit(inline="always")
def _row_reduce(x, base, n, op):
    """``(accumulated value, max)`` of one contiguous row for ``op``, as the strided loop of ``f32_reduce`` gets
    them (the max only for R_LOGSUMEXP), with the accumulator in a register: the reduction over the last axis."""
    m = -np.inf
    if op == R_MAX or op == R_MIN or op == R_LOGSUMEXP:
        a = _row_extreme(x, base, n, op == R_MIN)
        if op != R_LOGSUMEXP:
            return a, m
        return (_exp_sum(x, base, n, np.float32(a)) if -np.inf < a < np.inf else 0.0), a
    if op == R_PROD:
        a = 1.0
        for k in range(n):
            a *= np.float64(x[U(base + k)])
        return a, m
    return _sum_of(x, base, n, op), m


@numba.njit(inline="always")
def _column_run(tile, parts, inner):
    """``(outer tile, first column, columns)`` of ``tile`` when each outer tile's ``inner`` columns are dealt
    in ``parts`` near-equal runs of whole ``VW``-column groups (``tiling.even_bounds`` on groups)."""
    groups = (inner + VW - 1) // VW
    part = tile % parts
    lo = min(inner, part * groups // parts * VW)
    return tile // parts, lo, min(inner, (part + 1) * groups // parts * VW) - lo


@tile_kernel(REDUCE, reads_in_bounds=True, scratch=lambda args: 16 * max(args["inner"], 1))
def f32_reduce(p, tile, scratch):
    """``y[o, i] = reduce_k x[o, k, i]`` for the reduction ``op`` (an ``R_*`` code)."""
    outer, n, inner, per, op = p[REDUCE.outer], p[REDUCE.n], p[REDUCE.inner], p[REDUCE.rows_per_tile], p[REDUCE.op]
    x = f32(p[REDUCE.x], outer * n * inner)
    y = f32(p[REDUCE.y], outer * inner)
    acc = _f64(scratch, 2 * inner)
    tile, lo, w = _column_run(tile, p[REDUCE.inner_tiles], inner)  # loops from 0 to w: they vectorize
    for o in range(tile * per, min(outer, tile * per + per)):
        base = o * n * inner
        if inner == 1:  # a contiguous row: the accumulator in a register
            a, m = _row_reduce(x, base, n, op)
            y[U(o)] = np.float32(_finish(a, m, n, op))
            continue
        base += lo
        for i in range(w):
            acc[i] = _reduce_init(op)
            acc[inner + i] = -np.inf
        if op == R_LOGSUMEXP:  # subtract the max so exp never overflows
            for k in range(n):
                for i in range(w):
                    v = np.float64(x[U(base + k * inner + i)])
                    if v > acc[inner + i] or v != v:
                        acc[inner + i] = v
        for k in range(n):
            row = base + k * inner
            for i in range(w):
                v = np.float64(x[U(row + i)])
                a = acc[i]
                if op == R_MAX:
                    acc[i] = v if (v > a or v != v) else a
                elif op == R_MIN:
                    acc[i] = v if (v < a or v != v) else a
                elif op == R_PROD:
                    acc[i] = a * v
                elif op == R_SUMSQ or op == R_L2:
                    acc[i] = a + v * v
                elif op == R_L1:
                    acc[i] = a + abs(v)
                elif op == R_LOGSUMEXP:
                    acc[i] = a + np.exp(v - acc[inner + i])
                else:
                    acc[i] = a + v
        for i in range(w):
            y[U(o * inner + lo + i)] = np.float32(_finish(acc[i], acc[inner + i], n, op))
    return 0


@numba.njit(inline="always")
def _finish(a, m, n, op):
    """The result of ``op`` from its accumulated value ``a`` (and max ``m`` for R_LOGSUMEXP) over ``n`` elements."""
    if op == R_MEAN:
        return a / n
    if op == R_L2:
        return np.sqrt(a)
    if op == R_LOGSUM:
        return np.log(a)
    if op == R_LOGSUMEXP:  # an infinite max is the result (exp(inf - inf) would make it NaN)
        return np.log(a) + m if -np.inf < m < np.inf else m
    return a


@tile_kernel(ARG_REDUCE, scratch=lambda args: 8 * max(args["inner"], 1))
def f32_arg_reduce(p, tile, scratch):
    """``y[o, i]``: int64 index ``k`` of the max (min with ``is_min``) of ``x[o, k, i]``.

    Ties go to the first index, or the last with ``last``; a NaN wins as numpy's argmax has it.
    """
    outer, n, inner, per = p[ARG_REDUCE.outer], p[ARG_REDUCE.n], p[ARG_REDUCE.inner], p[ARG_REDUCE.rows_per_tile]
    is_min, last = p[ARG_REDUCE.is_min], p[ARG_REDUCE.last]
    x = f32(p[ARG_REDUCE.x], outer * n * inner)
    y = i64(p[ARG_REDUCE.y], outer * inner)
    best = _f64(scratch, inner)
    tile, lo, w = _column_run(tile, p[ARG_REDUCE.inner_tiles], inner)
    for o in range(tile * per, min(outer, tile * per + per)):
        base = o * n * inner + lo
        out = o * inner + lo
        for i in range(w):
            best[i] = np.float64(x[U(base + i)])
            y[U(out + i)] = 0
        for k in range(1, n):
            row = base + k * inner
            for i in range(w):
                v = np.float64(x[U(row + i)])
                b = best[i]
                if b != b:
                    take = last != 0 and v != v
                elif v != v:
                    take = True
                elif is_min != 0:
                    take = v < b or (last != 0 and v == b)
                else:
                    take = v > b or (last != 0 and v == b)
                if take:
                    best[i] = v
                    y[U(out + i)] = k
    return 0
