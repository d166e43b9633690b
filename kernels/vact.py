"""Activations on whole host vectors, emitted as LLVM IR: exp, Sigmoid, SiLU, HardSwish.

Each is the same sequence of float32 operations as its scalar form
(``mathfn.exp_f32``, ``elementwise.apply_activation``; no fused multiply-add),
so a value never depends on whether a vector or a scalar loop computed it.
The IR lives in one small function per activation and module, called rather
than inlined: the GEMM micro-kernel applies them to every vector of its
register block, and inlining them there would multiply the kernels' compile
time. ``v_sigmoid``, ``v_silu`` and ``v_hard_swish`` are the Numba intrinsics
on ``simd.F32Vec`` for ordinary ``@njit`` loops. Not here: Tanh, Gelu (they
stay in the scalar loops of ``elementwise``).
"""
import numpy as np
from llvmlite import ir
from numba.extending import intrinsic

from . import simd
from .simd import I32, f32vec


def _c(vt, x):
    return ir.Constant(vt, [float(np.float32(x))] * vt.count)


def _exp(b, x):
    # mathfn.exp_f32, operation by operation (the clamps keep a NaN).
    vt = x.type
    x = simd.vclamp_above(b, simd.vclamp_below(b, x, _c(vt, -87.33)), _c(vt, 88.72))
    floor = simd._declare(b, f"llvm.floor.v{vt.count}f32", vt, [vt])
    n = b.call(floor, [b.fadd(b.fmul(x, _c(vt, 1.44269504)), _c(vt, 0.5))])
    r = b.fadd(b.fsub(x, b.fmul(n, _c(vt, 0.693359375))), b.fmul(n, _c(vt, 2.12194440e-4)))
    q = b.fadd(b.fmul(_c(vt, 1.9875691500e-4), r), _c(vt, 1.3981999507e-3))
    for k in (8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1):
        q = b.fadd(b.fmul(q, r), _c(vt, k))
    e = b.fadd(b.fadd(b.fmul(b.fmul(q, r), r), r), _c(vt, 1.0))
    it = ir.VectorType(I32, vt.count)
    bits = b.shl(b.add(b.fptosi(n, it), ir.Constant(it, [127] * vt.count)), ir.Constant(it, [23] * vt.count))
    return b.fmul(e, b.bitcast(bits, vt))


def _neg(b, v):
    return b.fsub(_c(v.type, -0.0), v)


def _sigmoid(b, v):
    return b.fdiv(_c(v.type, 1.0), b.fadd(_c(v.type, 1.0), _exp(b, _neg(b, v))))


def _silu(b, v):
    return b.fdiv(v, b.fadd(_c(v.type, 1.0), _exp(b, _neg(b, v))))


def _hard_swish(b, v):
    # v * max(0, min(1, v/6 + 1/2)): Python's min/max, NaN kept as the scalar form keeps it
    vt = v.type
    t = b.fadd(b.fmul(v, _c(vt, 1.0 / 6.0)), _c(vt, 0.5))
    t = b.select(b.fcmp_ordered("<", _c(vt, 1.0), t), _c(vt, 1.0), t)
    t = b.select(b.fcmp_ordered("<", t, _c(vt, 0.0)), _c(vt, 0.0), t)
    return b.fmul(v, t)


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


def _unary(name):
    @intrinsic
    def op(typingctx, v):
        return f32vec(f32vec), lambda ctx, b, sig, args: call(b, name, args[0])
    op.__name__ = f"v_{name}"
    return op


v_sigmoid = _unary("sigmoid")
v_silu = _unary("silu")
v_hard_swish = _unary("hard_swish")
