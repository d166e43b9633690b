"""Squeeze-and-excitation as one tile kernel: ``f32_squeeze_excite``, row ``SQUEEZE_EXCITE``.

Per image (one tile): the mean of each of the ``c`` planes (``hw`` floats,
summed in float64 like ``GlobalAveragePool``), ``h = act1(w1 @ mean + b1)``
(``w1t`` is ``w1`` transposed, ``[c, cr]``), ``g = act2(w2 @ h + b2)``
(``w2t``: ``[cr, c]``), then ``y = x * g`` plane by plane. The transposed
weights make both products sums of scaled weight rows, which vectorize with
a fixed order. The four ops a squeeze-excitation block
exports as (pool, two 1x1 convs on a 1x1 map, the channel Mul) each ran on a
few microseconds of work with a hand-off between: here they are one. The
activations are ``elementwise`` codes applied by ``apply_activation``. Not
here: spatial (non-global) gating, more than two fully connected layers.
"""
import numpy as np

from .abi import U, f32, param_f32
from .contract import declare_row, tile_kernel
from .elementwise import apply_activation
from .reduce import row_sum

SQUEEZE_EXCITE = declare_row("SQUEEZE_EXCITE", inputs=("x", "w1t", "b1", "w2t", "b2"), outputs=("y",),
                             ints=("c", "hw", "cr", "act1", "act2"),
                             floats=("act1_alpha", "act1_beta", "act2_alpha", "act2_beta"))


def _scratch(a):
    return (a["c"] + a["cr"]) * 4


@tile_kernel(SQUEEZE_EXCITE, scratch=_scratch)
def f32_squeeze_excite(p, tile, scratch):
    R = SQUEEZE_EXCITE
    c, hw, cr = p[R.c], p[R.hw], p[R.cr]
    act1, act2 = p[R.act1], p[R.act2]
    a1a, a1b = param_f32(p, R.act1_alpha), param_f32(p, R.act1_beta)
    a2a, a2b = param_f32(p, R.act2_alpha), param_f32(p, R.act2_beta)
    x = f32(p[R.x] + tile * c * hw * 4, c * hw)
    y = f32(p[R.y] + tile * c * hw * 4, c * hw)
    w1, b1 = f32(p[R.w1t], c * cr), f32(p[R.b1], cr)
    w2, b2 = f32(p[R.w2t], cr * c), f32(p[R.b2], c)
    hid = f32(scratch, cr)
    gate = f32(scratch + cr * 4, c)
    for j in range(cr):
        hid[j] = b1[j]
    for ch in range(c):
        m = np.float32(row_sum(x, ch * hw, hw) / hw)
        for j in range(cr):
            hid[U(j)] += w1[U(ch * cr + j)] * m
    for ch in range(c):
        gate[ch] = b2[ch]
    for j in range(cr):
        h = apply_activation(act1, hid[j], a1a, a1b)
        for ch in range(c):
            gate[U(ch)] += w2[U(j * c + ch)] * h
    for ch in range(c):
        g = apply_activation(act2, gate[ch], a2a, a2b)
        o = ch * hw
        for q in range(hw):
            y[U(o + q)] = x[U(o + q)] * g
    return 0
