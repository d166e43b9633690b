"""Elementwise kernels on float32: unary activations and broadcasting binary arithmetic.

Unary kernels read row ``UNARY``: ``alpha``/``beta`` are the activation's
parameters, tile ``t`` covers elements ``[t*chunk, (t+1)*chunk)``. Binary
kernels read row ``BINARY``: ``dims`` and the strides are int64 weights of
``BROADCAST_AXES`` entries: the output is ``dims`` contiguous; inputs are
addressed by element strides (0 on broadcast axes); a tile covers
``rows_per_tile`` rows of the last axis. Each activation and each float arithmetic op is its
own kernel, made from one template by inlining a constant op code, so the
branch disappears at compile time. The activations (``apply_activation``)
are also the fused epilogues of other families. Not here: the unary math
that is never fused (``kernels.unary_math``, on row ``UNARY``) and integer
arithmetic (``kernels.intarith``, on the op codes and geometry of this module).
"""

import numba
import numpy as np

from .abi import U, f32, i64, param_f32
from .contract import declare_row, tile_kernel
from .mathfn import erf_f32, exp_f32
from .vact import sigmoid_run, silu_run

RELU, LEAKY_RELU, CLIP, SIGMOID, TANH, HARD_SIGMOID, HARD_SWISH, IDENTITY, SILU, GELU, GELU_TANH = range(11)
ADD, SUB, MUL, DIV, MAX, MIN, POW, PRELU = range(8)  # PRELU: a < 0 ? a * b : a (b the slope)
BROADCAST_AXES = 6  # a binary op's broadcast is collapsed to this many axes

UNARY = declare_row("UNARY", inputs=("x",), outputs=("y",), ints=("n", "chunk"), floats=("alpha", "beta"))
_GEOMETRY = ("a", "b", "dims", "a_strides", "b_strides")
BINARY = declare_row("BINARY", inputs=_GEOMETRY, outputs=("y",), ints=("rows_per_tile",))


@numba.njit(inline="always")
def _act(op, v, alpha, beta):
    if op == RELU:
        # max(0, v) as the spec and numpy have it: NaN stays NaN
        return v if (v > 0 or v != v) else np.float32(0)
    if op == LEAKY_RELU:
        return v if v >= 0 else v * alpha
    if op == CLIP:
        # min(max(v, alpha), beta) with NaN kept, as the spec has it
        w = alpha if v < alpha else v
        return beta if w > beta else w
    if op == SIGMOID:
        # exp_f32 saturates for large |v|, so 1/(1+e) tends to the right 0 or 1.
        # np.divide: ``/`` checks for a zero divisor and raises, which keeps the loop scalar (~10x slower).
        return np.divide(np.float32(1), np.float32(1) + exp_f32(-v))
    if op == TANH:
        return np.tanh(v)
    if op == HARD_SIGMOID:
        # max(0, min(1, alpha * v + beta)) with NaN kept
        w = alpha * v + beta
        w = np.float32(1) if w > 1 else w
        return np.float32(0) if w < 0 else w
    if op == HARD_SWISH:
        return v * max(np.float32(0), min(np.float32(1), v * np.float32(1.0 / 6.0) + np.float32(0.5)))
    if op == SILU:
        # x * sigmoid(x): the fused form of Mul(x, Sigmoid(x))
        return np.divide(v, np.float32(1) + exp_f32(-v))
    if op == GELU:
        return np.float32(0.5) * v * (np.float32(1) + erf_f32(v * np.float32(0.7071067811865476)))
    if op == GELU_TANH:
        # 1 + tanh(u) = 2 - 2 / (exp(2u) + 1): polynomial exp, so loops of it vectorize
        u = np.float32(1.5957691216057308) * (v + np.float32(0.044715) * v * v * v)
        return v - np.divide(v, exp_f32(u) + np.float32(1))  # np.divide: no zero check, vectorizes
    return v


apply_activation = _act  # shared with the fused epilogues of other families


