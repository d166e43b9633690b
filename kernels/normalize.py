"""Normalization and reduction kernels on float32: softmax, LRN, affine, batch/instance/layer norm, Reduce*.

Every kernel keeps each reduction inside one tile (a tile is a set of whole
rows, planes, channels or column blocks), so results never depend on the
tiling. Rows, by kernel:

* ``SOFTMAX_ROWS`` (``f32_softmax_rows`` / ``f32_logsoftmax_rows``, in
  ``SOFTMAX_ROWS_KERNELS``): normalize ``rows`` contiguous rows of ``n``.
* ``SOFTMAX_COLS`` (``f32_softmax_cols`` / ``f32_logsoftmax_cols``, in
  ``SOFTMAX_COLS_KERNELS``): normalize along an axis of stride ``inner`` of an
  ``[outer, n, inner]`` view; an item is ``block`` columns of one outer index;
  ``2*block`` float32 of scratch.
* ``LRN`` (``f32_lrn``): ``y = x / (bias + alpha_over_size * sum of x^2 over
  size channels)^beta`` on ``batch x channels`` planes of ``hw``.
* ``SCALE_SHIFT`` (``f32_scale_shift``): ``y = x*s + t`` with ``s, t`` per
  channel, or per element of a channel plane with ``per_element``.
* ``BATCHNORM_RT`` (``f32_batchnorm_rt``): inference BatchNormalization whose
  statistics arrive at run time, folded per channel in float64.
* ``BATCHNORM_TRAIN`` (``f32_batchnorm_train``): training-mode
  BatchNormalization (batch statistics, running mean and var updated with
  ``momentum``); a tile owns whole channels.
* ``INSTANCE_NORM`` (``f32_instance_norm``): normalize each plane, then a
  per-channel scale and bias.
* ``LAYER_NORM`` (``f32_layer_norm``): normalize rows of ``n``, writing each
  row's ``mean`` and ``inv_std_dev``.
* ``REDUCE`` (``f32_reduce``): the Reduce* family over the middle axis of an
  ``[outer, n, inner]`` view, the reduction one of the ``R_*`` codes in
  ``op``; ``16*inner`` bytes of scratch.
* ``ARG_REDUCE`` (``f32_arg_reduce``): ArgMax (ArgMin with ``is_min``) over
  the same view, int64 indices; ``8*inner`` bytes of scratch.

Means and variances accumulate in float64. ``exp`` is a polynomial in plain
arithmetic so that softmax loops vectorize. This module does not pick tiles,
fold constant statistics or merge reduced axes (the lowerings in
``engine/ops/normalize.py`` and ``engine/ops/reduce.py`` do).
"""
import numba
import numpy as np
from numba import types

from .abi import U, _view, f32, i64, param_f32
from .contract import declare_row, tile_kernel
from .mathfn import exp_f32 as _exp

SOFTMAX, LOGSOFTMAX = 0, 1
# Reduce* op codes (``REDUCE.op``).
R_SUM, R_MEAN, R_MAX, R_MIN, R_PROD, R_SUMSQ, R_L1, R_L2, R_LOGSUM, R_LOGSUMEXP = range(10)

SOFTMAX_ROWS = declare_row("SOFTMAX_ROWS", inputs=("x",), outputs=("y",), ints=("rows", "n", "rows_per_tile"))
SOFTMAX_COLS = declare_row("SOFTMAX_COLS", inputs=("x",), outputs=("y",),
                           ints=("outer", "n", "inner", "block", "items_per_tile"))
LRN = declare_row("LRN", inputs=("x",), outputs=("y",), ints=("batch", "channels", "hw", "size", "planes_per_tile"),
                  floats=("alpha_over_size", "beta", "bias"))
SCALE_SHIFT = declare_row("SCALE_SHIFT", inputs=("x", "s", "t"), outputs=("y",),
                          ints=("planes", "channels", "hw", "per_element", "planes_per_tile"))
BATCHNORM_RT = declare_row("BATCHNORM_RT", inputs=("x", "scale", "bias", "mean", "var"), outputs=("y",),
                           ints=("planes", "channels", "hw", "planes_per_tile"), floats=("epsilon",))
BATCHNORM_TRAIN = declare_row("BATCHNORM_TRAIN", inputs=("x", "scale", "bias", "mean", "var"),
                              outputs=("y", "running_mean", "running_var"),
                              ints=("batch", "channels", "hw", "channels_per_tile"), floats=("epsilon", "momentum"))
