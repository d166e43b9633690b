"""FP32 convolution kernels (NCHW): implicit GEMM, im2col and 1x1 onto the GEMM core; depthwise direct.

Each kernel reads the row declared next to it (1-D convolutions arrive as
``in_h = kh = 1``); rows that run the GEMM core carry its ``EPILOGUE`` struct
(``y = act(conv + bias + res)``, the bias a per-row addend).

``f32_conv_gemm`` (row ``CONV``): ``w`` is packed per group into panels
``[G, ceil(cout_g/MR), K, MR]``, ``K = cin_g*kh*kw``; tile = (image, group,
output-channel block, pixel block), the ``MR``-row blocks and the
``pix_panels`` ``NR``-column panels dealt evenly over ``n_cob`` and ``n_pb``
blocks (block ``b`` of ``n`` over ``u`` units starts at ``b * u // n``).
``source`` says where the GEMM's ``B`` comes from: DIRECT (a 1x1 stride-1
unpadded conv) reads the activation in place; IM2COL builds ``pix_block``
columns at a time in scratch after the core's own, in its packed-panel
layout; FROM_COLS reads ``x`` as whole packed columns ``[N*G,
ceil(npix/NR), K, NR]`` (``f32_im2col``, ``f32_pack_cols`` or
``f32_pack_pixels`` wrote them once, when tiles split output channels);
GRID / GRID_COLS are implicit GEMM on the padded planes below.

GRID (strides 1 and 2): ``f32_pad_planes`` (row ``PAD_PLANES``, reads only
inside its input) copies the input with its zero padding into ``[N*C,
phases, hq, wq]`` planes; a stride-2 axis is split into its even and odd
phases (padded row ``2i + a`` is row ``i`` of phase ``a``), so output pixel
``(oh, ow)`` reads tap ``(ki, kj)`` at ``(oh + ki*dh//sh, ow + kj*dw//sw)``
of one phase plane: ``B``'s row for tap ``(ci, ki, kj)`` is the planes
shifted by ``koffs[tap]`` and every column is a pixel of the grid ``oh*wq +
ow``. With ``to_image`` the core stores each grid vector straight into the
image rows it covers (the epilogue in registers); otherwise ``y`` is the
grid with its ``wq - out_w`` extra columns and ``f32_grid_out`` (row
``GRID_OUT``) drops them while applying bias, residual and activation.

``f32_conv_maxpool`` (row ``CONV_MAXPOOL``): a GRID convolution followed by a
max pool; tile = (image, band of pooled rows). A tile computes the conv rows
its windows read (all output channels, epilogue in registers) into a band of
scratch ``wq`` wide and pools them there, so the conv output never goes to
memory; neighbouring tiles recompute the ``pool_kh - pool_sh`` rows they
share. Group 1 and a register epilogue only.

``f32_pack_pixels`` (``PACK_PIXELS``) writes FROM_COLS columns of the
image's pixels from the padded planes (the grid rows without their extra
columns); ``f32_pack_cols`` (``PACK_COLS``) packs image-group ``ig``'s ``B``,
starting ``ig * ig_stride`` floats into ``x``, row ``k`` at ``k * ldb``
floats (``ldb > 0``) or at ``koffs[k]`` (``ldb == 0``); ``f32_im2col``
(``IM2COL_ROW``) builds the im2col columns of a pixel block.

``f32_conv_dw`` (row ``CONV``): ``cin_g == 1`` (depthwise, any channel
multiplier); ``w`` is ``[Cout, kh*kw]``; tile = ``co_per_tile`` consecutive
(image, channel) planes. Not here: 3-D convolution.
"""
import numba
import numpy as np

from .abi import f32, i64, slot_address
from .contract import declare_row, tile_kernel
from .elementwise import CLIP, IDENTITY, RELU, apply_activation
from .gemm import EPILOGUE, MR, NR, ep_float, ep_int, gemm_tile, pack_panels, scratch_floats
from .pool import maxpool_rows
from .simd import (VW, v_add, v_clamp_above, v_clamp_below, v_fma, v_load, v_load2_n, v_load_n, v_splat, v_store,
                   v_store_n, v_zero)

