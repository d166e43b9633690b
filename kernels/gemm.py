"""FP32 matrix-multiply kernels: the register-blocked GEMM core, Gemm/MatMul tiles.

The micro-kernel ``_micro`` is LLVM vector IR (emitted through an intrinsic):
an ``MR x NR`` block of ``C`` lives in vector registers across the whole
``k`` loop, each step loading two vectors of a ``B`` row, broadcasting ``MR``
values of ``A`` and issuing ``llvm.fma``. ``NR`` is two host vectors (32
floats on AVX-512, 16 on AVX2). ``gemm_tile`` drives it over a rows x columns
block: full ``NR``-wide panels of ``B`` are read in place, the ragged last
panel is copied zero-padded into scratch, and partial blocks of ``C`` are
staged in scratch; the epilogue (scale, addend, residual, activation) runs on
each block while it is in L1. Every element of ``C`` is one fma chain in ascending ``k``
order computed by the same code whatever the tiling, so results never depend
on tile boundaries. ``K`` is never split.

``f32_gemm`` reads ``[A, B, C, ep, offs, Y]`` then ints
``[M, N, K, sai, sak, ldb, sci, scj, mb, nb, n_mblk, n_nblk]``:
``ep`` = the float32 epilogue row ``gemm_tile`` documents; ``offs`` = int64
``[batch, 2]`` element offsets of each batch's ``A`` and ``B``; ``C`` (when
used) is addressed as ``C[i*sci + j*scj]`` (0 strides broadcast); tile
``t`` = (batch, row block, column block). ``Y`` is ``[batch, M, N]``
contiguous; ``B`` rows are contiguous with row stride ``ldb``.
``f32_transpose2d`` reads ``[X, Y]`` ints ``[R, S, cols_per_tile]`` and
writes ``Y[S, R] = X^T``.
"""
import llvmlite.binding as llvm
import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from .abi import f32, i64, tile_kernel
from .elementwise import apply_activation

VW = 16 if "avx512f" in llvm.get_host_cpu_features().flatten() else 8
MR = 8          # rows of the register block
NR = 2 * VW     # columns of the register block
# Above this many floats of A (about a core's L2), walk row blocks outside the
# column panels so each A block is read once while the B panels stay in L2.
ROWS_OUTER_FLOATS = 1 << 16


def scratch_floats(kk):
    """Scratch floats ``gemm_tile`` needs for depth ``kk``: a padded B panel and a C block."""
    return kk * NR + MR * NR


FAST_BIAS, FAST_RES, FAST_RELU = 1, 2, 4


@intrinsic
def _micro(typingctx, a, sai, sak, b, ldb, c, ldc, kk, mv, bias, res, flags):
    """C[r, 0:NR] = sum_k A[min(r, mv-1), k] * B[k, 0:NR] for r < MR (addresses in bytes, strides in floats).

    ``flags`` adds a per-row ``bias[r]`` (FAST_BIAS), a residual block at ``res``
    with stride ``ldc`` (FAST_RES) and applies Relu (FAST_RELU) before the store;
    ``bias`` and ``res`` must be readable addresses even when their flag is off.
    """
    sig = types.int64(*([types.int64] * 12))

    def codegen(context, builder, sig, args):
        a, sai, sak, b, ldb, c, ldc, kk, mv, bias, res, flags = args
        i64t, f32t = ir.IntType(64), ir.FloatType()
        vt = ir.VectorType(f32t, VW)
        name = f"llvm.fma.v{VW}f32"
        fma = builder.module.globals.get(name) or ir.Function(builder.module, ir.FunctionType(vt, [vt, vt, vt]), name)
        four = ir.Constant(i64t, 4)
        rows = []
        for r in range(MR):
            rr = builder.select(builder.icmp_signed("<", ir.Constant(i64t, r), mv), ir.Constant(i64t, r),
                                builder.sub(mv, ir.Constant(i64t, 1)))
            rows.append(builder.add(a, builder.mul(builder.mul(rr, sai), four)))
        zero = ir.Constant(vt, [0.0] * VW)
        pre = builder.block
        head = builder.append_basic_block("mk.head")
        body = builder.append_basic_block("mk.body")
        done = builder.append_basic_block("mk.done")
        builder.branch(head)
        builder.position_at_end(head)
        k = builder.phi(i64t)
        acc = [builder.phi(vt) for _ in range(2 * MR)]
        k.add_incoming(ir.Constant(i64t, 0), pre)
        for x in acc:
            x.add_incoming(zero, pre)
        builder.cbranch(builder.icmp_signed("<", k, kk), body, done)
        builder.position_at_end(body)
        bk = builder.add(b, builder.mul(builder.mul(k, ldb), four))
        v0 = builder.load(builder.inttoptr(bk, vt.as_pointer()), align=4)
        v1 = builder.load(builder.inttoptr(builder.add(bk, ir.Constant(i64t, 4 * VW)), vt.as_pointer()), align=4)
        koff = builder.mul(builder.mul(k, sak), four)
        new = []
        for r in range(MR):
            sv = _splat(builder, builder.load(builder.inttoptr(builder.add(rows[r], koff), f32t.as_pointer()), align=4))
            new.append(builder.call(fma, [sv, v0, acc[2 * r]]))
            new.append(builder.call(fma, [sv, v1, acc[2 * r + 1]]))
        k1 = builder.add(k, ir.Constant(i64t, 1))
        end = builder.block
        builder.branch(head)
        k.add_incoming(k1, end)
        for x, v in zip(acc, new):
            x.add_incoming(v, end)
        builder.position_at_end(done)
        _store_block(builder, acc, c, ldc, mv, bias, res, flags)
        return ir.Constant(i64t, 0)

    return sig, codegen


