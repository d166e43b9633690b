"""FP32 convolution kernels (NCHW) on the GEMM core: implicit GEMM, im2col, 1x1, and conv + max pool.

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
GRID / GRID_COLS are implicit GEMM on the padded planes of
``f32_pad_planes``: output pixel ``(oh, ow)`` reads tap ``(ki, kj)`` at
``(oh + ki*dh//sh, ow + kj*dw//sw)`` of one phase plane, so ``B``'s row for
tap ``(ci, ki, kj)`` is the planes shifted by ``koffs[tap]`` and every column
is a pixel of the grid ``oh*wq + ow``. GRID_PAD is GRID on planes the tile
pads itself, into scratch after the core's own (``grid_pad_floats``): one
image-group's, when a tile is a whole image-group (a grouped conv's few input
channels), so no padding pass runs. With ``to_image`` the core stores each
grid vector straight into the image rows it covers (the epilogue in
registers); otherwise ``y`` is the grid with its ``wq - out_w`` extra columns
and ``f32_grid_out`` (row ``GRID_OUT``) drops them while applying bias,
residual and activation.

``f32_conv_maxpool`` (row ``CONV_MAXPOOL``): a GRID convolution followed by a
max pool; tile = (image, band of pooled rows). A tile computes the conv rows
its windows read (all output channels, epilogue in registers) into a band of
scratch ``wq`` wide and pools them there, so the conv output never goes to
memory; neighbouring tiles recompute the ``pool_kh - pool_sh`` rows they
share. Group 1 and a register epilogue only.

``f32_conv_pixel_rows`` (row ``CONV``): a plain 1x1 conv of one group, run
with the pixels as the GEMM's rows and the output channels along the
vectors: a 7x7 plane's 49 pixels are 7 register blocks of ``pix_block`` = 7
rows instead of 4 vectors of 16 lanes (64 for 49), and the input is read in
place by the micro-kernel's broadcasts (row stride 1, depth stride the
plane) instead of being packed, which deep convs with few output channels
repay. ``w`` is ``W`` transposed in ``NR``-column panels
(``gemm.pack_b``), ``pix_panels`` of them; the units are (panel, chunk of
the plane's pixels: ``pix_chunks`` of at most ``PIXEL_CHUNK``, in whole
register blocks), and tile = (image, run of units dealt evenly over
``n_cob``). Each unit's ``[pixels][NR]`` block is computed in scratch over
the depth (in equal slices of at most ``PIXEL_ROWS_KC``), transposed into
the image, then bias, residual and activation run over its rows of the
planes in cache. A 3x3 (or strided) conv on a small plane arrives here as
the 1x1 conv over its im2col matrix (``tilerun.ops.conv_paths.as_1x1``).

Not here: the kernels that pack ``B`` ahead of the GEMM (``f32_pad_planes``,
``f32_pack_pixels``, ``f32_pack_cols``, ``f32_im2col``: ``kernels.conv_pack``),
depthwise convolution (``kernels.depthwise``, on row ``CONV`` and
``_dw_out``), 3-D convolution.
"""
import numba
import numpy as np

from .abi import f32, slot_address
from .contract import declare_row, tile_kernel
from .conv_pack import BIG, _GEOMETRY, _im2col, _zero_run, pad_plane
from .elementwise import ACT_RUN_MIN, CLIP, HARD_SWISH, IDENTITY, LEAKY_RELU, RELU, SIGMOID, SILU, activation_run
from .gemm import EPILOGUE, LOAD, MR, NR, ep_fields, gemm_tile, micro_7rows, micro_8rows, scratch_floats
from .pool2d import maxpool_rows
from .simd import (VW, v_add, v_clamp_above, v_clamp_below, v_fma, v_load, v_load_n, v_mul, v_splat, v_store,
                   v_store_n, v_transpose_block, v_zero)
from .vact import v_sigmoid4, v_silu4

GEMM_SCRATCH = scratch_floats()

IM2COL, DIRECT, FROM_COLS, GRID, GRID_COLS, GRID_PAD = 0, 1, 2, 3, 4, 5  # where f32_conv_gemm's B comes from

CONV = declare_row("CONV", inputs=("x", "w", "bias?", "res?", "koffs?"), outputs=("y",),
                   ints=_GEOMETRY + ("groups", "cout_g", "cin_g", "co_per_tile", "pix_panels", "n_cob", "n_pb",
                                     "source", "pix_block", "pix_chunks", "hq", "wq", "plane_stride", "to_image"),
                   structs={"ep": EPILOGUE})
