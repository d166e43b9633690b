"""Direct FP32 convolution by rows, output channels along the vectors: a network's stem, and the one-group
convs that the grid path would pad and pack.

``f32_conv_stem`` (row ``STEM``): one group, any strides and dilations,
optionally followed by a max pool (``pool_kh > 0``). Through the GEMM core
such a conv is a GEMM of depth ``cin*kh*kw`` (27 for a 3x3 RGB stem) whose
columns must be packed from a padded, phase-split copy of the input, and a
stride-2 or small output plane adds grid columns past its rows.
Here a register block is ``PIX`` consecutive output pixels of one row x
``CO`` output channels (two vectors; ``PIX - 1`` pixels where that covers
rows of 7, 14 or 28 exactly; ``2 * PIX`` x one vector for at most ``VW``
channels): each tap is the weight vectors and a broadcast per pixel
of an input float, read straight from a ring of zero-padded input rows at
any column stride. A conv row is kept as
``[pixel][channel]`` in scratch; without a pool it is transposed into the
image's planes, with one the max pool runs on whole channel vectors (no
shuffles) over a ring of conv rows and only the pooled row is transposed.
``w`` is packed as ``[panels, kh*cin*kw, panel width]`` (``pack_weights``:
kernel rows outermost, so the taps of the kernel rows inside the input are
consecutive; zero past ``cout``). Bias and Relu run on the registers; Clip,
HardSwish, LeakyRelu, SiLU or Sigmoid on each conv row while it is in L1 (before
a pool); a residual and other activations in a pass over each output row after
the transpose (no pool then). It reads nothing outside its inputs (masked loads), so a graph input
may be read in place. Tile = ``rows_per_tile`` output rows (pooled rows with
a pool) of one image x one of ``panel_tiles`` shares of the channel panels.
Not here: groups; choosing the path (``ops/conv_paths.py``).
"""
import numba
import numpy as np

from .abi import f32, i64, slot_address
from .contract import declare_row, tile_kernel
from .conv import _out_run, dw_out_applies, register_act
from .conv_pack import BIG, _copy_run, _span
from .depthwise import pack_channel_blocks
from .elementwise import IDENTITY, RELU, activation_run
from .gemm import EPILOGUE, ep_fields
from .pool import _taps
from .simd import VW, v_clamp_below, v_fma, v_load, v_load_n, v_max, v_splat, v_store, v_store_n, v_transpose_block, v_zero

STEM_MAX_CIN = 4
PIX = 8  # output pixels of a register block
CO = 2 * VW  # output channels of a register block (a weight panel)
LINEAR_RING_BYTES = 512 * 1024  # a tile's input rows, all held at once (half this core's L2)
STEM = declare_row("STEM", inputs=("x", "w", "bias?", "res?"), outputs=("y",),
                   ints=("n", "c", "in_h", "in_w", "cout", "out_h", "out_w", "kh", "kw", "sh", "sw", "dh", "dw",
                         "pad_t", "pad_l", "pool_kh", "pool_kw", "pool_sh", "pool_sw", "pool_pad_t", "pool_pad_l",
                         "pool_oh", "pool_ow", "rows_per_tile", "tiles_per_image", "panel_tiles"),
                   structs={"ep": EPILOGUE})


@numba.njit(cache=True)
def _pow2(n):
    s = 1
    while s < n:  # a power of two: a row's slot is a mask, not a division
        s *= 2
    return s


