"""Host SIMD width and the vector intrinsics the micro-kernels are written with.

The float32 lane count ``LANES`` is detected once, at import, from llvmlite's
host CPU features: AVX-512F gives 16 lanes, AVX2 with FMA 8, NEON (aarch64) 4.
A host with none of them gets ``LANES = 0``: the same kernels then run on
4-lane generic vectors (``VW = 4``), which LLVM lowers to scalar code there.
``TILERUN_SIMD=none`` (or ``avx2``) forces a narrower choice, to exercise those
paths on a wide machine; use a separate ``NUMBA_CACHE_DIR`` with it, since
cached kernels do not record the width they were built for.

Two layers live here. IR helpers (``vload``, ``vstore``, ``masked_load``,
``masked_store``, ``splat``, ``fma``, ``vmax``, ``vmin``, ``vclamp_below``,
``vclamp_above``, ``lane_mask``, ``prefetch``, ``transpose``) emit ``llvmlite.ir`` into a
builder, for code generators such as the GEMM micro-kernel. Numba intrinsics
on the ``F32Vec`` type (``v_load``, ``v_store``, ``v_load_n``, ``v_load_lanes``, ``v_load2_n``, ``v_load2_lanes``,
``v_store_n``, ``v_splat``, ``v_fma``, ``v_add``, ``v_sub``, ``v_mul``, ``v_max``,
``v_min``, ``v_clamp_below``, ``v_clamp_above``, ``v_zero``, ``v_even``, ``v_odd``, ``v_interleave4``,
``v_transpose_block``, ``v_lanes_extreme``, and ``prefetch_write`` on an address) let ordinary
``@njit`` kernels hold one host vector in a variable. Addresses are int64 byte
addresses; unaligned access is allowed everywhere. ``vmax``/``vmin`` drop a
NaN of their first operand; activation epilogues clamp with
``vclamp_below``/``vclamp_above``, which keep it, as ONNX Relu and Clip do.
Not here: integer vectors, reductions across lanes.
"""
import os
import platform

import llvmlite.binding as llvm
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, models, register_model

F32, I64, I32 = ir.FloatType(), ir.IntType(64), ir.IntType(32)


def detect_lanes():
    """float32 lanes of the widest vector unit this host has (16, 8, 4) or 0 for none."""
    forced = os.environ.get("TILERUN_SIMD", "").lower()
    feats = llvm.get_host_cpu_features()
    table = [("avx512", 16, ("avx512f",)), ("avx2", 8, ("avx2", "fma")), ("neon", 4, ("neon",))]
    for name, lanes, need in table:
        if forced and forced != name:
            continue
        if all(feats.get(f, False) for f in need) or (name == "neon" and platform.machine() in ("aarch64", "arm64")):
            return lanes
    return 0


LANES = detect_lanes()
# IR vectors need a width even where no SIMD unit exists; LLVM splits them into scalars there.
VW = LANES or 4


def vec(n=VW):
    """The LLVM type ``<n x float>``."""
    return ir.VectorType(F32, n)


def _ptr(builder, addr, ty):
    return builder.inttoptr(addr, ty.as_pointer())


def declare(builder, name, ret, args):
    """The function ``name`` (an LLVM intrinsic) of type ``ret(args)`` in the builder's module, declared once."""
    fn = builder.module.globals.get(name)
    if fn is None:
        fn = ir.Function(builder.module, ir.FunctionType(ret, args), name)
    return fn


def vload(builder, addr, n=VW):
    """Load ``n`` floats from byte address ``addr`` (any alignment)."""
    return builder.load(_ptr(builder, addr, vec(n)), align=4)


def vstore(builder, v, addr):
    """Store vector ``v`` at byte address ``addr`` (any alignment)."""
    builder.store(v, _ptr(builder, addr, v.type), align=4)


