"""Lowering of ``Attention``, tilerun's own op for a recognised scaled dot-product attention.

It lives in ``registry.INTERNAL_DOMAIN``; the attention pass
(``passes/fuse_attention.py``) creates it with inputs ``[q, k, v, mask or '']``
and attributes ``scale``, ``causal`` and the permutations ``q_perm``,
``k_perm``, ``v_perm``, ``y_perm`` that view each contiguous tensor as
``Q [B, H, Sq, dh]``, ``K^T [B, H, dh, Sk]``, ``V [B, H, Sk, dh]`` and the
output as ``[B, H, Sq, dh]``. The mask is additive and broadcasts to ``[B, H,
Sq, Sk]`` (keys not broadcast). Two rows: ``f32_attention_pack`` (K^T and
V into GEMM panels in arena temporaries, a tile per (batch, head)), then
``f32_attention`` (a tile per (batch, head, query block)).
"""
import math

import numpy as np

from tilerun.kernels.attention import f32_attention, f32_attention_pack, packed_floats
from tilerun.kernels.gemm import MR, NR, epilogue

from .base import F32, Lowering
from .registry import register_internal

QUERY_BLOCK = 64   # queries per tile at most
KEY_BLOCK = 512    # keys per online-softmax step at most


def view_strides(shape, perm):
    """Element strides of the axes of ``x.transpose(perm)`` for a contiguous ``x`` of ``shape``."""
    base = [int(np.prod(shape[i + 1:], dtype=np.int64)) for i in range(len(shape))]
    return [base[a] for a in perm]


def key_block(sk):
    """Keys per online-softmax step: near-equal steps of at most ``KEY_BLOCK``, whole ``NR`` panels.

    A function of ``sk`` alone, so results never depend on the tiling.
    """
    steps = -(-sk // KEY_BLOCK)
    return -(-(-(-sk // steps)) // NR) * NR


@register_internal("Attention")
class Attention(Lowering):
    """``Y = softmax(scale * Q @ K^T + mask) @ V`` per (batch, head), scores never in the arena."""

    def infer(self, node, inputs):
        q, v = inputs[0], inputs[2]
        out = [q.shape[a] for a in node.attrs["q_perm"][:3]] + [v.shape[node.attrs["v_perm"][3]]]
        return [(tuple(out[a] for a in node.attrs["y_perm"]), F32)]

    def lower(self, node, inputs, outputs, plan):
        q, k, v = inputs[:3]
        mask = inputs[3] if len(inputs) > 3 else None
        a = node.attrs
        qs, ks, vs = (view_strides(x.shape, a[f"{n}_perm"]) for x, n in ((q, "q"), (k, "k"), (v, "v")))
        b, h, sq, dh = (q.shape[i] for i in a["q_perm"])
        sk = k.shape[a["k_perm"][3]]
        y = outputs[0]
        # y = out.transpose(y_perm) for out [B, H, Sq, dh]: out's axis i is y's axis y_perm.index(i)
        ys = [view_strides(y.shape, range(4))[list(a["y_perm"]).index(i)] for i in range(4)]
        ms = self._mask_strides(mask, (b, h, sq, sk))
        kb = key_block(sk)
        qb = min(QUERY_BLOCK, -(-sq // MR) * MR)
        nqb = -(-sq // qb)
        nk, nv = packed_floats(sk, dh)
        kp, vp = plan.temp((b * h * nk,), np.float32, "attn_k"), plan.temp((b * h * nv,), np.float32, "attn_v")
        plan.add(node, f32_attention_pack, k=k, v=v, kp=kp, vp=vp, heads=h, sk=sk, dh=dh, k_sb=ks[0], k_sh=ks[1],
                 k_ss=ks[3], k_sd=ks[2], v_sb=vs[0], v_sh=vs[1], v_ss=vs[2], tiles=b * h, flops=2 * b * h * sk * dh)
        plan.add(node, f32_attention, q=q, kp=kp, vp=vp, mask=mask, y=y, heads=h, sq=sq, sk=sk, dh=dh, qb=qb,
                 n_qblk=nqb, kb=kb, causal=int(a.get("causal", 0)), q_sb=qs[0], q_sh=qs[1], q_ss=qs[2],
                 y_sb=ys[0], y_sh=ys[1], y_ss=ys[2], m_sb=ms[0], m_sh=ms[1], m_sq=ms[2],
                 scale=float(a["scale"]), ep=epilogue(), tiles=b * h * nqb, flops=4 * b * h * sq * sk * dh)

    @staticmethod
    def _mask_strides(mask, full):
        """Strides of the mask's batch, head and query axes (0 where it broadcasts)."""
        if mask is None:
            return 0, 0, 0
        shape = (1,) * (4 - len(mask.shape)) + tuple(mask.shape)
        st = [math.prod(shape[i + 1:]) for i in range(4)]
        return tuple(0 if shape[i] == 1 and full[i] != 1 else st[i] for i in range(3))