@numba.njit(cache=True)
def stem_layout(c, h, w, cout, ow_n, kh, kw, sh, sw, dh, dw, pl, pool_kh, pool_ow, per):
    """``(linear, slots, wp, owp, cslots, ring floats, conv floats, scratch floats)`` of ``f32_conv_stem`` with
    tiles of ``per`` output rows.

    The input ring holds ``slots`` rows of every channel, each ``wp`` floats
    with padded column ``x + pl`` at ``x``, then a conv row's tap table; the
    conv ring holds ``cslots`` conv rows of ``ceil(cout/cw)`` panels of
    ``owp`` pixels x ``cw`` channels (``panel_shape``); a pooled row follows.
    ``linear``: without a pool, where every input row of a tile fits
    ``LINEAR_RING_BYTES``, the ring holds them all in order and the conv rows
    are one panel's, all of the tile's (``f32_conv_stem`` sweeps each weight
    panel over every row while it is in cache).
    """
    cw, pix = panel_shape(cout, ow_n)
    owp = (ow_n + pix - 1) // pix * pix
    reach = (owp - 1) * sw + (kw - 1) * dw + 1  # padded columns the blocks of a row read
    wp = (max(reach, w + pl) + VW - 1) // VW * VW
    npan = (cout + cw - 1) // cw
    rows = min(h, (per - 1) * sh + (kh - 1) * dh + 1)  # input rows a tile reads at most
    linear = pool_kh == 0 and per > 1 and rows * c * wp * 4 <= LINEAR_RING_BYTES
    if linear:
        slots, cslots, conv = rows, per, per * owp * cw
    else:
        slots = _pow2((kh - 1) * dh + 1)
        cslots = _pow2(pool_kh) if pool_kh > 0 else 1
        conv = cslots * npan * owp * cw
    ring = slots * c * wp + kh * c * kw * 2  # the rows, then the tap table (int64s)
    return linear, slots, wp, owp, cslots, ring, conv, ring + conv + npan * pool_ow * cw


def _stem_scratch(a):
    return stem_layout(a["c"], a["in_h"], a["in_w"], a["cout"], a["out_w"], a["kh"], a["kw"], a["sh"], a["sw"],
                       a["dh"], a["dw"], a["pad_l"], a["pool_kh"], a["pool_ow"], a["rows_per_tile"])[7] * 4


