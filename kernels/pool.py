"""Pooling kernels on float32 NCHW tensors: windowed max/average (1-D to 3-D) and global pools.

Rows, by kernel:

* ``POOL`` (``f32_maxpool``, ``f32_avgpool``, ``f32_avgpool_pad``, in
  ``POOL_KERNELS`` by ``MAX``/``AVG_EXCL``/``AVG_INCL``): any window. Every
  input is 3-D spatial (a 1-D or 2-D pool is a 3-D one with unit leading
  axes): ``d, h, w`` the input, ``od, oh, ow`` the output, ``k*`` the window,
  ``s*`` the strides, ``b*``/``e*`` the begin/end pads, ``dd, dh, dw`` the
  dilations. A tile covers ``rows_per_tile`` output rows (one row = one
  ``(plane, od, oh)``), so a window's reduction never crosses tiles. Each row
  runs its interior columns (every tap inside the input) as vector loops over
  the whole column range, up to three taps of an input row per pass, with the
  output row as accumulator; only the few border columns run tap by tap.
* ``POOL2D`` (``f32_pool2d``): the fast path for 2-D windows without dilation
  and with a column stride of 1 or 2 (the CNN cases), ``op`` one of the codes
  above, a tile ``planes_per_tile`` planes. A max pool reads each plane in
  place (``maxpool_rows``, shared with the conv family's fused pool). An
  average copies each plane into a zero-bordered buffer (the border filled
  once per tile), so every tap of up to four output vectors is one plain
  vector load and an add in registers; its divisor is separable (valid rows
  x valid columns) and applied as two reciprocals. Averages need
  ``pool2d_scratch(...)`` floats of scratch.
* ``GLOBAL_POOL`` (``f32_global_maxpool``, ``f32_global_avgpool``, in
  ``GLOBAL_POOL_KERNELS``): one value per plane of ``size``.

This module does not resolve ``auto_pad``/``ceil_mode`` into pads and output
sizes (the lowering in ``engine/ops/pool.py`` does) and does not produce
MaxPool's Indices output.
"""
import numba
import numpy as np

from .abi import U, f32
from .contract import declare_row, tile_kernel
from .normalize import row_max, row_sum, select_max
from .simd import VW, v_add, v_even, v_load, v_load2_n, v_load_n as _load_n, v_max, v_mul, v_odd, v_splat, v_store_n

MAX, AVG_EXCL, AVG_INCL = 0, 1, 2  # pool kinds (``POOL2D.op``, the keys of the kernel dicts)

POOL = declare_row("POOL", inputs=("x",), outputs=("y",),
                   ints=("planes", "d", "h", "w", "od", "oh", "ow", "kd", "kh", "kw", "sd", "sh", "sw",
                         "bd", "bh", "bw", "ed", "eh", "ew", "dd", "dh", "dw", "rows_per_tile"))
POOL2D = declare_row("POOL2D", inputs=("x",), outputs=("y",),
                     ints=("planes", "h", "w", "oh", "ow", "kh", "kw", "sh", "sw", "bh", "bw", "eh", "ew", "op",
                           "planes_per_tile"))
GLOBAL_POOL = declare_row("GLOBAL_POOL", inputs=("x",), outputs=("y",), ints=("planes", "size", "planes_per_tile"))


@numba.njit(inline="always")
def _taps(o, s, b, k, d, n):
    """Valid tap range ``[lo, hi)`` of window ``o`` along an axis of length ``n``."""
    start = o * s - b
    lo = 0
    while lo < k and start + lo * d < 0:
        lo += 1
    hi = k
    while hi > lo and start + (hi - 1) * d >= n:
        hi -= 1
    return start, lo, hi


@numba.njit(inline="always")
def _padded_taps(o, s, b, e, k, d, n):
    """Taps of window ``o`` inside the padded axis ``[-b, n + e)`` (count_include_pad divisor)."""
    start = o * s - b
    c = 0
    for t in range(k):
        pos = start + t * d
        if pos >= -b and pos < n + e:
            c += 1
    return c


