"""Pooling kernels on float32 NCHW tensors: windowed max/average (1-D to 3-D) and global pools.

Windowed pools see every input as 3-D spatial (a 1-D or 2-D pool is a 3-D one
with unit leading axes) and read ``[x, y, planes, D, H, W, OD, OH, OW, kD, kH,
kW, sD, sH, sW, bD, bH, bW, eD, eH, eW, dD, dH, dW, rows_per_tile]``: ``b``/``e``
are the begin/end pads, ``d`` the dilations. A tile covers ``rows_per_tile``
output rows (one row = one ``(plane, od, oh)``), so a window's reduction never
crosses tiles. Each row runs its interior columns (every tap inside the input)
as vector loops over the whole column range, up to three taps of an input row
per pass, with the output row as accumulator; only the few border columns run
tap by tap.
Global pools read ``[x, y, planes, size, planes_per_tile]``.
Indices outputs of MaxPool are not produced here.

``f32_pool2d`` is the fast path for 2-D windows without dilation and with a
column stride of 1 or 2 (the CNN cases): ``[x, y, planes, H, W, OH, OW, kH,
kW, sH, sW, bH, bW, eH, eW, op, planes_per_tile]``, tile = planes. A max pool
reads each plane in place (``maxpool_rows``). An average copies each plane
into a zero-bordered buffer (the border filled once per tile), so every tap
of up to four output vectors is one plain vector load and an add in
registers; its divisor is separable (valid rows x valid columns) and applied
as two reciprocals. Averages need ``pool2d_scratch(...)`` floats of scratch.
"""
import numba
import numpy as np

from .abi import U, f32
from .contract import tile_kernel
from .normalize import row_max, row_sum
from .simd import VW, v_add, v_even, v_load, v_load2_n, v_load_n as _load_n, v_max, v_mul, v_odd, v_splat, v_store_n

MAX, AVG_EXCL, AVG_INCL = 0, 1, 2


@numba.njit(inline="always")
def _vmax(a, b):
    """max as a plain select, which LLVM vectorizes (the builtin's NaN handling blocks it)."""
    return a if a >= b else b


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
    return _vmax(a, b) if op == MAX else a + b


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
    planes, D, H, W = p[2], p[3], p[4], p[5]
    OD, OH, OW = p[6], p[7], p[8]
    kD, kH, kW = p[9], p[10], p[11]
    sD, sH, sW = p[12], p[13], p[14]
    bD, bH, bW = p[15], p[16], p[17]
    eD, eH, eW = p[18], p[19], p[20]
    dD, dH, dW = p[21], p[22], p[23]
    per = p[24]
    x = f32(p[0], planes * D * H * W)
    y = f32(p[1], planes * OD * OH * OW)
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


@tile_kernel
def f32_maxpool(p, tile, scratch):
    return _pool(p, tile, MAX)


@tile_kernel
def f32_avgpool(p, tile, scratch):
    return _pool(p, tile, AVG_EXCL)


@tile_kernel
def f32_avgpool_pad(p, tile, scratch):
    return _pool(p, tile, AVG_INCL)


@numba.njit(inline="always")
def _global(p, tile, op):
    planes, size, per = p[2], p[3], p[4]
    x = f32(p[0], planes * size)
    y = f32(p[1], planes)
    for c in range(tile * per, min(planes, tile * per + per)):
        base = c * size
        if op == MAX:
            y[c] = row_max(x, base, size)
        else:
            y[c] = np.float32(row_sum(x, base, size) / size)
    return 0


@tile_kernel
def f32_global_maxpool(p, tile, scratch):
    return _global(p, tile, MAX)


@tile_kernel
def f32_global_avgpool(p, tile, scratch):
    return _global(p, tile, AVG_EXCL)


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
    planes, H, W, OH, OW = p[2], p[3], p[4], p[5], p[6]
    kH, kW, sH, sW, bH, bW, eH, eW, per = p[7], p[8], p[9], p[10], p[11], p[12], p[13], p[14], p[16]
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
            src = p[0] + (pl * H + ih) * W * 4
            dst = padp + ((ih + bH) * wp + bW) * 4
            for t in range(0, W, VW):
                v_store_n(dst + t * 4, _load_n(src + t * 4, W - t), W - t)
        for oh in range(OH):
            base = padp + oh * sH * wp * 4
            yr = p[1] + (pl * OH + oh) * OW * 4
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
            # deinterleave per tap instead of one per tap and row (a 111x111
            # plane hot in cache: 0.72 -> 0.53-0.59 ns per output). A ragged
            # last vector masks its loads: rows 13 or 27 outputs wide no
            # longer take the tap-by-tap path (27x27 planes hot: 1.09 -> 0.93 ns per output).
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
            m = _vmax(m, xv[(r0 + ki) * ld + col])
    return m


@numba.njit(inline="always")
def _out(yr, o, ow_n, v, rinv, invca):
    n = ow_n - o
    v_store_n(yr + o * 4, v_mul(v_mul(v, v_splat(rinv)), _load_n(invca + o * 4, n)), n)


@tile_kernel
def f32_pool2d(p, tile, scratch):
    op = p[15]
    if op == MAX:  # straight from the input, no padded copy (squeezenet's 2 pools 0.143 -> 0.120 ms span)
        planes, H, W, OH, OW, per = p[2], p[3], p[4], p[5], p[6], p[16]
        for pl in range(tile * per, min(planes, tile * per + per)):
            maxpool_rows(p[0] + pl * H * W * 4, H, W, W, p[1] + pl * OH * OW * 4, OH, OW, p[7], p[8], p[9], p[10],
                         p[11], p[12])
        return 0
    if op == AVG_EXCL:
        return _avgpool2d(p, tile, scratch, AVG_EXCL)
    return _avgpool2d(p, tile, scratch, AVG_INCL)
