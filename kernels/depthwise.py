"""Depthwise FP32 convolution (NCHW): ``f32_conv_dw``, direct, without the GEMM core.

``f32_conv_dw`` reads ``kernels.conv``'s row ``CONV``: ``cin_g == 1``
(depthwise, any channel multiplier); ``w`` is ``[Cout, kh*kw]``; tile =
``co_per_tile`` consecutive (image, channel) planes. Column strides 1 and 2
copy each plane into a zero-padded scratch plane (``dw_pad_shape`` sizes it)
and take every tap as a plain vector load from it; larger strides run plain
loops. Bias, residual and activation come from the row's ``EPILOGUE``
struct; Relu, Clip and HardSwish are applied on the vector (``kernels.conv._dw_out``),
any other activation in a vectorized pass over the plane while it is in cache
(``elementwise.activation_run``).

``f32_conv_dw_cv`` reads the same row for one input channel per output
channel, strides 1 and 2, no residual: vectors run across ``VW`` channels
instead of along a row, which small planes (14x14, 7x7) cannot fill. The
units are output rows of each (image, group of ``VW`` channels), and a tile
takes ``co_per_tile`` consecutive ones; the input rows a band of them needs
(bands of about ``CV_GRID_BYTES`` of grid, so large planes stay in L2) are
transposed into a zero-padded ``[row][column][VW]`` scratch grid, every
tap of eight outputs is then one weight vector and eight input vectors (for
3- and 5-wide kernels at column stride 1 or 2 a kernel row's taps unroll, and
the input vectors neighbouring outputs share are loaded once), the
activation runs on the band of results in scratch, and they are transposed
back to the planes. ``w`` is packed as ``[group][tap][VW]``
(``pack_channel_blocks``, zero for channels past ``cout``). Not here: groups of more than
one input channel, 3-D convolution.
"""
import numba
import numpy as np

from .abi import f32, slot_address
from .contract import tile_kernel
from .conv import CONV, _conv_geometry, _dw_out, dw_out_applies, register_act, v_act4
from .conv_pack import BIG, _copy_run, _span
from .elementwise import ACT_RUN_MIN, IDENTITY, activation_run
from .gemm import ep_fields
from .simd import VW, v_fma, v_load, v_load2_n, v_load_n, v_splat, v_store, v_store_n, v_transpose_block, v_zero


def _dw_scratch(a):
    return dw_pad_shape(a["in_h"], a["in_w"], a["out_h"], a["out_w"], a["kh"], a["kw"], a["sh"], a["sw"], a["dh"],
                        a["dw"], a["pad_t"], a["pad_l"])[3] * 4


@numba.njit(inline="always")
def _dw_tap(src, sw):
    return v_load(src) if sw == 1 else v_load2_n(src, VW)


@numba.njit(inline="always")
def _dw_flat(wt, wo, ya, yo, resa, padp, gridp, wp, oh_n, ow_n, kh, kw, dh, dw, b_v, act, lo_v, hi_v, has_res):
    """Stride-1 depthwise plane as one flat loop over the padded grid ``oh * wp + ow``.

    Output ``(oh, ow)`` at grid position ``q`` reads ``padp[q + ki*dh*wp +
    kj*dw]``, so every tap is one shifted contiguous load for four vectors of
    the grid at once, rows of the plane included: small planes (7x7, 14x14)
    no longer pay per-row overhead. The ``wp - ow_n`` columns past each row
    are computed and dropped when the rows are copied out of ``gridp``.
    """
    ng = (oh_n - 1) * wp + ow_n
    step = VW * 4
    for q in range(0, ng, 4 * VW):
        a0 = b_v
        a1 = b_v
        a2 = b_v
        a3 = b_v
        for ki in range(kh):
            rowp = padp + (q + ki * dh * wp) * 4
            for kj in range(kw):
                wv = v_splat(wt[wo + ki * kw + kj])
                src = rowp + kj * dw * 4
                a0 = v_fma(wv, v_load(src), a0)
                a1 = v_fma(wv, v_load(src + step), a1)
                a2 = v_fma(wv, v_load(src + 2 * step), a2)
                a3 = v_fma(wv, v_load(src + 3 * step), a3)
        g = gridp + q * 4
        v_store(g, a0)
        v_store(g + step, a1)
        v_store(g + 2 * step, a2)
        v_store(g + 3 * step, a3)
    for oh in range(oh_n):
        for o in range(0, ow_n, VW):
            _dw_out(ya, (yo + oh * ow_n + o) * 4, v_load(gridp + (oh * wp + o) * 4), ow_n - o, resa, has_res, act,
                    lo_v, hi_v)