@numba.njit(inline="always")
def _border(x, ow, op, init, plane, D, H, W, d0, dlo, dhi, dD, h0, hlo, hhi, dH, sW, bW, eW, kW, dW, cnt_dh):
    """One output column whose window crosses the W padding, tap by tap."""
    w0, wlo, whi = _taps(ow, sW, bW, kW, dW, W)
    acc = init
    for td in range(dlo, dhi):
        for th in range(hlo, hhi):
            base = ((plane * D + d0 + td * dD) * H + h0 + th * dH) * W + w0
            for tw in range(wlo, whi):
                v = x[base + tw * dW]
                if op == MAX:
                    acc = max(acc, v)
                else:
                    acc += v
    if op == MAX:
        return acc
    cw = whi - wlo
    if op == AVG_INCL:
        cw = _padded_taps(ow, sW, bW, eW, kW, dW, W)
    return acc / np.float32(cnt_dh * cw)


@numba.njit(inline="always")
def _comb(op, a, b):
    return select_max(a, b) if op == MAX else a + b


@numba.njit(inline="always")
def _row_taps(x, y, yo, base, lo, hi, sW, dW, kW, op):
    """Fold one input row's ``kW`` taps into output columns ``[lo, hi)``, up to three taps per
    pass over the row (fewer passes, each a contiguous vector loop when ``sW == 1``)."""
    tw = 0
    while tw < kW:
        o0 = base + tw * dW
        o1 = o0 + dW
        o2 = o1 + dW
        if kW - tw >= 3:
            if sW == 1:
                for ow in range(lo, hi):
                    v = _comb(op, _comb(op, y[U(yo + ow)], x[U(o0 + ow)]), x[U(o1 + ow)])
                    y[U(yo + ow)] = _comb(op, v, x[U(o2 + ow)])
            else:
                for ow in range(lo, hi):
                    v = _comb(op, _comb(op, y[U(yo + ow)], x[U(o0 + ow * sW)]), x[U(o1 + ow * sW)])
                    y[U(yo + ow)] = _comb(op, v, x[U(o2 + ow * sW)])
            tw += 3
        elif kW - tw == 2:
            for ow in range(lo, hi):
                y[U(yo + ow)] = _comb(op, _comb(op, y[U(yo + ow)], x[U(o0 + ow * sW)]), x[U(o1 + ow * sW)])
            tw += 2
        else:
            for ow in range(lo, hi):
                y[U(yo + ow)] = _comb(op, y[U(yo + ow)], x[U(o0 + ow * sW)])
            tw += 1


