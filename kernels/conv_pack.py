"""Packing kernels that lay a convolution's input out for the GEMM core: padded planes, im2col, columns.

``f32_pad_planes`` (row ``PAD_PLANES``, reads only inside its input) copies
the input with its zero padding into ``[N*C, phases, hq, wq]`` planes, the
``B`` of the GRID implicit GEMM (``kernels.conv``); a stride-2 axis is split
into its even and odd phases (padded row ``2i + a`` is row ``i`` of phase
``a``). ``f32_pack_pixels`` (``PACK_PIXELS``) writes FROM_COLS columns of the
image's pixels from the padded planes (the grid rows without their extra
columns), or with ``plain`` the ``[k][pixels]`` matrix that
``f32_conv_pixel_rows`` reads as the input of a 1x1 conv; ``f32_pack_cols``
(``PACK_COLS``) packs image-group ``ig``'s ``B``, starting ``ig *
ig_stride`` floats into ``x``, row ``k`` at ``k * ldb`` floats (``ldb > 0``)
or at ``koffs[k]`` (``ldb == 0``); ``f32_im2col`` (``IM2COL_ROW``) builds
the im2col columns of a pixel block. Columns are in the GEMM core's
packed-panel layout ``[panel, k, NR]``. ``_im2col`` (also run
inside ``f32_conv_gemm``'s tiles), ``_span`` and the masked copy runs are
shared with ``kernels.conv`` and ``kernels.depthwise``. This module does not
choose a conv path or its tiles (``tilerun.ops.conv_paths`` and
``tilerun.ops.conv`` do).
"""
import numba

from .abi import f32, i64
from .contract import declare_row, tile_kernel
from .gemm import NR, pack_panels
from .simd import VW, v_load2_lanes, v_load2_n, v_load_lanes, v_load_n, v_store, v_store_n, v_zero

BIG = 1 << 40  # views are unchecked; the lowering guarantees every index is in range
_GEOMETRY = ("n", "c", "in_h", "in_w", "cout", "out_h", "out_w", "kh", "kw", "sh", "sw", "dh", "dw", "pad_t",
             "pad_l")
PACK_PIXELS = declare_row("PACK_PIXELS", inputs=("x", "koffs"), outputs=("cols",),
                          ints=("n_ig", "k", "out_h", "out_w", "wq", "ig_stride", "rows_per_tile", "n_row_tiles",
                                "plain"))
PACK_COLS = declare_row("PACK_COLS", inputs=("x", "koffs?"), outputs=("cols",),
                        ints=("n_ig", "ncols", "k", "ldb", "ig_stride", "panels_per_tile", "n_panel_tiles"))
PAD_PLANES = declare_row("PAD_PLANES", inputs=("x",), outputs=("xp",),
                         ints=("planes", "in_h", "in_w", "hq", "wq", "pad_t", "pad_l", "planes_per_tile", "slack",
                               "sh", "sw", "row_phases", "col_phases"))
IM2COL_ROW = declare_row("IM2COL_ROW", inputs=("x",), outputs=("cols",),
                         ints=tuple(g for g in _GEOMETRY if g != "cout") + ("groups", "cin_g", "pix_per_tile",
                                                                             "n_pix_tiles"))


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
    plain = p[R.plain]
    for k in range(k0, min(kk, k0 + per)):
        # Row k of B for the image's pixels: the grid row without its extra columns, then in panels
        # (or, ``plain``, straight to row k of a ``[k][pixels]`` matrix).
        src = p[R.x] + (ig * igs + tab[k]) * 4
        row = p[R.cols] + (ig * kk + k) * npix * 4 if plain else scratch
        for r in range(oh_n):
            for o in range(0, ow_n, VW):
                v_store_n(row + (r * ow_n + o) * 4, v_load_n(src + (r * wq + o) * 4, ow_n - o), ow_n - o)
        if plain:
            continue
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


@numba.njit(inline="always")
def pad_plane(src, dst, h, w, hq, wq, pt, pl, sh, sw, ph_r, ph_c):
    """One ``h x w`` input plane at byte address ``src`` into its ``ph_r x ph_c`` phase planes of ``hq x wq`` at
    ``dst``, zeros where the padding is (reads only inside the plane)."""
    pq = hq * wq
    for a in range(ph_r):
        for bc in range(ph_c):
            base = dst + (a * ph_c + bc) * pq * 4
            off = bc - pl
            lo, end = _span(off, sw, w, wq)
            for r in range(hq):
                row = base + r * wq * 4
                ih = r * sh + a - pt
                if not (0 <= ih < h and lo < end):
                    _zero_run(row, wq)
                elif wq <= VW:  # a short row is one masked read, zeros outside [lo, end), and one store
                    v = v_load_lanes(src + (ih * w + off) * 4, lo, end) if sw == 1 else \
                        v_load2_lanes(src + (ih * w + off) * 4, lo, end)
                    v_store_n(row, v, wq)
                else:
                    at = src + (ih * w + lo * sw + off) * 4
                    _zero_run(row, lo)
                    if sw == 1:
                        _copy_run(row + lo * 4, at, end - lo)
                    else:
                        _copy_run2(row + lo * 4, at, end - lo)
                    _zero_run(row + end * 4, wq - end)


@tile_kernel(PAD_PLANES, reads_in_bounds=True)
def f32_pad_planes(p, tile, scratch):
    R = PAD_PLANES
    planes, h, w, hq, wq = p[R.planes], p[R.in_h], p[R.in_w], p[R.hq], p[R.wq]
    pt, pl, per, slack = p[R.pad_t], p[R.pad_l], p[R.planes_per_tile], p[R.slack]
    sh, sw, ph_r, ph_c = p[R.sh], p[R.sw], p[R.row_phases], p[R.col_phases]
    stride = ph_r * ph_c * hq * wq
    hi = min(planes, tile * per + per)
    for pn in range(tile * per, hi):
        pad_plane(p[R.x] + pn * h * w * 4, p[R.xp] + pn * stride * 4, h, w, hq, wq, pt, pl, sh, sw, ph_r, ph_c)
    if hi == planes:  # the tail past the last plane, which the last grid columns read
        _zero_run(p[R.xp] + planes * stride * 4, slack)
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
