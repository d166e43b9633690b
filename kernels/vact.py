"""Activations on whole host vectors, emitted as LLVM IR: exp, Sigmoid, SiLU, HardSwish.

The arithmetic of the scalar forms (``mathfn.exp_f32``,
``elementwise.apply_activation``) with fused multiply-adds, min/max
instructions and, on AVX-512, a reciprocal estimate refined by one Newton
step in place of the division: results differ from the scalar loops' by
about an ulp. A kernel picks one form for a whole op, so results still never
depend on the tiling. The IR lives in one small function per activation and module, called rather
than inlined: the GEMM micro-kernel applies them to every vector of its
register block, and inlining them there would multiply the kernels' compile
time. Not here: Tanh, Gelu, and loops over arrays (``elementwise``'s scalar
loops of the same arithmetic vectorize as they are).
"""
import numpy as np
from llvmlite import ir

from . import simd
from .simd import I32


def _c(vt, x):
    return ir.Constant(vt, [float(np.float32(x))] * vt.count)


def _exp(b, x):
    # mathfn.exp_f32's range reduction and polynomial with fused multiply-adds; a NaN comes out as some number.
    # The upper clamp stays below 2**128 (exp_f32's 88.72 reaches inf), so 1 + exp is finite for the reciprocal.
    vt = x.type
    x = simd.vmin(b, simd.vmax(b, x, _c(vt, -87.33)), _c(vt, 88.3))
    floor = simd.declare(b, f"llvm.floor.v{vt.count}f32", vt, [vt])
    n = b.call(floor, [simd.fma(b, x, _c(vt, 1.44269504), _c(vt, 0.5))])
    r = simd.fma(b, n, _c(vt, 2.12194440e-4), simd.fma(b, n, _c(vt, -0.693359375), x))
    q = simd.fma(b, _c(vt, 1.9875691500e-4), r, _c(vt, 1.3981999507e-3))
    for k in (8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1):
        q = simd.fma(b, q, r, _c(vt, k))
    e = b.fadd(simd.fma(b, b.fmul(q, r), r, r), _c(vt, 1.0))
    it = ir.VectorType(I32, vt.count)
    bits = b.shl(b.add(b.fptosi(n, it), ir.Constant(it, [127] * vt.count)), ir.Constant(it, [23] * vt.count))
    return b.fmul(e, b.bitcast(bits, vt))


def _recip(b, d):
    # 1/d: AVX-512's 14-bit estimate and one Newton step (about 1 ulp), else a division.
    vt = d.type
    if vt.count != 16 or simd.LANES != 16:
        return b.fdiv(_c(vt, 1.0), d)
    est = simd.declare(b, "llvm.x86.avx512.rcp14.ps.512", vt, [vt, vt, ir.IntType(16)])
    r = b.call(est, [d, _c(vt, 0.0), ir.Constant(ir.IntType(16), -1)])
    return b.fmul(r, simd.fma(b, b.fsub(_c(vt, -0.0), d), r, _c(vt, 2.0)))


def _logistic(b, v):
    # 1 / (1 + exp(-v)), exactly 0 where exp(-v) saturates (as float32's own 1/(1+inf)), so SiLU(-inf) = -inf * 0 = NaN
    # as in Mul(x, Sigmoid(x)).
    vt = v.type
    d = b.fadd(_c(vt, 1.0), _exp(b, b.fsub(_c(vt, -0.0), v)))
    return b.select(b.fcmp_ordered(">", d, _c(vt, 1e38)), _c(vt, 0.0), _recip(b, d))


def _sigmoid(b, v):
    return b.select(b.fcmp_unordered("uno", v, v), v, _logistic(b, v))  # NaN in, NaN out


def _silu(b, v):
    return b.fmul(v, _logistic(b, v))


def _hard_swish(b, v):
    # v * max(0, min(1, v/6 + 1/2)); a NaN stays NaN through the product
    vt = v.type
    t = simd.fma(b, v, _c(vt, 1.0 / 6.0), _c(vt, 0.5))
    return b.fmul(v, simd.vmax(b, simd.vmin(b, t, _c(vt, 1.0)), _c(vt, 0.0)))


_BODIES = {"sigmoid": _sigmoid, "silu": _silu, "hard_swish": _hard_swish}


def call(builder, name, v):
    """``name``'s activation (``sigmoid``, ``silu``, ``hard_swish``) of vector ``v``, through a called IR function."""
    vt = v.type
    fname = f"tilerun.vact.{name}.v{vt.count}"
    fn = builder.module.globals.get(fname)
    if fn is None:
        fn = ir.Function(builder.module, ir.FunctionType(vt, [vt]), fname)
        fn.linkage = "internal"
        fn.attributes.add("noinline")
        fb = ir.IRBuilder(fn.append_basic_block("entry"))
        fb.ret(_BODIES[name](fb, fn.args[0]))
    return builder.call(fn, [v])