@numba.njit(inline="always")
def _act_loop(y, lo, hi, op, alpha, beta):
    # Unsigned indices: no negative-index wraparound test, so the loop vectorizes (about 10x on SiLU).
    for q in range(U(lo), U(hi)):
        y[q] = _act(op, y[q], alpha, beta)


# Outputs a kernel gathers into one ``activation_run``: a call's set-up (about 70 ns for SiLU) costs more than
# the work on a plane of 49, so kernels apply it over runs of consecutive planes of at least this many.
ACT_RUN_MIN = 2048


@numba.njit(nogil=True, cache=True)
def activation_run(act, y, lo, hi, alpha, beta):
    """Apply activation ``act`` to ``y[lo:hi]`` in place: a fused epilogue's pass over a run in cache.

    Each code gets its own loop with the code a constant, so the branch is
    gone and the loop vectorizes (a per-element ``apply_activation`` on a
    runtime code stays scalar: SiLU's exp then costs several times the
    conv). Does nothing for ``IDENTITY``. Compiled once and called, not
    inlined: inlined, its ten vector loops went into every epilogue of every
    conv and GEMM kernel and made a cold compile several times longer.
    """
    if act == RELU:
        _act_loop(y, lo, hi, RELU, alpha, beta)
    elif act == LEAKY_RELU:
        _act_loop(y, lo, hi, LEAKY_RELU, alpha, beta)
    elif act == CLIP:
        _act_loop(y, lo, hi, CLIP, alpha, beta)
    elif act == SIGMOID:
        sigmoid_run(y, lo, hi)
    elif act == TANH:
        _act_loop(y, lo, hi, TANH, alpha, beta)
    elif act == HARD_SIGMOID:
        _act_loop(y, lo, hi, HARD_SIGMOID, alpha, beta)
    elif act == HARD_SWISH:
        _act_loop(y, lo, hi, HARD_SWISH, alpha, beta)
    elif act == SILU:
        silu_run(y, lo, hi)
    elif act == GELU:
        _act_loop(y, lo, hi, GELU, alpha, beta)
    elif act == GELU_TANH:
        _act_loop(y, lo, hi, GELU_TANH, alpha, beta)


@numba.njit(inline="always")
def unary_tile(p, tile):
    """``(x, y, lo, hi, alpha, beta)`` of tile ``tile`` of a ``UNARY`` row: elements ``[lo, hi)``."""
    n = p[UNARY.n]
    lo = tile * p[UNARY.chunk]
    return (f32(p[UNARY.x], n), f32(p[UNARY.y], n), U(lo), U(min(n, lo + p[UNARY.chunk])),
            param_f32(p, UNARY.alpha), param_f32(p, UNARY.beta))


@numba.njit(inline="always")
def _unary(p, tile, op):
    x, y, lo, hi, alpha, beta = unary_tile(p, tile)
    for i in range(lo, hi):
        y[i] = _act(op, x[i], alpha, beta)
    return 0


@tile_kernel(UNARY, reads_in_bounds=True)
def f32_relu(p, tile, scratch):
    return _unary(p, tile, RELU)


@tile_kernel(UNARY, reads_in_bounds=True)
def f32_leaky_relu(p, tile, scratch):
    return _unary(p, tile, LEAKY_RELU)


@tile_kernel(UNARY, reads_in_bounds=True)
def f32_clip(p, tile, scratch):
    return _unary(p, tile, CLIP)


@tile_kernel(UNARY, reads_in_bounds=True)
def f32_sigmoid(p, tile, scratch):
    return _unary(p, tile, SIGMOID)


@tile_kernel(UNARY, reads_in_bounds=True)
def f32_tanh(p, tile, scratch):
    return _unary(p, tile, TANH)


@tile_kernel(UNARY, reads_in_bounds=True)
def f32_hard_sigmoid(p, tile, scratch):
    return _unary(p, tile, HARD_SIGMOID)


@tile_kernel(UNARY, reads_in_bounds=True)
def f32_hard_swish(p, tile, scratch):
    return _unary(p, tile, HARD_SWISH)


