"""Activations on whole host vectors, emitted as LLVM IR: exp, Sigmoid, SiLU, HardSwish.

``v_exp4`` is softmax's exp (its error as Sigmoid's below; arguments past
about 88 saturate, below about -87.3 give the smallest normal number).

Sigmoid and SiLU take exp(-x) as ``2**t`` (``t`` split into an integer,
put in the exponent, and a fraction, through a degree-5 polynomial) and,
on AVX-512, ``1/(1 + exp(-x))`` as a reciprocal estimate refined by one
Newton step: about 16 vector instructions a vector. Sigmoid's error
against the exact value is below 1.5e-7 absolute, and below 4e-6 relative
(1e-6 for ``|x| <= 16``: the rounding of ``-x * log2(e)``); the scalar
loops (``mathfn.exp_f32``) differ from it by about as much. A kernel picks
one form for a whole op, so results still never depend on the tiling. The
IR lives in small functions (one per activation, number of vectors and
module), called rather than inlined: the GEMM micro-kernel applies them to
every vector of its register block, and inlining them there would multiply
the kernels' compile time (softmax's exp is inlined: ``INLINED``).
``silu_run`` and ``sigmoid_run`` apply them to runs of an array
(``elementwise.activation_run``), four vectors per call.
Not here: Tanh, Gelu, loops of other activations (``elementwise``'s scalar
loops vectorize as they are).
"""
import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from . import simd
from .simd import I32, VW, f32vec, v_load, v_load_n, v_store, v_store_n


def _c(vt, x):
    return ir.Constant(vt, [float(np.float32(x))] * vt.count)


# 2**f on [-1/2, 1/2], degree 5, fitted for relative error (2e-7 in float32 arithmetic).
_EXP2 = (1.0000001192092896, 0.6931469440460205, 0.24022120237350464, 0.05550713092088699, 0.009675541892647743,
         0.001327647129073739)


def _exp2(b, t):
    # 2**t for t in [-126, 127]: t = n + f with n = rint(t), a polynomial in f, and 2**n put in the exponent. On
    # AVX-512 that last step is one vscalefps, which takes n as a float.
    vt = t.type
    rint = simd.declare(b, f"llvm.rint.v{vt.count}f32", vt, [vt])
    n = b.call(rint, [t])
    f = b.fsub(t, n)
    p = _c(vt, _EXP2[-1])
    for k in reversed(_EXP2[:-1]):
        p = simd.fma(b, p, f, _c(vt, k))
    if vt.count == 16 and simd.LANES == 16:
        fn = simd.declare(b, "llvm.x86.avx512.mask.scalef.ps.512", vt, [vt, vt, vt, ir.IntType(16), I32])
        return b.call(fn, [p, n, _c(vt, 0.0), ir.Constant(ir.IntType(16), -1), ir.Constant(I32, 4)])
    it = ir.VectorType(I32, vt.count)
    bits = b.shl(b.add(b.fptosi(n, it), ir.Constant(it, [127] * vt.count)), ir.Constant(it, [23] * vt.count))
    return b.fmul(p, b.bitcast(bits, vt))


def _recip(b, d):
    # 1/d: AVX-512's 14-bit estimate and one Newton step (about 1 ulp), else a division.
    vt = d.type
    if vt.count != 16 or simd.LANES != 16:
        return b.fdiv(_c(vt, 1.0), d)
    est = simd.declare(b, "llvm.x86.avx512.rcp14.ps.512", vt, [vt, vt, ir.IntType(16)])
    r = b.call(est, [d, _c(vt, 0.0), ir.Constant(ir.IntType(16), -1)])
    return b.fmul(r, simd.fma(b, b.fsub(_c(vt, -0.0), d), r, _c(vt, 2.0)))


def _logistic(b, v):
    # 1 / (1 + exp(-v)) with exp(-v) = 2**(-v*log2(e)), the exponent clamped to [-126, 127] (a NaN comes out as
    # some number). Exactly 0 where 1 + exp(-v) passes 1e38 (v below about -87.5, as float32's own
    # 1/(1+inf) further down), so SiLU(-inf) = -inf * 0 = NaN as in Mul(x, Sigmoid(x)).
    vt = v.type
    d = b.fadd(_c(vt, 1.0), _exp_clamped(b, v, -1.0))
    return b.select(b.fcmp_ordered(">", d, _c(vt, 1e38)), _c(vt, 0.0), _recip(b, d))


def _exp_clamped(b, v, sign):
    # e**(sign * v) as 2**t, t = sign * v * log2(e) clamped to [-126, 127] (a NaN comes out as some number).
    vt = v.type
    t = b.fmul(v, _c(vt, sign * 1.4426950408889634))
    return _exp2(b, simd.vmin(b, simd.vmax(b, t, _c(vt, -126.0)), _c(vt, 127.0)))


