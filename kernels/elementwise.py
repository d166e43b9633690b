"""Elementwise kernels: unary activations and broadcasting binary arithmetic on float32.

Unary kernels read row ``UNARY``: ``alpha``/``beta`` are the activation's
parameters, tile ``t`` covers elements ``[t*chunk, (t+1)*chunk)``. Binary
kernels read row ``BINARY``: ``dims`` and the strides are int64 weights of
``BROADCAST_AXES`` entries: the output is ``dims`` contiguous; inputs are
addressed by element strides (0 on broadcast axes); a tile covers
``rows_per_tile`` rows of the last axis. Each activation and each float arithmetic op is its
own kernel, made from one template by inlining a constant op code, so the
branch disappears at compile time. Integer arithmetic (``<dtype>_arith``, every
integer dtype) takes the op code as a parameter instead.
"""

import math

import numba
import numpy as np
from numba import types

from .abi import U, _view, f32, i8, i32, i64, param_f32, u8
from .contract import declare_row, tile_kernel
from .mathfn import exp_f32

RELU, LEAKY_RELU, CLIP, SIGMOID, TANH, HARD_SIGMOID, HARD_SWISH, IDENTITY = range(8)
ADD, SUB, MUL, DIV, MAX, MIN, POW = range(7)
BROADCAST_AXES = 6  # a binary op's broadcast is collapsed to this many axes

UNARY = declare_row("UNARY", inputs=("x",), outputs=("y",), ints=("n", "chunk"), floats=("alpha", "beta"))
_GEOMETRY = ("a", "b", "dims", "a_strides", "b_strides")
BINARY = declare_row("BINARY", inputs=_GEOMETRY, outputs=("y",), ints=("rows_per_tile",))
INT_BINARY = declare_row("INT_BINARY", inputs=_GEOMETRY, outputs=("y",), ints=("rows_per_tile", "op"))


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
        return np.float32(1) / (np.float32(1) + exp_f32(-v))
    if op == TANH:
        return np.tanh(v)
    if op == HARD_SIGMOID:
        # max(0, min(1, alpha * v + beta)) with NaN kept
        w = alpha * v + beta
        w = np.float32(1) if w > 1 else w
        return np.float32(0) if w < 0 else w
    if op == HARD_SWISH:
        return v * max(np.float32(0), min(np.float32(1), v * np.float32(1.0 / 6.0) + np.float32(0.5)))
    return v


apply_activation = _act  # shared with the fused epilogues of other families


@numba.njit(inline="always")
def _unary(p, tile, op):
    n = p[UNARY.n]
    chunk = p[UNARY.chunk]
    lo = tile * chunk
    hi = min(n, lo + chunk)
    x = f32(p[UNARY.x], n)
    y = f32(p[UNARY.y], n)
    alpha = param_f32(p, UNARY.alpha)
    beta = param_f32(p, UNARY.beta)
    for i in range(U(lo), U(hi)):
        y[i] = _act(op, x[i], alpha, beta)
    return 0


@tile_kernel(UNARY)
def f32_relu(p, tile, scratch):
    return _unary(p, tile, RELU)


@tile_kernel(UNARY)
def f32_leaky_relu(p, tile, scratch):
    return _unary(p, tile, LEAKY_RELU)


@tile_kernel(UNARY)
def f32_clip(p, tile, scratch):
    return _unary(p, tile, CLIP)


@tile_kernel(UNARY)
def f32_sigmoid(p, tile, scratch):
    return _unary(p, tile, SIGMOID)


@tile_kernel(UNARY)
def f32_tanh(p, tile, scratch):
    return _unary(p, tile, TANH)


@tile_kernel(UNARY)
def f32_hard_sigmoid(p, tile, scratch):
    return _unary(p, tile, HARD_SIGMOID)


@tile_kernel(UNARY)
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


@tile_kernel(BINARY)
def f32_add(p, tile, scratch):
    return _binary(p, tile, ADD)


@tile_kernel(BINARY)
def f32_sub(p, tile, scratch):
    return _binary(p, tile, SUB)


@tile_kernel(BINARY)
def f32_mul(p, tile, scratch):
    return _binary(p, tile, MUL)


@tile_kernel(BINARY)
def f32_div(p, tile, scratch):
    return _binary(p, tile, DIV)


@tile_kernel(BINARY)
def f32_max(p, tile, scratch):
    return _binary(p, tile, MAX)


@tile_kernel(BINARY)
def f32_min(p, tile, scratch):
    return _binary(p, tile, MIN)