CONV_MAXPOOL = declare_row("CONV_MAXPOOL", inputs=("x", "w", "bias?", "koffs"), outputs=("y",),
                           ints=("n", "c", "cout", "out_h", "out_w", "wq", "plane_stride", "k", "pool_kh",
                                 "pool_kw", "pool_sh", "pool_sw", "pool_pad_t", "pool_pad_l", "pool_oh", "pool_ow",
                                 "rows_per_tile", "band_rows", "tiles_per_image"),
                           structs={"ep": EPILOGUE})
GRID_OUT = declare_row("GRID_OUT", inputs=("grid", "bias?", "res?"), outputs=("y",),
                       ints=("n", "cout", "out_h", "out_w", "wq", "planes_per_tile"), structs={"ep": EPILOGUE})


def _conv_scratch(a):
    kk = a["cin_g"] * a["kh"] * a["kw"]
    extra = kk * a["pix_block"] if a["source"] == IM2COL else 0
    if a["source"] == GRID_PAD:
        extra = grid_pad_floats(a["cin_g"], a["plane_stride"], a["wq"])
    return (scratch_floats(kk) + extra) * 4


def grid_pad_floats(cin_g, plane_stride, wq):
    """Scratch floats of one group's padded planes (GRID_PAD), with the tail the last grid panel reads past them."""
    return cin_g * plane_stride + 2 * NR + wq


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
    elif direct == GRID or direct == GRID_COLS or direct == GRID_PAD:
        # Implicit GEMM on the zero-padded input: B row (ci, ki, kj) is the padded
        # planes shifted by a table offset (or those rows packed by f32_pack_cols);
        # C is the output on the padded grid.
        wp, pstride, to_image = p[R.wq], p[R.plane_stride], p[R.to_image]
        ngrid = (oh_n - 1) * wp + ow_n
        if direct == GRID_PAD:
            # The tile is the whole image-group: it pads the group's planes into scratch itself.
            planes = scratch + GEMM_SCRATCH * 4
            hq = p[R.hq]
            ph_r = sh if kh > 1 else 1  # GridGeometry.of's phases
            for ci in range(cin_g):
                pad_plane(xa + (xo + ci * h * w) * 4, planes + ci * pstride * 4, h, w, hq, wp, pt, pl, sh, sw, ph_r,
                          pstride // (ph_r * hq * wp))
            _zero_run(planes + cin_g * pstride * 4, 2 * NR + wp)
            b, ldb, bpk = planes + p0 * 4, p[R.koffs], -1
        elif direct == GRID:
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


# Depth of one slice of f32_conv_pixel_rows' weight panel: NR columns of it fill 256 KiB of L2.
PIXEL_ROWS_KC = 2048
PIXEL_CHUNK = 448  # pixels f32_conv_pixel_rows computes into scratch at a time: a multiple of 7, 8 and VW


@numba.njit(inline="always")
def _bias_act_rows(blk, rows, bias, nv, act, lo_v, hi_v):
    """In place on ``rows`` rows of ``NR`` floats at ``blk``: add the ``nv`` biases at ``bias`` (0: none) to each
    row's channels and apply register activation ``act``, two rows (four vectors) at a time."""
    b0 = v_load_n(bias, nv) if bias != 0 else v_zero()
    b1 = v_load_n(bias + VW * 4, nv - VW) if bias != 0 else v_zero()
    for i in range(0, rows, 2):
        r0 = blk + i * NR * 4
        r1 = r0 + NR * 4 if i + 1 < rows else r0  # an odd last row twice: the same values stored twice
        a, b, c, d = (v_add(v_load(r0), b0), v_add(v_load(r0 + VW * 4), b1), v_add(v_load(r1), b0),
                      v_add(v_load(r1 + VW * 4), b1))
        if act != IDENTITY:
            a, b, c, d = v_act4(a, b, c, d, act, lo_v, hi_v)
        v_store(r0, a)
        v_store(r0 + VW * 4, b)
        v_store(r1, c)
        v_store(r1 + VW * 4, d)


def _pixel_rows_scratch(a):
    return min(-(-a["out_h"] * a["out_w"] // a["pix_block"]) * a["pix_block"], PIXEL_CHUNK) * NR * 4


@tile_kernel(CONV, scratch=_pixel_rows_scratch)
def f32_conv_pixel_rows(p, tile, scratch):
    R = CONV
    n_c, h, w, cout, oh_n, ow_n, kh, kw, sh, sw, dh, dw, pt, pl = _conv_geometry(p)
    npan, ncob, rb, nch = p[R.pix_panels], p[R.n_cob], p[R.pix_block], p[R.pix_chunks]
    npix = oh_n * ow_n
    chunk = ((npix + nch - 1) // nch + rb - 1) // rb * rb
    units = npan * nch
    img = tile // ncob
    cob = tile - img * ncob
    xa = p[R.x] + img * n_c * npix * 4
    epa = slot_address(p, R.ep)
    has_bias, has_res, act, aa, ab = ep_fields(epa)
    vec_act = dw_out_applies(act)
    lo_v = v_splat(aa)
    hi_v = v_splat(ab)
    bias = f32(p[R.bias], BIG)
    y = f32(p[R.y], BIG)
    pre = not has_res and (act == IDENTITY or register_act(act))
    for u in range(cob * units // ncob, (cob + 1) * units // ncob):  # (channel panel, pixel chunk) units
        jp = u // nch
        q0 = (u - jp * nch) * chunk
        q1 = min(npix, q0 + chunk)
        co0 = jp * NR
        nv = min(NR, cout - co0)
        wp = p[R.w] + jp * n_c * NR * 4
        # The chunk's [pixels][NR output channels] block: rb pixels (GEMM rows) at a time, over equal slices of at
        # most PIXEL_ROWS_KC of the depth (a deeper panel, whole, would stream from L3 once per row block).
        nsl = (n_c + PIXEL_ROWS_KC - 1) // PIXEL_ROWS_KC
        kc = (n_c + nsl - 1) // nsl
        for k0 in range(0, n_c, kc):
            kn = min(kc, n_c - k0)
            fl = LOAD if k0 > 0 else 0
            # The weights this tile reads next (the next slice, or the next unit's panel: both lie right after
            # this slice) stream from memory: the first two row blocks hint them into L2, a line a k-step.
            more = k0 + kn < n_c or (u + 1 < (cob + 1) * units // ncob and (u + 1) // nch != jp)
            nxt = wp + (k0 + kn) * NR * 4
            for i0 in range(q0, q1, rb):
                cb = scratch + (i0 - q0) * NR * 4
                ak = xa + (i0 + k0 * npix) * 4
                bk = wp + k0 * NR * 4
                j = (i0 - q0) // rb
                pf = nxt + j * kn * 64 if more and j < 2 else bk
                if rb == 7:
                    micro_7rows(ak, 1, npix, bk, NR, cb, NR, kn, min(rb, q1 - i0), nv, epa, cb, cb, fl, pf)
                else:
                    micro_8rows(ak, 1, npix, bk, NR, cb, NR, kn, min(rb, q1 - i0), nv, epa, cb, cb, fl, pf)
        if pre:  # bias and activation on the block, channels along the vectors, before it goes to the planes
            _bias_act_rows(scratch, q1 - q0, p[R.bias] + co0 * 4 if has_bias else 0, nv, act, lo_v, hi_v)
        at0 = (img * cout + co0) * npix
        for c in range(0, nv, VW):
            nc = min(VW, nv - c)
            for b0 in range(q0, q1, VW):
                nq = min(VW, q1 - b0)
                v_transpose_block(scratch + ((b0 - q0) * NR + c) * 4, NR * 4, nq, nc,
                                  p[R.y] + (at0 + c * npix + b0) * 4, npix * 4, nc, nq)
        if pre:
            continue
        # Whole planes are consecutive outputs: their activation runs in passes of at least ACT_RUN_MIN.
        run0 = (img * cout + co0) * npix + q0
        for co in range(co0, co0 + nv):
            b_v = v_splat(bias[co] if has_bias else np.float32(0))
            at = (img * cout + co) * npix
            _out_run(p[R.y] + (at + q0) * 4, p[R.y], (at + q0) * 4, q1 - q0, b_v, p[R.res], has_res,
                     act if vec_act else IDENTITY, lo_v, hi_v)
            if not vec_act and (q1 - q0 < npix or at + q1 - run0 >= ACT_RUN_MIN or co == co0 + nv - 1):
                activation_run(act, y, run0, at + q1, aa, ab)
                run0 = at + npix + q0
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


@tile_kernel(GRID_OUT)
def f32_grid_out(p, tile, scratch):
    R = GRID_OUT
    n_img, cout, oh_n, ow_n, wp, per = p[R.n], p[R.cout], p[R.out_h], p[R.out_w], p[R.wq], p[R.planes_per_tile]
    ngrid = (oh_n - 1) * wp + ow_n
    bias = f32(p[R.bias], BIG)
    epa = slot_address(p, R.ep)
    y = f32(p[R.y], BIG)
    has_bias, has_res, act, aa, ab = ep_fields(epa)
    vec_act = dw_out_applies(act)
    lo_v = v_splat(aa)
    hi_v = v_splat(ab)
    npix = oh_n * ow_n
    hi = min(n_img * cout, tile * per + per)
    run0 = tile * per * npix  # outputs still waiting for a pass of the activation (runs of ACT_RUN_MIN)
    for plane in range(tile * per, hi):
        co = plane % cout
        b_v = v_splat(bias[co] if has_bias else np.float32(0))
        for oh in range(oh_n):
            _out_run(p[R.grid] + (plane * ngrid + oh * wp) * 4, p[R.y], (plane * npix + oh * ow_n) * 4, ow_n, b_v,
                     p[R.res], has_res, act if vec_act else IDENTITY, lo_v, hi_v)
        if not vec_act and ((plane + 1) * npix - run0 >= ACT_RUN_MIN or plane == hi - 1):
            activation_run(act, y, run0, (plane + 1) * npix, aa, ab)
            run0 = (plane + 1) * npix
    return 0


# The activations _dw_out applies on the vector (others run in a pass over the output).
DW_OUT_ACTIVATIONS = (IDENTITY, RELU, CLIP, HARD_SWISH)


@numba.njit(inline="always")
def dw_out_applies(act):
    """Whether ``_dw_out`` applies activation ``act`` on the vector (``DW_OUT_ACTIVATIONS``); else a pass does."""
    return act == RELU or act == CLIP or act == IDENTITY or act == HARD_SWISH


@numba.njit(inline="always")
def _out_run(src, ya, at, n, b_v, resa, has_res, act, lo_v, hi_v):
    """``n`` floats from ``src`` plus the bias vector ``b_v`` through ``_dw_out`` to byte offset ``at`` of ``ya``
    (``src`` may be those same floats)."""
    for o in range(0, n, VW):
        _dw_out(ya, at + o * 4, v_add(v_load_n(src + o * 4, n - o), b_v), n - o, resa, has_res, act, lo_v, hi_v)


@numba.njit(inline="always")
def v_act(v, act, lo_v, hi_v):
    """Relu, Clip (``lo_v``, ``hi_v``), LeakyRelu (slope ``lo_v``) or HardSwish of one vector, NaN kept; other
    codes leave it."""
    if act == RELU:
        v = v_clamp_below(v, v_zero())
    elif act == CLIP:
        v = v_clamp_above(v_clamp_below(v, lo_v), hi_v)
    elif act == LEAKY_RELU:
        v = v_add(v_clamp_below(v, v_zero()), v_mul(v_clamp_above(v, v_zero()), lo_v))
    elif act == HARD_SWISH:
        gate = v_fma(v, v_splat(np.float32(1.0 / 6.0)), v_splat(np.float32(0.5)))
        v = v_mul(v, v_clamp_above(v_clamp_below(gate, v_zero()), v_splat(np.float32(1))))
    return v


@numba.njit(inline="always")
def register_act(act):
    """Whether ``v_act4`` applies activation ``act`` (every code but the pass-only ones: Tanh, Gelu, ...)."""
    return act == RELU or act == CLIP or act == LEAKY_RELU or act == HARD_SWISH or act == SILU or act == SIGMOID


@numba.njit(inline="always")
def v_act4(a, b, c, d, act, lo_v, hi_v):
    """``v_act`` of four vectors, or SiLU / Sigmoid (``kernels.vact``, four vectors a call)."""
    if act == SILU:
        return v_silu4(a, b, c, d)
    if act == SIGMOID:
        return v_sigmoid4(a, b, c, d)
    return v_act(a, act, lo_v, hi_v), v_act(b, act, lo_v, hi_v), v_act(c, act, lo_v, hi_v), v_act(d, act, lo_v, hi_v)


# The vector epilogue of a grid, depthwise or Winograd output run (kernels.depthwise and kernels.winograd import it).
@numba.njit(inline="always")
def _dw_out(ya, at, v, n, resa, has_res, act, lo_v, hi_v):
    if has_res:
        v = v_add(v, v_load_n(resa + at, n))
    if act != IDENTITY and dw_out_applies(act):
        v = v_act(v, act, lo_v, hi_v)
    v_store_n(ya + at, v, n)