def _exp(b, v):
    # e**v; below about -87.3 the smallest normal number (as ``mathfn.exp_f32``), above about 88 it saturates
    # (only softmax calls it, on x - max(x) <= 0). NaN in, NaN out.
    return b.select(b.fcmp_unordered("uno", v, v), v, _exp_clamped(b, v, 1.0))


def _sigmoid(b, v):
    return b.select(b.fcmp_unordered("uno", v, v), v, _logistic(b, v))  # NaN in, NaN out


def _silu(b, v):
    return b.fmul(v, _logistic(b, v))


def _hard_swish(b, v):
    # v * max(0, min(1, v/6 + 1/2)); a NaN stays NaN through the product
    vt = v.type
    t = simd.fma(b, v, _c(vt, 1.0 / 6.0), _c(vt, 0.5))
    return b.fmul(v, simd.vmax(b, simd.vmin(b, t, _c(vt, 1.0)), _c(vt, 0.0)))


_BODIES = {"exp": _exp, "sigmoid": _sigmoid, "silu": _silu, "hard_swish": _hard_swish}


# Bodies inlined where they are called: a caller's loop keeps its vectors in registers across them (no vector
# register survives a call). The GEMM micro-kernel's activations stay called functions (compile time).
INLINED = ("exp",)
GROUP = 4  # vectors per call: independent chains the core overlaps (one vector's exp is a long dependent chain)


def call(builder, name, vs):
    """``name``'s activation (``exp``, ``sigmoid``, ``silu``, ``hard_swish``) of each vector in ``vs``, through IR
    functions taking ``GROUP`` vectors at a time (a last, smaller group gets its own function)."""
    out = []
    for g in range(0, len(vs), GROUP):
        part = vs[g:g + GROUP]
        fn = _function(builder.module, name, part[0].type, len(part))
        ret = builder.call(fn, part)
        out += [builder.extract_value(ret, i) for i in range(len(part))]
    return out


def _function(module, name, vt, n):
    fname = f"tilerun.vact.{name}.v{vt.count}x{n}"
    fn = module.globals.get(fname)
    if fn is None:
        fn = ir.Function(module, ir.FunctionType(ir.LiteralStructType([vt] * n), [vt] * n), fname)
        fn.linkage = "internal"
        fn.attributes.add("alwaysinline" if name in INLINED else "noinline")
        fb = ir.IRBuilder(fn.append_basic_block("entry"))
        ret = ir.Constant(ir.LiteralStructType([vt] * n), ir.Undefined)
        for i, v in enumerate(fn.args):
            ret = fb.insert_value(ret, _BODIES[name](fb, v), i)
        fb.ret(ret)
    return fn


def _intrinsic4(name):
    @intrinsic
    def apply4(typingctx, a, b_, c, d):
        def codegen(ctx, b, sig, args):
            return ctx.make_tuple(b, sig.return_type, call(b, name, list(args)))
        return types.UniTuple(f32vec, 4)(f32vec, f32vec, f32vec, f32vec), codegen
    apply4.__doc__ = f"``{name}`` of four vectors (a tuple of four), for ``@njit`` kernels."
    return apply4


v_exp4 = _intrinsic4("exp")
v_sigmoid4 = _intrinsic4("sigmoid")
v_silu4 = _intrinsic4("silu")


@numba.njit(inline="always")
def _run(y, lo, hi, silu):
    a = y.ctypes.data
    q = lo
    step = VW * 4  # bytes of one vector
    while q + 4 * VW <= hi:
        at = a + q * 4
        v0, v1, v2, v3 = v_load(at), v_load(at + step), v_load(at + 2 * step), v_load(at + 3 * step)
        if silu:
            v0, v1, v2, v3 = v_silu4(v0, v1, v2, v3)
        else:
            v0, v1, v2, v3 = v_sigmoid4(v0, v1, v2, v3)
        v_store(at, v0)
        v_store(at + step, v1)
        v_store(at + 2 * step, v2)
        v_store(at + 3 * step, v3)
        q += 4 * VW
    while q < hi:  # the last vectors one at a time, the last one masked
        v = v_load_n(a + q * 4, hi - q)
        v = v_silu4(v, v, v, v)[0] if silu else v_sigmoid4(v, v, v, v)[0]
        v_store_n(a + q * 4, v, hi - q)
        q += VW


@numba.njit(inline="always")
def silu_run(y, lo, hi):
    """SiLU of ``y[lo:hi]`` in place, four vectors at a time."""
    _run(y, lo, hi, True)


@numba.njit(inline="always")
def sigmoid_run(y, lo, hi):
    """Sigmoid of ``y[lo:hi]`` in place, four vectors at a time."""
    _run(y, lo, hi, False)
