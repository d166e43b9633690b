"""BF16 matrix-multiply kernels on AVX512_BF16 (``vdpbf16ps``): Gemm/MatMul with constant B, and convolutions.

Products are of BF16 values (8-bit mantissa), sums in FP32: ``vdpbf16ps``
adds ``a[2j]*b[2j] + a[2j+1]*b[2j+1]`` to FP32 lane ``j``, so both operands
hold K in pairs. The micro-kernel ``_micro_bf16`` keeps an ``MR x NR`` block
of ``C`` (the FP32 core's ``MR``; ``NR`` = 32 columns, two vectors) in
registers over ``kp`` K-pair steps: each step loads one row of a ``B`` panel
(``NR`` dwords, each a pair of BF16 values of rows ``2q``, ``2q + 1``) and
broadcasts one dword of each of ``MR`` rows of ``A`` (``A[r, 2q]``,
``A[r, 2q + 1]``). ``A`` dword ``(r, q)`` is at byte ``a + r*sar + q*sak``:
row-major (``sar = 4*kp``, ``sak = 4``) or weight panels ``[kp, MR]``
(``sar = 4``, ``sak = 4*MR``). The FP32 core's ``_store_block`` applies the
``EPILOGUE`` struct (bias, residual, Relu/Clip/LeakyRelu in registers; other
activations in its scalar pass) with masked stores on ragged blocks. Odd K is
padded with a zero row; rows and columns past the block are zero or unused.

``bf16_gemm`` (row ``BF16_GEMM``): ``Y[m, n] = ep(A @ B)``, ``A`` float32 rows
``sai`` floats apart (contiguous along K), converted per tile ``MC`` rows at a
time into scratch; ``B`` packed once by ``pack_b_bf16`` into ``NR``-column
panels ``[ceil(N/NR), kp, NR, 2]`` (uint16); tile = (row block, column block).

``bf16_conv`` (row ``BF16_CONV``): a group-1 convolution as ``Y[co, pix] =
ep(W @ cols)``: ``w`` packed once by ``pack_w_bf16`` (``[ceil(cout/MR), kp,
MR, 2]``), and ``cols`` gathered per tile into scratch from ``x``: tap ``k``
of output pixel ``(oh, ow)`` is ``x[img*img_stride + koffs[k] + oh*wq + ow]``
(a 1x1 stride-1 conv on the activation itself: ``koffs[c] = c*npix``,
``wq = out_w``; otherwise the padded planes of ``f32_pad_planes``). ``K`` is
cut into ``KCS``-pair slices (the gathered panel of one slice stays in L1);
tile = (image, output-channel block, pixel block). With ``packed`` the
columns were gathered once, for every channel block, by ``bf16_pack_cols``
(row ``BF16_PACK``): ``x`` is then BF16 panels ``[n, pix_panels, kp, NR, 2]``;
its tile = (image, block of ``panels_per_tile`` panels).

These kernels hold AVX512_BF16 instructions: only a host where
``cpu_supports_bf16()`` is true may compile or run them. Not here: BF16
tensors between ops, AMX, grouped or depthwise convolution.
"""
import functools

import llvmlite.binding as llvm
import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from . import simd
from .abi import f32, i64, slot_address
from .contract import declare_row, tile_kernel
from .gemm import (EPILOGUE, FAST_BIAS, FAST_RES, LOAD, MR, _epilogue, _kloop, _merge, _store_block, ep_int,
                   rows_activation)
from .simd import f32vec, v_load

BV = 16              # float32 lanes of one AVX-512 vector (the only width these kernels exist for)
NV = 2               # vectors per row of the register block
NR = NV * BV         # columns of the register block and of a B panel
MC = 64              # rows of A converted to BF16 at a time (bf16_gemm)
KCS = 128            # K pairs per slice of a convolution (a 32-column panel slice: 16 KiB)
CHUNK = 8            # panels of a convolution's columns gathered at a time
MAXSEG = BV          # image-row segments one gathered vector can span (rows at least one pixel wide)
SEG_INTS = 1 + 3 * MAXSEG
B_L2_BYTES = 256 * 1024  # packed B read once per row block while it fits in this much of L2

