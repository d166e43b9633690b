"""Unary math kernels on float32 that are never fused: Abs, Exp, Log, Erf, Gelu and the rest.

The ops: Abs, Neg, Exp, Log, Sqrt, Reciprocal, Floor, Ceil, Erf, Sin, Cos,
Softplus, Elu, Selu, Sign, Gelu (erf and tanh forms) and Round. They read the
elementwise family's row ``UNARY``: ``alpha``/``beta`` are the op's
parameters (Elu's alpha, Selu's alpha and gamma), tile ``t`` covers elements
``[t*chunk, (t+1)*chunk)``. Each op is its own kernel, made from one template
by inlining a constant op code, in ``MATH_KERNELS`` by code. None is a fused
epilogue: they stay out of the activations (``kernels.elementwise``) so that
the fused kernels which inline those stay small.
"""

import numba
import numpy as np

from .contract import tile_kernel
from .elementwise import GELU as ACT_GELU
from .elementwise import GELU_TANH as ACT_GELU_TANH
from .elementwise import UNARY, apply_activation, unary_tile
from .mathfn import erf_f32

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
        return erf_f32(v)
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
        return apply_activation(ACT_GELU, v, np.float32(0), np.float32(0))
    if op == GELU_TANH:
        return apply_activation(ACT_GELU_TANH, v, np.float32(0), np.float32(0))
    return np.rint(v)  # ROUND: half to even, as numpy and the spec


@numba.njit(inline="always")
def _unary_math(p, tile, op):
    x, y, lo, hi, alpha, beta = unary_tile(p, tile)
    for i in range(lo, hi):
        y[i] = np.float32(_math(op, x[i], alpha, beta))
    return 0


@tile_kernel(UNARY, reads_in_bounds=True)
def f32_abs(p, tile, scratch):
    return _unary_math(p, tile, ABS)


@tile_kernel(UNARY, reads_in_bounds=True)
def f32_neg(p, tile, scratch):
    return _unary_math(p, tile, NEG)


@tile_kernel(UNARY, reads_in_bounds=True)
def f32_exp(p, tile, scratch):
    return _unary_math(p, tile, EXP)


@tile_kernel(UNARY, reads_in_bounds=True)
def f32_log(p, tile, scratch):
    return _unary_math(p, tile, LOG)


@tile_kernel(UNARY, reads_in_bounds=True)
def f32_sqrt(p, tile, scratch):
    return _unary_math(p, tile, SQRT)


@tile_kernel(UNARY, reads_in_bounds=True)
def f32_reciprocal(p, tile, scratch):
    return _unary_math(p, tile, RECIPROCAL)


@tile_kernel(UNARY, reads_in_bounds=True)
def f32_floor(p, tile, scratch):
    return _unary_math(p, tile, FLOOR)


@tile_kernel(UNARY, reads_in_bounds=True)
def f32_ceil(p, tile, scratch):
    return _unary_math(p, tile, CEIL)


@tile_kernel(UNARY, reads_in_bounds=True)
def f32_erf(p, tile, scratch):
    return _unary_math(p, tile, ERF)


@tile_kernel(UNARY, reads_in_bounds=True)
def f32_sin(p, tile, scratch):
    return _unary_math(p, tile, SIN)


@tile_kernel(UNARY, reads_in_bounds=True)
def f32_cos(p, tile, scratch):
    return _unary_math(p, tile, COS)


@tile_kernel(UNARY, reads_in_bounds=True)
def f32_softplus(p, tile, scratch):
    return _unary_math(p, tile, SOFTPLUS)


@tile_kernel(UNARY, reads_in_bounds=True)
def f32_elu(p, tile, scratch):
    return _unary_math(p, tile, ELU)


@tile_kernel(UNARY, reads_in_bounds=True)
def f32_selu(p, tile, scratch):
    return _unary_math(p, tile, SELU)


@tile_kernel(UNARY, reads_in_bounds=True)
def f32_sign(p, tile, scratch):
    return _unary_math(p, tile, SIGN)


@tile_kernel(UNARY, reads_in_bounds=True)
def f32_gelu(p, tile, scratch):
    return _unary_math(p, tile, GELU)


@tile_kernel(UNARY, reads_in_bounds=True)
def f32_gelu_tanh(p, tile, scratch):
    return _unary_math(p, tile, GELU_TANH)


@tile_kernel(UNARY, reads_in_bounds=True)
def f32_round(p, tile, scratch):
    return _unary_math(p, tile, ROUND)


MATH_KERNELS = {ABS: f32_abs, NEG: f32_neg, EXP: f32_exp, LOG: f32_log, SQRT: f32_sqrt, RECIPROCAL: f32_reciprocal,
                FLOOR: f32_floor, CEIL: f32_ceil, ERF: f32_erf, SIN: f32_sin, COS: f32_cos, SOFTPLUS: f32_softplus,
                ELU: f32_elu, SELU: f32_selu, SIGN: f32_sign, GELU: f32_gelu, GELU_TANH: f32_gelu_tanh,
                ROUND: f32_round}
