"""Per-channel affine map with a fused activation: ``y = act(x * s[c] + t[c])`` on NCHW planes.

``f32_channel_affine`` reads ``[x, s, t, act, y]`` then ints ``[planes, C,
HW, planes_per_tile]``: ``s``, ``t`` are float32 ``[C]``, ``act`` the float32
row ``[code, alpha, beta]`` of an activation of :mod:`.elementwise` (IDENTITY
for none); plane ``p`` (image-major) has channel ``p % C``. It stands for a
whole chain of BatchNormalization / per-channel Mul / Add and a following
Relu or Clip in one pass over memory, ``VW`` floats per step with one fma.
Other activations take a second, scalar pass over the plane while it is in cache.
"""
import numpy as np

from .abi import f32, tile_kernel
from .elementwise import CLIP, IDENTITY, RELU, apply_activation
from .simd import VW, v_fma, v_load_n, v_max, v_min, v_splat, v_store_n, v_zero


@tile_kernel
def f32_channel_affine(p, tile, scratch):
    planes, c_n, hw, per = p[5], p[6], p[7], p[8]
    s = f32(p[1], c_n)
    t = f32(p[2], c_n)
    ar = f32(p[3], 3)
    y = f32(p[4], planes * hw)
    act = np.int64(ar[0])
    lo_v = v_splat(ar[1])
    hi_v = v_splat(ar[2])
    zero = v_zero()
    c = (tile * per) % c_n
    for pl in range(tile * per, min(planes, tile * per + per)):
        sv = v_splat(s[c])
        tv = v_splat(t[c])
        xo = p[0] + pl * hw * 4
        yo = p[4] + pl * hw * 4
        for j in range(0, hw, VW):
            v = v_fma(v_load_n(xo + j * 4, hw - j), sv, tv)
            if act == RELU:
                v = v_max(v, zero)
            elif act == CLIP:
                v = v_min(v_max(v, lo_v), hi_v)
            v_store_n(yo + j * 4, v, hw - j)
        if act != RELU and act != CLIP and act != IDENTITY:
            for j in range(pl * hw, pl * hw + hw):
                y[j] = apply_activation(act, y[j], ar[1], ar[2])
        c += 1
        if c == c_n:
            c = 0
    return 0