INSTANCE_NORM = declare_row("INSTANCE_NORM", inputs=("x", "scale", "bias"), outputs=("y",),
                            ints=("planes", "channels", "hw", "planes_per_tile"), floats=("epsilon",))
LAYER_NORM = declare_row("LAYER_NORM", inputs=("x", "scale", "bias"), outputs=("y", "mean", "inv_std_dev"),
                         ints=("rows", "n", "rows_per_tile"), floats=("epsilon",))
REDUCE = declare_row("REDUCE", inputs=("x",), outputs=("y",), ints=("outer", "n", "inner", "rows_per_tile", "op"))
ARG_REDUCE = declare_row("ARG_REDUCE", inputs=("x",), outputs=("y",),
                         ints=("outer", "n", "inner", "rows_per_tile", "is_min", "last"))


# Reductions: reassociation lets LLVM vectorize them; the order still depends only on the
# row length, never on tiles or addresses, so results stay bit-identical across tilings.
@numba.njit(fastmath={"reassoc", "nsz", "nnan", "ninf"})
def row_max(x, base, n):
    """Max of ``x[base:base+n]`` (n ≥ 1)."""
    m = x[U(base)]
    for i in range(n):
        v = x[U(base + i)]
        m = v if v > m else m
    return m


@numba.njit(fastmath={"reassoc", "nsz"})
def row_sum(x, base, n):
    """Sum of ``x[base:base+n]`` accumulated in float64."""
    s = 0.0
    for i in range(n):
        s += x[U(base + i)]
    return s


@numba.njit(fastmath={"reassoc", "nsz"})
def _row_sqdev(x, base, n, mean):
    """Sum of squared deviations from ``mean`` of ``x[base:base+n]``, in float64."""
    q = 0.0
    for i in range(n):
        d = x[U(base + i)] - mean
        q += d * d
    return q


@numba.njit(inline="always")
def select_max(a, b):
    """max as a plain select, which LLVM vectorizes (the builtin's NaN handling blocks it)."""
    return a if a >= b else b


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


@tile_kernel(SOFTMAX_ROWS)
def f32_softmax_rows(p, tile, scratch):
    return _softmax_rows(p, tile, SOFTMAX)


@tile_kernel(SOFTMAX_ROWS)
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


@tile_kernel(SOFTMAX_COLS, scratch=_softmax_cols_scratch)
def f32_softmax_cols(p, tile, scratch):
    return _softmax_cols(p, tile, scratch, SOFTMAX)


@tile_kernel(SOFTMAX_COLS, scratch=_softmax_cols_scratch)
def f32_logsoftmax_cols(p, tile, scratch):
    return _softmax_cols(p, tile, scratch, LOGSOFTMAX)


# The softmax kernels by op (``SOFTMAX`` or ``LOGSOFTMAX``), one dict per layout.
SOFTMAX_ROWS_KERNELS = {SOFTMAX: f32_softmax_rows, LOGSOFTMAX: f32_logsoftmax_rows}
SOFTMAX_COLS_KERNELS = {SOFTMAX: f32_softmax_cols, LOGSOFTMAX: f32_logsoftmax_cols}


@tile_kernel(LRN)
def f32_lrn(p, tile, scratch):
    N, C, HW, size, per = p[LRN.batch], p[LRN.channels], p[LRN.hw], p[LRN.size], p[LRN.planes_per_tile]
    x = f32(p[LRN.x], N * C * HW)
    y = f32(p[LRN.y], N * C * HW)
    a, beta, bias = param_f32(p, LRN.alpha_over_size), param_f32(p, LRN.beta), param_f32(p, LRN.bias)
    below = (size - 1) // 2
    above = size - 1 - below
    for pl in range(tile * per, min(N * C, tile * per + per)):
        c = pl % C
        n0 = (pl - c) * HW
        yo = pl * HW
        for j in range(HW):
            y[U(yo + j)] = 0
        for cc in range(max(0, c - below), min(C - 1, c + above) + 1):
            xo = n0 + cc * HW
            for j in range(HW):
                v = x[U(xo + j)]
                y[U(yo + j)] += v * v
        for j in range(HW):
            y[U(yo + j)] = x[U(yo + j)] / (bias + a * y[U(yo + j)]) ** beta
    return 0


