"""FP32 convolution kernels (NCHW): im2col/1x1 onto the GEMM core, and depthwise direct.

Both read ``[X, W, bias, ep, res, Y]`` then the integers
``[N, C, H, W, Cout, OH, OW, kh, kw, sh, sw, dh, dw, pt, pl, G, cout_g, cin_g,
co_per_tile, pix_per_tile, n_cob, n_pb, direct, pix_block]``
(1-D convolutions arrive as H = kh = 1). ``ep`` is the GEMM core's float32
epilogue row (``kernels.gemm.gemm_tile``): ``y = act(conv + bias + res)``,
with the bias as a per-row addend, applied while each block is hot.

``f32_conv_gemm``: ``W`` is packed per group into panels ``[G, ceil(cout_g/MR),
K, MR]`` (zero rows pad the last panel), ``K = cin_g*kh*kw``; tile ``t`` =
(image, group, output-channel block, pixel block). A 1x1 stride-1 unpadded
convolution (``direct``) reads the activation in place as the GEMM's ``B``;
otherwise ``pix_block`` columns of im2col at a time (and ``pix_block`` int64
gather offsets) are built in scratch after the GEMM core's own scratch. ``f32_conv_dw``: ``cin_g == 1`` (depthwise, any
channel multiplier); ``W`` is ``[Cout, kh*kw]``; tile = ``co_per_tile``
consecutive (image, channel) planes. Not here: 3-D convolution.
"""
import numba
import numpy as np

from .abi import f32, i64, tile_kernel
from .elementwise import apply_activation
from .gemm import MR, NR, gemm_tile

BIG = 1 << 40  # views are unchecked; the lowering guarantees every index is in range


