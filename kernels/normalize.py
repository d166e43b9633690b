"""Normalization and reduction kernels on float32: softmax, LRN, affine, instance/layer norm, Reduce*.

Every kernel keeps each reduction inside one tile (a tile is a set of whole
rows, planes or column blocks), so results never depend on the tiling.
Parameter rows, by kernel:

* ``f32_softmax_rows`` / ``f32_logsoftmax_rows``: ``[x, y, rows, n, rows_per_tile]``,
  reduce along contiguous rows of ``n``.
* ``f32_softmax_cols`` / ``f32_logsoftmax_cols``: ``[x, y, outer, n, inner, block,
  items_per_tile]``, reduce along an axis of stride ``inner``; an item is
  ``block`` columns of one outer index; uses ``2*block`` float32 of scratch.
* ``f32_lrn``: ``[x, abb, y, N, C, HW, size, planes_per_tile]``, ``abb`` =
  (alpha/size, beta, bias) float32 weight.
* ``f32_scale_shift``: ``[x, s, t, y, planes, C, HW, per_element, planes_per_tile]``:
  ``y = x*s + t`` with ``s, t`` per channel (or per element of a channel plane).
* ``f32_batchnorm_rt``: ``[x, scale, B, mean, var, eps, y, planes, C, HW, planes_per_tile]``:
  BatchNormalization whose statistics arrive at run time.
* ``f32_instance_norm``: ``[x, scale, bias, eps, y, planes, C, HW, planes_per_tile]``.
* ``f32_layer_norm``: ``[x, scale, bias, eps, y, mean, invstd, rows, n, rows_per_tile]``.
* ``f32_batchnorm_train``: training-mode BatchNormalization (batch statistics).
* ``f32_reduce`` / ``f32_arg_reduce``: the Reduce* family and ArgMax/ArgMin over
  one axis of an ``[outer, n, inner]`` view (see the kernels).

Means and variances accumulate in float64. ``exp`` is a polynomial in plain
arithmetic so that softmax loops vectorize.
"""
import numba
import numpy as np
from numba import types

from .abi import U, _view, f32, i64
from .contract import tile_kernel
from .mathfn import exp_f32 as _exp

SOFTMAX, LOGSOFTMAX = 0, 1


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
def _vmax(a, b):
    """max as a plain select, which LLVM vectorizes (the builtin's NaN handling blocks it)."""
    return a if a >= b else b


@numba.njit(inline="always")
def _softmax_rows(p, tile, op):
    rows, n, per = p[2], p[3], p[4]
    x = f32(p[0], rows * n)
    y = f32(p[1], rows * n)
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


@tile_kernel
def f32_softmax_rows(p, tile, scratch):
    return _softmax_rows(p, tile, SOFTMAX)


@tile_kernel
def f32_logsoftmax_rows(p, tile, scratch):
    return _softmax_rows(p, tile, LOGSOFTMAX)


@numba.njit(inline="always")
def _softmax_cols(p, tile, scratch, op):
    outer, n, inner, block, per = p[2], p[3], p[4], p[5], p[6]
    x = f32(p[0], outer * n * inner)
    y = f32(p[1], outer * n * inner)
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
                mx[U(j)] = _vmax(mx[U(j)], x[U(off + j)])
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


@tile_kernel
def f32_softmax_cols(p, tile, scratch):
    return _softmax_cols(p, tile, scratch, SOFTMAX)


@tile_kernel
def f32_logsoftmax_cols(p, tile, scratch):
    return _softmax_cols(p, tile, scratch, LOGSOFTMAX)


@tile_kernel
def f32_lrn(p, tile, scratch):
    N, C, HW, size, per = p[3], p[4], p[5], p[6], p[7]
    x = f32(p[0], N * C * HW)
    abb = f32(p[1], 3)
    y = f32(p[2], N * C * HW)
    a, beta, bias = abb[0], abb[1], abb[2]
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


@tile_kernel
def f32_scale_shift(p, tile, scratch):
    planes, C, HW, elem, per = p[4], p[5], p[6], p[7], p[8]
    x = f32(p[0], planes * HW)
    ns = C * HW if elem else C
    s = f32(p[1], ns)
    t = f32(p[2], ns)
    y = f32(p[3], planes * HW)
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