def lane_mask(builder, count, n=VW):
    """``<n x i1>`` with lanes ``i < count`` set; ``count`` is an i64 (any value, clamped)."""
    c = builder.trunc(builder.select(builder.icmp_signed(">", count, ir.Constant(I64, n)), ir.Constant(I64, n),
                                     builder.select(builder.icmp_signed("<", count, ir.Constant(I64, 0)),
                                                    ir.Constant(I64, 0), count)), I32)
    lanes = ir.Constant(ir.VectorType(I32, n), list(range(n)))
    return builder.icmp_signed("<", lanes, splat(builder, c, n))


def masked_load(builder, addr, mask, n=VW):
    """Load lanes of ``mask`` from ``addr``; the others read as 0.0 and touch no memory."""
    vt = vec(n)
    fn = declare(builder, f"llvm.masked.load.v{n}f32.p0", vt,
                  [vt.as_pointer(), I32, ir.VectorType(ir.IntType(1), n), vt])
    return builder.call(fn, [_ptr(builder, addr, vt), ir.Constant(I32, 4), mask, ir.Constant(vt, [0.0] * n)])


def masked_store(builder, v, addr, mask):
    """Store the lanes of ``v`` selected by ``mask`` at ``addr``; others untouched."""
    vt = v.type
    fn = declare(builder, f"llvm.masked.store.v{vt.count}f32.p0", ir.VoidType(),
                  [vt, vt.as_pointer(), I32, ir.VectorType(ir.IntType(1), vt.count)])
    builder.call(fn, [v, _ptr(builder, addr, vt), ir.Constant(I32, 4), mask])


def prefetch(builder, addr, locality=3, write=False):
    """Hint the cache line at byte address ``addr`` into L1 (``locality`` 3) or only as far as L2 (2), owned for
    writing when ``write``; never faults."""
    i8p = ir.IntType(8).as_pointer()
    fn = declare(builder, "llvm.prefetch.p0", ir.VoidType(), [i8p, I32, I32, I32])
    builder.call(fn, [builder.inttoptr(addr, i8p), ir.Constant(I32, int(write)), ir.Constant(I32, locality),
                      ir.Constant(I32, 1)])


def splat(builder, scalar, n=VW):
    """A vector of ``n`` copies of ``scalar`` (float or int)."""
    vt = ir.VectorType(scalar.type, n)
    v = builder.insert_element(ir.Constant(vt, ir.Undefined), scalar, ir.Constant(I32, 0))
    return builder.shuffle_vector(v, ir.Constant(vt, ir.Undefined), ir.Constant(ir.VectorType(I32, n), [0] * n))


def fma(builder, a, b, c):
    """``a * b + c`` with one rounding (``llvm.fma``), lane-wise."""
    vt = a.type
    fn = declare(builder, f"llvm.fma.v{vt.count}f32", vt, [vt, vt, vt])
    return builder.call(fn, [a, b, c])


def vmax(builder, a, b):
    """Lane-wise ``a if a > b else b`` (a NaN in ``a`` gives ``b``, like the scalar kernels)."""
    return builder.select(builder.fcmp_ordered(">", a, b), a, b)


def vmin(builder, a, b):
    """Lane-wise ``a if a < b else b``."""
    return builder.select(builder.fcmp_ordered("<", a, b), a, b)


def vclamp_below(builder, v, lo):
    """Lane-wise ``lo if v < lo else v``: ``max(v, lo)`` that keeps a NaN of ``v`` (ONNX Relu, Clip)."""
    return builder.select(builder.fcmp_ordered("<", v, lo), lo, v)


def vclamp_above(builder, v, hi):
    """Lane-wise ``hi if v > hi else v``: ``min(v, hi)`` that keeps a NaN of ``v`` (ONNX Clip)."""
    return builder.select(builder.fcmp_ordered(">", v, hi), hi, v)