# -- unary math (not fusable epilogues: kept out of _act so fused kernels stay small) -----------
ABS, NEG, EXP, LOG, SQRT, RECIPROCAL, FLOOR, CEIL, ERF, SIN, COS, SOFTPLUS, ELU, SELU, SIGN, GELU, \
    GELU_TANH, ROUND = range(18)


@numba.njit(inline="always")
def _math(op, v, alpha, beta):
    if op == ABS:
        return abs(v)
    if op == NEG:
        return -v
    if op == EXP:
        return np.exp(v)
    if op == LOG:
        return np.log(v)
    if op == SQRT:
        return np.sqrt(v)
    if op == RECIPROCAL:
        return np.float32(1) / v
    if op == FLOOR:
        return np.floor(v)
    if op == CEIL:
        return np.ceil(v)
    if op == ERF:
        return np.float32(math.erf(v))
    if op == SIN:
        return np.sin(v)
    if op == COS:
        return np.cos(v)
    if op == SOFTPLUS:
        # log(1 + e^v) without overflow for large v
        return v + np.log1p(np.exp(-v)) if v > 0 else np.log1p(np.exp(v))
    if op == ELU:
        return v if v >= 0 else alpha * (np.exp(v) - np.float32(1))
    if op == SELU:
        return beta * v if v > 0 else beta * (alpha * np.exp(v) - alpha)
    if op == SIGN:
        return np.float32(1) if v > 0 else (np.float32(-1) if v < 0 else v)
    if op == GELU:
        return np.float32(0.5) * v * (np.float32(1) + np.float32(math.erf(v * np.float32(0.7071067811865476))))
    if op == GELU_TANH:
        c = np.float32(0.7978845608028654)
        return np.float32(0.5) * v * (np.float32(1) + np.tanh(c * (v + np.float32(0.044715) * v * v * v)))
    return np.rint(v)  # ROUND: half to even, as numpy and the spec


@numba.njit(inline="always")
def _unary_math(p, tile, op):
    n = p[UNARY.n]
    chunk = p[UNARY.chunk]
    lo = tile * chunk
    hi = min(n, lo + chunk)
    x = f32(p[UNARY.x], n)
    y = f32(p[UNARY.y], n)
    alpha = param_f32(p, UNARY.alpha)
    beta = param_f32(p, UNARY.beta)
    for i in range(U(lo), U(hi)):
        y[i] = np.float32(_math(op, x[i], alpha, beta))
    return 0


@tile_kernel(UNARY)
def f32_abs(p, tile, scratch):
    return _unary_math(p, tile, ABS)


@tile_kernel(UNARY)
def f32_neg(p, tile, scratch):
    return _unary_math(p, tile, NEG)


@tile_kernel(UNARY)
def f32_exp(p, tile, scratch):
    return _unary_math(p, tile, EXP)


@tile_kernel(UNARY)
def f32_log(p, tile, scratch):
    return _unary_math(p, tile, LOG)


@tile_kernel(UNARY)
def f32_sqrt(p, tile, scratch):
    return _unary_math(p, tile, SQRT)


@tile_kernel(UNARY)
def f32_reciprocal(p, tile, scratch):
    return _unary_math(p, tile, RECIPROCAL)


@tile_kernel(UNARY)
def f32_floor(p, tile, scratch):
    return _unary_math(p, tile, FLOOR)


@tile_kernel(UNARY)
def f32_ceil(p, tile, scratch):
    return _unary_math(p, tile, CEIL)


@tile_kernel(UNARY)
def f32_erf(p, tile, scratch):
    return _unary_math(p, tile, ERF)


@tile_kernel(UNARY)
def f32_sin(p, tile, scratch):
    return _unary_math(p, tile, SIN)


@tile_kernel(UNARY)
def f32_cos(p, tile, scratch):
    return _unary_math(p, tile, COS)


@tile_kernel(UNARY)
def f32_softplus(p, tile, scratch):
    return _unary_math(p, tile, SOFTPLUS)


@tile_kernel(UNARY)
def f32_elu(p, tile, scratch):
    return _unary_math(p, tile, ELU)


@tile_kernel(UNARY)
def f32_selu(p, tile, scratch):
    return _unary_math(p, tile, SELU)


@tile_kernel(UNARY)
def f32_sign(p, tile, scratch):
    return _unary_math(p, tile, SIGN)


@tile_kernel(UNARY)
def f32_gelu(p, tile, scratch):
    return _unary_math(p, tile, GELU)


