"""Winograd F(4x4, 3x3) FP32 convolution (NCHW): 3x3 kernels, stride 1, no dilation, one group.

``f32_conv_winograd`` (row ``WINOGRAD``) computes each 4x4 block of output
pixels (a *tile*) from a 6x6 block of input as ``A^T [U . (B^T d B)] A``
(Lavin and Gray's matrices on the points 0, +-1, +-2): the 36 transformed
positions ``xi`` are 36 independent GEMMs ``M[xi] = U[xi] @ V[xi]``, ``Cout x
Cin`` by ``Cin x tiles``, 36 x 16 multiply-adds per tile and channel pair
against the direct path's 9 x 16. ``U = G g G^T`` is packed once, at compile
time, as the GEMM core's ``MR``-row panels per position (``pack_weights``).

The input is read in place: the zero padding (and the rows and columns the
last tiles cover past the image) are lanes a masked load leaves at zero, so
no padded copy is made and nothing outside the input is read. Tiles are
numbered as GEMM columns ``ty * tw4 + tx`` with a row of tiles rounded up to
``tw4``, a multiple of ``SEG`` (the tiles one vector load spans): every
group of ``SEG`` columns lies in one row of tiles, so a vector of ``VW``
columns is eight masked loads and a deinterleave (``v_even``/``v_odd``)
away, whatever the plane's width. A tile of work is (image, block of at
most ``NR`` columns, block of output channels), the ``VW``-column units and
the ``MR``-row blocks dealt evenly over ``n_cb`` and ``n_cob`` blocks. It
transforms its columns of every input channel into scratch in the
packed-panel layout the GEMM core reads, runs the 36 GEMMs for ``CO_BLOCK``
channels at a time into scratch, and transforms those back with the row's
``ep`` epilogue (bias, residual, and Relu, Clip or HardSwish, applied on the
vector: the lowering takes no other activation here), asking for the output
lines of the channel ``PF_AHEAD`` on before they are stored.

Columns past the plane's tiles are computed from zeros and never stored.
The transforms add rounding of about 1e-5 of the output's scale
(unit-variance data); ``tests/test_winograd.py`` bounds it.
Not here: strides, dilations, groups, other kernel sizes (the direct paths of
``kernels.conv``), choosing when this path wins (``ops.conv_paths``).
"""
import numba
import numpy as np

from .abi import f32, slot_address
from .contract import declare_row, tile_kernel
from .conv import DW_OUT_ACTIVATIONS, _dw_out
from .conv_pack import BIG
from .gemm import EPILOGUE, MR, NR, ep_fields, gemm_tile, scratch_floats
from .simd import (VW, prefetch_write, v_add, v_even, v_fma, v_interleave4, v_load, v_load_lanes, v_mul, v_odd,
                   v_splat, v_store, v_sub, v_zero)

POS = 36  # transformed positions of a 6x6 input block
SEG = VW // 4  # tiles one vector load spans (4 floats each)
# Floats between the per-position panels past their size: one cache line. Panels of 8 or 16 KiB would put
# the 36 vectors a tile's transform reads or writes in one set of the L1.
PAD = 16
CO_BLOCK = 64  # output channels per pass of the 36 GEMMs: their products, 36 x CO_BLOCK x NR floats, stay in L2
GEMM_SCRATCH = scratch_floats()
# The output transform owns the lines of the channel PF_AHEAD on before it stores: each channel writes four
# rows of one plane, cold lines of a plane far from the last, and waiting on them stalled the stores.
PF_AHEAD = 2
EPILOGUE_ACTIVATIONS = DW_OUT_ACTIVATIONS  # the lowering takes only these for this kernel

WINOGRAD = declare_row("WINOGRAD", inputs=("x", "u", "bias?", "res?"), outputs=("y",),
                       ints=("n", "c", "cout", "in_h", "in_w", "out_h", "out_w", "pad_t", "pad_l", "tiles_h", "tw4",
                             "n_cb", "n_cob"),
                       structs={"ep": EPILOGUE, "gemm_ep": EPILOGUE})

_BT = np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0], [0, -2, -1, 2, 1, 0],
                [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], np.float64)
_G = np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6], [1 / 24, 1 / 12, 1 / 6],
               [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]], np.float64)
_AT = np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]], np.float64)


