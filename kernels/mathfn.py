"""Scalar float32 math written in plain arithmetic, so that loops calling it vectorize.

LLVM cannot vectorize a loop that calls libm's ``expf``; these polynomial
versions inline into the loop body instead. Shared by the elementwise and
normalization families.
"""
import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic


@intrinsic
def _bits_to_f32(typingctx, v):
    """Reinterpret an int32's bits as a float32."""
    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.FloatType())
    return types.float32(types.int32), codegen


@numba.njit(inline="always")
def exp_f32(x):
    """float32 exp (Cephes polynomial, about 1 ulp) in plain arithmetic, so loops of it vectorize.

    Arguments below about -87 give the smallest normal number instead of a
    denormal or zero: harmless after softmax's max subtraction.
    """
    x = min(max(x, np.float32(-87.33)), np.float32(88.72))
    n = np.floor(x * np.float32(1.44269504) + np.float32(0.5))
    r = x - n * np.float32(0.693359375) + n * np.float32(2.12194440e-4)
    q = np.float32(1.9875691500e-4) * r + np.float32(1.3981999507e-3)
    q = q * r + np.float32(8.3334519073e-3)
    q = q * r + np.float32(4.1665795894e-2)
    q = q * r + np.float32(1.6666665459e-1)
    q = q * r + np.float32(5.0000001201e-1)
    e = q * r * r + r + np.float32(1)
    return e * _bits_to_f32((np.int32(n) + np.int32(127)) << np.int32(23))


@numba.njit(inline="always")
def erf_f32(x):
    """float32 erf (a rational fit on [-4, 4], about 5e-7 absolute error) in plain arithmetic, so loops vectorize.

    Outside [-4, 4] it gives +-1 (float32's own erf is +-1 there); NaN stays NaN.
    """
    x = np.float32(4) if x > np.float32(4) else (np.float32(-4) if x < np.float32(-4) else x)
    x2 = x * x
    p = np.float32(-2.72614225801306e-10) * x2 + np.float32(2.77068142495902e-08)
    p = p * x2 + np.float32(-2.10102402082508e-06)
    p = p * x2 + np.float32(-5.69250639462346e-05)
    p = p * x2 + np.float32(-7.34990630326855e-04)
    p = p * x2 + np.float32(-2.95459980854025e-03)
    p = p * x2 + np.float32(-1.60960333262415e-02)
    q = np.float32(-1.45660718464996e-05) * x2 + np.float32(-2.13374055278905e-04)
    q = q * x2 + np.float32(-1.68282697438203e-03)
    q = q * x2 + np.float32(-7.37332916720468e-03)
    q = q * x2 + np.float32(-1.42647390514189e-02)
    return np.divide(x * p, q)  # q < 0 on [-4, 4]; np.divide has no zero check, so the loop vectorizes