GEMM_SCRATCH = scratch_floats()

BIG = 1 << 40  # views are unchecked; the lowering guarantees every index is in range
IM2COL, DIRECT, FROM_COLS, GRID, GRID_COLS = 0, 1, 2, 3, 4  # where f32_conv_gemm's B comes from

_GEOMETRY = ("n", "c", "in_h", "in_w", "cout", "out_h", "out_w", "kh", "kw", "sh", "sw", "dh", "dw", "pad_t",
             "pad_l")
CONV = declare_row("CONV", inputs=("x", "w", "bias?", "res?", "koffs?"), outputs=("y",),
                   ints=_GEOMETRY + ("groups", "cout_g", "cin_g", "co_per_tile", "pix_panels", "n_cob", "n_pb",
                                     "source", "pix_block", "hq", "wq", "plane_stride", "to_image"),
                   structs={"ep": EPILOGUE})
CONV_MAXPOOL = declare_row("CONV_MAXPOOL", inputs=("x", "w", "bias?", "koffs"), outputs=("y",),
                           ints=("n", "c", "cout", "out_h", "out_w", "wq", "plane_stride", "k", "pool_kh",
                                 "pool_kw", "pool_sh", "pool_sw", "pool_pad_t", "pool_pad_l", "pool_oh", "pool_ow",
                                 "rows_per_tile", "band_rows", "tiles_per_image"),
                           structs={"ep": EPILOGUE})
PACK_PIXELS = declare_row("PACK_PIXELS", inputs=("x", "koffs"), outputs=("cols",),
                          ints=("n_ig", "k", "out_h", "out_w", "wq", "ig_stride", "rows_per_tile", "n_row_tiles"))
PACK_COLS = declare_row("PACK_COLS", inputs=("x", "koffs?"), outputs=("cols",),
                        ints=("n_ig", "ncols", "k", "ldb", "ig_stride", "panels_per_tile", "n_panel_tiles"))
PAD_PLANES = declare_row("PAD_PLANES", inputs=("x",), outputs=("xp",),
                         ints=("planes", "in_h", "in_w", "hq", "wq", "pad_t", "pad_l", "planes_per_tile", "slack",
                               "sh", "sw", "row_phases", "col_phases"))
GRID_OUT = declare_row("GRID_OUT", inputs=("grid", "bias?", "res?"), outputs=("y",),
                       ints=("n", "cout", "out_h", "out_w", "wq", "planes_per_tile"), structs={"ep": EPILOGUE})
IM2COL_ROW = declare_row("IM2COL_ROW", inputs=("x",), outputs=("cols",),
                         ints=tuple(g for g in _GEOMETRY if g != "cout") + ("groups", "cin_g", "pix_per_tile",
                                                                             "n_pix_tiles"))


def _conv_scratch(a):
    kk = a["cin_g"] * a["kh"] * a["kw"]
    return (scratch_floats(kk) + (kk * a["pix_block"] if a["source"] == IM2COL else 0)) * 4


def _dw_scratch(a):
    return dw_pad_shape(a["in_h"], a["in_w"], a["out_h"], a["out_w"], a["kh"], a["kw"], a["sh"], a["sw"], a["dh"],
                        a["dw"], a["pad_t"], a["pad_l"])[3] * 4