@tile_kernel(SCALE_SHIFT)
def f32_scale_shift(p, tile, scratch):
    planes, C, HW = p[SCALE_SHIFT.planes], p[SCALE_SHIFT.channels], p[SCALE_SHIFT.hw]
    elem, per = p[SCALE_SHIFT.per_element], p[SCALE_SHIFT.planes_per_tile]
    x = f32(p[SCALE_SHIFT.x], planes * HW)
    ns = C * HW if elem else C
    s = f32(p[SCALE_SHIFT.s], ns)
    t = f32(p[SCALE_SHIFT.t], ns)
    y = f32(p[SCALE_SHIFT.y], planes * HW)
    for pl in range(tile * per, min(planes, tile * per + per)):
        c = pl % C
        o = pl * HW
        if elem:
            so = c * HW
            for j in range(HW):
                y[U(o + j)] = x[U(o + j)] * s[U(so + j)] + t[U(so + j)]
        else:
            sv = s[c]
            tv = t[c]
            for j in range(HW):
                y[U(o + j)] = x[U(o + j)] * sv + tv
    return 0


@numba.njit(inline="always")
def _moments(x, base, n, eps):
    """Mean and 1/sqrt(var + eps) of ``x[base:base+n]`` (two passes, float64)."""
    mean = row_sum(x, base, n) / n
    q = _row_sqdev(x, base, n, mean)
    return mean, 1.0 / np.sqrt(q / n + eps)


@tile_kernel(INSTANCE_NORM)
def f32_instance_norm(p, tile, scratch):
    planes, C, HW = p[INSTANCE_NORM.planes], p[INSTANCE_NORM.channels], p[INSTANCE_NORM.hw]
    per = p[INSTANCE_NORM.planes_per_tile]
    x = f32(p[INSTANCE_NORM.x], planes * HW)
    sc = f32(p[INSTANCE_NORM.scale], C)
    bi = f32(p[INSTANCE_NORM.bias], C)
    eps = param_f32(p, INSTANCE_NORM.epsilon)
    y = f32(p[INSTANCE_NORM.y], planes * HW)
    for pl in range(tile * per, min(planes, tile * per + per)):
        c = pl % C
        o = pl * HW
        mean, inv = _moments(x, o, HW, np.float64(eps))
        a = np.float32(inv * sc[c])
        b = np.float32(bi[c] - mean * inv * sc[c])
        for j in range(HW):
            y[U(o + j)] = x[U(o + j)] * a + b
    return 0


@tile_kernel(LAYER_NORM)
def f32_layer_norm(p, tile, scratch):
    rows, n, per = p[LAYER_NORM.rows], p[LAYER_NORM.n], p[LAYER_NORM.rows_per_tile]
    x = f32(p[LAYER_NORM.x], rows * n)
    sc = f32(p[LAYER_NORM.scale], n)
    bi = f32(p[LAYER_NORM.bias], n)
    eps = param_f32(p, LAYER_NORM.epsilon)
    y = f32(p[LAYER_NORM.y], rows * n)
    mo = f32(p[LAYER_NORM.mean], rows)
    io = f32(p[LAYER_NORM.inv_std_dev], rows)
    for r in range(tile * per, min(rows, tile * per + per)):
        o = r * n
        mean, inv = _moments(x, o, n, np.float64(eps))
        m32 = np.float32(mean)
        i32 = np.float32(inv)
        mo[r] = m32
        io[r] = i32
        for j in range(n):
            y[U(o + j)] = (x[U(o + j)] - m32) * i32 * sc[U(j)] + bi[U(j)]
    return 0


@tile_kernel(BATCHNORM_RT)
def f32_batchnorm_rt(p, tile, scratch):
    """BatchNormalization with run-time statistics, folded to a scale and shift per channel in float64."""
    planes, C, HW = p[BATCHNORM_RT.planes], p[BATCHNORM_RT.channels], p[BATCHNORM_RT.hw]
    per = p[BATCHNORM_RT.planes_per_tile]
    x = f32(p[BATCHNORM_RT.x], planes * HW)
    sc = f32(p[BATCHNORM_RT.scale], C)
    bi = f32(p[BATCHNORM_RT.bias], C)
    mu = f32(p[BATCHNORM_RT.mean], C)
    var = f32(p[BATCHNORM_RT.var], C)
    eps = np.float64(param_f32(p, BATCHNORM_RT.epsilon))
    y = f32(p[BATCHNORM_RT.y], planes * HW)
    for pl in range(tile * per, min(planes, tile * per + per)):
        c = pl % C
        s = np.float64(sc[c]) / np.sqrt(np.float64(var[c]) + eps)
        sv = np.float32(s)
        tv = np.float32(np.float64(bi[c]) - np.float64(mu[c]) * s)
        o = pl * HW
        for j in range(HW):
            y[U(o + j)] = x[U(o + j)] * sv + tv
    return 0