@numba.njit(cache=True)
def panel_shape(cout, ow):
    """``(channels, pixels)`` of a register block for rows of ``ow`` pixels: one vector x ``2 * PIX`` for at
    most ``VW`` output channels (half of a ``CO`` panel would be zeros), else ``CO`` x ``PIX``, or x ``PIX - 1``
    where that covers the row in fewer pixels (rows of 7, 14 or 28: no block's pixels past the row)."""
    if cout <= VW:
        return VW, 2 * PIX
    return (CO, PIX - 1) if -(-ow // (PIX - 1)) * (PIX - 1) < -(-ow // PIX) * PIX else (CO, PIX)


def pack_weights(w):
    """Conv weights ``[cout, cin, kh, kw]`` as ``f32_conv_stem`` reads them: ``[ceil(cout/cw), kh*cin*kw, cw]``
    (``cw`` from ``panel_shape``)."""
    return pack_channel_blocks(np.asarray(w, np.float32).transpose(0, 2, 1, 3), VW if w.shape[0] <= VW else CO)


@numba.njit(inline="always")
def _fma2(s, w0, w1, a, b):
    return v_fma(s, w0, a), v_fma(s, w1, b)


@numba.njit(inline="always")
def _store16(dst, a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15, relu, nv):
    """A register block's first ``nv`` (14 or 16) vectors, Relu'd where ``relu``, stored one after another at
    ``dst`` (every block shape lays out ``[pixel][channel]`` rows as consecutive vectors). Other activations
    are ``_sweep``'s: each inlined copy of their code in every block shape cost seconds of compile."""
    if relu:
        z = v_zero()
        a0, a1, a2, a3 = v_clamp_below(a0, z), v_clamp_below(a1, z), v_clamp_below(a2, z), v_clamp_below(a3, z)
        a4, a5, a6, a7 = v_clamp_below(a4, z), v_clamp_below(a5, z), v_clamp_below(a6, z), v_clamp_below(a7, z)
        a8, a9, a10, a11 = v_clamp_below(a8, z), v_clamp_below(a9, z), v_clamp_below(a10, z), v_clamp_below(a11, z)
        a12, a13 = v_clamp_below(a12, z), v_clamp_below(a13, z)
        a14, a15 = v_clamp_below(a14, z), v_clamp_below(a15, z)
    s = VW * 4
    v_store(dst, a0)
    v_store(dst + s, a1)
    v_store(dst + 2 * s, a2)
    v_store(dst + 3 * s, a3)
    v_store(dst + 4 * s, a4)
    v_store(dst + 5 * s, a5)
    v_store(dst + 6 * s, a6)
    v_store(dst + 7 * s, a7)
    v_store(dst + 8 * s, a8)
    v_store(dst + 9 * s, a9)
    v_store(dst + 10 * s, a10)
    v_store(dst + 11 * s, a11)
    v_store(dst + 12 * s, a12)
    v_store(dst + 13 * s, a13)
    if nv > 14:
        v_store(dst + 14 * s, a14)
        v_store(dst + 15 * s, a15)


@numba.njit(inline="always")
def _block(row, tab, ntaps, wt, dst, sw, b0, b1, relu, pix):
    """One register block: ``pix`` (``PIX`` or ``PIX - 1``) pixels x ``CO`` channels, summed over ``ntaps`` taps
    (tap ``t``: input floats from ``row + tab[t]`` bytes, ``sw`` apart; weights ``CO`` floats from ``wt``, the
    next tap's after them), biases ``b0``, ``b1``, Relu'd where ``relu``, stored as ``[pixel][CO]`` at
    ``dst``."""
    a0 = c0 = e0 = g0 = i0 = k0 = m0 = o0 = b0
    a1 = c1 = e1 = g1 = i1 = k1 = m1 = o1 = b1
    for t in range(ntaps):
        w0 = v_load(wt)
        w1 = v_load(wt + VW * 4)
        x = f32(row + tab[t], BIG)
        a0, a1 = _fma2(v_splat(x[0]), w0, w1, a0, a1)
        c0, c1 = _fma2(v_splat(x[sw]), w0, w1, c0, c1)
        e0, e1 = _fma2(v_splat(x[2 * sw]), w0, w1, e0, e1)
        g0, g1 = _fma2(v_splat(x[3 * sw]), w0, w1, g0, g1)
        i0, i1 = _fma2(v_splat(x[4 * sw]), w0, w1, i0, i1)
        k0, k1 = _fma2(v_splat(x[5 * sw]), w0, w1, k0, k1)
        m0, m1 = _fma2(v_splat(x[6 * sw]), w0, w1, m0, m1)
        if pix == PIX:
            o0, o1 = _fma2(v_splat(x[7 * sw]), w0, w1, o0, o1)
        wt += CO * 4
    _store16(dst, a0, a1, c0, c1, e0, e1, g0, g1, i0, i1, k0, k1, m0, m1, o0, o1, relu, 2 * pix)


@numba.njit(inline="always")
def _block_narrow(row, tab, ntaps, wt, dst, sw, b0, relu):
    """``_block`` for one vector of channels: ``2 * PIX`` pixels x ``VW`` channels, stored as ``[pixel][VW]``."""
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = a8 = a9 = a10 = a11 = a12 = a13 = a14 = a15 = b0
    for t in range(ntaps):
        wv = v_load(wt)
        x = f32(row + tab[t], BIG)
        a0, a1 = v_fma(v_splat(x[0]), wv, a0), v_fma(v_splat(x[sw]), wv, a1)
        a2, a3 = v_fma(v_splat(x[2 * sw]), wv, a2), v_fma(v_splat(x[3 * sw]), wv, a3)
        a4, a5 = v_fma(v_splat(x[4 * sw]), wv, a4), v_fma(v_splat(x[5 * sw]), wv, a5)
        a6, a7 = v_fma(v_splat(x[6 * sw]), wv, a6), v_fma(v_splat(x[7 * sw]), wv, a7)
        a8, a9 = v_fma(v_splat(x[8 * sw]), wv, a8), v_fma(v_splat(x[9 * sw]), wv, a9)
        a10, a11 = v_fma(v_splat(x[10 * sw]), wv, a10), v_fma(v_splat(x[11 * sw]), wv, a11)
        a12, a13 = v_fma(v_splat(x[12 * sw]), wv, a12), v_fma(v_splat(x[13 * sw]), wv, a13)
        a14, a15 = v_fma(v_splat(x[14 * sw]), wv, a14), v_fma(v_splat(x[15 * sw]), wv, a15)
        wt += VW * 4
    _store16(dst, a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15, relu, 16)


@numba.njit(inline="always")
def _to_planes(src, cw, npan, ld_pan, cout, width, dst, plane_bytes):
    """Transpose a row of ``width`` pixels x ``cout`` channels (panels of ``[pixel][cw]``, ``ld_pan`` bytes apart)
    into ``cout`` planes: channel ``co``'s pixels at ``dst + co * plane_bytes``."""
    for jp in range(npan):
        for c in range(0, min(cw, cout - jp * cw), VW):
            nc = min(VW, cout - jp * cw - c)
            for b0 in range(0, width, VW):
                nq = min(VW, width - b0)
                v_transpose_block(src + jp * ld_pan + (b0 * cw + c) * 4, cw * 4, nq, nc,
                                  dst + ((jp * cw + c) * plane_bytes // 4 + b0) * 4, plane_bytes, nc, nq)


@numba.njit(inline="always")
def _panel_bias(ba, jp, cw, cout, has_bias):
    """The bias vectors of weight panel ``jp`` (zeros without a bias)."""
    nb = min(cw, cout - jp * cw)
    if not has_bias:
        return v_zero(), v_zero()
    return v_load_n(ba + jp * cw * 4, nb), v_load_n(ba + (jp * cw + VW) * 4, nb - VW)


@numba.njit(inline="always")
def _sweep(row, tab, ntaps, wb, dst, cw, pix, ow_n, sw, ba, jp, cout, has_bias, act, aa, ab):
    """One conv row of weight panel ``jp``: its register blocks, input from ``row`` (``_block``'s arguments;
    biases from ``ba``), then activation ``act`` (bounds ``aa``, ``ab``; Relu in the registers).

    The other activations run in one called pass over the row (``activation_run``), not in each block:
    their code in each of the inlined block shapes of both ring layouts made the kernel's cold compile
    several times longer.
    """
    b0, b1 = _panel_bias(ba, jp, cw, cout, has_bias)
    relu = act == RELU
    for ob in range(0, ow_n, pix):
        d = dst + ob * cw * 4
        if cw == VW:
            _block_narrow(row + ob * sw * 4, tab, ntaps, wb, d, sw, b0, relu)
        elif pix == PIX:  # a literal pix: each inlined copy keeps only its own block shape
            _block(row + ob * sw * 4, tab, ntaps, wb, d, sw, b0, b1, relu, PIX)
        else:
            _block(row + ob * sw * 4, tab, ntaps, wb, d, sw, b0, b1, relu, PIX - 1)
    if act != IDENTITY and not relu:  # the row's [pixel][channel] floats, while they are in L1
        activation_run(act, f32(dst, BIG), 0, ow_n * cw, aa, ab)


@numba.njit(inline="always")
def _max3(src, m0, m1):
    """``m0``, ``m1`` maxed (``v_max``, in column order) with three pixels of ``CO`` channels from ``src``."""
    m0, m1 = v_max(m0, v_load(src)), v_max(m1, v_load(src + VW * 4))
    m0, m1 = v_max(m0, v_load(src + CO * 4)), v_max(m1, v_load(src + (CO + VW) * 4))
    return v_max(m0, v_load(src + 2 * CO * 4)), v_max(m1, v_load(src + (2 * CO + VW) * 4))


@numba.njit(inline="always")
def _max3x3(a, b, c, dst):
    """The max pool of a full 3x3 window of ``CO``-channel pixels whose rows start at ``a``, ``b``, ``c``, in the
    generic loop's order (rows, then columns), stored at ``dst``."""
    m0 = v_splat(np.float32(-np.inf))
    m0, m1 = _max3(a, m0, m0)
    m0, m1 = _max3(b, m0, m1)
    m0, m1 = _max3(c, m0, m1)
    v_store(dst, m0)
    v_store(dst + VW * 4, m1)


@numba.njit(inline="always")
def _copy_input_row(dst, xa, plane, h, ih, w, lo, end, pl):
    """Row ``ih`` of input plane ``plane`` into a ring row at ``dst``: its floats ``[lo, end)`` (padded columns)."""
    _copy_run(dst + lo * 4, xa + ((plane * h + ih) * w + lo - pl) * 4, end - lo)


@numba.njit(inline="always")
def _out_pass(ya, ra, yo, co0, co1, npix, ow_n, has_res, act, aa, ab):
    """The residual and an activation the registers did not apply, over output row ``yo`` (its float offset in
    channel 0) of channels ``[co0, co1)``."""
    lo_v, hi_v = v_splat(aa), v_splat(ab)
    for co in range(co0, co1):
        q = yo + co * npix
        if has_res:
            _out_run(ya + q * 4, ya, q * 4, ow_n, v_zero(), ra, has_res, act if dw_out_applies(act) else IDENTITY,
                     lo_v, hi_v)
        if act != IDENTITY and not (has_res and dw_out_applies(act)):
            activation_run(act, f32(ya, BIG), q, q + ow_n, aa, ab)


@tile_kernel(STEM, reads_in_bounds=True, scratch=_stem_scratch)
def f32_conv_stem(p, tile, scratch):
    R = STEM
    n_c, h, w, cout, oh_n, ow_n = p[R.c], p[R.in_h], p[R.in_w], p[R.cout], p[R.out_h], p[R.out_w]
    kh, kw, sh, sw, dh, dw, pt, pl = p[R.kh], p[R.kw], p[R.sh], p[R.sw], p[R.dh], p[R.dw], p[R.pad_t], p[R.pad_l]
    pkh, pkw, psh, psw, ppt, ppl = (p[R.pool_kh], p[R.pool_kw], p[R.pool_sh], p[R.pool_sw], p[R.pool_pad_t],
                                    p[R.pool_pad_l])
    poh, pow_n, per, nt = p[R.pool_oh], p[R.pool_ow], p[R.rows_per_tile], p[R.tiles_per_image]
    pool = pkh > 0
    has_bias, has_res, act, aa, ab = ep_fields(slot_address(p, R.ep))
    reg = register_act(act) and not has_res
    linear, slots, wp, owp, cslots, nring, nconv, _ = stem_layout(n_c, h, w, cout, ow_n, kh, kw, sh, sw, dh, dw, pl,
                                                                  pkh, pow_n, per)
    cw, pix = panel_shape(cout, ow_n)
    npan = (cout + cw - 1) // cw
    taps = n_c * kh * kw
    span = (kh - 1) * dh + 1
    ring = scratch
    conv = scratch + nring * 4
    pooled = conv + nconv * 4
    pan_bytes = owp * cw * 4  # one panel of a conv row
    lo, end = _span(-pl, 1, w, wp)  # the floats of a ring row that input rows fill
    for r in range(slots * n_c):  # the padding columns are never written: zero them once per tile
        for t in range(0, lo, VW):
            v_store_n(ring + (r * wp + t) * 4, v_zero(), lo - t)
        for t in range(end, wp, VW):
            v_store_n(ring + (r * wp + t) * 4, v_zero(), wp - t)
    tab = i64(ring + slots * n_c * wp * 4, kh * n_c * kw)
    xa, ya, ra, ba = p[R.x], p[R.y], p[R.res], p[R.bias]
    npt = p[R.panel_tiles]
    pb = tile % npt  # this tile's output channels: panels [jp0, jp1)
    jp0, jp1 = pb * npan // npt, (pb + 1) * npan // npt
    co0, co1 = jp0 * cw, min(cout, jp1 * cw)
    img = tile // npt // nt
    r0 = (tile // npt - img * nt) * per
    if pool:
        r1 = min(poh, r0 + per)
        cr0 = max(0, r0 * psh - ppt)
        cr1 = min(oh_n, (r1 - 1) * psh - ppt + pkh)
    else:
        r1 = min(oh_n, r0 + per)
        cr0, cr1 = r0, r1
    npix, pnpix = oh_n * ow_n, poh * pow_n
    ract = act if reg else IDENTITY
    if linear:
        # Every input row of the tile in order, one tap table; each weight panel then sweeps all the rows.
        ih0, ih1 = max(0, r0 * sh - pt), min(h, (r1 - 1) * sh - pt + span)
        for ih in range(ih0, ih1):
            for ci in range(n_c):
                _copy_input_row(ring + ((ih - ih0) * n_c + ci) * wp * 4, xa, img * n_c + ci, h, ih, w, lo, end, pl)
        t = 0
        for ki in range(kh):
            for ci in range(n_c):
                for kj in range(kw):
                    tab[t] = ((ki * dh * n_c + ci) * wp + kj * dw) * 4
                    t += 1
        for jp in range(jp0, jp1):
            for cr in range(r0, r1):
                top, k0, k1 = _taps(cr, sh, pt, kh, dh, h)
                _sweep(ring + (top - ih0) * n_c * wp * 4, tab[k0 * n_c * kw:], (k1 - k0) * n_c * kw,
                       p[R.w] + (jp * taps + k0 * n_c * kw) * cw * 4, conv + (cr - r0) * pan_bytes, cw, pix, ow_n, sw,
                       ba, jp, cout, has_bias, ract, aa, ab)
            c0, c1 = jp * cw, min(cout, (jp + 1) * cw)
            for cr in range(r0, r1):
                yo = (img * cout * oh_n + cr) * ow_n
                _to_planes(conv + (cr - r0) * pan_bytes, cw, 1, pan_bytes, c1 - c0, ow_n, ya + (yo + c0 * npix) * 4,
                           npix * 4)
                if not reg:
                    _out_pass(ya, ra, yo, c0, c1, npix, ow_n, has_res, act, aa, ab)
        return 0
    loaded = 0  # input rows [.., loaded) are in the ring
    pr = r0  # the next pooled row
    for cr in range(cr0, cr1):
        top, k0, k1 = _taps(cr, sh, pt, kh, dh, h)  # kernel rows [k0, k1) read rows inside the input
        for ih in range(max(loaded, top, 0), min(h, top + span)):
            for ci in range(n_c):
                _copy_input_row(ring + ((ih & (slots - 1)) * n_c + ci) * wp * 4, xa, img * n_c + ci, h, ih, w, lo,
                                end, pl)
        loaded = max(loaded, min(h, top + span))
        # The row's taps in the weights' order (kernel row, channel, kernel column), from kernel row k0.
        ntaps = 0
        for ki in range(k0, k1):
            for ci in range(n_c):
                at = ((((top + ki * dh) & (slots - 1)) * n_c + ci) * wp) * 4
                for kj in range(kw):
                    tab[ntaps] = at + kj * dw * 4
                    ntaps += 1
        crow = conv + (cr & (cslots - 1)) * npan * pan_bytes
        for jp in range(jp0, jp1):
            _sweep(ring, tab, ntaps, p[R.w] + (jp * taps + k0 * n_c * kw) * cw * 4, crow + jp * pan_bytes, cw, pix,
                   ow_n, sw, ba, jp, cout, has_bias, ract, aa, ab)
        if not pool:
            yo = (img * cout * oh_n + cr) * ow_n
            _to_planes(crow + jp0 * pan_bytes, cw, jp1 - jp0, pan_bytes, co1 - co0, ow_n, ya + (yo + co0 * npix) * 4,
                       npix * 4)
            if not reg:
                _out_pass(ya, ra, yo, co0, co1, npix, ow_n, has_res, act, aa, ab)
            continue
        # Max-pool every pooled row whose window rows are all computed now.
        while pr < r1 and (min(oh_n, pr * psh - ppt + pkh) - 1 <= cr):
            q0 = max(0, pr * psh - ppt)
            q1 = min(oh_n, pr * psh - ppt + pkh)
            for jp in range(jp0, jp1):
                rows3 = q1 - q0 == 3 and cw == CO  # the common 3x3 window: its 9 taps unrolled inside the row
                qa = conv + ((q0 & (cslots - 1)) * npan + jp) * pan_bytes  # the window's conv rows
                qb = conv + (((q0 + 1) & (cslots - 1)) * npan + jp) * pan_bytes
                qc = conv + (((q0 + 2) & (cslots - 1)) * npan + jp) * pan_bytes
                for pc in range(pow_n):
                    c0 = max(0, pc * psw - ppl)
                    c1 = min(ow_n, pc * psw - ppl + pkw)
                    dst = pooled + (jp * pow_n + pc) * cw * 4
                    if rows3 and c1 - c0 == 3:
                        _max3x3(qa + c0 * CO * 4, qb + c0 * CO * 4, qc + c0 * CO * 4, dst)
                        continue
                    m0 = v_splat(np.float32(-np.inf))
                    m1 = m0
                    for q in range(q0, q1):
                        src = conv + ((q & (cslots - 1)) * npan + jp) * pan_bytes + c0 * cw * 4
                        for _ in range(c0, c1):
                            m0 = v_max(m0, v_load(src))
                            if cw == CO:
                                m1 = v_max(m1, v_load(src + VW * 4))
                            src += cw * 4
                    v_store(dst, m0)
                    if cw == CO:
                        v_store(dst + VW * 4, m1)
            _to_planes(pooled + jp0 * pow_n * cw * 4, cw, jp1 - jp0, pow_n * cw * 4, co1 - co0, pow_n,
                       ya + (((img * cout + co0) * poh + pr) * pow_n) * 4, pnpix * 4)
            pr += 1
    return 0
