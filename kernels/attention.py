"""Scaled dot-product attention on float32 as tiled kernels, with an online softmax.

``f32_attention_pack`` (row ``ATTENTION_PACK``, tile = one (batch, head))
copies that head's ``K^T`` and ``V`` into the GEMM core's ``NR``-column
panels (``K`` addressed by strides for batch, head, key and value, ``V`` for
batch, head and key with values contiguous), once for all query blocks.
``f32_attention`` (row ``ATTENTION``) then computes ``Y = softmax(scale * Q @
K^T + mask) @ V``; ``Q`` and ``Y`` are addressed by strides for batch, head
and sequence (values contiguous), so head split/merge transposes cost
nothing; the additive mask by strides for batch, head and query (0
broadcasts) with keys contiguous; ``causal`` hides key ``j`` from query ``i``
when ``j > i + sk - sq``. Tile ``t`` = (batch, head, block of ``qb``
queries). A tile walks the keys in blocks of ``kb`` (a multiple of ``NR``):
the block's scores come from the GEMM core, are scaled, masked and
exponentiated against the running row maximum, and the block's ``P @ V``
(the GEMM core again) is added to the running output after rescaling it.
Scores live only in the tile's scratch, never in the arena. The key blocks
depend only on ``sk``, so results never depend on the tiling. NaN anywhere
in a row's scores gives NaN in that row. Not here: dropout, a KV cache, or
head dims that differ between Q/K and V.
"""
import numba
import numpy as np

from .abi import U, f32, param_f32, slot_address
from .contract import declare_row, tile_kernel
from .gemm import EPILOGUE, MR, NR, gemm_tile, scratch_floats
from .mathfn import exp_f32
from .reduce import row_max, row_sum

_STRIDES = ("q_sb", "q_sh", "q_ss", "y_sb", "y_sh", "y_ss", "m_sb", "m_sh", "m_sq")
ATTENTION = declare_row("ATTENTION", inputs=("q", "kp", "vp", "mask?"), outputs=("y",),
                        ints=("heads", "sq", "sk", "dh", "qb", "n_qblk", "kb", "causal") + _STRIDES,
                        floats=("scale",), structs={"ep": EPILOGUE})
ATTENTION_PACK = declare_row("ATTENTION_PACK", inputs=("k", "v"), outputs=("kp", "vp"),
                             ints=("heads", "sk", "dh", "k_sb", "k_sh", "k_ss", "k_sd", "v_sb", "v_sh", "v_ss"))
_ALIGN = 16  # floats: scratch areas start on 64-byte lines
_NEG = np.float32(-np.inf)
_GEMM_SCRATCH = scratch_floats()