@numba.njit(inline="always")
def _span(off, s, n_in, n_out):
    """Output positions ``o`` in ``[lo, hi)`` whose input ``o*s + off`` lies in ``[0, n_in)``."""
    lo = max(0, (-off + s - 1) // s)
    hi = min(n_out, (n_in - 1 - off) // s + 1) if n_in - 1 - off >= 0 else 0
    return lo, max(lo, hi)


@numba.njit(inline="always")
def _copy_run(dst, src, n):
    """Copy ``n`` floats between byte addresses with masked vector loads/stores."""
    for t in range(0, n, VW):
        v_store_n(dst + t * 4, v_load_n(src + t * 4, n - t), n - t)


@numba.njit(inline="always")
def _copy_run2(dst, src, n):
    """Copy every other float of ``src`` (stride 2) to ``n`` contiguous floats at ``dst``."""
    for t in range(0, n, VW):
        v_store_n(dst + t * 4, v_load2_n(src + t * 8, n - t), n - t)


@numba.njit(inline="always")
def _zero_run(dst, n):
    for t in range(0, n, VW):
        v_store_n(dst + t * 4, v_zero(), n - t)


@numba.njit(inline="always")
def _im2col(xa, xo, colp, kk, q0, q1, cin, h, w, ow_n, kh, kw, sh, sw, dh, dw, pt, pl):
    # Columns go straight into the GEMM core's packed-panel layout ``[panel, k,
    # NR]``, so the core reads them without repacking. The block is walked in
    # runs of pixels that share an output row and a panel: for each tap a run's
    # inputs are one contiguous span of an input row (stride 1), copied with
    # masked vector loads/stores, flanked by the zeros of the padding. This
    # beat a per-pixel gather by about 3x (the gather cannot vectorize).
    x = f32(xa, BIG)
    col = f32(colp, BIG)
    nq = q1 - q0
    npan = (nq + NR - 1) // NR
    pad = npan * NR - nq
    if pad:
        for k in range(kk):
            _zero_run(colp + (((npan - 1) * kk + k) * NR + NR - pad) * 4, pad)
    q = q0
    oh = q0 // ow_n
    ow0 = q0 - oh * ow_n
    while q < q1:
        rel = q - q0
        pn = rel // NR
        j0 = rel - pn * NR
        run = min(ow_n - ow0, q1 - q, NR - j0)
        dbase = pn * kk * NR + j0
        for ki in range(kh):
            ih = oh * sh - pt + ki * dh
            rowok = 0 <= ih < h
            for kj in range(kw):
                off = kj * dw - pl
                lo, hi = _span(off, sw, w, ow_n)
                a = min(max(lo, ow0), ow0 + run)
                b = max(min(hi, ow0 + run), a)
                if not rowok:
                    a = b = ow0
                for ci in range(cin):
                    d = dbase + ((ci * kh + ki) * kw + kj) * NR
                    src = xo + (ci * h + ih) * w + off
                    if a > ow0:
                        _zero_run(colp + d * 4, a - ow0)
                    if sw == 1:
                        _copy_run(colp + (d + a - ow0) * 4, xa + (src + a) * 4, b - a)
                    elif sw == 2:
                        _copy_run2(colp + (d + a - ow0) * 4, xa + (src + 2 * a) * 4, b - a)
                    else:
                        for ow in range(a, b):
                            col[d + ow - ow0] = x[src + ow * sw]
                    if ow0 + run > b:
                        _zero_run(colp + (d + b - ow0) * 4, ow0 + run - b)
        q += run
        ow0 += run
        if ow0 == ow_n:
            ow0 = 0
            oh += 1


@numba.njit(inline="always")
def _conv_geometry(p):
    """The ``_GEOMETRY`` ints past ``n`` of a ``CONV`` row, in order."""
    R = CONV
    return (p[R.c], p[R.in_h], p[R.in_w], p[R.cout], p[R.out_h], p[R.out_w], p[R.kh], p[R.kw], p[R.sh], p[R.sw],
            p[R.dh], p[R.dw], p[R.pad_t], p[R.pad_l])


@tile_kernel(CONV, scratch=_conv_scratch)
def f32_conv_gemm(p, tile, scratch):
    R = CONV
    n_c, h, w, cout, oh_n, ow_n, kh, kw, sh, sw, dh, dw, pt, pl = _conv_geometry(p)
    g_n, cout_g, cin_g, npan_t, ncob, npb = (p[R.groups], p[R.cout_g], p[R.cin_g], p[R.pix_panels], p[R.n_cob],
                                             p[R.n_pb])
    direct, pb = p[R.source], p[R.pix_block]
    epa = slot_address(p, R.ep)
    xa, ya, ra = p[R.x], p[R.y], p[R.res]
    npix = oh_n * ow_n
    kk = cin_g * kh * kw
    pb_i = tile % npb
    rest = tile // npb
    cob = rest % ncob
    rest //= ncob
    g = rest % g_n
    img = rest // g_n
    nblk = (cout_g + MR - 1) // MR
    rb0 = cob * nblk // ncob  # channel block cob: its share of the MR-row blocks, dealt evenly
    co0 = g * cout_g + rb0 * MR
    rows = min(cout_g, (cob + 1) * nblk // ncob * MR) - rb0 * MR
    # Pixel block pb_i: its share of the column panels, dealt evenly (engine.tiling.split_even).
    p0 = (pb_i * npan_t // npb) * NR
    pend = ((pb_i + 1) * npan_t // npb) * NR
    p1 = min(npix, pend)
    xo = (img * n_c + g * cin_g) * h * w
    yo = (img * cout + co0) * npix
    a = p[R.w] + (g * nblk + rb0) * kk * MR * 4
    bias = p[R.bias] + co0 * 4
    if direct == DIRECT:
        off = (yo + p0) * 4
        gemm_tile(a, 1, MR, kk * MR, rows, xa + (xo + p0) * 4, npix, 0, p1 - p0, kk, ya + off, npix,
                  scratch, epa, bias, 1, 0, ra + off, False)
    elif direct == GRID or direct == GRID_COLS:
        # Implicit GEMM on the zero-padded input: B row (ci, ki, kj) is the padded
        # planes shifted by a table offset (or those rows packed by f32_pack_cols);
        # C is the output on the padded grid.
        wp, pstride, to_image = p[R.wq], p[R.plane_stride], p[R.to_image]
        ngrid = (oh_n - 1) * wp + ow_n
        if direct == GRID:
            b, ldb, bpk = xa + ((img * n_c + g * cin_g) * pstride + p0) * 4, p[R.koffs], -1
        else:
            b, ldb, bpk = xa + ((img * g_n + g) * ((ngrid + NR - 1) // NR) + p0 // NR) * kk * NR * 4, NR, kk * NR
        nc = min(ngrid, pend) - p0
        if to_image and wp == ow_n:  # a grid without extra columns is the image: plain stores
            off = (yo + p0) * 4
            gemm_tile(a, 1, MR, kk * MR, rows, b, ldb, bpk, nc, kk, ya + off, npix, scratch, epa, bias, 1, 0,
                      ra + off, False)
        elif to_image:  # straight to the image, the epilogue in registers
            gemm_tile(a, 1, MR, kk * MR, rows, b, ldb, bpk, nc, kk, ya + yo * 4, npix, scratch, epa, bias, 1, 0,
                      ra + yo * 4, False, wp, wp - ow_n, p0)
        else:  # onto the grid with a plain epilogue; f32_grid_out applies the real one
            off = ((img * cout + co0) * ngrid + p0) * 4
            gemm_tile(a, 1, MR, kk * MR, rows, b, ldb, bpk, nc, kk, ya + off, ngrid, scratch, epa, bias, 1, 0,
                      ya + off, False)
    elif direct == FROM_COLS:
        npan = (npix + NR - 1) // NR
        cols = xa + ((img * g_n + g) * npan + p0 // NR) * kk * NR * 4
        off = (yo + p0) * 4
        gemm_tile(a, 1, MR, kk * MR, rows, cols, NR, kk * NR, p1 - p0, kk, ya + off, npix,
                  scratch, epa, bias, 1, 0, ra + off, False)
    else:
        colp = scratch + GEMM_SCRATCH * 4  # after the GEMM core's own scratch
        for q0 in range(p0, p1, pb):
            q1 = min(p1, q0 + pb)
            _im2col(xa, xo, colp, kk, q0, q1, cin_g, h, w, ow_n, kh, kw, sh, sw, dh, dw, pt, pl)
            off = (yo + q0) * 4
            gemm_tile(a, 1, MR, kk * MR, rows, colp, NR, kk * NR, q1 - q0, kk, ya + off, npix,
                      scratch, epa, bias, 1, 0, ra + off, False)
    return 0


def _conv_maxpool_scratch(a):
    return conv_maxpool_scratch(a["cout"], a["band_rows"], a["wq"]) * 4


@tile_kernel(CONV_MAXPOOL, scratch=_conv_maxpool_scratch)
def f32_conv_maxpool(p, tile, scratch):
    R = CONV_MAXPOOL
    n_c, cout, oh_n, ow_n, wq, pstride, kk = (p[R.c], p[R.cout], p[R.out_h], p[R.out_w], p[R.wq],
                                              p[R.plane_stride], p[R.k])
    kh, kw, sh, sw, ph, pw = p[R.pool_kh], p[R.pool_kw], p[R.pool_sh], p[R.pool_sw], p[R.pool_pad_t], p[R.pool_pad_l]
    poh, pow_n, per, band_rows, nt = p[R.pool_oh], p[R.pool_ow], p[R.rows_per_tile], p[R.band_rows], \
        p[R.tiles_per_image]
    img = tile // nt
    pr0 = (tile - img * nt) * per
    pr1 = min(poh, pr0 + per)
    # The conv rows the pooled rows [pr0, pr1) read, computed into a band of scratch.
    cr0 = max(0, pr0 * sh - ph)
    cr1 = min(oh_n, (pr1 - 1) * sh - ph + kh)
    # The band keeps the grid's rows, extra columns and all: plain stores
    # instead of the two masked stores per vector of a GRID_MAP, the pool skipping them.
    band = scratch + GEMM_SCRATCH * 4
    ldb_band = band_rows * wq
    b = p[R.x] + (img * n_c * pstride + cr0 * wq) * 4
    gemm_tile(p[R.w], 1, MR, kk * MR, cout, b, p[R.koffs], -1, (cr1 - cr0 - 1) * wq + ow_n, kk, band, ldb_band,
              scratch, slot_address(p, R.ep), p[R.bias], 1, 0, band, False)
    # Max-pool each channel's band: pooled row pr0 + r reads band rows from (pr0 + r)*sh - ph - cr0.
    top = cr0 - (pr0 * sh - ph)  # window rows above the band (the pool's own top padding): >= 0
    for ch in range(cout):
        maxpool_rows(band + ch * ldb_band * 4, cr1 - cr0, ow_n, wq, p[R.y] + ((img * cout + ch) * poh + pr0) * pow_n * 4,
                     pr1 - pr0, pow_n, kh, kw, sh, sw, top, pw)
    return 0


def conv_maxpool_scratch(cout, band_rows, wq):
    """Scratch floats of ``f32_conv_maxpool``: the GEMM core's and a band of conv rows on the grid (``wq`` wide)."""
    return GEMM_SCRATCH + cout * band_rows * wq


def _pack_pixels_scratch(a):
    return (a["out_h"] * a["out_w"] + NR) * 4


@tile_kernel(PACK_PIXELS, scratch=_pack_pixels_scratch)
def f32_pack_pixels(p, tile, scratch):
    R = PACK_PIXELS
    kk, oh_n, ow_n, wq, igs, per, nt = (p[R.k], p[R.out_h], p[R.out_w], p[R.wq], p[R.ig_stride], p[R.rows_per_tile],
                                        p[R.n_row_tiles])
    npix = oh_n * ow_n
    npan = (npix + NR - 1) // NR
    ig = tile // nt
    k0 = (tile - ig * nt) * per
    tab = i64(p[R.koffs], kk)
    for k in range(k0, min(kk, k0 + per)):
        # Row k of B for the image's pixels: the grid row without its extra columns, then in panels.
        src = p[R.x] + (ig * igs + tab[k]) * 4
        for r in range(oh_n):
            for o in range(0, ow_n, VW):
                v_store_n(scratch + (r * ow_n + o) * 4, v_load_n(src + (r * wq + o) * 4, ow_n - o), ow_n - o)
        dst = p[R.cols] + ((ig * npan) * kk + k) * NR * 4
        for jp in range(npan):
            for h in range(0, NR, VW):
                v_store(dst + (jp * kk * NR + h) * 4, v_load_n(scratch + (jp * NR + h) * 4, npix - jp * NR - h))
    return 0


@tile_kernel(PACK_COLS)
def f32_pack_cols(p, tile, scratch):
    R = PACK_COLS
    ncols, kk, ldb, igs, per, nt = (p[R.ncols], p[R.k], p[R.ldb], p[R.ig_stride], p[R.panels_per_tile],
                                    p[R.n_panel_tiles])
    npan = (ncols + NR - 1) // NR
    ig = tile // nt
    lo = (tile - ig * nt) * per
    j0 = lo * NR
    pack_panels(p[R.x] + (ig * igs + j0) * 4, ldb, p[R.koffs] if ldb == 0 else 0, 0, kk, min(per * NR, ncols - j0),
                p[R.cols] + (ig * npan + lo) * kk * NR * 4, kk * NR * 4)
    return 0


@tile_kernel(PAD_PLANES, reads_in_bounds=True)
def f32_pad_planes(p, tile, scratch):
    R = PAD_PLANES
    planes, h, w, hq, wq = p[R.planes], p[R.in_h], p[R.in_w], p[R.hq], p[R.wq]
    pt, pl, per, slack = p[R.pad_t], p[R.pad_l], p[R.planes_per_tile], p[R.slack]
    sh, sw, ph_r, ph_c = p[R.sh], p[R.sw], p[R.row_phases], p[R.col_phases]
    pq = hq * wq
    hi = min(planes, tile * per + per)
    for pn in range(tile * per, hi):
        for a in range(ph_r):
            for bc in range(ph_c):
                base = p[R.xp] + ((pn * ph_r + a) * ph_c + bc) * pq * 4
                off = bc - pl
                lo, end = _span(off, sw, w, wq)
                for r in range(hq):
                    dst = base + r * wq * 4
                    ih = r * sh + a - pt
                    if 0 <= ih < h and lo < end:
                        src = p[R.x] + ((pn * h + ih) * w + lo * sw + off) * 4
                        _zero_run(dst, lo)
                        if sw == 1:
                            _copy_run(dst + lo * 4, src, end - lo)
                        else:
                            _copy_run2(dst + lo * 4, src, end - lo)
                        _zero_run(dst + end * 4, wq - end)
                    else:
                        _zero_run(dst, wq)
    if hi == planes:  # the tail past the last plane, which the last grid columns read
        _zero_run(p[R.xp] + planes * ph_r * ph_c * pq * 4, slack)
    return 0


@tile_kernel(GRID_OUT)
def f32_grid_out(p, tile, scratch):
    R = GRID_OUT
    n_img, cout, oh_n, ow_n, wp, per = p[R.n], p[R.cout], p[R.out_h], p[R.out_w], p[R.wq], p[R.planes_per_tile]
    ngrid = (oh_n - 1) * wp + ow_n
    bias = f32(p[R.bias], BIG)
    epa = slot_address(p, R.ep)
    y = f32(p[R.y], BIG)
    act = ep_int(epa, EPILOGUE.act)
    has_bias, has_res = ep_int(epa, EPILOGUE.has_c) != 0, ep_int(epa, EPILOGUE.has_res) != 0
    aa, ab = ep_float(epa, EPILOGUE.act_alpha), ep_float(epa, EPILOGUE.act_beta)
    vec_act = act == RELU or act == CLIP or act == IDENTITY
    lo_v = v_splat(aa)
    hi_v = v_splat(ab)
    npix = oh_n * ow_n
    for plane in range(tile * per, min(n_img * cout, tile * per + per)):
        co = plane % cout
        b_v = v_splat(bias[co] if has_bias else np.float32(0))
        for oh in range(oh_n):
            src = p[R.grid] + (plane * ngrid + oh * wp) * 4
            at = (plane * npix + oh * ow_n) * 4
            for o in range(0, ow_n, VW):
                v = v_add(v_load_n(src + o * 4, ow_n - o), b_v)
                _dw_out(p[R.y], at + o * 4, v, ow_n - o, p[R.res], has_res, act if vec_act else IDENTITY, lo_v, hi_v)
        if not vec_act:
            for q in range(plane * npix, plane * npix + npix):
                y[q] = apply_activation(act, y[q], aa, ab)
    return 0


@tile_kernel(IM2COL_ROW)
def f32_im2col(p, tile, scratch):
    R = IM2COL_ROW
    n_c, h, w, oh_n, ow_n = p[R.c], p[R.in_h], p[R.in_w], p[R.out_h], p[R.out_w]
    kh, kw, sh, sw, dh, dw, pt, pl = p[R.kh], p[R.kw], p[R.sh], p[R.sw], p[R.dh], p[R.dw], p[R.pad_t], p[R.pad_l]
    g_n, cin_g, ppt, nt = p[R.groups], p[R.cin_g], p[R.pix_per_tile], p[R.n_pix_tiles]
    npix = oh_n * ow_n
    kk = cin_g * kh * kw
    npan = (npix + NR - 1) // NR
    ig = tile // nt
    q0 = (tile - ig * nt) * ppt
    q1 = min(npix, q0 + ppt)
    img = ig // g_n
    g = ig - img * g_n
    xo = (img * n_c + g * cin_g) * h * w
    colp = p[R.cols] + (ig * npan + q0 // NR) * kk * NR * 4
    _im2col(p[R.x], xo, colp, kk, q0, q1, cin_g, h, w, ow_n, kh, kw, sh, sw, dh, dw, pt, pl)
    return 0


@numba.njit(inline="always")
def _dw_tap(src, sw):
    return v_load(src) if sw == 1 else v_load2_n(src, VW)


@numba.njit(inline="always")
def _dw_out(ya, at, v, n, resa, has_res, act, lo_v, hi_v):
    if has_res:
        v = v_add(v, v_load_n(resa + at, n))
    if act == RELU:
        v = v_clamp_below(v, v_zero())
    elif act == CLIP:
        v = v_clamp_above(v_clamp_below(v, lo_v), hi_v)
    v_store_n(ya + at, v, n)


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
        y[yo + q] = apply_activation(act, v, aa, ab)


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
    epa = slot_address(p, R.ep)
    has_bias = ep_int(epa, EPILOGUE.has_c) != 0
    has_res = ep_int(epa, EPILOGUE.has_res) != 0
    act = ep_int(epa, EPILOGUE.act)
    aa, ab = ep_float(epa, EPILOGUE.act_alpha), ep_float(epa, EPILOGUE.act_beta)
    # Relu and Clip run on the vector; any other activation in a pass over the plane.
    vec_act = act == RELU or act == CLIP or act == IDENTITY
    lo = tile * cpt
    hi = min(n_img * cout, lo + cpt)
    if sw <= 2:
        hp, wp, nf, _ = dw_pad_shape(h, w, oh_n, ow_n, kh, kw, sh, sw, dh, dw, pt, pl)
        for t in range(0, nf, VW):
            v_store_n(scratch + t * 4, v_zero(), nf - t)
    for plane in range(lo, hi):
        img = plane // cout
        co = plane - img * cout
        xo = (img * n_c + co // mult) * h * w
        bv = bias[co] if has_bias else np.float32(0)
        if sw <= 2:
            _dw_padded(p[R.x], xo, wt, co * kh * kw, p[R.y], plane * npix, p[R.res], scratch, scratch + nf * 4, h, w,
                       wp, oh_n, ow_n, kh, kw, sh, sw, dh, dw, pt, pl, bv, act if vec_act else IDENTITY, aa, ab,
                       has_res)
            if not vec_act:
                for q in range(plane * npix, plane * npix + npix):
                    y[q] = apply_activation(act, y[q], aa, ab)
        else:
            _dw_plane(x, xo, wt, co * kh * kw, y, plane * npix, h, w, oh_n, ow_n, kh, kw, sh, sw, dh, dw, pt, pl)
            _dw_epilogue(y, plane * npix, f32(p[R.res], BIG), bv, npix, act, aa, ab, has_res)
    return 0
