"""The fast 2-D pool on float32 NCHW tensors: ``f32_pool2d`` and ``maxpool_rows``.

``POOL2D`` (``f32_pool2d``): 2-D windows without dilation and with a column
stride of 1 or 2 (the CNN cases), ``op`` one of ``kernels.pool``'s kinds
(``MAX``, ``AVG_EXCL``, ``AVG_INCL``), a tile ``planes_per_tile`` planes. A
max pool reads each plane in place (``maxpool_rows``, shared with the conv
family's fused pool). An average copies each plane into a zero-bordered
buffer (the border filled once per tile), so every tap of up to four output
vectors is one plain vector load and an add in registers; its divisor is
separable (valid rows x valid columns) and applied as two reciprocals. Both
kernels read only inside ``x`` (masked loads where a row ends): a graph
input is read in place.
Averages need ``pool2d_scratch(...)`` floats of scratch. Not here: dilated
or 3-D windows and other strides (``kernels.pool``); choosing this path
(``engine/ops/pool.py``).
"""
import numba
import numpy as np

from .abi import f32
from .contract import declare_row, tile_kernel
from .pool import AVG_EXCL, AVG_INCL, MAX
from .reduce import select_max
from .simd import (VW, v_add, v_even, v_load, v_load2_n, v_load_n as _load_n, v_max, v_mul, v_next1, v_odd, v_splat,
                   v_store, v_store_n, v_transpose_block)

POOL2D = declare_row("POOL2D", inputs=("x",), outputs=("y",),
                     ints=("planes", "h", "w", "oh", "ow", "kh", "kw", "sh", "sw", "bh", "bw", "eh", "ew", "op",
                           "planes_per_tile"))


@numba.njit(cache=True)
def pool2d_scratch(H, W, OH, OW, kH, kW, sH, sW, bH, bW):
    """``(padded rows, padded row floats, scratch floats)`` of ``f32_pool2d``."""
    hp = max(H + bH, (OH - 1) * sH + kH)
    wp = max(W + bW, (OW - 1) * sW + kW)
    pad = hp * wp + 8 * VW + kW
    return hp, wp, pad + OW + VW


@numba.njit(inline="always")
def _fill(addr, v, n):
    for t in range(0, n, VW):
        v_store_n(addr + t * 4, v, n - t)


@numba.njit(inline="always")
def _tap(src, sw):
    return v_load(src) if sw == 1 else v_load2_n(src, VW)


@numba.njit(inline="always")
def _count(o, s, b, e, k, n, op):
    """Taps of window ``o`` that count for the average: inside the input, or the padded input (AVG_INCL)."""
    lo_lim, hi_lim = (0, n) if op != AVG_INCL else (-b, n + e)
    start = o * s - b
    return max(0, min(start + k, hi_lim) - max(start, lo_lim))


