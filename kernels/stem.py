"""Direct FP32 convolution for few input channels (a network's stem), on a ring of padded input rows.

``f32_conv_stem`` reads ``kernels.conv``'s row ``CONV``: one group, at most
``STEM_MAX_CIN`` input channels, column stride 1 or 2, no dilation. Through
the GEMM core such a conv is a GEMM of depth ``cin*kh*kw`` (27 for a 3x3 RGB
stem) over every output pixel: its columns must be packed from a padded,
phase-split copy of the input, which costs as much as the multiply-adds.
Here the input rows an output row reads are copied once into a ring of
zero-padded rows (stride 2: split into even and odd columns), so every tap of
``VW`` outputs is one plain vector load, which serves ``CO_BLOCK`` output
channels; a register block is ``CO_BLOCK`` channels x 4 vectors of one
output row. ``w`` is packed as ``[ceil(cout/CO_BLOCK), cin*kh*kw,
CO_BLOCK]`` (``depthwise.pack_channel_blocks``, zero past ``cout``). Bias, residual and
activation come from the row's ``EPILOGUE``: SiLU and Sigmoid on the
registers (``kernels.vact``), Relu/Clip/HardSwish in ``kernels.conv._dw_out``,
others in a pass over each output row. It reads nothing outside its
inputs (masked loads), so a graph input may be read in place. Tile = ``co_per_tile`` consecutive
(image, output row) units. Not here: groups, dilation, column strides above 2.
"""
import numba
import numpy as np

from .abi import f32, slot_address
from .contract import tile_kernel
from .conv import CONV, _conv_geometry, _dw_out, dw_out_applies
from .conv_pack import BIG, _copy_run, _copy_run2, _span
from .elementwise import IDENTITY, SIGMOID, SILU, activation_run
from .gemm import ep_fields
from .simd import VW, v_fma, v_load, v_splat, v_store_n, v_zero
from .vact import v_sigmoid4, v_silu4

STEM_MAX_CIN = 4
CO_BLOCK = 4  # output channels of a register block (x 4 vectors of a row)