def transpose(builder, rows):
    """``R`` vectors (row ``r``: ``VW`` consecutive elements) as ``R`` vectors in column order, ``R`` a power of 2 <= VW.

    Output vector ``q`` holds columns ``q*VW/R .. (q+1)*VW/R - 1``, each as
    ``R`` lanes (row 0 first): with ``R == VW`` a square transpose. Built
    from ``log2(R)`` rounds of two-source shuffles that merge groups of rows
    pairwise and halve the column span of every vector.
    """
    vw = rows[0].type.count
    groups = [[(v, [(r, k) for k in range(vw)])] for r, v in enumerate(rows)]  # (value, lane labels)
    while len(groups) > 1:
        merged = []
        for left, right in zip(groups[0::2], groups[1::2]):
            out = []
            for (lv, ll), (rv, rl) in zip(left, right):
                ks = sorted({k for _, k in ll})
                rows_in = sorted({r for r, _ in ll + rl})
                pos = {lab: i for i, lab in enumerate(ll)} | {lab: vw + i for i, lab in enumerate(rl)}
                for half in (ks[:len(ks) // 2], ks[len(ks) // 2:]):
                    labels = [(r, k) for k in half for r in rows_in]
                    mask = ir.Constant(ir.VectorType(I32, vw), [pos[x] for x in labels])
                    out.append((builder.shuffle_vector(lv, rv, mask), labels))
            merged.append(out)
        groups = merged
    return [v for v, _ in sorted(groups[0], key=lambda x: x[1][0][1])]


# -- Numba-level vectors ------------------------------------------------------------------

class F32VecType(types.Type):
    """Numba type of one host vector of float32 (``VW`` lanes), held in a register."""

    def __init__(self):
        super().__init__(name=f"F32Vec{VW}")


f32vec = F32VecType()


@register_model(F32VecType)
class _F32VecModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, vec(VW))


@intrinsic
def v_load(typingctx, addr):
    """Vector of ``VW`` floats at byte address ``addr``."""
    return f32vec(types.int64), lambda ctx, b, sig, args: vload(b, args[0])


@intrinsic
def v_store(typingctx, addr, v):
    """Store vector ``v`` at byte address ``addr``."""
    def codegen(ctx, b, sig, args):
        vstore(b, args[1], args[0])
        return ctx.get_dummy_value()
    return types.none(types.int64, f32vec), codegen


@intrinsic
def prefetch_write(typingctx, addr):
    """Hint the cache line at byte address ``addr`` into L1, owned for writing (a store to it will not wait on
    the line's read); never faults."""
    def codegen(ctx, b, sig, args):
        prefetch(b, args[0], 3, True)
        return ctx.get_dummy_value()
    return types.none(types.int64), codegen


@intrinsic
def v_load_n(typingctx, addr, n):
    """The first ``n`` floats at ``addr`` (``n`` may exceed ``VW``), the other lanes 0.0."""
    def codegen(ctx, b, sig, args):
        return masked_load(b, args[0], lane_mask(b, args[1]))
    return f32vec(types.int64, types.int64), codegen


@intrinsic
def v_store_n(typingctx, addr, v, n):
    """Store the first ``n`` lanes of ``v`` (all when ``n >= VW``) at ``addr``."""
    def codegen(ctx, b, sig, args):
        masked_store(b, args[1], args[0], lane_mask(b, args[2]))
        return ctx.get_dummy_value()
    return types.none(types.int64, f32vec, types.int64), codegen


@intrinsic
def v_load_lanes(typingctx, addr, lo, hi):
    """Lanes ``lo <= i < hi`` of the ``VW`` floats at ``addr``, the others 0.0 (they touch no memory: ``addr``
    may lie before the caller's data when ``lo > 0``)."""
    def codegen(ctx, b, sig, args):
        lanes = ir.Constant(ir.VectorType(I64, VW), list(range(VW)))
        mask = b.and_(b.icmp_signed(">=", lanes, splat(b, args[1])), b.icmp_signed("<", lanes, splat(b, args[2])))
        return masked_load(b, args[0], mask)
    return f32vec(types.int64, types.int64, types.int64), codegen


def _load_even(b, addr, lo_mask, hi_mask):
    """The even lanes of the ``2 * VW`` floats at ``addr``, read under ``lo_mask`` (the first ``VW``) and
    ``hi_mask`` (the next): a stride-2 read."""
    lo = masked_load(b, addr, lo_mask)
    hi = masked_load(b, b.add(addr, ir.Constant(I64, 4 * VW)), hi_mask)
    return b.shuffle_vector(lo, hi, ir.Constant(ir.VectorType(I32, VW), list(range(0, 2 * VW, 2))))


@intrinsic
def v_load2_n(typingctx, addr, n):
    """Every other float at ``addr`` (a stride-2 read): lanes ``i < n`` get ``addr[2i]``, the rest 0.0."""
    def codegen(ctx, b, sig, args):
        two_n = b.mul(args[1], ir.Constant(I64, 2))
        return _load_even(b, args[0], lane_mask(b, b.sub(two_n, ir.Constant(I64, 1))),
                          lane_mask(b, b.sub(two_n, ir.Constant(I64, VW + 1))))
    return f32vec(types.int64, types.int64), codegen


@intrinsic
def v_load2_lanes(typingctx, addr, lo, hi):
    """Lanes ``lo <= i < hi`` get ``addr[2i]`` (a stride-2 read), the others 0.0 and touch no memory."""
    def codegen(ctx, b, sig, args):
        first = splat(b, b.trunc(b.mul(args[1], ir.Constant(I64, 2)), I32))  # the floats read: [first, last)
        last = splat(b, b.trunc(b.sub(b.mul(args[2], ir.Constant(I64, 2)), ir.Constant(I64, 1)), I32))
        masks = []
        for h in range(2):
            lanes = ir.Constant(ir.VectorType(I32, VW), list(range(h * VW, (h + 1) * VW)))
            masks.append(b.and_(b.icmp_signed(">=", lanes, first), b.icmp_signed("<", lanes, last)))
        return _load_even(b, args[0], *masks)
    return f32vec(types.int64, types.int64, types.int64), codegen


@intrinsic
def v_splat(typingctx, x):
    """A vector of ``VW`` copies of float32 ``x``."""
    def codegen(ctx, b, sig, args):
        return splat(b, ctx.cast(b, args[0], sig.args[0], types.float32))
    return f32vec(types.float32), codegen


def _binary(emit):
    @intrinsic
    def op(typingctx, a, b_):
        return f32vec(f32vec, f32vec), lambda ctx, b, sig, args: emit(b, args[0], args[1])
    return op


v_add = _binary(lambda b, x, y: b.fadd(x, y))
v_mul = _binary(lambda b, x, y: b.fmul(x, y))
v_sub = _binary(lambda b, x, y: b.fsub(x, y))
v_max = _binary(vmax)
v_min = _binary(vmin)
v_clamp_below = _binary(vclamp_below)
v_clamp_above = _binary(vclamp_above)
v_even = _binary(lambda b, x, y: b.shuffle_vector(x, y, ir.Constant(ir.VectorType(I32, VW), list(range(0, 2 * VW, 2)))))
v_odd = _binary(lambda b, x, y: b.shuffle_vector(x, y, ir.Constant(ir.VectorType(I32, VW), list(range(1, 2 * VW, 2)))))
v_next1 = _binary(lambda b, x, y: b.shuffle_vector(x, y, ir.Constant(ir.VectorType(I32, VW), list(range(1, VW + 1)))))
v_next1.__doc__ = "Lanes ``1 ..`` of ``a`` then lane 0 of ``b``: ``[a, b]`` one lane on (one ``valignd``)."
v_even.__doc__ = "The even lanes of ``a`` then ``b`` (lane ``i`` of ``[a, b]`` at ``2i``): a stride-2 deinterleave."
v_odd.__doc__ = "The odd lanes of ``a`` then ``b`` (lane ``i`` of ``[a, b]`` at ``2i + 1``)."
v_add.__doc__ = "Lane-wise sum of two vectors."
v_mul.__doc__ = "Lane-wise product of two vectors."
v_sub.__doc__ = "Lane-wise difference ``a - b``."
v_max.__doc__ = "Lane-wise max (``a if a > b else b``)."
v_min.__doc__ = "Lane-wise min (``a if a < b else b``)."
v_clamp_below.__doc__ = "Lane-wise ``b if a < b else a``: ``max(a, b)`` that keeps a NaN of ``a`` (activations)."
v_clamp_above.__doc__ = "Lane-wise ``b if a > b else a``: ``min(a, b)`` that keeps a NaN of ``a`` (activations)."


@intrinsic
def v_lanes_extreme(typingctx, v, is_min):
    """The largest (``is_min``: smallest) lane of ``v`` as a float32; for vectors without NaN."""
    def codegen(ctx, b, sig, args):
        vt = args[0].type
        out = []
        for name in ("fmax", "fmin"):
            fn = declare(b, f"llvm.vector.reduce.{name}.v{vt.count}f32", F32, [vt])
            out.append(b.call(fn, [args[0]]))
        return b.select(b.icmp_signed("!=", args[1], ir.Constant(args[1].type, 0)), out[1], out[0])
    return types.float32(f32vec, types.boolean), codegen


@intrinsic
def v_lanes_sum(typingctx, v):
    """The sum of ``v``'s lanes as a float32, added in lane order (no reassociation: the same on every call)."""
    def codegen(ctx, b, sig, args):
        vt = args[0].type
        fn = declare(b, f"llvm.vector.reduce.fadd.v{vt.count}f32", F32, [F32, vt])
        return b.call(fn, [ir.Constant(F32, -0.0), args[0]])
    return types.float32(f32vec), codegen


@intrinsic
def v_fma(typingctx, a, b_, c):
    """Lane-wise ``a * b + c`` with one rounding."""
    return f32vec(f32vec, f32vec, f32vec), lambda ctx, b, sig, args: fma(b, *args)


@intrinsic
def v_zero(typingctx):
    """A vector of zeros."""
    return f32vec(), lambda ctx, b, sig, args: ir.Constant(vec(VW), [0.0] * VW)


@intrinsic
def v_interleave4(typingctx, a, b_, c, d):
    """Four vectors as their 4 x ``VW`` transpose: output ``q`` holds lanes ``q*VW/4 .. (q+1)*VW/4 - 1`` of
    ``a, b, c, d`` interleaved (``a[k], b[k], c[k], d[k]`` for each lane ``k``). ``v_even``/``v_odd`` undo it."""
    def codegen(ctx, b, sig, args):
        return ctx.make_tuple(b, sig.return_type, transpose(b, list(args)))
    return types.UniTuple(f32vec, 4)(f32vec, f32vec, f32vec, f32vec), codegen


@intrinsic
def v_transpose_block(typingctx, src, sstride, nrows, ncols, dst, dstride, nvec, nlanes):
    """Transpose a ``VW x VW`` block of floats between two strided layouts (byte addresses and strides).

    Reads row ``r`` (``r < VW``) at ``src + min(r, nrows-1) * sstride``, its
    first ``ncols`` floats (the rest read as 0.0 and touch no memory); writes
    column ``j`` for ``j < nvec`` at ``dst + j * dstride``, its first
    ``nlanes`` lanes (row ``r`` in lane ``r``). Repeated rows keep every read
    inside the caller's rows.
    """
    def codegen(ctx, b, sig, args):
        src, sstride, nrows, ncols, dst, dstride, nvec, nlanes = args
        last = b.sub(nrows, ir.Constant(I64, 1))
        rmask, smask = lane_mask(b, ncols), lane_mask(b, nlanes)
        rows = []
        for r in range(VW):
            rr = b.select(b.icmp_signed("<", ir.Constant(I64, r), last), ir.Constant(I64, r), last)
            rows.append(masked_load(b, b.add(src, b.mul(rr, sstride)), rmask))
        for j, v in enumerate(transpose(b, rows)):
            with b.if_then(b.icmp_signed("<", ir.Constant(I64, j), nvec)):
                masked_store(b, v, b.add(dst, b.mul(ir.Constant(I64, j), dstride)), smask)
        return ctx.get_dummy_value()
    return types.none(*([types.int64] * 8)), codegen