@numba.njit(inline="always")
def _avgpool2d(p, tile, scratch, op):
    planes, H, W, OH, OW = p[POOL2D.planes], p[POOL2D.h], p[POOL2D.w], p[POOL2D.oh], p[POOL2D.ow]
    kH, kW, sH, sW = p[POOL2D.kh], p[POOL2D.kw], p[POOL2D.sh], p[POOL2D.sw]
    bH, bW, eH, eW, per = p[POOL2D.bh], p[POOL2D.bw], p[POOL2D.eh], p[POOL2D.ew], p[POOL2D.planes_per_tile]
    hp, wp, nf = pool2d_scratch(H, W, OH, OW, kH, kW, sH, sW, bH, bW)
    padp = scratch
    invca = scratch + (nf - OW - VW) * 4
    invc = f32(invca, OW)
    init = np.float32(0)
    _fill(padp, v_splat(init), nf - OW - VW)
    for ow in range(OW):
        invc[ow] = np.float32(1) / np.float32(_count(ow, sW, bW, eW, kW, W, op))
    step = VW * sW * 4
    for pl in range(tile * per, min(planes, tile * per + per)):
        for ih in range(H):
            src = p[POOL2D.x] + (pl * H + ih) * W * 4
            dst = padp + ((ih + bH) * wp + bW) * 4
            for t in range(0, W, VW):
                v_store_n(dst + t * 4, _load_n(src + t * 4, W - t), W - t)
        for oh in range(OH):
            base = padp + oh * sH * wp * 4
            yr = p[POOL2D.y] + (pl * OH + oh) * OW * 4
            rinv = np.float32(1) / np.float32(_count(oh, sH, bH, eH, kH, H, op))
            for o in range(0, OW, 4 * VW):
                nvec = min(4, (OW - o + VW - 1) // VW)
                a0 = v_splat(init)
                a1 = a0
                a2 = a0
                a3 = a0
                for ki in range(kH):
                    rowp = base + (ki * wp + o * sW) * 4
                    for kj in range(kW):
                        src = rowp + kj * 4
                        a0 = v_add(a0, _tap(src, sW))
                        if nvec > 1:
                            a1 = v_add(a1, _tap(src + step, sW))
                            if nvec > 2:
                                a2 = v_add(a2, _tap(src + 2 * step, sW))
                                if nvec > 3:
                                    a3 = v_add(a3, _tap(src + 3 * step, sW))
                _out(yr, o, OW, a0, rinv, invca)
                if nvec > 1:
                    _out(yr, o + VW, OW, a1, rinv, invca)
                    if nvec > 2:
                        _out(yr, o + 2 * VW, OW, a2, rinv, invca)
                        if nvec > 3:
                            _out(yr, o + 3 * VW, OW, a3, rinv, invca)
    return 0


@numba.njit(nogil=True)
def maxpool_rows(x, h, w, ld, y, oh_n, ow_n, kh, kw, sh, sw, top, pw):
    """Max-pool the ``h x w`` plane at byte address ``x`` (rows ``ld >= w`` floats apart) into ``oh_n x ow_n`` at ``y``.

    Pooled row ``r`` reads rows ``r*sh - top + [0, kh)``, column ``c``
    columns ``c*sw - pw + [0, kw)``; taps outside the plane are padding.
    Columns whose taps are all inside run as vectors straight from the
    plane (nothing outside the plane is read); the few border columns tap by
    tap. ``sw`` is 1 or 2. Reads the plane in place, no padded copy.
    """
    xv = f32(x, h * ld)
    yv = f32(y, oh_n * ow_n)
    ninf = np.float32(-np.inf)
    c_lo = min(ow_n, (pw + sw - 1) // sw)
    lim = w - kw + pw
    c_hi = max(c_lo, min(ow_n, lim // sw + 1)) if lim >= 0 else c_lo
    for r in range(oh_n):
        r0 = r * sh - top
        k0 = max(0, -r0)
        k1 = min(kh, h - r0)
        yr = y + r * ow_n * 4
        c = c_lo
        if sw == 2 and kw == 3:
            # 3 taps at stride 2: the max down the window's rows of each input
            # vector once, then outputs from its even lanes, odd lanes, and even
            # lanes one on (the next vector's first lane, carried to the next
            # block). Loads stay inside the row (masked where it ends).
            at = x + ((r0 + k0) * ld + c * 2 - pw) * 4
            lo = _vmax_rows(at, ld, k1 - k0, min(VW, w - (c * 2 - pw)))  # a narrow row: only its own floats
            while c < c_hi:
                nv = min(VW, c_hi - c)
                if nv == VW:
                    hi = _vmax_rows(at + VW * 4, ld, k1 - k0, VW)
                    nxt = _vmax_rows(at + 2 * VW * 4, ld, k1 - k0, min(VW, w - (c * 2 - pw + 2 * VW)))
                else:  # the last outputs' 2 nv + 1 columns
                    lo = _vmax_rows(at, ld, k1 - k0, 2 * nv + 1)
                    hi = _vmax_rows(at + VW * 4, ld, k1 - k0, 2 * nv + 1 - VW)
                    nxt = v_splat(ninf)
                even = v_even(lo, hi)
                acc = v_max(v_max(v_max(v_splat(ninf), even), v_odd(lo, hi)), v_next1(even, nxt))
                v_store_n(yr + c * 4, acc, nv)
                lo = nxt
                at += 2 * VW * 4
                c += nv
        elif sw == 2 and r0 + k1 < h:
            # Stride 2, off the plane's last row: the max down the window's
            # rows first, on loads of vector pairs at even tap offsets (one
            # float past the taps is read, still in the plane), then one
            # deinterleave per tap instead of one per tap and row. A ragged
            # last vector masks its loads, so rows 13 or 27 outputs wide
            # stay on the vector path rather than going tap by tap.
            while c < c_hi:
                nv = min(VW, c_hi - c)
                acc = v_splat(ninf)
                for kj in range(0, kw, 2):
                    lo = v_splat(ninf)
                    hi = lo
                    at = x + ((r0 + k0) * ld + c * 2 - pw + kj) * 4
                    for _ in range(k0, k1):
                        if nv == VW:
                            lo = v_max(lo, v_load(at))
                            hi = v_max(hi, v_load(at + VW * 4))
                        else:
                            lo = v_max(lo, _load_n(at, 2 * nv))
                            hi = v_max(hi, _load_n(at + VW * 4, 2 * nv - VW))
                        at += ld * 4
                    acc = v_max(acc, v_even(lo, hi))
                    if kj + 1 < kw:
                        acc = v_max(acc, v_odd(lo, hi))
                v_store_n(yr + c * 4, acc, nv)
                c += nv
        for c in range(c, c_hi, VW):
            nv = min(VW, c_hi - c)
            acc = v_splat(ninf)
            for ki in range(k0, k1):
                rowp = x + ((r0 + ki) * ld + c * sw - pw) * 4
                for kj in range(kw):
                    src = rowp + kj * 4
                    acc = v_max(acc, _load_n(src, nv) if sw == 1 else v_load2_n(src, nv))
            v_store_n(yr + c * 4, acc, nv)
        for c in range(c_lo):
            yv[r * ow_n + c] = _max_col(xv, w, ld, r0, k0, k1, c * sw - pw, kw)
        for c in range(c_hi, ow_n):
            yv[r * ow_n + c] = _max_col(xv, w, ld, r0, k0, k1, c * sw - pw, kw)
    return 0


@numba.njit(inline="always")
def _vmax_rows(at, ld, rows, n):
    """The lane-wise max of the first ``n`` floats (masked loads) of ``rows`` rows from ``at``, ``ld`` floats
    apart; -inf where none."""
    acc = v_splat(np.float32(-np.inf))
    for _ in range(rows):
        acc = v_max(acc, _load_n(at, n))
        at += ld * 4
    return acc


@numba.njit(inline="always")
def _max_col(xv, w, ld, r0, k0, k1, col0, kw):
    """Max over rows ``r0 + [k0, k1)`` (``ld`` floats apart) and the columns ``col0 + [0, kw)`` inside ``[0, w)``."""
    m = np.float32(-np.inf)
    for ki in range(k0, k1):
        for col in range(max(0, col0), min(w, col0 + kw)):
            m = select_max(m, xv[(r0 + ki) * ld + col])
    return m


@numba.njit(inline="always")
def _out(yr, o, ow_n, v, rinv, invca):
    n = ow_n - o
    v_store_n(yr + o * 4, v_mul(v_mul(v, v_splat(rinv)), _load_n(invca + o * 4, n)), n)


def _pool2d_scratch_bytes(args):
    """Scratch of one ``f32_pool2d`` row: none for a max pool, the padded plane and divisors for an average."""
    if args["op"] == MAX:
        return 0
    return pool2d_scratch(args["h"], args["w"], args["oh"], args["ow"], args["kh"], args["kw"], args["sh"],
                          args["sw"], args["bh"], args["bw"])[2] * 4


@tile_kernel(POOL2D, reads_in_bounds=True, scratch=_pool2d_scratch_bytes)
def f32_pool2d(p, tile, scratch):
    op = p[POOL2D.op]
    if op == MAX:  # straight from the input, no padded copy
        planes, H, W, OH, OW = p[POOL2D.planes], p[POOL2D.h], p[POOL2D.w], p[POOL2D.oh], p[POOL2D.ow]
        per = p[POOL2D.planes_per_tile]
        for pl in range(tile * per, min(planes, tile * per + per)):
            maxpool_rows(p[POOL2D.x] + pl * H * W * 4, H, W, W, p[POOL2D.y] + pl * OH * OW * 4, OH, OW,
                         p[POOL2D.kh], p[POOL2D.kw], p[POOL2D.sh], p[POOL2D.sw], p[POOL2D.bh], p[POOL2D.bw])
        return 0
    if op == AVG_EXCL:
        return _avgpool2d(p, tile, scratch, AVG_EXCL)
    return _avgpool2d(p, tile, scratch, AVG_INCL)


def _pool_cv_scratch_bytes(args):
    """Scratch of one ``f32_pool2d_cv`` row: a channel block's input and output pixels, ``VW`` floats each, and
    the average's column reciprocals."""
    return ((args["h"] * args["w"] + args["oh"] * args["ow"]) * VW + args["ow"]) * 4


@tile_kernel(POOL2D, reads_in_bounds=True, scratch=_pool_cv_scratch_bytes)
def f32_pool2d_cv(p, tile, scratch):
    """``f32_pool2d`` on small planes, ``VW`` channels at a time along the vectors.

    A tile's planes (``planes_per_tile``, a multiple of ``VW`` but the last)
    are transposed ``VW`` at a time into ``[pixel][channel]`` in scratch, so a
    window's tap is one plain vector load at any stride, with no shuffles and
    no masks; the pooled pixels are transposed back into the planes. Window
    taps outside the input are left out (the average's divisor counts them
    for ``AVG_INCL``), so no padded copy is needed.
    """
    planes, H, W, OH, OW = p[POOL2D.planes], p[POOL2D.h], p[POOL2D.w], p[POOL2D.oh], p[POOL2D.ow]
    kH, kW, sH, sW = p[POOL2D.kh], p[POOL2D.kw], p[POOL2D.sh], p[POOL2D.sw]
    bH, bW, eH, eW, op, per = p[POOL2D.bh], p[POOL2D.bw], p[POOL2D.eh], p[POOL2D.ew], p[POOL2D.op], \
        p[POOL2D.planes_per_tile]
    hw, ohw = H * W, OH * OW
    xs = scratch
    ys = scratch + hw * VW * 4
    cinv = f32(ys + ohw * VW * 4, OW)  # the average's column reciprocals
    vb = VW * 4
    if op != MAX:
        for ow in range(OW):
            cinv[ow] = np.float32(1) / np.float32(_count(ow, sW, bW, eW, kW, W, op))
    for c0 in range(tile * per, min(planes, tile * per + per), VW):
        nc = min(VW, planes - c0)
        src = p[POOL2D.x] + c0 * hw * 4
        for q in range(0, hw, VW):
            v_transpose_block(src + q * 4, hw * 4, nc, min(VW, hw - q), xs + q * vb, vb, min(VW, hw - q), VW)
        for oh in range(OH):
            r0 = oh * sH - bH
            i0, i1 = max(0, r0), min(H, r0 + kH)
            rinv = v_splat(np.float32(1) / np.float32(_count(oh, sH, bH, eH, kH, H, op)))
            for ow in range(OW):
                q0 = ow * sW - bW
                j0, j1 = max(0, q0), min(W, q0 + kW)
                if op == MAX:
                    acc = v_splat(np.float32(-np.inf))
                    for i in range(i0, i1):
                        at = xs + (i * W + j0) * vb
                        for _ in range(j0, j1):
                            acc = v_max(acc, v_load(at))
                            at += vb
                else:
                    acc = v_splat(np.float32(0))
                    for i in range(i0, i1):
                        at = xs + (i * W + j0) * vb
                        for _ in range(j0, j1):
                            acc = v_add(acc, v_load(at))
                            at += vb
                    acc = v_mul(v_mul(acc, rinv), v_splat(cinv[ow]))  # as f32_pool2d: rows', then columns' reciprocal
                v_store(ys + (oh * OW + ow) * vb, acc)
        dst = p[POOL2D.y] + c0 * ohw * 4
        for q in range(0, ohw, VW):
            nq = min(VW, ohw - q)
            v_transpose_block(ys + q * vb, vb, nq, nc, dst + q * 4, ohw * 4, nc, nq)
    return 0