@tile_kernel(UNARY)
def f32_gelu_tanh(p, tile, scratch):
    return _unary_math(p, tile, GELU_TANH)


@tile_kernel(UNARY)
def f32_round(p, tile, scratch):
    return _unary_math(p, tile, ROUND)


@tile_kernel(BINARY)
def f32_pow(p, tile, scratch):
    return _binary(p, tile, POW)


# -- integer arithmetic ----------------------------------------------------------------
# One kernel per integer dtype, the op a run-time code (``INT_BINARY.op``):
# integer arithmetic carries shapes and indices, not the hot path, so one
# compiled kernel per dtype beats six. Add/Sub/Mul wrap as numpy does; Div truncates toward
# zero (ONNX), gives 0 on a zero divisor and wraps MIN / -1 instead of trapping.
_i16_ptr, i16 = _view(types.int16)
_u16_ptr, u16 = _view(types.uint16)
_u32_ptr, u32 = _view(types.uint32)
_u64_ptr, u64 = _view(types.uint64)


@numba.njit(inline="always")
def _int_div(a, b):
    if b == 0:
        return a - a
    if b == -1:
        return (a - a) - a  # MIN // -1 traps on x86: negate (wrapping) instead
    q = a // b
    if q < 0 and q * b != a:
        q += 1
    return q


@numba.njit(inline="always")
def _uint_div(a, b):
    if b == 0:
        return a - a
    return a // b


@numba.njit(inline="always")
def _int_arith(op, a, b):
    if op == ADD:
        return a + b
    if op == SUB:
        return a - b
    if op == MUL:
        return a * b
    if op == DIV:
        return _int_div(a, b)
    if op == MAX:
        return a if a >= b else b
    return a if a <= b else b


@numba.njit(inline="always")
def _uint_arith(op, a, b):
    # Unsigned: no sign fix-up in Div, and no mixing with signed literals, which
    # would send uint64 through float64.
    if op == ADD:
        return a + b
    if op == SUB:
        return a - b
    if op == MUL:
        return a * b
    if op == DIV:
        return _uint_div(a, b)
    if op == MAX:
        return a if a >= b else b
    return a if a <= b else b


@numba.njit(inline="always")
def _extents(p):
    dims = i64(p[INT_BINARY.dims], BROADCAST_AXES)
    sa = i64(p[INT_BINARY.a_strides], BROADCAST_AXES)
    sb = i64(p[INT_BINARY.b_strides], BROADCAST_AXES)
    na = 1
    nb = 1
    for k in range(BROADCAST_AXES):
        na += (dims[k] - 1) * sa[k]
        nb += (dims[k] - 1) * sb[k]
    return na, nb, dims[0] * dims[1] * dims[2] * dims[3] * dims[4] * dims[5]


@numba.njit(inline="always")
def _int_row(p, r):
    """Offsets into ``a`` and ``b`` of output row ``r`` of a collapsed broadcast."""
    dims = i64(p[INT_BINARY.dims], BROADCAST_AXES)
    sa = i64(p[INT_BINARY.a_strides], BROADCAST_AXES)
    sb = i64(p[INT_BINARY.b_strides], BROADCAST_AXES)
    ao = 0
    bo = 0
    rem = r
    for k in range(4, -1, -1):
        i = rem % dims[k]
        rem //= dims[k]
        ao += i * sa[k]
        bo += i * sb[k]
    return ao, bo


@numba.njit
def _int_binary(p, tile, a, b, y):
    dims = i64(p[INT_BINARY.dims], BROADCAST_AXES)
    as5 = i64(p[INT_BINARY.a_strides], BROADCAST_AXES)[5]
    bs5 = i64(p[INT_BINARY.b_strides], BROADCAST_AXES)[5]
    per = p[INT_BINARY.rows_per_tile]
    op = p[INT_BINARY.op]
    inner = dims[5]
    rows = dims[0] * dims[1] * dims[2] * dims[3] * dims[4]
    lo = tile * per
    for r in range(lo, min(rows, lo + per)):
        ao, bo = _int_row(p, r)
        for j in range(inner):
            y[r * inner + j] = _int_arith(op, a[ao + j * as5], b[bo + j * bs5])
    return 0