@numba.njit(inline="always")
def _up(n):
    return -(-n // _ALIGN) * _ALIGN


def attention_scratch_floats(qb, kb, dh):
    """Scratch floats of one tile: the GEMM core's, K^T, scores, block and running outputs, row statistics."""
    return _GEMM_SCRATCH + _up(qb * kb) + 2 * _up(qb * dh) + 3 * _up(qb)


def packed_floats(sk, dh):
    """Floats of one head's packed ``K^T`` and ``V`` panels (``ATTENTION_PACK``'s outputs hold ``[B*H]`` of each)."""
    return -(-sk // NR) * dh * NR, -(-dh // NR) * sk * NR


@tile_kernel(ATTENTION_PACK)
def f32_attention_pack(p, tile, scratch):
    """Tile ``t`` = (batch, head): ``K^T`` as ``[ceil(Sk/NR), dh, NR]`` panels, ``V`` as ``[ceil(dh/NR), Sk, NR]``."""
    R = ATTENTION_PACK
    heads, sk, dh = p[R.heads], p[R.sk], p[R.dh]
    b, h = tile // heads, tile % heads
    nk, nv = -(-sk // NR) * dh * NR, -(-dh // NR) * sk * NR
    k = f32(p[R.k] + (b * p[R.k_sb] + h * p[R.k_sh]) * 4, 1 << 40)
    v = f32(p[R.v] + (b * p[R.v_sb] + h * p[R.v_sh]) * 4, 1 << 40)
    kp, vp = f32(p[R.kp] + tile * nk * 4, nk), f32(p[R.vp] + tile * nv * 4, nv)
    ks, kd, vs = p[R.k_ss], p[R.k_sd], p[R.v_ss]
    for j in range(-(-sk // NR) * NR):
        pj, lj = j // NR, j % NR
        for d in range(dh):
            kp[U((pj * dh + d) * NR + lj)] = k[U(j * ks + d * kd)] if j < sk else np.float32(0)
    for j in range(sk):
        for d in range(-(-dh // NR) * NR):
            vp[U(((d // NR) * sk + j) * NR + d % NR)] = v[U(j * vs + d)] if d < dh else np.float32(0)
    return 0


def _scratch(args):
    return attention_scratch_floats(args["qb"], args["kb"], args["dh"]) * 4


@numba.njit(inline="always")
def _softmax_block(s, rows, kn, scale, mask, mo, msq, has_mask, causal, first_hidden, mrow, lrow, corr):
    """Scale, mask and exponentiate a ``rows x kn`` score block in place; update row max/sum, set ``corr``."""
    for i in range(rows):
        base = i * kn
        for j in range(kn):
            v = s[U(base + j)] * scale
            if has_mask:
                v += mask[U(mo + i * msq + j)]
            if causal and j >= first_hidden + i:
                v = _NEG
            s[U(base + j)] = v
        bm = row_max(s, base, kn)
        new = bm if bm > mrow[i] else mrow[i]
        for j in range(kn):
            x = s[U(base + j)]  # NaN stays NaN, a hidden key (-inf) weighs 0; otherwise new is finite
            e = exp_f32(x - new)
            s[U(base + j)] = x if x != x else (e if x > _NEG else np.float32(0))
        c = exp_f32(mrow[i] - new) if mrow[i] > _NEG else np.float32(0)
        corr[i] = c
        lrow[i] = lrow[i] * c + np.float32(row_sum(s, base, kn))
        mrow[i] = new


@tile_kernel(ATTENTION, scratch=_scratch)
def f32_attention(p, tile, scratch):
    R = ATTENTION
    heads, sq, sk, dh = p[R.heads], p[R.sq], p[R.sk], p[R.dh]
    qb, nqb, kb, causal = p[R.qb], p[R.n_qblk], p[R.kb], p[R.causal] != 0
    bh, qi = tile // nqb, tile % nqb
    b, h = bh // heads, bh % heads
    i0 = qi * qb
    rows = min(qb, sq - i0)
    q_ss, y_ss = p[R.q_ss], p[R.y_ss]
    qa = p[R.q] + (b * p[R.q_sb] + h * p[R.q_sh] + i0 * q_ss) * 4
    nk, nv = -(-sk // NR) * dh * NR, -(-dh // NR) * sk * NR
    kpa, vpa = p[R.kp] + bh * nk * 4, p[R.vp] + bh * nv * 4
    ya = p[R.y] + (b * p[R.y_sb] + h * p[R.y_sh] + i0 * y_ss) * 4
    has_mask = p[R.mask] != 0
    mask = f32(p[R.mask], 1 << 40)
    mo = (b * p[R.m_sb] + h * p[R.m_sh] + i0 * p[R.m_sq]) if has_mask else 0
    scale = param_f32(p, R.scale)
    epa = slot_address(p, R.ep)
    # scratch: GEMM core | scores | block output | running output | max | sum | correction
    s_a = scratch + _GEMM_SCRATCH * 4
    t_a = s_a + _up(qb * kb) * 4
    o_a = t_a + _up(qb * dh) * 4
    st_a = o_a + _up(qb * dh) * 4
    s, t, o = f32(s_a, qb * kb), f32(t_a, qb * dh), f32(o_a, qb * dh)
    mrow, lrow, corr = f32(st_a, qb), f32(st_a + _up(qb) * 4, qb), f32(st_a + 2 * _up(qb) * 4, qb)
    for i in range(rows):
        mrow[i], lrow[i] = _NEG, np.float32(0)
    for i in range(rows * dh):
        o[i] = np.float32(0)
    for j0 in range(0, sk, kb):  # kb is a multiple of NR: blocks start on a panel
        kn = min(kb, sk - j0)
        # queries i0 + i see keys j <= i0 + i + sk - sq: key j of the block is hidden from j >= first_hidden + i
        first_hidden = i0 + sk - sq + 1 - j0
        if causal and first_hidden + rows - 1 <= 0:
            break  # this block and every later one is hidden from all the tile's queries
        gemm_tile(qa, q_ss, 1, MR * q_ss, rows, kpa + (j0 // NR) * dh * NR * 4, 0, dh * NR, kn, dh, s_a, kn,
                  scratch, epa, s_a, 0, 0, s_a, False)
        _softmax_block(s, rows, kn, scale, mask, mo + j0, p[R.m_sq], has_mask, causal, first_hidden, mrow, lrow,
                       corr)
        gemm_tile(s_a, kn, 1, MR * kn, rows, vpa + j0 * NR * 4, 0, sk * NR, dh, kn, t_a, dh, scratch, epa, t_a,
                  0, 0, t_a, False)
        for i in range(rows):
            c = corr[i]
            for d in range(dh):
                o[U(i * dh + d)] = o[U(i * dh + d)] * c + t[U(i * dh + d)]
    y = f32(ya, 1 << 40)
    for i in range(rows):
        inv = np.float32(1) / lrow[i] if lrow[i] != 0 else np.float32(np.nan)
        for d in range(dh):
            y[U(i * y_ss + d)] = o[U(i * dh + d)] * inv
    return 0
