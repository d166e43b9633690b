"""Elementwise kernels: unary activations and broadcasting binary arithmetic on float32.

Unary kernels read ``[x, alpha_beta, y, n, chunk]``: ``alpha_beta`` is a
2-float32 weight with the activation's parameters, tile ``t`` covers elements
``[t*chunk, (t+1)*chunk)``. Binary kernels read
``[a, b, dims, a_strides, b_strides, y, rows_per_tile]`` where ``dims`` and the
strides are 6-int64 weights: the output is ``dims`` contiguous; inputs are
addressed by element strides (0 on broadcast axes); a tile covers
``rows_per_tile`` rows of the last axis. Each activation and each arithmetic op is its own
kernel, made from one template by inlining a constant op code, so the branch
disappears at compile time.
"""

import numba
import numpy as np

from .abi import U, f32, i64, tile_kernel
from .mathfn import exp_f32

RELU, LEAKY_RELU, CLIP, SIGMOID, TANH, HARD_SIGMOID, HARD_SWISH, IDENTITY = range(8)
ADD, SUB, MUL, DIV, MAX, MIN = range(6)


@numba.njit(inline="always")
def _act(op, v, alpha, beta):
    if op == RELU:
        return v if v > 0 else np.float32(0)
    if op == LEAKY_RELU:
        return v if v >= 0 else v * alpha
    if op == CLIP:
        return min(max(v, alpha), beta)
    if op == SIGMOID:
        # exp_f32 saturates for large |v|, so 1/(1+e) tends to the right 0 or 1.
        return np.float32(1) / (np.float32(1) + exp_f32(-v))
    if op == TANH:
        return np.tanh(v)
    if op == HARD_SIGMOID:
        return max(np.float32(0), min(np.float32(1), alpha * v + beta))
    if op == HARD_SWISH:
        return v * max(np.float32(0), min(np.float32(1), v * np.float32(1.0 / 6.0) + np.float32(0.5)))
    return v


apply_activation = _act  # shared with the fused epilogues of other families


@numba.njit(inline="always")
def _unary(p, tile, op):
    n = p[3]
    chunk = p[4]
    lo = tile * chunk
    hi = min(n, lo + chunk)
    x = f32(p[0], n)
    ab = f32(p[1], 2)
    y = f32(p[2], n)
    alpha = ab[0]
    beta = ab[1]
    for i in range(U(lo), U(hi)):
        y[i] = _act(op, x[i], alpha, beta)
    return 0


@tile_kernel
def f32_relu(p, tile, scratch):
    return _unary(p, tile, RELU)


@tile_kernel
def f32_leaky_relu(p, tile, scratch):
    return _unary(p, tile, LEAKY_RELU)


@tile_kernel
def f32_clip(p, tile, scratch):
    return _unary(p, tile, CLIP)


@tile_kernel
def f32_sigmoid(p, tile, scratch):
    return _unary(p, tile, SIGMOID)


@tile_kernel
def f32_tanh(p, tile, scratch):
    return _unary(p, tile, TANH)


@tile_kernel
def f32_hard_sigmoid(p, tile, scratch):
    return _unary(p, tile, HARD_SIGMOID)


@tile_kernel
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
    return a if (a <= b or a != a) else b


@numba.njit(inline="always")
def _binary(p, tile, op):
    dims = i64(p[2], 6)
    sa = i64(p[3], 6)
    sb = i64(p[4], 6)
    per = p[6]
    inner = dims[5]
    rows = dims[0] * dims[1] * dims[2] * dims[3] * dims[4]
    na = 1
    nb = 1
    for k in range(6):
        na += (dims[k] - 1) * sa[k]
        nb += (dims[k] - 1) * sb[k]
    a = f32(p[0], na)
    b = f32(p[1], nb)
    y = f32(p[5], rows * inner)
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


@tile_kernel
def f32_add(p, tile, scratch):
    return _binary(p, tile, ADD)


@tile_kernel
def f32_sub(p, tile, scratch):
    return _binary(p, tile, SUB)


@tile_kernel
def f32_mul(p, tile, scratch):
    return _binary(p, tile, MUL)


@tile_kernel
def f32_div(p, tile, scratch):
    return _binary(p, tile, DIV)


@tile_kernel
def f32_max(p, tile, scratch):
    return _binary(p, tile, MAX)


@tile_kernel
def f32_min(p, tile, scratch):
    return _binary(p, tile, MIN)


