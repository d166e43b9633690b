"""Lowering of ``SqueezeExcite``, tilerun's own op for a recognised squeeze-and-excitation block.

The pass ``passes/fuse_squeeze_excite.py`` creates it in
``registry.INTERNAL_DOMAIN`` with inputs ``[x, w1, b1, w2, b2]`` (constant
1x1 conv weights ``[cr, c, 1, 1]`` and ``[c, cr, 1, 1]``, biases) and
attributes ``act1``, ``act2`` (``elementwise`` activation codes) with their
alphas and betas; ``y = x * act2(w2 @ act1(w1 @ mean(x) + b1) + b2)`` per
channel: ``f32_se_pool`` into a temporary of ``n x c`` means, then
``f32_squeeze_excite``, both tiled over (image, channel) planes. With the
attribute ``gates_only`` set (the pass folded the ``Mul`` into the 1x1 conv
that reads ``y``) the node writes the ``n x c`` gates instead of ``y``.
"""
import numpy as np

from tilerun.kernels.excite import f32_se_pool, f32_squeeze_excite

from .base import F32, Lowering
from .registry import register_internal


@register_internal("SqueezeExcite")
class SqueezeExcite(Lowering):
    """Pool (one row), then two fully connected layers with their activations and the channel gate (another)."""

    def infer(self, node, inputs):
        if node.attrs.get("gates_only"):
            return [((inputs[0].shape[0] * inputs[0].shape[1],), F32)]
        return [(inputs[0].shape, F32)]

    def lower(self, node, inputs, outputs, plan):
        x, w1, b1, w2, b2 = inputs
        n, c = x.shape[:2]
        hw = int(np.prod(x.shape[2:], dtype=np.int64))
        if x.size == 0:
            return
        cr = w1.shape[0]
        a = node.attrs
        w = [plan.weight(np.ascontiguousarray(np.asarray(v.const, np.float32).reshape(rows, cols).T), "se_w")
             for v, rows, cols in ((w1, cr, c), (w2, c, cr))]
        means = plan.temp((n * c,), np.float32, "se_means")
        tiles, per = plan.split(n * c, hw)
        plan.add(node, f32_se_pool, x=x, means=means, planes=n * c, hw=hw, planes_per_tile=per, tiles=tiles,
                 flops=n * c * hw)
        # Each tile recomputes its images' hidden layer (c * cr) besides gating its planes.
        gates_only = int(a.get("gates_only", 0))
        tiles, per = plan.split(n * c, (0 if gates_only else 2 * hw) + cr)
        plan.add(node, f32_squeeze_excite, x=x, means=means, w1t=w[0], b1=b1, w2t=w[1], b2=b2, y=outputs[0],
                 planes=n * c, c=c, hw=hw, cr=cr, act1=a["act1"], act2=a["act2"], act1_alpha=a["act1_alpha"],
                 act1_beta=a["act1_beta"], act2_alpha=a["act2_alpha"], act2_beta=a["act2_beta"],
                 planes_per_tile=per, gates_only=gates_only, tiles=tiles,
                 flops=n * ((0 if gates_only else 2 * c * hw) + 4 * c * cr))
