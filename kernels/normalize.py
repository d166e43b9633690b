"""Normalization kernels on float32: LRN, per-channel affine, batch/instance/layer norm.

Every kernel keeps each reduction inside one tile (a tile is a set of whole
rows, planes or channels), so results never depend on the tiling. Rows, by
kernel:

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
  row's ``mean`` and ``inv_std_dev``; with ``skip``, the rows of ``x + skip``
  (the residual add before a transformer's LayerNorm), also written to ``sum``
  when given.

Means and variances accumulate in float64. Every kernel reads only inside its
inputs (indexed loops over whole rows and planes), so a graph input is read
in place. This module does not pick tiles or fold constant statistics (the
lowering in ``engine/ops/normalize.py`` does). Softmax is
``kernels.softmax``; the Reduce* family and the row reductions the families
share are ``kernels.reduce``.
"""
import numba
import numpy as np

from .abi import U, f32, param_f32
from .contract import declare_row, tile_kernel
from .reduce import row_sum

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
LAYER_NORM = declare_row("LAYER_NORM", inputs=("x", "skip?", "scale", "bias"),
                         outputs=("y", "mean", "inv_std_dev", "sum?"), ints=("rows", "n", "rows_per_tile"),
                         floats=("epsilon",))


# Reassociated as ``kernels.reduce``'s row reductions are: it vectorizes, and the order
# still depends only on the row length, so results stay bit-identical across tilings.
@numba.njit(fastmath={"reassoc", "nsz"})
def _row_sqdev(x, base, n, mean):
    """Sum of squared deviations from ``mean`` of ``x[base:base+n]``, in float64."""
    q = 0.0
    for i in range(n):
        d = x[U(base + i)] - mean
        q += d * d
    return q


@tile_kernel(LRN, reads_in_bounds=True)
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


@tile_kernel(SCALE_SHIFT, reads_in_bounds=True)
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


@tile_kernel(INSTANCE_NORM, reads_in_bounds=True)
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


def _ln_scratch(a):
    return a["n"] * 4


@tile_kernel(LAYER_NORM, reads_in_bounds=True, scratch=_ln_scratch)
def f32_layer_norm(p, tile, scratch):
    rows, n, per = p[LAYER_NORM.rows], p[LAYER_NORM.n], p[LAYER_NORM.rows_per_tile]
    x = f32(p[LAYER_NORM.x], rows * n)
    sc = f32(p[LAYER_NORM.scale], n)
    bi = f32(p[LAYER_NORM.bias], n)
    eps = param_f32(p, LAYER_NORM.epsilon)
    y = f32(p[LAYER_NORM.y], rows * n)
    mo = f32(p[LAYER_NORM.mean], rows)
    io = f32(p[LAYER_NORM.inv_std_dev], rows)
    # With a skip input the row normalised is x + skip, written first to the
    # sum output (or to a scratch row: written into y, the last loop's reads
    # and writes would overlap and LLVM's overlap check would pick its scalar
    # loop) while the row is in L1: the residual add costs no pass of its own.
    skip = p[LAYER_NORM.skip] != 0
    has_sum = p[LAYER_NORM.sum] != 0
    sk = f32(p[LAYER_NORM.skip], rows * n)
    src = x
    if skip:
        src = f32(p[LAYER_NORM.sum], rows * n) if has_sum else f32(scratch, n)
    for r in range(tile * per, min(rows, tile * per + per)):
        o = r * n
        so = o if not skip or has_sum else 0
        if skip:
            for j in range(n):
                src[U(so + j)] = x[U(o + j)] + sk[U(o + j)]
        mean, inv = _moments(src, so, n, np.float64(eps))
        m32 = np.float32(mean)
        i32 = np.float32(inv)
        mo[r] = m32
        io[r] = i32
        for j in range(n):
            y[U(o + j)] = (src[U(so + j)] - m32) * i32 * sc[U(j)] + bi[U(j)]
    return 0


@tile_kernel(BATCHNORM_RT, reads_in_bounds=True)
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


@tile_kernel(BATCHNORM_TRAIN, reads_in_bounds=True)
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