@tile_kernel
def f32_instance_norm(p, tile, scratch):
    planes, C, HW, per = p[5], p[6], p[7], p[8]
    x = f32(p[0], planes * HW)
    sc = f32(p[1], C)
    bi = f32(p[2], C)
    eps = f32(p[3], 1)[0]
    y = f32(p[4], planes * HW)
    for pl in range(tile * per, min(planes, tile * per + per)):
        c = pl % C
        o = pl * HW
        mean, inv = _moments(x, o, HW, np.float64(eps))
        a = np.float32(inv * sc[c])
        b = np.float32(bi[c] - mean * inv * sc[c])
        for j in range(HW):
            y[U(o + j)] = x[U(o + j)] * a + b
    return 0


@tile_kernel
def f32_layer_norm(p, tile, scratch):
    rows, n, per = p[7], p[8], p[9]
    x = f32(p[0], rows * n)
    sc = f32(p[1], n)
    bi = f32(p[2], n)
    eps = f32(p[3], 1)[0]
    y = f32(p[4], rows * n)
    mo = f32(p[5], rows)
    io = f32(p[6], rows)
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


@tile_kernel
def f32_batchnorm_rt(p, tile, scratch):
    """BatchNormalization with run-time statistics:
    ``[x, scale, B, mean, var, eps, y, planes, C, HW, planes_per_tile]``."""
    planes, C, HW, per = p[7], p[8], p[9], p[10]
    x = f32(p[0], planes * HW)
    sc = f32(p[1], C)
    bi = f32(p[2], C)
    mu = f32(p[3], C)
    var = f32(p[4], C)
    eps = np.float64(f32(p[5], 1)[0])
    y = f32(p[6], planes * HW)
    for pl in range(tile * per, min(planes, tile * per + per)):
        c = pl % C
        s = np.float64(sc[c]) / np.sqrt(np.float64(var[c]) + eps)
        sv = np.float32(s)
        tv = np.float32(np.float64(bi[c]) - np.float64(mu[c]) * s)
        o = pl * HW
        for j in range(HW):
            y[U(o + j)] = x[U(o + j)] * sv + tv
    return 0


@tile_kernel
def f32_batchnorm_train(p, tile, scratch):
    """Training-mode BatchNormalization, batch statistics per channel:
    ``[x, scale, B, mean, var, eps_momentum, y, running_mean, running_var, N, C, HW, channels_per_tile]``.

    A tile owns whole channels, so each channel's sums are one sequential
    float64 walk and results never depend on the tiling.
    """
    N, C, HW, per = p[9], p[10], p[11], p[12]
    x = f32(p[0], N * C * HW)
    sc = f32(p[1], C)
    bi = f32(p[2], C)
    mu = f32(p[3], C)
    var = f32(p[4], C)
    em = f32(p[5], 2)
    eps = np.float64(em[0])
    mom = np.float64(em[1])
    y = f32(p[6], N * C * HW)
    rmu = f32(p[7], C)
    rvar = f32(p[8], C)
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
# so every result depends only on the shape. Op codes (the row's last integer):
R_SUM, R_MEAN, R_MAX, R_MIN, R_PROD, R_SUMSQ, R_L1, R_L2, R_LOGSUM, R_LOGSUMEXP = range(10)
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


@tile_kernel
def f32_reduce(p, tile, scratch):
    """``[x, y, outer, n, inner, rows_per_tile, op]``: ``y[o, i] = reduce_k x[o, k, i]``."""
    outer, n, inner, per, op = p[2], p[3], p[4], p[5], p[6]
    x = f32(p[0], outer * n * inner)
    y = f32(p[1], outer * inner)
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


@tile_kernel
def f32_arg_reduce(p, tile, scratch):
    """``[x, y, outer, n, inner, rows_per_tile, is_min, last]``: int64 index of the max (min) over ``n``.

    Ties go to the first index, or the last with ``last``; a NaN wins as numpy's argmax has it.
    """
    outer, n, inner, per, is_min, last = p[2], p[3], p[4], p[5], p[6], p[7]
    x = f32(p[0], outer * n * inner)
    y = i64(p[1], outer * inner)
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
