"""Per-channel affine map with a fused activation: ``y = act(x * s[c] + t[c])`` on NCHW planes.

``f32_channel_affine`` reads row ``AFFINE``: ``s``, ``t`` are float32 ``[C]``,
``act`` the code of an activation of :mod:`.elementwise` (IDENTITY for none)
with its ``alpha``/``beta``; plane ``p`` (image-major) has channel ``p % C``. It stands for a
whole chain of BatchNormalization / per-channel Mul / Add and a following
Relu or Clip in one pass over memory, ``VW`` floats per step with one fma.
Other activations take a second, scalar pass over the plane while it is in cache.
Each plane's last vector is a masked load: it reads only inside ``x`` (a graph input is read in place).
"""
from .abi import f32, param_f32
from .contract import declare_row, tile_kernel
from .elementwise import CLIP, IDENTITY, RELU, apply_activation
from .simd import VW, v_clamp_above, v_clamp_below, v_fma, v_load_n, v_splat, v_store_n, v_zero

AFFINE = declare_row("AFFINE", inputs=("x", "s", "t"), outputs=("y",), ints=("planes", "channels", "hw",
                     "planes_per_tile", "act"), floats=("alpha", "beta"))


@tile_kernel(AFFINE, reads_in_bounds=True)
def f32_channel_affine(p, tile, scratch):
    planes, c_n, hw, per = p[AFFINE.planes], p[AFFINE.channels], p[AFFINE.hw], p[AFFINE.planes_per_tile]
    s = f32(p[AFFINE.s], c_n)
    t = f32(p[AFFINE.t], c_n)
    y = f32(p[AFFINE.y], planes * hw)
    act = p[AFFINE.act]
    alpha = param_f32(p, AFFINE.alpha)
    beta = param_f32(p, AFFINE.beta)
    lo_v = v_splat(alpha)
    hi_v = v_splat(beta)
    zero = v_zero()
    c = (tile * per) % c_n
    for pl in range(tile * per, min(planes, tile * per + per)):
        sv = v_splat(s[c])
        tv = v_splat(t[c])
        xo = p[AFFINE.x] + pl * hw * 4
        yo = p[AFFINE.y] + pl * hw * 4
        for j in range(0, hw, VW):
            v = v_fma(v_load_n(xo + j * 4, hw - j), sv, tv)
            if act == RELU:
                v = v_clamp_below(v, zero)
            elif act == CLIP:
                v = v_clamp_above(v_clamp_below(v, lo_v), hi_v)
            v_store_n(yo + j * 4, v, hw - j)
        if act != RELU and act != CLIP and act != IDENTITY:
            for j in range(pl * hw, pl * hw + hw):
                y[j] = apply_activation(act, y[j], alpha, beta)
        c += 1
        if c == c_n:
            c = 0
    return 0