@numba.njit(inline="always")
def _pool(p, tile, op):
    planes, D, H, W = p[POOL.planes], p[POOL.d], p[POOL.h], p[POOL.w]
    OD, OH, OW = p[POOL.od], p[POOL.oh], p[POOL.ow]
    kD, kH, kW = p[POOL.kd], p[POOL.kh], p[POOL.kw]
    sD, sH, sW = p[POOL.sd], p[POOL.sh], p[POOL.sw]
    bD, bH, bW = p[POOL.bd], p[POOL.bh], p[POOL.bw]
    eD, eH, eW = p[POOL.ed], p[POOL.eh], p[POOL.ew]
    dD, dH, dW = p[POOL.dd], p[POOL.dh], p[POOL.dw]
    per = p[POOL.rows_per_tile]
    x = f32(p[POOL.x], planes * D * H * W)
    y = f32(p[POOL.y], planes * OD * OH * OW)
    rows = planes * OD * OH
    # Interior columns: every w tap inside [0, W).
    ow_lo = min(OW, (bW + sW - 1) // sW)
    lim = W - 1 + bW - (kW - 1) * dW
    ow_hi = min(OW, lim // sW + 1) if lim >= 0 else 0
    ow_hi = max(ow_hi, ow_lo)
    init = -np.inf if op == MAX else 0.0
    init = np.float32(init)
    lo_r = tile * per
    hi_r = min(rows, lo_r + per)
    # Row coordinates advance by counting: a 64-bit division per row costs as much as its taps.
    oh = lo_r % OH
    od = (lo_r // OH) % OD
    plane = lo_r // (OH * OD)
    for r in range(lo_r, hi_r):
        if r > lo_r:
            oh += 1
            if oh == OH:
                oh = 0
                od += 1
                if od == OD:
                    od = 0
                    plane += 1
        d0, dlo, dhi = _taps(od, sD, bD, kD, dD, D)
        h0, hlo, hhi = _taps(oh, sH, bH, kH, dH, H)
        yo = r * OW
        for ow in range(ow_lo, ow_hi):
            y[U(yo + ow)] = init
        for td in range(dlo, dhi):
            for th in range(hlo, hhi):
                base = ((plane * D + d0 + td * dD) * H + h0 + th * dH) * W - bW
                _row_taps(x, y, yo, base, ow_lo, ow_hi, sW, dW, kW, op)
        cnt_dh = (dhi - dlo) * (hhi - hlo)
        if op == AVG_INCL:
            cnt_dh = _padded_taps(od, sD, bD, eD, kD, dD, D) * _padded_taps(oh, sH, bH, eH, kH, dH, H)
        if op != MAX:
            inv = np.float32(1.0) / np.float32(cnt_dh * kW)
            for ow in range(ow_lo, ow_hi):
                y[U(yo + ow)] = y[U(yo + ow)] * inv
        for ow in range(0, ow_lo):
            y[yo + ow] = _border(x, ow, op, init, plane, D, H, W, d0, dlo, dhi, dD, h0, hlo, hhi, dH,
                                 sW, bW, eW, kW, dW, cnt_dh)
        for ow in range(ow_hi, OW):
            y[yo + ow] = _border(x, ow, op, init, plane, D, H, W, d0, dlo, dhi, dD, h0, hlo, hhi, dH,
                                 sW, bW, eW, kW, dW, cnt_dh)
    return 0


@tile_kernel(POOL)
def f32_maxpool(p, tile, scratch):
    return _pool(p, tile, MAX)


@tile_kernel(POOL)
def f32_avgpool(p, tile, scratch):
    return _pool(p, tile, AVG_EXCL)


@tile_kernel(POOL)
def f32_avgpool_pad(p, tile, scratch):
    return _pool(p, tile, AVG_INCL)


POOL_KERNELS = {MAX: f32_maxpool, AVG_EXCL: f32_avgpool, AVG_INCL: f32_avgpool_pad}


@numba.njit(inline="always")
def _global(p, tile, op):
    planes, size, per = p[GLOBAL_POOL.planes], p[GLOBAL_POOL.size], p[GLOBAL_POOL.planes_per_tile]
    x = f32(p[GLOBAL_POOL.x], planes * size)
    y = f32(p[GLOBAL_POOL.y], planes)
    for c in range(tile * per, min(planes, tile * per + per)):
        base = c * size
        if op == MAX:
            y[c] = row_max(x, base, size)
        else:
            y[c] = np.float32(row_sum(x, base, size) / size)
    return 0


@tile_kernel(GLOBAL_POOL)
def f32_global_maxpool(p, tile, scratch):
    return _global(p, tile, MAX)


@tile_kernel(GLOBAL_POOL)
def f32_global_avgpool(p, tile, scratch):
    return _global(p, tile, AVG_EXCL)


GLOBAL_POOL_KERNELS = {MAX: f32_global_maxpool, AVG_EXCL: f32_global_avgpool}


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
        if sw == 2 and r0 + k1 < h:
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


@tile_kernel(POOL2D, scratch=_pool2d_scratch_bytes)
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
