"""Squeeze-and-excitation as two tile kernels: ``f32_se_pool`` (row ``SE_POOL``), ``f32_squeeze_excite`` (row ``SQUEEZE_EXCITE``).

``f32_se_pool``: the mean of each of the ``planes`` planes (``hw`` floats,
summed in float64 like ``GlobalAveragePool``) into ``means``;
tile = ``planes_per_tile`` consecutive (image, channel) planes.

``f32_squeeze_excite``: per tile, ``planes_per_tile`` consecutive planes of
``n x c``; for each image they belong to, ``h = act1(w1 @ mean + b1)`` from
all ``c`` means (``w1t`` is ``w1`` transposed, ``[c, cr]``; every tile of an
image recomputes it, ``c * cr`` multiply-adds), then for each of its planes
``g = act2(w2 @ h + b2)`` (``w2t``: ``[cr, c]``) and ``y = x * g``. The
transposed weights make both products sums of scaled weight rows, which
vectorize with a fixed order. The four ops a squeeze-excitation block
exports as (pool, two 1x1 convs on a 1x1 map, the channel Mul) each ran on a
few microseconds of work with a hand-off between: here they are two rows,
both split over channels, so no worker waits through a whole block's pool
and gating (one tile per image left the other worker idle for all of it). The activations
are ``elementwise`` codes applied by ``apply_activation``. With ``gates_only``
the tile writes its planes' gates ``g`` to ``y`` (``planes`` floats) instead
of ``x * g``: a 1x1 conv after the block takes them into its weights
(``ops/conv.py``, with ``affine.f32_channel_affine``).

Not here: spatial (non-global) gating, more than two fully connected layers.
"""
import numpy as np

from .abi import U, f32, param_f32
from .contract import declare_row, tile_kernel
from .elementwise import apply_activation
from .reduce import row_sum

SE_POOL = declare_row("SE_POOL", inputs=("x",), outputs=("means",), ints=("planes", "hw", "planes_per_tile"))
SQUEEZE_EXCITE = declare_row("SQUEEZE_EXCITE", inputs=("x", "means", "w1t", "b1", "w2t", "b2"), outputs=("y",),
                             ints=("planes", "c", "hw", "cr", "act1", "act2", "planes_per_tile", "gates_only"),
                             floats=("act1_alpha", "act1_beta", "act2_alpha", "act2_beta"))


@tile_kernel(SE_POOL)
def f32_se_pool(p, tile, scratch):
    R = SE_POOL
    planes, hw, per = p[R.planes], p[R.hw], p[R.planes_per_tile]
    x = f32(p[R.x], planes * hw)
    means = f32(p[R.means], planes)
    for q in range(tile * per, min(planes, tile * per + per)):
        means[q] = np.float32(row_sum(x, q * hw, hw) / hw)
    return 0


def _scratch(a):
    return (a["planes_per_tile"] + a["cr"]) * 4


@tile_kernel(SQUEEZE_EXCITE, scratch=_scratch)
def f32_squeeze_excite(p, tile, scratch):
    R = SQUEEZE_EXCITE
    planes, c, hw, cr, per = p[R.planes], p[R.c], p[R.hw], p[R.cr], p[R.planes_per_tile]
    act1, act2 = p[R.act1], p[R.act2]
    a1a, a1b = param_f32(p, R.act1_alpha), param_f32(p, R.act1_beta)
    a2a, a2b = param_f32(p, R.act2_alpha), param_f32(p, R.act2_beta)
    gates_only = p[R.gates_only]
    x = f32(p[R.x], planes * hw)
    y = f32(p[R.y], planes if gates_only else planes * hw)
    means = f32(p[R.means], planes)
    w1, b1 = f32(p[R.w1t], c * cr), f32(p[R.b1], cr)
    w2, b2 = f32(p[R.w2t], cr * c), f32(p[R.b2], c)
    hid = f32(scratch, cr)
    gate = f32(scratch + cr * 4, per)
    q0, q1 = tile * per, min(planes, tile * per + per)
    q = q0
    while q < q1:  # the tile's planes of one image at a time
        img = q // c
        c0, c1 = q - img * c, min(c, q1 - img * c)
        m = img * c
        for j in range(cr):
            hid[j] = b1[j]
        for ch in range(c):
            v = means[m + ch]
            for j in range(cr):
                hid[U(j)] += w1[U(ch * cr + j)] * v
        for ch in range(c0, c1):
            gate[U(ch - c0)] = b2[ch]
        for j in range(cr):
            h = apply_activation(act1, hid[j], a1a, a1b)
            for ch in range(c0, c1):
                gate[U(ch - c0)] += w2[U(j * c + ch)] * h
        for ch in range(c0, c1):
            g = apply_activation(act2, gate[U(ch - c0)], a2a, a2b)
            if gates_only:
                y[m + ch] = g
                continue
            o = (m + ch) * hw
            for k in range(hw):
                y[U(o + k)] = x[U(o + k)] * g
        q = m + c1
    return 0
