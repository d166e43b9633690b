"""Pooling kernels on float32 NCHW tensors: windowed max/average of any window (1-D to 3-D), global pools.

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
* ``GLOBAL_POOL`` (``f32_global_maxpool``, ``f32_global_avgpool``, in
  ``GLOBAL_POOL_KERNELS``): one value per plane of ``size``.

Every kernel reads only inside ``x`` (indexed loops over the taps inside the
input), so a graph input is read in place. The pool kinds
``MAX``/``AVG_EXCL``/``AVG_INCL`` are shared with the fast
2-D path (``kernels.pool2d``). This module does not resolve
``auto_pad``/``ceil_mode`` into pads and output sizes (the lowering in
``engine/ops/pool.py`` does) and does not produce MaxPool's Indices output.
"""
import numba
import numpy as np

from .abi import U, f32
from .contract import declare_row, tile_kernel
from .reduce import row_max, row_sum, select_max

MAX, AVG_EXCL, AVG_INCL = 0, 1, 2  # pool kinds (``POOL2D.op``, the keys of the kernel dicts)

POOL = declare_row("POOL", inputs=("x",), outputs=("y",),
                   ints=("planes", "d", "h", "w", "od", "oh", "ow", "kd", "kh", "kw", "sd", "sh", "sw",
                         "bd", "bh", "bw", "ed", "eh", "ew", "dd", "dh", "dw", "rows_per_tile"))
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


@tile_kernel(POOL, reads_in_bounds=True)
def f32_maxpool(p, tile, scratch):
    return _pool(p, tile, MAX)


@tile_kernel(POOL, reads_in_bounds=True)
def f32_avgpool(p, tile, scratch):
    return _pool(p, tile, AVG_EXCL)


@tile_kernel(POOL, reads_in_bounds=True)
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


@tile_kernel(GLOBAL_POOL, reads_in_bounds=True)
def f32_global_maxpool(p, tile, scratch):
    return _global(p, tile, MAX)


@tile_kernel(GLOBAL_POOL, reads_in_bounds=True)
def f32_global_avgpool(p, tile, scratch):
    return _global(p, tile, AVG_EXCL)


GLOBAL_POOL_KERNELS = {MAX: f32_global_maxpool, AVG_EXCL: f32_global_avgpool}