@numba.njit(inline="always")
def _arith(op, a, b):
    if op == ADD:
        return a + b
    if op == SUB:
        return a - b
    if op == MUL:
        return a * b
    if op == DIV:
        return a / b
    if op == MAX:
        # ONNX Max/Min propagate NaN like numpy.maximum/minimum
        return a if (a >= b or a != a) else b
    if op == POW:
        return np.float32(np.float64(a) ** np.float64(b))
    if op == PRELU:
        return a * b if a < np.float32(0) else a
    return a if (a <= b or a != a) else b


@numba.njit(inline="always")
def _binary(p, tile, op):
    dims = i64(p[BINARY.dims], BROADCAST_AXES)
    sa = i64(p[BINARY.a_strides], BROADCAST_AXES)
    sb = i64(p[BINARY.b_strides], BROADCAST_AXES)
    per = p[BINARY.rows_per_tile]
    inner = dims[5]
    rows = dims[0] * dims[1] * dims[2] * dims[3] * dims[4]
    na = 1
    nb = 1
    for k in range(BROADCAST_AXES):
        na += (dims[k] - 1) * sa[k]
        nb += (dims[k] - 1) * sb[k]
    a = f32(p[BINARY.a], na)
    b = f32(p[BINARY.b], nb)
    y = f32(p[BINARY.y], rows * inner)
    as5 = sa[5]
    bs5 = sb[5]
    lo = tile * per
    hi = min(rows, lo + per)
    for r in range(lo, hi):
        ao = 0
        bo = 0
        rem = r
        for k in range(4, -1, -1):
            i = rem % dims[k]
            rem //= dims[k]
            ao += i * sa[k]
            bo += i * sb[k]
        yo = U(r * inner)
        ao = U(ao)
        bo = U(bo)
        n = U(inner)
        if as5 == 1 and bs5 == 1:
            for j in range(n):
                y[yo + j] = _arith(op, a[ao + j], b[bo + j])
        elif as5 == 1 and bs5 == 0:
            bv = b[bo]
            for j in range(n):
                y[yo + j] = _arith(op, a[ao + j], bv)
        elif as5 == 0 and bs5 == 1:
            av = a[ao]
            for j in range(n):
                y[yo + j] = _arith(op, av, b[bo + j])
        else:
            for j in range(n):
                y[yo + j] = _arith(op, a[ao + j * U(as5)], b[bo + j * U(bs5)])
    return 0


@tile_kernel(BINARY, reads_in_bounds=True)
def f32_add(p, tile, scratch):
    return _binary(p, tile, ADD)


@tile_kernel(BINARY, reads_in_bounds=True)
def f32_sub(p, tile, scratch):
    return _binary(p, tile, SUB)


@tile_kernel(BINARY, reads_in_bounds=True)
def f32_mul(p, tile, scratch):
    return _binary(p, tile, MUL)


@tile_kernel(BINARY, reads_in_bounds=True)
def f32_div(p, tile, scratch):
    return _binary(p, tile, DIV)


@tile_kernel(BINARY, reads_in_bounds=True)
def f32_max(p, tile, scratch):
    return _binary(p, tile, MAX)


@tile_kernel(BINARY, reads_in_bounds=True)
def f32_min(p, tile, scratch):
    return _binary(p, tile, MIN)


@tile_kernel(BINARY, reads_in_bounds=True)
def f32_pow(p, tile, scratch):
    return _binary(p, tile, POW)


@tile_kernel(BINARY, reads_in_bounds=True)
def f32_prelu(p, tile, scratch):
    return _binary(p, tile, PRELU)


ACTIVATION_KERNELS = {RELU: f32_relu, LEAKY_RELU: f32_leaky_relu, CLIP: f32_clip, SIGMOID: f32_sigmoid,
                      TANH: f32_tanh, HARD_SIGMOID: f32_hard_sigmoid, HARD_SWISH: f32_hard_swish}
FLOAT_ARITH_KERNELS = {ADD: f32_add, SUB: f32_sub, MUL: f32_mul, DIV: f32_div, MAX: f32_max, MIN: f32_min,
                       POW: f32_pow, PRELU: f32_prelu}