def _splat(builder, scalar):
    vt = ir.VectorType(ir.FloatType(), VW)
    v = builder.insert_element(ir.Constant(vt, ir.Undefined), scalar, ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(v, ir.Constant(vt, ir.Undefined),
                                  ir.Constant(ir.VectorType(ir.IntType(32), VW), [0] * VW))


def _flag(builder, flags, bit):
    i64t = ir.IntType(64)
    return builder.icmp_unsigned("!=", builder.and_(flags, ir.Constant(i64t, bit)), ir.Constant(i64t, 0))


def _store_block(builder, acc, c, ldc, mv, bias, res, flags):
    # Same operation order as the scalar epilogue (acc + bias + res, then relu),
    # so a block's values do not depend on which path computed it.
    i64t, f32t = ir.IntType(64), ir.FloatType()
    vt = ir.VectorType(f32t, VW)
    four = ir.Constant(i64t, 4)
    zero = ir.Constant(vt, [0.0] * VW)
    fb, fr, frelu = (_flag(builder, flags, bit) for bit in (FAST_BIAS, FAST_RES, FAST_RELU))
    for r in range(MR):
        rr = builder.select(builder.icmp_signed("<", ir.Constant(i64t, r), mv), ir.Constant(i64t, r),
                            builder.sub(mv, ir.Constant(i64t, 1)))
        bval = builder.load(builder.inttoptr(builder.add(bias, builder.mul(rr, four)), f32t.as_pointer()), align=4)
        bv = _splat(builder, bval)
        row = builder.mul(builder.mul(ir.Constant(i64t, r), ldc), four)
        for h in range(2):
            at = builder.add(row, ir.Constant(i64t, 4 * VW * h))
            v = acc[2 * r + h]
            v = builder.select(fb, builder.fadd(v, bv), v)
            rv = builder.load(builder.inttoptr(builder.add(res, at), vt.as_pointer()), align=4)
            v = builder.select(fr, builder.fadd(v, rv), v)
            v = builder.select(frelu, builder.select(builder.fcmp_ordered(">", v, zero), v, zero), v)
            builder.store(v, builder.inttoptr(builder.add(c, at), vt.as_pointer()), align=4)


@numba.njit(inline="always")
def _epilogue(cv, co, ldc, mv, nv, ep, cadd, cao, sci, scj, res):
    """``C = act(alpha*C + beta*Cadd + res)`` on an ``mv x nv`` block just computed."""
    alpha, beta, aa, ab = ep[0], ep[1], ep[2], ep[3]
    act, has_c, has_res = np.int64(ep[4]), ep[5] != 0, ep[6] != 0
    for i in range(mv):
        r = co + i * ldc
        for j in range(nv):
            v = alpha * cv[r + j]
            if has_c:
                v += beta * cadd[cao + i * sci + j * scj]
            if has_res:
                v += res[r + j]
            cv[r + j] = apply_activation(act, v, aa, ab)


@numba.njit(nogil=True)
def gemm_tile(a, sai, sak, sblk, m, b, ldb, n, kk, c, ldc, scratch, ep, cadd, sci, scj, res):
    """C[0:m, 0:n] = epilogue(A[0:m, :kk] @ B[:kk, 0:n]); byte addresses, float strides.

    Row block ``i`` of ``MR`` rows of ``A`` starts ``i * sblk`` floats after ``a``
    (``MR * sai`` for a plain matrix, ``kk * MR`` for packed panels). ``ep`` is
    float32 ``[alpha, beta, act_alpha, act_beta, act, has_c, has_res, plain, fast]``
    where ``fast`` >= 0 means the epilogue is the micro-kernel's (FAST_* flags);
    ``cadd`` is the address of this tile's ``C[0, 0]`` addend (strides ``sci``,
    ``scj``), ``res`` of its residual (laid out like ``C``). Needs ``scratch_floats(kk)``.
    """
    big = 1 << 40
    sb = f32(scratch, big)
    cbuf = scratch + kk * NR * 4
    cb = f32(cbuf, MR * NR)
    bv = f32(b, big)
    cv = f32(c, big)
    cav = f32(cadd, big)
    rv = f32(res, big)
    plain = ep[7] != 0
    fast = np.int64(ep[8])
    je = n - n % NR
    if je < n:  # the ragged last panel, zero-padded once for every row block
        for k in range(kk):
            for j in range(n - je):
                sb[k * NR + j] = bv[k * ldb + je + j]
            for j in range(n - je, NR):
                sb[k * NR + j] = np.float32(0)
    npan = (n + NR - 1) // NR
    nblk = (m + MR - 1) // MR
    rows_outer = m * kk > ROWS_OUTER_FLOATS
    for outer in range(nblk if rows_outer else npan):
        for inner in range(npan if rows_outer else nblk):
            i0 = (outer if rows_outer else inner) * MR
            j0 = (inner if rows_outer else outer) * NR
            mv = min(MR, m - i0)
            nv = min(NR, n - j0)
            bp, lb = (b + j0 * 4, ldb) if nv == NR else (scratch, NR)
            ap = a + (i0 // MR) * sblk * 4
            cblk = c + (i0 * ldc + j0) * 4
            if mv == MR and nv == NR and fast >= 0:
                bias = cadd + i0 * sci * 4 if fast & FAST_BIAS else cblk
                rblk = res + (i0 * ldc + j0) * 4 if fast & FAST_RES else cblk
                _micro(ap, sai, sak, bp, lb, cblk, ldc, kk, mv, bias, rblk, fast)
                continue
            if mv == MR and nv == NR:
                _micro(ap, sai, sak, bp, lb, cblk, ldc, kk, mv, cblk, cblk, 0)
            else:
                _micro(ap, sai, sak, bp, lb, cbuf, NR, kk, mv, cbuf, cbuf, 0)
                for i in range(mv):
                    for j in range(nv):
                        cv[(i0 + i) * ldc + j0 + j] = cb[i * NR + j]
            if not plain:
                _epilogue(cv, i0 * ldc + j0, ldc, mv, nv, ep, cav, i0 * sci + j0 * scj, sci, scj, rv)
    return 0


@tile_kernel
def f32_gemm(p, tile, scratch):
    m, n, kk = p[6], p[7], p[8]
    sai, sak, ldb, sci, scj = p[9], p[10], p[11], p[12], p[13]
    mb, nb, nmb, nnb = p[14], p[15], p[16], p[17]
    per = nmb * nnb
    bt = tile // per
    rem = tile - bt * per
    i0 = (rem // nnb) * mb
    j0 = (rem % nnb) * nb
    rows = min(m, i0 + mb) - i0
    j1 = min(n, j0 + nb)
    offs = i64(p[4], 2 * (bt + 1))
    yo = bt * m * n + i0 * n + j0
    a = p[0] + (offs[2 * bt] + i0 * sai) * 4
    b = p[1] + (offs[2 * bt + 1] + j0) * 4
    gemm_tile(a, sai, sak, MR * sai, rows, b, ldb, j1 - j0, kk, p[5] + yo * 4, n, scratch,
              f32(p[3], 9), p[2] + (i0 * sci + j0 * scj) * 4, sci, scj, p[5])
    return 0


@tile_kernel
def f32_transpose2d(p, tile, scratch):
    r, s, per = p[2], p[3], p[4]
    x = f32(p[0], r * s)
    y = f32(p[1], r * s)
    lo = tile * per
    hi = min(s, lo + per)
    for j in range(lo, hi):
        for i in range(r):
            y[j * r + i] = x[i * s + j]
    return 0