@numba.njit(inline="always")
def _dw_padded(xa, xo, wt, wo, ya, yo, resa, padp, gridp, h, w, wp, oh_n, ow_n, kh, kw, sh, sw, dh, dw, pt, pl, bv, act,
               aa, ab, has_res):
    """One depthwise output plane (column stride 1 or 2) from a zero-padded copy of its input.

    The plane is copied into the interior of ``padp`` (whose border the caller
    zeroed once per tile), so every tap of every output is a plain vector load
    (a stride-2 tap reads two vectors and keeps the even lanes): no padding
    test, no masks in the inner loop. Up to four vectors of an output row stay
    in registers across all taps, four independent fma chains; bias, residual
    and Relu/Clip are applied on the way out. Accumulating into the output row
    in memory instead (one pass per tap) was about 3x slower, and small planes
    (7x7) paid far more for per-tap bookkeeping than for the fmas. Stride 1
    runs on the flattened plane instead (``_dw_flat``).
    """
    for ih in range(h):
        _copy_run(padp + ((ih + pt) * wp + pl) * 4, xa + (xo + ih * w) * 4, w)
    lo_v = v_splat(aa)
    hi_v = v_splat(ab)
    b_v = v_splat(bv)
    if sh == 1 and sw == 1:
        _dw_flat(wt, wo, ya, yo, resa, padp, gridp, wp, oh_n, ow_n, kh, kw, dh, dw, b_v, act, lo_v, hi_v, has_res)
        return
    step = VW * sw * 4
    for oh in range(oh_n):
        base = padp + oh * sh * wp * 4
        yr = (yo + oh * ow_n) * 4
        for o in range(0, ow_n, 4 * VW):
            nvec = min(4, (ow_n - o + VW - 1) // VW)
            a0 = b_v
            a1 = b_v
            a2 = b_v
            a3 = b_v
            for ki in range(kh):
                rowp = base + (ki * dh * wp + o * sw) * 4
                for kj in range(kw):
                    wv = v_splat(wt[wo + ki * kw + kj])
                    src = rowp + kj * dw * 4
                    a0 = v_fma(wv, _dw_tap(src, sw), a0)
                    if nvec > 1:
                        a1 = v_fma(wv, _dw_tap(src + step, sw), a1)
                        if nvec > 2:
                            a2 = v_fma(wv, _dw_tap(src + 2 * step, sw), a2)
                            if nvec > 3:
                                a3 = v_fma(wv, _dw_tap(src + 3 * step, sw), a3)
            n = ow_n - o
            _dw_out(ya, yr + o * 4, a0, n, resa, has_res, act, lo_v, hi_v)
            if nvec > 1:
                _dw_out(ya, yr + (o + VW) * 4, a1, n - VW, resa, has_res, act, lo_v, hi_v)
                if nvec > 2:
                    _dw_out(ya, yr + (o + 2 * VW) * 4, a2, n - 2 * VW, resa, has_res, act, lo_v, hi_v)
                    if nvec > 3:
                        _dw_out(ya, yr + (o + 3 * VW) * 4, a3, n - 3 * VW, resa, has_res, act, lo_v, hi_v)


@numba.njit(cache=True)
def dw_pad_shape(h, w, oh_n, ow_n, kh, kw, sh, sw, dh, dw, pt, pl):
    """``(rows, row_floats, pad_floats, scratch_floats)`` of the zero-padded plane ``_dw_padded`` reads.

    The scratch holds the padded plane, then the output grid of ``_dw_flat``.
    """
    hp = max(h + pt, (oh_n - 1) * sh + (kh - 1) * dh + 1)
    wp = max(w + pl, (ow_n - 1) * sw + (kw - 1) * dw + 1)
    # slack: the last vectors read up to four (stride-2: eight) vectors past the grid
    nf = hp * wp + 8 * VW + kw * dw
    return hp, wp, nf, nf + oh_n * wp + 4 * VW


@numba.njit(inline="always")
def _dw_plane(x, xo, wt, wo, y, yo, h, w, oh_n, ow_n, kh, kw, sh, sw, dh, dw, pt, pl):
    # Strides above 2: plain loops, one tap at a time over an output row.
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
def _dw_epilogue(y, yo, res, bv, n, act, aa, ab, has_res):
    for q in range(n):
        v = y[yo + q] + bv
        if has_res:
            v += res[yo + q]
        y[yo + q] = v
    activation_run(act, y, yo, yo + n, aa, ab)


@tile_kernel(CONV, scratch=_dw_scratch)
def f32_conv_dw(p, tile, scratch):
    R = CONV
    n_img = p[R.n]
    n_c, h, w, cout, oh_n, ow_n, kh, kw, sh, sw, dh, dw, pt, pl = _conv_geometry(p)
    cpt = p[R.co_per_tile]
    mult = cout // n_c
    npix = oh_n * ow_n
    x = f32(p[R.x], BIG)
    wt = f32(p[R.w], BIG)
    y = f32(p[R.y], BIG)
    bias = f32(p[R.bias], BIG)
    has_bias, has_res, act, aa, ab = ep_fields(slot_address(p, R.ep))
    # Relu, Clip and HardSwish run on the vector; any other activation in a pass over the plane.
    vec_act = dw_out_applies(act)
    lo = tile * cpt
    hi = min(n_img * cout, lo + cpt)
    if sw <= 2:
        hp, wp, nf, _ = dw_pad_shape(h, w, oh_n, ow_n, kh, kw, sh, sw, dh, dw, pt, pl)
        for t in range(0, nf, VW):
            v_store_n(scratch + t * 4, v_zero(), nf - t)
    run0 = lo * npix  # outputs still waiting for a pass of the activation (runs of ACT_RUN_MIN)
    for plane in range(lo, hi):
        img = plane // cout
        co = plane - img * cout
        xo = (img * n_c + co // mult) * h * w
        bv = bias[co] if has_bias else np.float32(0)
        if sw <= 2:
            _dw_padded(p[R.x], xo, wt, co * kh * kw, p[R.y], plane * npix, p[R.res], scratch, scratch + nf * 4, h, w,
                       wp, oh_n, ow_n, kh, kw, sh, sw, dh, dw, pt, pl, bv, act if vec_act else IDENTITY, aa, ab,
                       has_res)
            if not vec_act and ((plane + 1) * npix - run0 >= ACT_RUN_MIN or plane == hi - 1):
                activation_run(act, y, run0, (plane + 1) * npix, aa, ab)
                run0 = (plane + 1) * npix
        else:
            _dw_plane(x, xo, wt, co * kh * kw, y, plane * npix, h, w, oh_n, ow_n, kh, kw, sh, sw, dh, dw, pt, pl)
            _dw_epilogue(y, plane * npix, f32(p[R.res], BIG), bv, npix, act, aa, ab, has_res)
    return 0


def pack_channel_blocks(w, block):
    """Conv weights ``[C, ...]`` as ``[ceil(C/block), taps, block]`` float32 (``taps`` the rest of a channel's
    weights, in order), zero past channel ``C``: one vector or ``block`` broadcasts per tap."""
    w = np.asarray(w, np.float32).reshape(w.shape[0], -1)
    c, taps = w.shape
    out = np.zeros((-(-c // block) * block, taps), np.float32)
    out[:c] = w
    return np.ascontiguousarray(out.reshape(-1, block, taps).transpose(0, 2, 1))


CV_BLOCK = 8  # output pixels per register block of f32_conv_dw_cv
CV_GRID_BYTES = 96 * 1024  # padded input grid of one band, at most (one band row past it when kh is large)


@numba.njit(cache=True)
def dw_cv_grid(h, w, oh_n, ow_n, kh, kw, sh, sw, pt, pl):
    """``(rows, cols, scratch_floats)`` of ``f32_conv_dw_cv``'s padded grid, its slack, and its output grid."""
    hp = max(h + pt, (oh_n - 1) * sh + kh)
    wp = max(w + pl, (ow_n - 1) * sw + kw)
    return hp, wp, (hp * wp + 2 * CV_BLOCK + kw) * VW + oh_n * ow_n * VW


def _dw_cv_scratch(a):
    return dw_cv_grid(a["in_h"], a["in_w"], a["out_h"], a["out_w"], a["kh"], a["kw"], a["sh"], a["sw"], a["pad_t"],
                      a["pad_l"])[2] * 4


@numba.njit(inline="always")
def _dw_cv_band(xa, xo, h, w, nc, wg, b_v, grid, outg, wp, oh0, oh1, ow_n, kh, kw, sh, sw, pt, pl, act, lo_v, hi_v):
    """Output rows ``[oh0, oh1)`` of one channel group into ``outg`` (``[row - oh0][col][VW]``), via ``grid``,
    activation ``act`` applied on the registers (``IDENTITY``: none)."""
    vs = VW * 4
    top = oh0 * sh - pt  # input row of the band's first grid row
    for r in range((oh1 - oh0 - 1) * sh + kh):
        ih = top + r
        gr = grid + (r * wp + pl) * vs
        if ih < 0 or ih >= h:
            for t in range(0, w * VW, VW):
                v_store(gr + t * 4, v_zero())
            continue
        for w0 in range(0, w, VW):
            nw = min(VW, w - w0)
            v_transpose_block(xa + (xo + ih * w + w0) * 4, h * w * 4, nc, nw, gr + w0 * vs, vs, nw, VW)
    # kw and sw as constants: each tap loop unrolls, and the loads that neighbouring outputs share
    # (output j, tap kj read grid column sw*j + kj) are loaded once per kernel row.
    if kw == 3 and sw == 1:
        _dw_cv_rows(grid, wg, outg, b_v, wp, oh0, oh1, ow_n, kh, 3, sh, 1, act, lo_v, hi_v)
    elif kw == 3 and sw == 2:
        _dw_cv_rows(grid, wg, outg, b_v, wp, oh0, oh1, ow_n, kh, 3, sh, 2, act, lo_v, hi_v)
    elif kw == 5 and sw == 1:
        _dw_cv_rows(grid, wg, outg, b_v, wp, oh0, oh1, ow_n, kh, 5, sh, 1, act, lo_v, hi_v)
    elif kw == 5 and sw == 2:
        _dw_cv_rows(grid, wg, outg, b_v, wp, oh0, oh1, ow_n, kh, 5, sh, 2, act, lo_v, hi_v)
    else:
        _dw_cv_rows(grid, wg, outg, b_v, wp, oh0, oh1, ow_n, kh, kw, sh, sw, act, lo_v, hi_v)


@numba.njit(inline="always")
def _dw_cv_rows(grid, wg, outg, b_v, wp, oh0, oh1, ow_n, kh, kw, sh, sw, act, lo_v, hi_v):
    """Output rows ``[oh0, oh1)`` of the band from its padded grid, ``CV_BLOCK`` outputs at a time."""
    vs = VW * 4
    for oh in range(oh0, oh1):
        for o in range(0, ow_n, CV_BLOCK):
            a0 = b_v
            a1 = b_v
            a2 = b_v
            a3 = b_v
            a4 = b_v
            a5 = b_v
            a6 = b_v
            a7 = b_v
            for ki in range(kh):
                row = grid + (((oh - oh0) * sh + ki) * wp + o * sw) * vs
                for kj in range(kw):
                    wv = v_load(wg + (ki * kw + kj) * vs)
                    src = row + kj * vs
                    a0 = v_fma(wv, v_load(src), a0)
                    a1 = v_fma(wv, v_load(src + sw * vs), a1)
                    a2 = v_fma(wv, v_load(src + 2 * sw * vs), a2)
                    a3 = v_fma(wv, v_load(src + 3 * sw * vs), a3)
                    a4 = v_fma(wv, v_load(src + 4 * sw * vs), a4)
                    a5 = v_fma(wv, v_load(src + 5 * sw * vs), a5)
                    a6 = v_fma(wv, v_load(src + 6 * sw * vs), a6)
                    a7 = v_fma(wv, v_load(src + 7 * sw * vs), a7)
            if act != IDENTITY:
                a0, a1, a2, a3 = v_act4(a0, a1, a2, a3, act, lo_v, hi_v)
                a4, a5, a6, a7 = v_act4(a4, a5, a6, a7, act, lo_v, hi_v)
            dst = outg + ((oh - oh0) * ow_n + o) * vs
            nb = ow_n - o
            v_store(dst, a0)
            if nb > 1:
                v_store(dst + vs, a1)
            if nb > 2:
                v_store(dst + 2 * vs, a2)
            if nb > 3:
                v_store(dst + 3 * vs, a3)
            if nb > 4:
                v_store(dst + 4 * vs, a4)
            if nb > 5:
                v_store(dst + 5 * vs, a5)
            if nb > 6:
                v_store(dst + 6 * vs, a6)
            if nb > 7:
                v_store(dst + 7 * vs, a7)


@tile_kernel(CONV, scratch=_dw_cv_scratch)
def f32_conv_dw_cv(p, tile, scratch):
    R = CONV
    n_img = p[R.n]
    n_c, h, w, cout, oh_n, ow_n, kh, kw, sh, sw, dh, dw, pt, pl = _conv_geometry(p)
    ng = (cout + VW - 1) // VW
    rpt = p[R.co_per_tile]  # output rows per tile, counted over (image, channel group, row)
    npix = oh_n * ow_n
    taps = kh * kw
    hp, wp, nf = dw_cv_grid(h, w, oh_n, ow_n, kh, kw, sh, sw, pt, pl)
    grid = scratch
    outg = scratch + (nf - npix * VW) * 4
    og = f32(outg, npix * VW)
    xa, ya, wa, ba = p[R.x], p[R.y], p[R.w], p[R.bias]
    has_bias, _, act, aa, ab = ep_fields(slot_address(p, R.ep))
    lo_v = v_splat(aa)
    hi_v = v_splat(ab)
    reg = register_act(act)
    vs = VW * 4  # bytes of one grid pixel
    # Padding columns stay zero: every band writes only the interior columns (padding rows it zeroes
    # itself). Only the rows this tile's bands reach are cleared.
    # Bands of at most ``band`` output rows keep the grid near CV_GRID_BYTES (L2-resident) on large planes.
    band = max(1, (CV_GRID_BYTES // (wp * vs) - kh) // sh + 1)
    used = min(hp, (min(rpt, oh_n, band) - 1) * sh + kh)
    for t in range(0, used * wp * VW + (2 * CV_BLOCK + kw) * VW, VW):
        v_store(grid + t * 4, v_zero())
    u0 = tile * rpt
    u1 = min(n_img * ng * oh_n, u0 + rpt)
    for gi in range(u0 // oh_n, (u1 + oh_n - 1) // oh_n):
        img = gi // ng
        c0 = (gi - img * ng) * VW
        nc = min(VW, cout - c0)
        xo = (img * n_c + c0) * h * w
        wg = wa + (c0 // VW) * taps * vs
        b_v = v_load_n(ba + c0 * 4, nc) if has_bias else v_zero()
        g_hi = min(u1 - gi * oh_n, oh_n)
        for oh0 in range(max(u0 - gi * oh_n, 0), g_hi, band):
            oh1 = min(g_hi, oh0 + band)
            _dw_cv_band(xa, xo, h, w, nc, wg, b_v, grid, outg, wp, oh0, oh1, ow_n, kh, kw, sh, sw, pt, pl,
                        act if reg else IDENTITY, lo_v, hi_v)
            yo = (img * cout + c0) * npix
            p0, p1 = oh0 * ow_n, oh1 * ow_n
            if not reg and act != IDENTITY:  # on the band while it is in L1, one run across all its channels
                activation_run(act, og, 0, (p1 - p0) * VW, aa, ab)
            for q0 in range(p0, p1, VW):
                nq = min(VW, p1 - q0)
                v_transpose_block(outg + (q0 - p0) * vs, vs, nq, VW, ya + (yo + q0) * 4, npix * 4, nc, nq)
    return 0
