"""BF16 lowerings: Gemm/MatMul with a constant B and group-1 convolutions on ``kernels.gemm_bf16``.

Used when the plan's precision is ``"bf16"`` (``engine.precision`` resolved
it, so the CPU has AVX512_BF16). Weights are packed to BF16 once, at
compile time; activations are converted by the kernels while they pack a
tile; tensors between ops stay FP32. ``gemm_applies``/``conv_applies`` say
which nodes take this path; everything else (depthwise and grouped
convolutions, strides above 2, run-time ``B``, ``transA``, batched constant
``B``) stays FP32. A fused max pool runs as its own FP32 row after the conv.
"""
import types

import numpy as np

from tilerun.kernels import gemm_bf16 as K
from tilerun.kernels.gemm import MR, epilogue

from .. import tiling
from .conv_paths import SMALL_PIX, GridGeometry
from . import gemm as _gemm


def enabled(plan):
    """Whether ``plan`` runs its matrix products in BF16 (never on a CPU without the BF16 kernels)."""
    return getattr(plan, "precision", "fp32") == "bf16" and K.cpu_supports_bf16()


def gemm_applies(plan, a_strides):
    """A Gemm/MatMul with constant B whose A (strides ``(row, k)``) is contiguous along K."""
    return enabled(plan) and a_strides[1] == 1


def emit_gemm(node, plan, a, lda, b_const, key, y, m, n, k, c=None, sc=(0, 0), alpha=1.0, beta=0.0):
    """Emit one ``bf16_gemm`` row: ``y = act(alpha * A @ B + beta * C)``, B packed from ``b_const()`` ``[K, N]``."""
    act, aa, ab = _gemm.fused_activation(node)
    bname = plan.weight(lambda: K.pack_b_bf16(b_const()), "bf16_b", key=key + ("bf16",))
    nmb, mb, nnb, nb = tiling.gemm_blocks(1, m, n, k, plan.num_workers, MR, K.NR)
    plan.add(node, K.bf16_gemm, a=a, b=bname, c=c, y=y, m=m, n=n, k=k, kp=-(-k // 2), sai=lda, sci=sc[0],
             scj=sc[1], mb=mb, nb=nb, n_mblk=nmb, n_nblk=nnb,
             ep=epilogue(alpha, beta, act, aa, ab, has_c=c is not None), tiles=nmb * nnb, flops=2 * m * n * k)


def conv_applies(plan, s):
    """A group-1 convolution with strides of at most 2 (any 1x1 stride-1 unpadded one)."""
    return enabled(plan) and s.groups == 1 and max(s.sh, s.sw) <= 2


def emit_conv(node, plan, s, x, w, b, res, y, epi, pad_planes):
    """Emit the rows of a BF16 convolution (``pad_planes(r)``: the conv lowering's padded-planes emitter)."""
    plain_1x1 = (s.kh == s.kw == 1 and s.sh == s.sw == 1 and s.pad_t == s.pad_l == 0
                 and (s.out_h, s.out_w) == (s.in_h, s.in_w))
    if plain_1x1:
        src, wq, img_stride = x, s.out_w, s.c * s.npix
        koffs = plan.weight(np.arange(s.c, dtype=np.int64) * s.npix, "conv_koffs")
    else:
        g = GridGeometry.of(s)
        src, koffs = pad_planes(types.SimpleNamespace(s=s, path=types.SimpleNamespace(grid=g), plan=plan,
                                                      node=node, x=x))
        wq, img_stride = g.wq, s.c * g.plane_stride
    pool = node.fused.pool
    out = y if pool is None else plan.temp((s.n, s.cout, s.out_h, s.out_w), np.float32, "conv_out")
    npb, npan, ncob = tiling.conv_gemm_tiles(s.n, s.cout, s.npix, s.k, plan.num_workers, MR, K.NR, SMALL_PIX)
    wname = plan.weight(lambda: K.pack_w_bf16(w), "bf16_w", key=(node.name, "bf16_w", w.shape))
    packed = ncob > 1  # tiles split the output channels: gather the columns once, for all of them
    if packed:
        cols = plan.temp((s.n * npan * -(-s.k // 2) * K.NR,), np.uint32, "conv_cols_bf16")
        nt, per = plan.split(npan, s.k * K.NR)
        plan.add(node, K.bf16_pack_cols, x=src, koffs=koffs, cols=cols, k=s.k, kp=-(-s.k // 2), npix=s.npix,
                 out_w=s.out_w, wq=wq, img_stride=img_stride, npan=npan, panels_per_tile=per, n_panel_tiles=nt,
                 tiles=s.n * nt, flops=s.n * npan * s.k * K.NR)
        src = cols
    plan.add(node, K.bf16_conv, x=src, w=wname, bias=b, res=res, koffs=koffs, y=out, n=s.n, cout=s.cout, k=s.k,
             kp=-(-s.k // 2), npix=s.npix, out_w=s.out_w, wq=wq, img_stride=img_stride, pix_panels=npan,
             n_cob=ncob, n_pb=npb, packed=int(packed), ep=epi, tiles=s.n * npb * ncob,
             flops=2 * s.n * s.cout * s.npix * s.k)
    if pool is not None:
        from .pool import MaxPool
        MaxPool().lower(pool, [out], [y], plan)