BF16_GEMM = declare_row("BF16_GEMM", inputs=("a", "b", "c?"), outputs=("y",),
                        ints=("m", "n", "k", "kp", "sai", "sci", "scj", "mb", "nb", "n_mblk", "n_nblk"),
                        structs={"ep": EPILOGUE})
BF16_CONV = declare_row("BF16_CONV", inputs=("x", "w", "bias?", "res?", "koffs"), outputs=("y",),
                        ints=("n", "cout", "k", "kp", "npix", "out_w", "wq", "img_stride", "pix_panels", "n_cob",
                              "n_pb", "packed"),
                        structs={"ep": EPILOGUE})
BF16_PACK = declare_row("BF16_PACK", inputs=("x", "koffs"), outputs=("cols",),
                        ints=("k", "kp", "npix", "out_w", "wq", "img_stride", "npan", "panels_per_tile",
                              "n_panel_tiles"))


@functools.lru_cache(maxsize=None)
def cpu_supports_bf16():
    """Whether this host can run the BF16 kernels: AVX-512 lanes in use and the AVX512_BF16 extension."""
    return simd.LANES == BV and bool(llvm.get_host_cpu_features().get("avx512bf16", False))


def to_bf16_bits(x):
    """float32 array ``x`` as BF16 bit patterns (uint16), rounded to nearest even; NaN stays NaN."""
    u = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    nan = np.isnan(np.asarray(x, np.float32))
    r[nan] = ((u[nan] >> 16) | 0x40).astype(np.uint16)
    return r