@numba.njit(inline="always")
def _span(off, s, n_in, n_out):
    """Output positions ``o`` in ``[lo, hi)`` whose input ``o*s + off`` lies in ``[0, n_in)``."""
    lo = max(0, (-off + s - 1) // s)
    hi = min(n_out, (n_in - 1 - off) // s + 1) if n_in - 1 - off >= 0 else 0
    return lo, max(lo, hi)


@numba.njit(inline="always")
def _im2col(x, xo, col, src, pb, q0, q1, cin, h, w, ow_n, kh, kw, sh, sw, dh, dw, pt, pl):
    # For each tap, the source offset of every pixel of the block (-1 = padding)
    # is computed once, then reused as a gather index for every input channel.
    nq = q1 - q0
    for ki in range(kh):
        for kj in range(kw):
            oh = q0 // ow_n
            ow = q0 - oh * ow_n
            for q in range(nq):
                ih = oh * sh - pt + ki * dh
                iw = ow * sw - pl + kj * dw
                src[q] = ih * w + iw if (0 <= ih < h and 0 <= iw < w) else -1
                ow += 1
                if ow == ow_n:
                    ow = 0
                    oh += 1
            for ci in range(cin):
                ro = ((ci * kh + ki) * kw + kj) * pb
                xc = xo + ci * h * w
                for q in range(nq):
                    o = src[q]
                    # unsigned indexes skip the negative-index wraparound, so this vectorises
                    v = x[np.uint64(xc + max(o, 0))]
                    col[np.uint64(ro + q)] = v if o >= 0 else np.float32(0)


@tile_kernel
def f32_conv_gemm(p, tile, scratch):
    n_c, h, w, cout, oh_n, ow_n = p[7], p[8], p[9], p[10], p[11], p[12]
    kh, kw, sh, sw, dh, dw, pt, pl = p[13], p[14], p[15], p[16], p[17], p[18], p[19], p[20]
    g_n, cout_g, cin_g, cpt, ppt, ncob, npb = p[21], p[22], p[23], p[24], p[25], p[26], p[27]
    direct, pb = p[28], p[29]
    npix = oh_n * ow_n
    kk = cin_g * kh * kw
    pb_i = tile % npb
    rest = tile // npb
    cob = rest % ncob
    rest //= ncob
    g = rest % g_n
    img = rest // g_n
    co0 = g * cout_g + cob * cpt
    rows = min(cout_g, (cob + 1) * cpt) - cob * cpt
    p0 = pb_i * ppt
    p1 = min(npix, p0 + ppt)
    xo = (img * n_c + g * cin_g) * h * w
    yo = (img * cout + co0) * npix
    nblk = (cout_g + MR - 1) // MR
    a = p[1] + (g * nblk + cob * cpt // MR) * kk * MR * 4
    ep = f32(p[3], 9)
    bias = p[2] + co0 * 4
    if direct:
        off = (yo + p0) * 4
        gemm_tile(a, 1, MR, kk * MR, rows, p[0] + (xo + p0) * 4, npix, p1 - p0, kk, p[5] + off, npix,
                  scratch, ep, bias, 1, 0, p[4] + off)
    else:
        colp = scratch + (kk * NR + MR * NR) * 4  # after the GEMM core's scratch_floats(kk)
        col = f32(colp, kk * pb)
        src = i64(colp + kk * pb * 4, pb)
        x = f32(p[0], BIG)
        for q0 in range(p0, p1, pb):
            q1 = min(p1, q0 + pb)
            _im2col(x, xo, col, src, pb, q0, q1, cin_g, h, w, ow_n, kh, kw, sh, sw, dh, dw, pt, pl)
            off = (yo + q0) * 4
            gemm_tile(a, 1, MR, kk * MR, rows, colp, pb, q1 - q0, kk, p[5] + off, npix,
                      scratch, ep, bias, 1, 0, p[4] + off)
    return 0


@numba.njit(inline="always")
def _dw_plane(x, xo, wt, wo, y, yo, h, w, oh_n, ow_n, kh, kw, sh, sw, dh, dw, pt, pl):
    for oh in range(oh_n):
        r = yo + oh * ow_n
        for ow in range(ow_n):
            y[r + ow] = np.float32(0)
        for ki in range(kh):
            ih = oh * sh - pt + ki * dh
            if ih < 0 or ih >= h:
                continue
            xr = xo + ih * w
            for kj in range(kw):
                off = kj * dw - pl
                lo, hi = _span(off, sw, w, ow_n)
                wv = wt[wo + ki * kw + kj]
                base = xr + off
                for ow in range(lo, hi):
                    y[np.uint64(r + ow)] += wv * x[np.uint64(base + ow * sw)]


@numba.njit(inline="always")
def _dw_epilogue(y, yo, res, bv, n, ep):
    aa, ab, act, has_res = ep[2], ep[3], np.int64(ep[4]), ep[6] != 0
    for q in range(n):
        v = y[yo + q] + bv
        if has_res:
            v += res[yo + q]
        y[yo + q] = apply_activation(act, v, aa, ab)


@tile_kernel
def f32_conv_dw(p, tile, scratch):
    n_img, n_c, h, w, cout, oh_n, ow_n = p[6], p[7], p[8], p[9], p[10], p[11], p[12]
    kh, kw, sh, sw, dh, dw, pt, pl = p[13], p[14], p[15], p[16], p[17], p[18], p[19], p[20]
    cpt = p[24]
    mult = cout // n_c
    npix = oh_n * ow_n
    x = f32(p[0], BIG)
    wt = f32(p[1], BIG)
    y = f32(p[5], BIG)
    bias = f32(p[2], BIG)
    ep = f32(p[3], 9)
    has_bias = ep[5] != 0
    lo = tile * cpt
    hi = min(n_img * cout, lo + cpt)
    for plane in range(lo, hi):
        img = plane // cout
        co = plane - img * cout
        xo = (img * n_c + co // mult) * h * w
        _dw_plane(x, xo, wt, co * kh * kw, y, plane * npix, h, w, oh_n, ow_n, kh, kw, sh, sw, dh, dw, pt, pl)
        _dw_epilogue(y, plane * npix, f32(p[4], BIG), bias[co] if has_bias else np.float32(0), npix, ep)
    return 0