def pack_weights(w):
    """Weights ``[Cout, Cin, 3, 3]`` as ``U = G g G^T`` in ``MR``-row panels per position: ``[36, nblk, Cin, MR]``.

    Transformed in float64 and rounded once; rows past ``Cout`` are zero.
    """
    w = np.asarray(w, np.float64)
    cout, cin = w.shape[:2]
    u = np.einsum("ki,ocij,lj->kloc", _G, w, _G).reshape(POS, cout, cin)
    nblk = -(-cout // MR)
    a = np.zeros((POS, nblk * MR, cin), np.float32)
    a[:, :cout] = u
    return np.ascontiguousarray(a.reshape(POS, nblk, MR, cin).transpose(0, 1, 3, 2))


def reference(x, w):
    """F(4x4, 3x3) of a plane stack ``x [Cin, 4t+2, 4u+2]`` (padding included) in float64 numpy: the kernel's
    algorithm without its rounding, for tests."""
    cin, h, wd = x.shape
    out = np.zeros((w.shape[0], h - 2, wd - 2))
    u = np.einsum("ki,ocij,lj->ockl", _G, np.asarray(w, np.float64), _G)
    for ty in range(0, h - 2, 4):
        for tx in range(0, wd - 2, 4):
            v = np.einsum("ki,cij,lj->ckl", _BT, x[:, ty:ty + 6, tx:tx + 6], _BT)
            m = np.einsum("ockl,ckl->okl", u, v)
            out[:, ty:ty + 4, tx:tx + 4] = np.einsum("ik,okl,jl->oij", _AT, m, _AT)
    return out


def scratch_bytes(cin):
    """Per-worker scratch bytes of a ``WINOGRAD`` row: the GEMM core's, the transformed input and products, and a
    6x6 block of staged vectors."""
    return (GEMM_SCRATCH + POS * (cin * NR + PAD) + POS * (CO_BLOCK * NR + PAD) + POS * VW) * 4


def _scratch(a):
    return scratch_bytes(a["c"])


@numba.njit(inline="always")
def _bt(d0, d1, d2, d3, d4, d5):
    """The input transform ``B^T d`` of one axis: six vectors in, six out."""
    m4, m5 = v_splat(np.float32(-4)), v_splat(np.float32(-5))
    a = v_fma(m4, d2, d4)
    b = v_fma(m4, d1, d3)
    c = v_sub(d4, d2)
    e = v_mul(v_splat(np.float32(2)), v_sub(d3, d1))
    four = v_splat(np.float32(4))
    return (v_fma(four, d0, v_fma(m5, d2, d4)), v_add(a, b), v_sub(a, b), v_add(c, e), v_sub(c, e),
            v_fma(four, d1, v_fma(m5, d3, d5)))


@numba.njit(inline="always")
def _at(m0, m1, m2, m3, m4, m5):
    """The output transform ``A^T m`` of one axis: six vectors in, four out."""
    p, q, r, s = v_add(m1, m2), v_sub(m1, m2), v_add(m3, m4), v_sub(m3, m4)
    return (v_add(v_add(m0, p), r), v_fma(v_splat(np.float32(2)), s, q), v_fma(v_splat(np.float32(4)), r, p),
            v_add(v_fma(v_splat(np.float32(8)), s, q), m5))


@numba.njit(inline="always")
def _phases(a0, a1, a2, a3, lo0, lo1, lo2, lo3, hi0, hi1, hi2, hi3):
    """Input columns ``4t + c`` (``c`` = 0..5) of ``VW`` tiles whose ``SEG``-tile segments start at ``a0..a3``.

    Segment ``q`` reads its floats ``lo_q <= i < hi_q`` (those inside the input row), zeros elsewhere.
    """
    l0, l1 = v_load_lanes(a0, lo0, hi0), v_load_lanes(a1, lo1, hi1)
    l2, l3 = v_load_lanes(a2, lo2, hi2), v_load_lanes(a3, lo3, hi3)
    e01, e23, o01, o23 = v_even(l0, l1), v_even(l2, l3), v_odd(l0, l1), v_odd(l2, l3)
    n0, n1 = v_load_lanes(a0 + 16, lo0 - 4, hi0 - 4), v_load_lanes(a1 + 16, lo1 - 4, hi1 - 4)
    n2, n3 = v_load_lanes(a2 + 16, lo2 - 4, hi2 - 4), v_load_lanes(a3 + 16, lo3 - 4, hi3 - 4)
    f01, f23, g01, g23 = v_even(n0, n1), v_even(n2, n3), v_odd(n0, n1), v_odd(n2, n3)
    return (v_even(e01, e23), v_even(o01, o23), v_odd(e01, e23), v_odd(o01, o23), v_even(f01, f23),
            v_even(g01, g23))


@numba.njit(inline="always")
def _store6(s, i, v0, v1, v2, v3, v4, v5):
    """Vectors ``v0..v5`` into staging slots ``6i .. 6i + 5``."""
    at = s + 6 * i * VW * 4
    v_store(at, v0)
    v_store(at + VW * 4, v1)
    v_store(at + 2 * VW * 4, v2)
    v_store(at + 3 * VW * 4, v3)
    v_store(at + 4 * VW * 4, v4)
    v_store(at + 5 * VW * 4, v5)


@numba.njit(inline="always")
def _load6(at, stride):
    """Six vectors ``stride`` bytes apart."""
    return (v_load(at), v_load(at + stride), v_load(at + 2 * stride), v_load(at + 3 * stride),
            v_load(at + 4 * stride), v_load(at + 5 * stride))


@numba.njit(inline="always")
def _segment(col, tw4, pad_t, pad_l, w):
    """First input row and column of GEMM column ``col``'s tile, and the floats ``lo <= i < hi`` from that
    column that lie inside the row: ``(row, column, lo, hi)``."""
    ty = col // tw4
    x0 = 4 * (col - ty * tw4) - pad_l
    return 4 * ty - pad_t, x0, -x0, w - x0


@numba.njit(inline="always")
def _transform_input(x, plane, h, w, s0, s1, s2, s3, s, v, vstride):
    """``B^T d B`` of input channel plane ``plane`` (float offset) for the ``VW`` tiles of segments ``s0..s3``
    (``_segment``), the input's zero padding read as masked-off lanes.

    Writes position ``xi`` at ``v + xi * vstride`` (bytes).
    """
    for r in range(6):
        y0, y1, y2, y3 = s0[0] + r, s1[0] + r, s2[0] + r, s3[0] + r
        in0, in1, in2, in3 = 0 <= y0 < h, 0 <= y1 < h, 0 <= y2 < h, 0 <= y3 < h
        d0, d1, d2, d3, d4, d5 = _phases(
            x + (plane + y0 * w + s0[1]) * 4, x + (plane + y1 * w + s1[1]) * 4,
            x + (plane + y2 * w + s2[1]) * 4, x + (plane + y3 * w + s3[1]) * 4,
            s0[2], s1[2], s2[2], s3[2], s0[3] if in0 else 0, s1[3] if in1 else 0, s2[3] if in2 else 0,
            s3[3] if in3 else 0)
        k0, k1, k2, k3, k4, k5 = _bt(d0, d1, d2, d3, d4, d5)
        _store6(s, r, k0, k1, k2, k3, k4, k5)
    for c in range(6):
        d0, d1, d2, d3, d4, d5 = _load6(s + c * VW * 4, 6 * VW * 4)
        k0, k1, k2, k3, k4, k5 = _bt(d0, d1, d2, d3, d4, d5)
        v_store(v + c * vstride, k0)
        v_store(v + (6 + c) * vstride, k1)
        v_store(v + (12 + c) * vstride, k2)
        v_store(v + (18 + c) * vstride, k3)
        v_store(v + (24 + c) * vstride, k4)
        v_store(v + (30 + c) * vstride, k5)


@numba.njit(inline="always")
def _out_segment(col, tw4, ncols, ow_n):
    """Where the ``SEG`` tiles from GEMM column ``col`` go: ``(first output row, first column, floats inside the
    row)``; no floats when the columns lie past the plane's tiles."""
    ty = col // tw4
    x0 = 4 * (col - ty * tw4)
    return 4 * ty, x0, min(VW, ow_n - x0) if col < ncols else 0


@numba.njit(inline="always")
def _store_segment(ya, plane, seg, i, z, oh_n, ow_n, resa, has_res, act, lo_v, hi_v):
    """Output row ``i`` of a segment's tiles (``_out_segment``; ``z``: their 4 pixels each), if inside the image."""
    oh = seg[0] + i
    if seg[2] > 0 and oh < oh_n:
        _dw_out(ya, (plane + oh * ow_n + seg[1]) * 4, z, seg[2], resa, has_res, act, lo_v, hi_v)


@numba.njit(inline="always")
def _prefetch_rows(ya, plane, q0, q1, q2, q3, oh_n, ow_n):
    """Own for writing the lines of a column group's four output rows in ``plane`` (segments ``q0..q3``)."""
    for i in range(4):
        for q in (q0, q1, q2, q3):
            if q[2] > 0 and q[0] + i < oh_n:
                at = ya + (plane + (q[0] + i) * ow_n + q[1]) * 4
                prefetch_write(at)
                prefetch_write(at + q[2] * 4 - 4)


@tile_kernel(WINOGRAD, reads_in_bounds=True, scratch=_scratch)
def f32_conv_winograd(p, tile, scratch):
    R = WINOGRAD
    n_c, cout, oh_n, ow_n, h, w = p[R.c], p[R.cout], p[R.out_h], p[R.out_w], p[R.in_h], p[R.in_w]
    pt, pl = p[R.pad_t], p[R.pad_l]
    th, tw4, ncb, ncob = p[R.tiles_h], p[R.tw4], p[R.n_cb], p[R.n_cob]
    epa, gepa = slot_address(p, R.ep), slot_address(p, R.gemm_ep)
    has_bias, has_res, act, aa, ab = ep_fields(epa)
    lo_v, hi_v = v_splat(aa), v_splat(ab)
    bias = f32(p[R.bias], BIG)
    cob = tile % ncob
    cb = (tile // ncob) % ncb
    img = tile // (ncob * ncb)
    nblk = (cout + MR - 1) // MR
    co_first = cob * nblk // ncob * MR
    co_last = min(cout, (cob + 1) * nblk // ncob * MR)
    ncols = th * tw4
    units = (ncols + VW - 1) // VW  # column block cb: its share of the VW-column units, dealt evenly
    c0 = cb * units // ncb * VW
    n = min(ncols, (cb + 1) * units // ncb * VW) - c0
    groups = (n + VW - 1) // VW
    v = scratch + GEMM_SCRATCH * 4
    vstride = (n_c * NR + PAD) * 4
    mstride = (CO_BLOCK * NR + PAD) * 4
    m = v + POS * vstride
    s = m + POS * mstride
    # Input: every channel's tiles of this column block, transformed into B panels [xi][ci][NR].
    for g in range(groups):
        col = c0 + g * VW
        s0 = _segment(col, tw4, pt, pl, w)
        s1 = _segment(col + SEG, tw4, pt, pl, w)
        s2 = _segment(col + 2 * SEG, tw4, pt, pl, w)
        s3 = _segment(col + 3 * SEG, tw4, pt, pl, w)
        for ci in range(n_c):
            _transform_input(p[R.x], (img * n_c + ci) * h * w, h, w, s0, s1, s2, s3, s, v + (ci * NR + g * VW) * 4,
                             vstride)
    for co0 in range(co_first, co_last, CO_BLOCK):
        rows = min(CO_BLOCK, co_last - co0)
        for xi in range(POS):
            a = p[R.u] + ((xi * nblk) * n_c * MR + co0 * n_c) * 4
            gemm_tile(a, 1, MR, n_c * MR, rows, v + xi * vstride, NR, n_c * NR, n, n_c, m + xi * mstride, NR,
                      scratch, gepa, 0, 1, 0, 0, False)
        ya, ra = p[R.y], p[R.res]
        for g in range(groups):
            col = c0 + g * VW
            q0 = _out_segment(col, tw4, ncols, ow_n)
            q1 = _out_segment(col + SEG, tw4, ncols, ow_n)
            q2 = _out_segment(col + 2 * SEG, tw4, ncols, ow_n)
            q3 = _out_segment(col + 3 * SEG, tw4, ncols, ow_n)
            for co in range(rows):
                b_v = v_splat(bias[co0 + co]) if has_bias else v_zero()
                plane = (img * cout + co0 + co) * oh_n * ow_n
                if co + PF_AHEAD < rows:
                    _prefetch_rows(ya, plane + PF_AHEAD * oh_n * ow_n, q0, q1, q2, q3, oh_n, ow_n)
                mb = m + (co * NR + g * VW) * 4
                for c in range(6):
                    m0, m1, m2, m3, m4, m5 = _load6(mb + c * mstride, 6 * mstride)
                    u0, u1, u2, u3 = _at(m0, m1, m2, m3, m4, m5)
                    v_store(s + c * VW * 4, u0)
                    v_store(s + (6 + c) * VW * 4, u1)
                    v_store(s + (12 + c) * VW * 4, u2)
                    v_store(s + (18 + c) * VW * 4, u3)
                for i in range(4):
                    m0, m1, m2, m3, m4, m5 = _load6(s + 6 * i * VW * 4, VW * 4)
                    y0, y1, y2, y3 = _at(m0, m1, m2, m3, m4, m5)
                    z0, z1, z2, z3 = v_interleave4(y0, y1, y2, y3)
                    _store_segment(ya, plane, q0, i, v_add(z0, b_v), oh_n, ow_n, ra, has_res, act, lo_v, hi_v)
                    _store_segment(ya, plane, q1, i, v_add(z1, b_v), oh_n, ow_n, ra, has_res, act, lo_v, hi_v)
                    _store_segment(ya, plane, q2, i, v_add(z2, b_v), oh_n, ow_n, ra, has_res, act, lo_v, hi_v)
                    _store_segment(ya, plane, q3, i, v_add(z3, b_v), oh_n, ow_n, ra, has_res, act, lo_v, hi_v)
    return 0
