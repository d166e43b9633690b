"""Lowering of ``ChannelAffine``, tilerun's own op for a folded chain of per-channel affine ops.

It lives in ``registry.INTERNAL_DOMAIN``, so no model node resolves to it.
The fold pass (``passes/fold_batchnorm``) creates it with inputs ``[x, s, t]``
(``s``, ``t`` constant ``[C]``); the fuse pass may add ``fused.activation``.
One ``f32_channel_affine`` row, tiles over (image, channel) planes.
"""
import numpy as np

from tilerun.kernels.affine import f32_channel_affine

from .base import F32, Lowering
from .gemm import fused_activation
from .registry import register_internal


@register_internal("ChannelAffine")
class ChannelAffine(Lowering):
    """``y = act(x * s[c] + t[c])`` over axis 1 of a float32 tensor."""

    def infer(self, node, inputs):
        return [(tuple(inputs[0].shape), F32)]

    def lower(self, node, inputs, outputs, plan):
        x, s, t = inputs
        y = outputs[0]
        c = x.shape[1]
        hw = int(np.prod(x.shape[2:], dtype=np.int64))
        planes = x.shape[0] * c
        act, aa, ab = fused_activation(node)
        tiles, per = plan.split(planes, hw)
        plan.add(node, f32_channel_affine, x=x, s=s, t=t, y=y, planes=planes, channels=c, hw=hw,
                 planes_per_tile=per, act=act, alpha=aa, beta=ab, tiles=tiles, flops=2 * x.size)