def pack_b_bf16(b):
    """``B [K, N]`` as BF16 K-pair panels ``[ceil(N/NR), ceil(K/2), NR, 2]`` (uint16, zero-padded)."""
    b = np.asarray(b, np.float32)
    k, n = b.shape
    kp, npan = -(-k // 2), -(-n // NR)
    full = np.zeros((2 * kp, npan * NR), np.float32)
    full[:k, :n] = b
    return np.ascontiguousarray(to_bf16_bits(full).reshape(kp, 2, npan, NR).transpose(2, 0, 3, 1))


def pack_w_bf16(w):
    """Weights ``[cout, ...]`` (K = the rest) as BF16 ``MR``-row panels ``[ceil(cout/MR), ceil(K/2), MR, 2]``."""
    w = np.asarray(w, np.float32)
    cout = w.shape[0]
    w = w.reshape(cout, -1)
    k = w.shape[1]
    kp, nblk = -(-k // 2), -(-cout // MR)
    full = np.zeros((nblk * MR, 2 * kp), np.float32)
    full[:cout, :k] = w
    return np.ascontiguousarray(to_bf16_bits(full).reshape(nblk, MR, kp, 2).transpose(0, 2, 1, 3))


# -- LLVM IR ---------------------------------------------------------------------------------

class _BFloat(ir.Type):
    """LLVM's ``bfloat`` (llvmlite has no class for it): the element type of the BF16 intrinsics."""

    def _to_string(self):
        return "bfloat"

    def __eq__(self, other):
        return isinstance(other, _BFloat)

    def __hash__(self):
        return hash("bfloat")


_BF32 = ir.VectorType(_BFloat(), 2 * BV)
_I32V = ir.VectorType(simd.I32, BV)
_F32V = simd.vec(BV)


def _dot(builder, acc, a, b):
    fn = simd.declare(builder, "llvm.x86.avx512bf16.dpbf16ps.512", _F32V, [_F32V, _BF32, _BF32])
    return builder.call(fn, [acc, a, b])


def _to_pairs(builder, lo, hi):
    """``lo``, ``hi`` (float vectors) as 32 BF16 values: lanes of ``lo`` first (one ``vcvtne2ps2bf16``)."""
    fn = simd.declare(builder, "llvm.x86.avx512bf16.cvtne2ps2bf16.512", _BF32, [_F32V, _F32V])
    return builder.bitcast(builder.call(fn, [hi, lo]), _I32V)


def _make_micro(nvr):
    """The micro-kernel on ``MR`` rows x ``nvr`` vectors: ``C[r, :nv] (+)= sum_q A(r, q) . B[q, :]`` for r < mv.

    Byte addresses; ``flags`` as the FP32 core's (``LOAD`` adds ``C``, the
    FAST_* epilogue steps), ``bias``/``res`` readable even when unused. The
    ``B`` panel's rows are ``NR`` dwords (128 bytes) apart.
    """
    def micro(typingctx, a, sar, sak, b, c, ldc, kp, mv, nv, ep, bias, res, flags):
        return types.int64(*([types.int64] * 13)), codegen

    def codegen(context, builder, sig, args):
        a, sar, sak, b, c, ldc, kp, mv, nv, ep, bias, res, flags = args
        i64t = simd.I64
        four = ir.Constant(i64t, 4)
        caddr = [builder.add(c, builder.add(builder.mul(builder.mul(ir.Constant(i64t, r), ldc), four),
                                            ir.Constant(i64t, 4 * BV * h))) for r in range(MR) for h in range(nvr)]
        rows = [builder.add(a, builder.mul(ir.Constant(i64t, r), sar)) for r in range(MR)]
        init = [ir.Constant(_F32V, [0.0] * BV)] * (MR * nvr)

        def step(q, acc):
            bq = builder.add(b, builder.mul(q, ir.Constant(i64t, 4 * NR)))
            bv = [builder.bitcast(builder.load(builder.inttoptr(builder.add(bq, ir.Constant(i64t, 4 * BV * h)),
                                                                _I32V.as_pointer()), align=4), _BF32)
                  for h in range(nvr)]
            simd.prefetch(builder, builder.add(bq, ir.Constant(i64t, 4 * NR * 8)))
            koff = builder.mul(q, sak)
            new = []
            for r in range(MR):
                s = builder.load(builder.inttoptr(builder.add(rows[r], koff), simd.I32.as_pointer()), align=4)
                sv = builder.bitcast(simd.splat(builder, s, BV), _BF32)
                for h in range(nvr):
                    new.append(_dot(builder, acc[r * nvr + h], sv, bv[h]))
            return new

        k, acc = _kloop(builder, ir.Constant(i64t, 0), init, 2, kp, step)
        # An odd number of pairs leaves one step.
        pre = builder.block
        with builder.if_then(builder.icmp_signed("<", k, kp)):
            tail = step(k, acc)
            tail_blk = builder.block
        acc = _merge(builder, tail, tail_blk, acc, pre)

        def masks():
            out = []
            for r in range(MR):
                live = builder.icmp_signed("<", ir.Constant(i64t, r), mv)
                for h in range(nvr):
                    cnt = builder.select(live, builder.sub(nv, ir.Constant(i64t, h * BV)), ir.Constant(i64t, 0))
                    out.append(simd.lane_mask(builder, cnt, BV))
            return out

        full = builder.and_(builder.icmp_signed("==", mv, ir.Constant(i64t, MR)),
                            builder.icmp_signed("==", nv, ir.Constant(i64t, nvr * BV)))
        with builder.if_else(full) as (whole, ragged):
            with whole:
                _store_block(builder, acc, [[(x, None)] for x in caddr], c, mv, ep, bias, res, flags)
            with ragged:
                _store_block(builder, acc, [[(x, mk)] for x, mk in zip(caddr, masks())], c, mv, ep, bias, res,
                             flags)
        return ir.Constant(i64t, 0)

    micro.__name__ = micro.__qualname__ = f"_micro_bf16_{nvr}v"
    return intrinsic(micro)


_micro_bf16 = _make_micro(NV)
_micro_bf16_half = _make_micro(1)  # a last panel of at most BV columns


@intrinsic
def _store_pairs(typingctx, x0, x1, dst):
    """Store lanes ``j`` of ``x0``, ``x1`` as the BF16 pair dword ``j`` (16 dwords, 64 bytes at ``dst``)."""
    def codegen(ctx, b, sig, args):
        x0, x1, dst = args
        # Convert both (x0's values in the low 16 words), then interleave the words: one permute.
        words = b.bitcast(_to_pairs(b, x0, x1), ir.VectorType(ir.IntType(16), 2 * BV))
        order = ir.Constant(ir.VectorType(simd.I32, 2 * BV), [i // 2 + (BV if i % 2 else 0) for i in range(2 * BV)])
        pairs = b.shuffle_vector(words, ir.Constant(words.type, ir.Undefined), order)
        b.store(b.bitcast(pairs, _I32V), b.inttoptr(dst, _I32V.as_pointer()), align=4)
        return ctx.get_dummy_value()
    return types.none(f32vec, f32vec, types.int64), codegen


@intrinsic
def _convert_run(typingctx, src, n, dst):
    """The first ``n`` (at most 32) floats at ``src`` as BF16 at ``dst`` (64 bytes written, zeros past ``n``)."""
    def codegen(ctx, b, sig, args):
        src, n, dst = args
        lo = simd.masked_load(b, src, simd.lane_mask(b, n, BV), BV)
        hi = simd.masked_load(b, b.add(src, ir.Constant(simd.I64, 4 * BV)),
                              simd.lane_mask(b, b.sub(n, ir.Constant(simd.I64, BV)), BV), BV)
        b.store(_to_pairs(b, lo, hi), b.inttoptr(dst, _I32V.as_pointer()), align=4)
        return ctx.get_dummy_value()
    return types.none(types.int64, types.int64, types.int64), codegen


@intrinsic
def _load_lanes(typingctx, prev, addr, s, e):
    """``prev`` with lanes ``[s, e)`` replaced by the floats at ``addr + 4*(lane - s)`` (no other lane read)."""
    def codegen(ctx, b, sig, args):
        prev, addr, s, e = args
        mask = b.and_(simd.lane_mask(b, e, BV), b.not_(simd.lane_mask(b, s, BV)))
        base = b.sub(addr, b.mul(s, ir.Constant(simd.I64, 4)))
        fn = simd.declare(b, f"llvm.masked.load.v{BV}f32.p0", _F32V,
                           [_F32V.as_pointer(), simd.I32, ir.VectorType(ir.IntType(1), BV), _F32V])
        return b.call(fn, [b.inttoptr(base, _F32V.as_pointer()), ir.Constant(simd.I32, 4), mask, prev])
    return f32vec(f32vec, types.int64, types.int64, types.int64), codegen


@intrinsic
def _zeros(typingctx):
    return f32vec(), lambda ctx, b, sig, args: ir.Constant(_F32V, [0.0] * BV)


# -- drivers ---------------------------------------------------------------------------------

@numba.njit(inline="always")
def _block(a, sar, sak, ablk, m, b, bpan, n, kp, c, ldc, epa, cadd, sci, scj, res, first, last):
    """``C[0:m, 0:n] (+)= A @ B`` for ``kp`` pairs; the epilogue after the ``last`` slice.

    Row block ``i`` of ``A`` starts ``i * ablk`` bytes after ``a``; panel
    ``j`` of ``B`` ``j * bpan`` bytes after ``b``. ``first``: C is written, not
    added to. ``cadd``, ``res``: the tile's addend and residual (as ``gemm_tile``).
    """
    big = 1 << 40
    fast = ep_int(epa, EPILOGUE.fast)
    fl = 0 if first else LOAD
    if last and fast > 0:
        fl |= fast
    npan = (n + NR - 1) // NR
    nib = (m + MR - 1) // MR
    # B's panels fit in L2: row blocks outer, so C is written a few rows at a
    # time, front to back (streams the prefetcher follows); else panels outer.
    rows_outer = npan * bpan <= B_L2_BYTES
    outer, inner = (nib, npan) if rows_outer else (npan, nib)
    for o in range(outer):
        for i in range(inner):
            ib, jp = (o, i) if rows_outer else (i, o)
            j0 = jp * NR
            nv = min(NR, n - j0)
            bp = b + jp * bpan
            i0 = ib * MR
            mv = min(MR, m - i0)
            cblk = c + (i0 * ldc + j0) * 4
            bias = cadd + i0 * sci * 4 if fl & FAST_BIAS else cblk
            rblk = res + (i0 * ldc + j0) * 4 if fl & FAST_RES else cblk
            ai = a + ib * ablk
            if nv > BV:
                _micro_bf16(ai, sar, sak, bp, cblk, ldc, kp, mv, nv, epa, bias, rblk, fl)
            else:
                _micro_bf16_half(ai, sar, sak, bp, cblk, ldc, kp, mv, nv, epa, bias, rblk, fl)
            if last and fast < 0:
                # Row blocks outer: the activation once per row after its sweep over the panels.
                _epilogue(f32(c, big), i0 * ldc + j0, ldc, mv, nv, epa, f32(cadd, big), i0 * sci + j0 * scj, sci,
                          scj, f32(res, big), not rows_outer)
                if rows_outer and jp == npan - 1:
                    rows_activation(f32(c, big), i0 * ldc, ldc, mv, n, epa)


def _gemm_scratch(args):
    return MC * args["kp"] * 4 + 64


@tile_kernel(BF16_GEMM, scratch=_gemm_scratch)
def bf16_gemm(p, tile, scratch):
    R = BF16_GEMM
    m, n, kk, kp, sai = p[R.m], p[R.n], p[R.k], p[R.kp], p[R.sai]
    sci, scj, mb, nb, nnb = p[R.sci], p[R.scj], p[R.mb], p[R.nb], p[R.n_nblk]
    i0 = (tile // nnb) * mb
    j0 = (tile % nnb) * nb
    rows = min(m, i0 + mb) - i0
    cols = min(n, j0 + nb) - j0
    epa = slot_address(p, R.ep)
    for ic in range(0, rows, MC):
        mc = min(MC, rows - ic)
        for r in range(mc):
            src = p[R.a] + (i0 + ic + r) * sai * 4
            dst = scratch + r * kp * 4
            for q in range(0, kk, 2 * BV):
                _convert_run(src + q * 4, kk - q, dst + q * 2)
        y = p[R.y] + ((i0 + ic) * n + j0) * 4
        _block(scratch, kp * 4, 4, MR * kp * 4, mc, p[R.b] + (j0 // NR) * kp * NR * 4, kp * NR * 4, cols, kp, y,
               n, epa, p[R.c] + ((i0 + ic) * sci + j0 * scj) * 4, sci, scj, y, True, True)
    return 0


def _conv_scratch(args):
    return CHUNK * KCS * NR * 4 + 2 * CHUNK * NV * SEG_INTS * 8


@numba.njit(inline="always")
def _segments(tab, q0, cnt, out_w, wq):
    """Fill ``tab`` for the vector of pixels ``[q0, q0 + cnt)``: its image-row runs (first lane, end lane, grid offset)."""
    ns = 0
    lane = 0
    p = q0
    while lane < cnt:
        oh = p // out_w
        ow = p - oh * out_w
        ln = min(out_w - ow, cnt - lane)
        g = oh * wq + ow
        if ns > 0 and tab[3 * ns] + (tab[3 * ns - 1] - tab[3 * ns - 2]) == g:
            tab[3 * ns - 1] += ln  # contiguous with the run before: extend it
        else:
            tab[1 + 3 * ns], tab[2 + 3 * ns], tab[3 + 3 * ns] = lane, lane + ln, g
            ns += 1
        lane += ln
        p += ln
    # 0 runs: the common vector of one whole run, read by one plain load at offset tab[3].
    tab[0] = 0 if ns == 1 and cnt == BV else ns


@numba.njit(inline="always")
def _gather(base, tabs, o):
    """The vector of ``base`` floats the runs at ``tabs[o:]`` describe (other lanes 0.0)."""
    ns = tabs[o]
    if ns == 0:
        return v_load(base + tabs[o + 3] * 4)
    v = _zeros()
    for s in range(ns):
        v = _load_lanes(v, base + tabs[o + 3 + 3 * s] * 4, tabs[o + 1 + 3 * s], tabs[o + 2 + 3 * s])
    return v


@numba.njit(inline="always")
def _gather_chunk(xbase, koffs, kk, tabs, nvec, q0, kc, dst, pstride):
    """K pairs ``[q0, q0 + kc)`` of ``nvec`` column vectors (runs in ``tabs``): BF16 panels ``pstride`` bytes apart."""
    for q in range(kc):
        k0 = 2 * (q0 + q)
        r0 = xbase + koffs[k0] * 4
        has1 = k0 + 1 < kk
        r1 = xbase + koffs[k0 + 1] * 4 if has1 else 0
        for v in range(nvec):
            x0 = _gather(r0, tabs, v * SEG_INTS)
            x1 = _gather(r1, tabs, v * SEG_INTS) if has1 else _zeros()
            _store_pairs(x0, x1, dst + (v // NV) * pstride + (q * NR + (v % NV) * BV) * 4)


def _pack_scratch(args):
    return 2 * CHUNK * NV * SEG_INTS * 8


@tile_kernel(BF16_PACK, scratch=_pack_scratch)
def bf16_pack_cols(p, tile, scratch):
    R = BF16_PACK
    kk, kp, npix, out_w, wq, npan, per = p[R.k], p[R.kp], p[R.npix], p[R.out_w], p[R.wq], p[R.npan], \
        p[R.panels_per_tile]
    img = tile // p[R.n_panel_tiles]
    j0 = (tile - img * p[R.n_panel_tiles]) * per
    j1 = min(npan, j0 + per)
    koffs = i64(p[R.koffs], kk)
    tabs = i64(scratch, 2 * CHUNK * NV * SEG_INTS)
    xbase = p[R.x] + img * p[R.img_stride] * 4
    for jc in range(j0, j1, CHUNK):
        pc = jc * NR
        ncols = min(min(j1, jc + CHUNK) * NR, npix) - pc
        nvec = (ncols + BV - 1) // BV
        for v in range(nvec):
            _segments(tabs[v * SEG_INTS:], pc + v * BV, min(BV, ncols - v * BV), out_w, wq)
        _gather_chunk(xbase, koffs, kk, tabs, nvec, 0, kp, p[R.cols] + (img * npan + jc) * kp * NR * 4,
                      kp * NR * 4)
    return 0


@tile_kernel(BF16_CONV, scratch=_conv_scratch)
def bf16_conv(p, tile, scratch):
    R = BF16_CONV
    cout, kk, kp, npix, out_w, wq = p[R.cout], p[R.k], p[R.kp], p[R.npix], p[R.out_w], p[R.wq]
    npp, ncob, npb = p[R.pix_panels], p[R.n_cob], p[R.n_pb]
    img = tile // (ncob * npb)
    rem = tile - img * ncob * npb
    cob, pb = rem // npb, rem % npb
    nblk = (cout + MR - 1) // MR
    rb0, rb1 = cob * nblk // ncob, (cob + 1) * nblk // ncob
    c0 = rb0 * MR
    m = min(cout, rb1 * MR) - c0
    pp0, pp1 = pb * npp // npb, (pb + 1) * npp // npb
    p0, p1 = pp0 * NR, min(npix, pp1 * NR)
    if m <= 0 or p1 <= p0:
        return 0
    koffs = i64(p[R.koffs], kk)
    xbase = p[R.x] + img * p[R.img_stride] * 4
    tabs = i64(scratch + CHUNK * KCS * NR * 4, 2 * CHUNK * NV * SEG_INTS)
    epa = slot_address(p, R.ep)
    yimg = p[R.y] + ((img * cout + c0) * npix) * 4
    has_res = p[R.res] != 0
    packed = p[R.packed] != 0
    nks = (kp + KCS - 1) // KCS
    for pc in range(p0, p1, CHUNK * NR):
        ncols = min(CHUNK * NR, p1 - pc)
        nvec = (ncols + BV - 1) // BV
        if not packed:
            for v in range(nvec):
                _segments(tabs[v * SEG_INTS:], pc + v * BV, min(BV, ncols - v * BV), out_w, wq)
        for ks in range(nks):
            q0 = ks * KCS
            kc = min(KCS, kp - q0)
            if packed:
                bsrc, bpan = p[R.x] + ((img * npp + pc // NR) * kp + q0) * NR * 4, kp * NR * 4
            else:
                _gather_chunk(xbase, koffs, kk, tabs, nvec, q0, kc, scratch, kc * NR * 4)
                bsrc, bpan = scratch, kc * NR * 4
            c = yimg + pc * 4
            _block(p[R.w] + (rb0 * kp + q0) * MR * 4, 4, MR * 4, kp * MR * 4, m, bsrc, bpan, ncols, kc,
                   c, npix, epa, p[R.bias] + c0 * 4 if p[R.bias] != 0 else c, 1, 0,
                   p[R.res] + ((img * cout + c0) * npix + pc) * 4 if has_res else c, ks == 0, ks == nks - 1)
    return 0