@tile_kernel(BATCHNORM_TRAIN)
def f32_batchnorm_train(p, tile, scratch):
    """Training-mode BatchNormalization, batch statistics per channel.

    A tile owns whole channels, so each channel's sums are one sequential
    float64 walk and results never depend on the tiling.
    """
    N, C, HW = p[BATCHNORM_TRAIN.batch], p[BATCHNORM_TRAIN.channels], p[BATCHNORM_TRAIN.hw]
    per = p[BATCHNORM_TRAIN.channels_per_tile]
    x = f32(p[BATCHNORM_TRAIN.x], N * C * HW)
    sc = f32(p[BATCHNORM_TRAIN.scale], C)
    bi = f32(p[BATCHNORM_TRAIN.bias], C)
    mu = f32(p[BATCHNORM_TRAIN.mean], C)
    var = f32(p[BATCHNORM_TRAIN.var], C)
    eps = np.float64(param_f32(p, BATCHNORM_TRAIN.epsilon))
    mom = np.float64(param_f32(p, BATCHNORM_TRAIN.momentum))
    y = f32(p[BATCHNORM_TRAIN.y], N * C * HW)
    rmu = f32(p[BATCHNORM_TRAIN.running_mean], C)
    rvar = f32(p[BATCHNORM_TRAIN.running_var], C)
    cnt = np.float64(N * HW)
    for c in range(tile * per, min(C, tile * per + per)):
        acc = 0.0
        for n in range(N):
            o = (n * C + c) * HW
            for j in range(HW):
                acc += np.float64(x[U(o + j)])
        m = acc / cnt
        acc = 0.0
        for n in range(N):
            o = (n * C + c) * HW
            for j in range(HW):
                d = np.float64(x[U(o + j)]) - m
                acc += d * d
        v = acc / cnt
        s = np.float64(sc[c]) / np.sqrt(v + eps)
        sv = np.float32(s)
        tv = np.float32(np.float64(bi[c]) - m * s)
        for n in range(N):
            o = (n * C + c) * HW
            for j in range(HW):
                y[U(o + j)] = x[U(o + j)] * sv + tv
        rmu[c] = np.float32(np.float64(mu[c]) * mom + m * (1.0 - mom))
        rvar[c] = np.float32(np.float64(var[c]) * mom + v * (1.0 - mom))
    return 0


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


@tile_kernel(REDUCE, scratch=lambda args: 16 * max(args["inner"], 1))
def f32_reduce(p, tile, scratch):
    """``y[o, i] = reduce_k x[o, k, i]`` for the reduction ``op`` (an ``R_*`` code)."""
    outer, n, inner, per, op = p[REDUCE.outer], p[REDUCE.n], p[REDUCE.inner], p[REDUCE.rows_per_tile], p[REDUCE.op]
    x = f32(p[REDUCE.x], outer * n * inner)
    y = f32(p[REDUCE.y], outer * inner)
    acc = _f64(scratch, 2 * inner)
    for o in range(tile * per, min(outer, tile * per + per)):
        base = o * n * inner
        for i in range(inner):
            acc[i] = _reduce_init(op)
            acc[inner + i] = -np.inf
        if op == R_LOGSUMEXP:  # subtract the max so exp never overflows
            for k in range(n):
                for i in range(inner):
                    v = np.float64(x[U(base + k * inner + i)])
                    if v > acc[inner + i] or v != v:
                        acc[inner + i] = v
        for k in range(n):
            row = base + k * inner
            for i in range(inner):
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
        for i in range(inner):
            a = acc[i]
            if op == R_MEAN:
                a = a / n
            elif op == R_L2:
                a = np.sqrt(a)
            elif op == R_LOGSUM:
                a = np.log(a)
            elif op == R_LOGSUMEXP:
                m = acc[inner + i]
                a = np.log(a) + m if m > -np.inf else m
            y[U(o * inner + i)] = np.float32(a)
    return 0


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
    for o in range(tile * per, min(outer, tile * per + per)):
        base = o * n * inner
        for i in range(inner):
            best[i] = np.float64(x[U(base + i)])
            y[U(o * inner + i)] = 0
        for k in range(1, n):
            row = base + k * inner
            for i in range(inner):
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
                    y[U(o * inner + i)] = k
    return 0