@numba.njit
def _uint_binary(p, tile, a, b, y):
    # _int_binary with the unsigned ops (a separate loop: a function argument would defeat caching)
    dims = i64(p[INT_BINARY.dims], BROADCAST_AXES)
    as5 = i64(p[INT_BINARY.a_strides], BROADCAST_AXES)[5]
    bs5 = i64(p[INT_BINARY.b_strides], BROADCAST_AXES)[5]
    per = p[INT_BINARY.rows_per_tile]
    op = p[INT_BINARY.op]
    inner = dims[5]
    rows = dims[0] * dims[1] * dims[2] * dims[3] * dims[4]
    lo = tile * per
    for r in range(lo, min(rows, lo + per)):
        ao, bo = _int_row(p, r)
        for j in range(inner):
            y[r * inner + j] = _uint_arith(op, a[ao + j * as5], b[bo + j * bs5])
    return 0


@tile_kernel(INT_BINARY)
def i64_arith(p, tile, scratch):
    na, nb, n = _extents(p)
    return _int_binary(p, tile, i64(p[INT_BINARY.a], na), i64(p[INT_BINARY.b], nb), i64(p[INT_BINARY.y], n))


@tile_kernel(INT_BINARY)
def i32_arith(p, tile, scratch):
    na, nb, n = _extents(p)
    return _int_binary(p, tile, i32(p[INT_BINARY.a], na), i32(p[INT_BINARY.b], nb), i32(p[INT_BINARY.y], n))


@tile_kernel(INT_BINARY)
def i16_arith(p, tile, scratch):
    na, nb, n = _extents(p)
    return _int_binary(p, tile, i16(p[INT_BINARY.a], na), i16(p[INT_BINARY.b], nb), i16(p[INT_BINARY.y], n))


@tile_kernel(INT_BINARY)
def i8_arith(p, tile, scratch):
    na, nb, n = _extents(p)
    return _int_binary(p, tile, i8(p[INT_BINARY.a], na), i8(p[INT_BINARY.b], nb), i8(p[INT_BINARY.y], n))


@tile_kernel(INT_BINARY)
def u64_arith(p, tile, scratch):
    na, nb, n = _extents(p)
    return _uint_binary(p, tile, u64(p[INT_BINARY.a], na), u64(p[INT_BINARY.b], nb), u64(p[INT_BINARY.y], n))


@tile_kernel(INT_BINARY)
def u32_arith(p, tile, scratch):
    na, nb, n = _extents(p)
    return _uint_binary(p, tile, u32(p[INT_BINARY.a], na), u32(p[INT_BINARY.b], nb), u32(p[INT_BINARY.y], n))


@tile_kernel(INT_BINARY)
def u16_arith(p, tile, scratch):
    na, nb, n = _extents(p)
    return _uint_binary(p, tile, u16(p[INT_BINARY.a], na), u16(p[INT_BINARY.b], nb), u16(p[INT_BINARY.y], n))


@tile_kernel(INT_BINARY)
def u8_arith(p, tile, scratch):
    na, nb, n = _extents(p)
    return _uint_binary(p, tile, u8(p[INT_BINARY.a], na), u8(p[INT_BINARY.b], nb), u8(p[INT_BINARY.y], n))


ACTIVATION_KERNELS = {RELU: f32_relu, LEAKY_RELU: f32_leaky_relu, CLIP: f32_clip, SIGMOID: f32_sigmoid,
                      TANH: f32_tanh, HARD_SIGMOID: f32_hard_sigmoid, HARD_SWISH: f32_hard_swish}
MATH_KERNELS = {ABS: f32_abs, NEG: f32_neg, EXP: f32_exp, LOG: f32_log, SQRT: f32_sqrt, RECIPROCAL: f32_reciprocal,
                FLOOR: f32_floor, CEIL: f32_ceil, ERF: f32_erf, SIN: f32_sin, COS: f32_cos, SOFTPLUS: f32_softplus,
                ELU: f32_elu, SELU: f32_selu, SIGN: f32_sign, GELU: f32_gelu, GELU_TANH: f32_gelu_tanh,
                ROUND: f32_round}
FLOAT_ARITH_KERNELS = {ADD: f32_add, SUB: f32_sub, MUL: f32_mul, DIV: f32_div, MAX: f32_max, MIN: f32_min,
                       POW: f32_pow}
INT_ARITH_KERNELS = {np.dtype(t): k for t, k in [
    (np.int64, i64_arith), (np.int32, i32_arith), (np.int16, i16_arith), (np.int8, i8_arith),
    (np.uint64, u64_arith), (np.uint32, u32_arith), (np.uint16, u16_arith), (np.uint8, u8_arith)]}