@numba.njit(cache=True)
def stem_ring(c, w, ow_n, kh, kw, sw, pl):
    """``(slots, phase_floats, scratch_floats)`` of ``f32_conv_stem``'s ring of padded input rows.

    ``slots`` is a power of two, at least ``kh``; a slot holds one input row
    of every channel, each as ``sw`` phase rows of ``phase_floats``: padded
    column ``x + pl`` sits in phase ``(x + pl) % sw`` at ``(x + pl) // sw``.
    """
    slots = 1
    while slots < kh:  # a power of two: a row's slot is a mask, not a division
        slots *= 2
    reach = (ow_n + 4 * VW - 1) // (4 * VW) * 4 * VW + (kw - 1) // sw + 1  # floats a row's blocks read
    wph = (max(reach, (w + pl) // sw + 1) + 2 * VW - 1) // VW * VW  # a VW of slack, whole vectors
    return slots, wph, slots * c * sw * wph


def _stem_scratch(a):
    return stem_ring(a["c"], a["in_w"], a["out_w"], a["kh"], a["kw"], a["sw"], a["pad_l"])[2] * 4


@numba.njit(inline="always")
def _load_row(dst, src, w, pl, sw, wph):
    """Input row ``src`` (``w`` floats) as its ``sw`` phase rows at ``dst``: phase ``b`` holds padded columns
    ``b, b + sw, ...``, the padding left at zero (the spans and copies of ``kernels.conv_pack``)."""
    for b in range(sw):
        lo, end = _span(b - pl, sw, w, wph)
        if lo < end:
            at, n = src + (lo * sw + b - pl) * 4, end - lo
            if sw == 1:
                _copy_run(dst + lo * 4, at, n)
            else:
                _copy_run2(dst + (b * wph + lo) * 4, at, n)


@numba.njit(inline="always")
def _fma4(wv, x0, x1, x2, x3, a0, a1, a2, a3):
    return v_fma(wv, x0, a0), v_fma(wv, x1, a1), v_fma(wv, x2, a2), v_fma(wv, x3, a3)


@numba.njit(inline="always")
def _out4(ya, at, n, a0, a1, a2, a3, reg_act, act, ra, has_res, out_act, lo_v, hi_v):
    """Store the first ``n`` columns of four vectors of an output row (``_dw_out``), SiLU/Sigmoid first when
    ``reg_act``."""
    if reg_act:
        if act == SILU:
            a0, a1, a2, a3 = v_silu4(a0, a1, a2, a3)
        else:
            a0, a1, a2, a3 = v_sigmoid4(a0, a1, a2, a3)
    s = VW * 4
    _dw_out(ya, at, a0, n, ra, has_res, out_act, lo_v, hi_v)
    if n > VW:
        _dw_out(ya, at + s, a1, n - VW, ra, has_res, out_act, lo_v, hi_v)
    if n > 2 * VW:
        _dw_out(ya, at + 2 * s, a2, n - 2 * VW, ra, has_res, out_act, lo_v, hi_v)
    if n > 3 * VW:
        _dw_out(ya, at + 3 * s, a3, n - 3 * VW, ra, has_res, out_act, lo_v, hi_v)


@tile_kernel(CONV, reads_in_bounds=True, scratch=_stem_scratch)
def f32_conv_stem(p, tile, scratch):
    R = CONV
    n_img = p[R.n]
    n_c, h, w, cout, oh_n, ow_n, kh, kw, sh, sw, dh, dw, pt, pl = _conv_geometry(p)
    per = p[R.co_per_tile]  # output rows per tile, counted over (image, row)
    npix = oh_n * ow_n
    taps = n_c * kh * kw
    bias = f32(p[R.bias], BIG)
    y = f32(p[R.y], BIG)
    has_bias, has_res, act, aa, ab = ep_fields(slot_address(p, R.ep))
    lo_v = v_splat(aa)
    hi_v = v_splat(ab)
    reg_act = (act == SILU or act == SIGMOID) and not has_res
    out_act = act if dw_out_applies(act) else IDENTITY
    slots, wph, nf = stem_ring(n_c, w, ow_n, kh, kw, sw, pl)
    cbytes = sw * wph * 4  # one channel's phase rows in a slot
    for t in range(0, nf, VW):  # padding cells are never written: zero once per tile
        v_store_n(scratch + t * 4, v_zero(), nf - t)
    xa, ya, ra, wa = p[R.x], p[R.y], p[R.res], p[R.w]
    vs = VW * 4
    u0 = tile * per
    u1 = min(n_img * oh_n, u0 + per)
    loaded_img, loaded = -1, 0  # input rows [.., loaded) of image loaded_img are in the ring
    for u in range(u0, u1):
        img = u // oh_n
        oh = u - img * oh_n
        if img != loaded_img:
            loaded_img, loaded = img, 0
        top = oh * sh - pt
        for ih in range(max(loaded, top, 0), min(h, top + kh)):
            for ci in range(n_c):
                _load_row(scratch + ((ih & (slots - 1)) * n_c + ci) * cbytes, xa + ((img * n_c + ci) * h + ih) * w * 4,
                          w, pl, sw, wph)
        loaded = max(loaded, min(h, top + kh))
        k0 = 0  # kernel rows whose input row exists: [k0, k1)
        while k0 < kh and top + k0 < 0:
            k0 += 1
        k1 = kh
        while k1 > k0 and top + k1 - 1 >= h:
            k1 -= 1
        for cb in range(0, cout, CO_BLOCK):
            wb = wa + (cb // CO_BLOCK) * taps * CO_BLOCK * 4
            b0 = v_splat(bias[cb] if has_bias else np.float32(0))
            b1 = v_splat(bias[min(cb + 1, cout - 1)] if has_bias else np.float32(0))
            b2 = v_splat(bias[min(cb + 2, cout - 1)] if has_bias else np.float32(0))
            b3 = v_splat(bias[min(cb + 3, cout - 1)] if has_bias else np.float32(0))
            for o in range(0, ow_n, 4 * VW):
                a0 = a1 = a2 = a3 = b0
                c0 = c1 = c2 = c3 = b1
                d0 = d1 = d2 = d3 = b2
                e0 = e1 = e2 = e3 = b3
                for ki in range(k0, k1):
                    slot = scratch + (((top + ki) & (slots - 1)) * n_c) * cbytes + o * 4
                    for ci in range(n_c):
                        row = slot + ci * cbytes
                        for kj in range(kw):
                            src = row + ((kj & (sw - 1)) * wph + (kj >> (sw - 1))) * 4  # sw is 1 or 2
                            x0, x1, x2, x3 = v_load(src), v_load(src + vs), v_load(src + 2 * vs), v_load(src + 3 * vs)
                            wt = f32(wb + ((ci * kh + ki) * kw + kj) * CO_BLOCK * 4, CO_BLOCK)
                            a0, a1, a2, a3 = _fma4(v_splat(wt[0]), x0, x1, x2, x3, a0, a1, a2, a3)
                            c0, c1, c2, c3 = _fma4(v_splat(wt[1]), x0, x1, x2, x3, c0, c1, c2, c3)
                            d0, d1, d2, d3 = _fma4(v_splat(wt[2]), x0, x1, x2, x3, d0, d1, d2, d3)
                            e0, e1, e2, e3 = _fma4(v_splat(wt[3]), x0, x1, x2, x3, e0, e1, e2, e3)
                n = ow_n - o
                at = ((img * cout + cb) * npix + oh * ow_n + o) * 4
                ps = npix * 4
                _out4(ya, at, n, a0, a1, a2, a3, reg_act, act, ra, has_res, out_act, lo_v, hi_v)
                if cb + 1 < cout:
                    _out4(ya, at + ps, n, c0, c1, c2, c3, reg_act, act, ra, has_res, out_act, lo_v, hi_v)
                if cb + 2 < cout:
                    _out4(ya, at + 2 * ps, n, d0, d1, d2, d3, reg_act, act, ra, has_res, out_act, lo_v, hi_v)
                if cb + 3 < cout:
                    _out4(ya, at + 3 * ps, n, e0, e1, e2, e3, reg_act, act, ra, has_res, out_act, lo_v, hi_v)
        if not reg_act and out_act == IDENTITY and act != IDENTITY:
            for co in range(cout):
                q = (img * cout + co) * npix + oh * ow_n
                activation_run(act, y, q, q + ow_n, aa, ab)
    return 0
