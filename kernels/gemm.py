"""FP32 matrix-multiply kernels: the register-blocked GEMM core, Gemm/MatMul tiles.

The micro-kernel ``micro`` is LLVM vector IR (emitted through an intrinsic
with the helpers of :mod:`.simd`): an ``MR x NR`` block of ``C`` lives in
vector registers across a ``k`` loop, each step loading ``NV`` vectors of a
``B`` panel row, broadcasting ``MR`` values of ``A`` and issuing ``llvm.fma``.
``NR`` is ``NV`` host vectors (32 floats on AVX-512, 16 on AVX2), so the tile
shape follows the host (a host with no SIMD unit runs the same IR on 4-lane
generic vectors, which LLVM lowers to scalar code). Ragged blocks (fewer rows or columns) use masked loads
and stores, so every block runs the same code.

``gemm_tile`` drives it GotoBLAS-style over a rows x columns block: ``K`` is
cut into ``KC``-deep slices so that one ``KC x NR`` panel of ``B`` (packed
contiguous, zero-padded, in scratch, unless the caller's ``B`` already is in
panels) stays in L1 while every row block of ``A`` (packed too when strided)
streams past it from L2; each slice's sums are added to the block of ``C``
left by the slice before. The slices depend only on ``K``, so every element
of ``C`` is the same sum of the same fma chains whatever the tiling: results
never depend on tile boundaries or thread count. The epilogue (bias,
residual, Relu/Clip/LeakyRelu/Sigmoid/SiLU/HardSwish in registers; other activations and Gemm's
alpha/beta in a scalar pass over the block while it is in L1) runs after the
last slice.

Every row that runs ``gemm_tile`` carries the ``EPILOGUE`` struct (built by
``epilogue``): ``y = act(alpha*acc + beta*C + res)``, with ``fast`` >= 0
when the micro-kernel applies all of it in registers (``REGISTER_ACTIVATIONS``).

``f32_gemm`` reads row ``GEMM``: ``offs`` = int64 ``[batch, 2]`` element
offsets of each batch's ``A`` and ``B``; ``C`` (when used) is addressed as
``C[i*sci + j*scj]`` (0 strides broadcast); tile ``t`` = (batch, row block,
column block). ``Y`` is ``[batch, M, N]`` contiguous. ``bpk`` = 0: ``B``
rows are contiguous with row stride ``ldb``; ``bpk`` > 0: ``B`` is packed in
``NR``-column panels ``[ceil(N/NR), K, NR]`` (``bpk = K*NR`` floats apart,
see ``pack_b``). ``f32_transpose2d`` reads row ``TRANSPOSE2D`` and writes
``Y[cols, rows] = X^T``. Not here: integer or half-precision GEMM.
"""
import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from . import simd, vact
from .abi import U, f32, i64, slot_address
from .contract import declare_row, declare_struct, tile_kernel
from .elementwise import CLIP, HARD_SWISH, IDENTITY, LEAKY_RELU, RELU, SIGMOID, SILU, activation_run
from .simd import VW, v_fma, v_load, v_load_n, v_splat, v_store, v_store_n, v_zero

MR = 8          # rows of the register block
NV = 2          # host vectors per row of the register block
NR = NV * VW    # columns of the register block
# K slice: one KC x NR panel of B fills about 32 KiB, two thirds of a typical L1d.
KC = max(64, (32 * 1024) // (NR * 4))
# A strided A is packed per slice: deeper slices mean fewer passes over C and
# fewer packing passes; weights already in panels keep KC.
KC_PLAIN_A = KC * 2
# Rows of a plain A packed at a time and columns of a plain B packed at a time
# (MC x KC_PLAIN_A and KC_PLAIN_A x NC floats: 1.5 MiB, L2-resident).
MC = 32 * MR
NC = 16 * NR
# Weights in panels are read in place, all their row blocks per slice while
# those fit in half of a 2 MiB L2, else MC rows at a time.
A_SLICE_BYTES = 1 << 20
PREFETCH_ROWS = 8  # rows of B the micro-kernel prefetches ahead
# Bytes of a packed A the micro-kernel prefetches ahead (64 k-steps): the
# weights of a layer come from memory, evicted by the layers between two requests.
A_PREFETCH = 2048
# A plain B is read in place, not packed, by tiles of at most this many row blocks (256 rows): a
# panel read in place stays in L1 for the row blocks after the first, and packing costs a load
# and a store per vector of B, which small-M GEMMs (128 rows over a K of 1152) do not repay.
B_IN_PLACE_BLOCKS = 32
# Deepest plain B that gemm_tile's shallow case (_shallow_rows) reads in place for every row block.
SHALLOW_K = 64

# Micro-kernel flags: add the C block in memory (a later K slice), the
# epilogue steps it applies in registers, and GRID_MAP (columns scattered to
# the rows of an image, see ``micro``).
LOAD, FAST_BIAS, FAST_RES, FAST_RELU, FAST_CLIP, FAST_LEAKY, GRID_MAP = 1, 2, 4, 8, 16, 32, 64
FAST_SIGMOID, FAST_SILU, FAST_HARD_SWISH = 128, 256, 512  # through vact's called vector functions
GMAP_INTS = 5 * NV  # int64s of a GRID_MAP column map
# Activations the micro-kernel applies in registers, with their flag.
REGISTER_ACTIVATIONS = {IDENTITY: 0, RELU: FAST_RELU, CLIP: FAST_CLIP, LEAKY_RELU: FAST_LEAKY, SIGMOID: FAST_SIGMOID,
                        SILU: FAST_SILU, HARD_SWISH: FAST_HARD_SWISH}

EPILOGUE = declare_struct("EPILOGUE", floats=("alpha", "beta", "act_alpha", "act_beta"),
                          ints=("act", "has_c", "has_res", "fast"))
GEMM = declare_row("GEMM", inputs=("a", "b", "c?", "offs"), outputs=("y",),
                   ints=("m", "n", "k", "sai", "sak", "ldb", "sci", "scj", "mb", "nb", "n_mblk", "n_nblk", "bpk"),
                   structs={"ep": EPILOGUE})
TRANSPOSE2D = declare_row("TRANSPOSE2D", inputs=("x",), outputs=("y",), ints=("rows", "cols", "cols_per_tile"))


def epilogue(alpha=1.0, beta=0.0, act=IDENTITY, act_alpha=0.0, act_beta=0.0, has_c=False, has_res=False,
             row_bias=False):
    """The ``EPILOGUE`` struct of a row: ``y = act(alpha * acc + beta * C + res)``.

    ``row_bias``: the addend ``C`` is one value per row (a conv bias), which with
    ``alpha == beta == 1`` and an activation in ``REGISTER_ACTIVATIONS`` lets
    the micro-kernel apply the whole epilogue in registers (``fast`` >= 0).
    """
    fast = -1
    if alpha == 1.0 and (not has_c or (row_bias and beta == 1.0)) and act in REGISTER_ACTIVATIONS:
        fast = (FAST_BIAS if has_c else 0) | (FAST_RES if has_res else 0) | REGISTER_ACTIVATIONS[act]
    return dict(alpha=alpha, beta=beta, act_alpha=act_alpha, act_beta=act_beta, act=int(act), has_c=int(has_c),
                has_res=int(has_res), fast=fast)


@numba.njit(inline="always")
def ep_float(epa, field):
    """Float field ``field`` (an ``EPILOGUE`` offset) of the struct at address ``epa``."""
    return f32(epa + 8 * field, 1)[0]


@numba.njit(inline="always")
def ep_int(epa, field):
    """Int field ``field`` (an ``EPILOGUE`` offset) of the struct at address ``epa``."""
    return i64(epa + 8 * field, 1)[0]


@numba.njit(inline="always")
def ep_fields(epa):
    """``(has_c, has_res, act, act_alpha, act_beta)`` of the ``EPILOGUE`` struct at ``epa`` (direct kernels' view)."""
    return (ep_int(epa, EPILOGUE.has_c) != 0, ep_int(epa, EPILOGUE.has_res) != 0, ep_int(epa, EPILOGUE.act),
            ep_float(epa, EPILOGUE.act_alpha), ep_float(epa, EPILOGUE.act_beta))


def _gemm_scratch(args):
    return scratch_floats(args["k"]) * 4


def scratch_floats(kk=0):
    """Scratch floats ``gemm_tile`` needs (any depth): packed blocks of B (``kc x NC``) and A (``MC x kc``), a column map."""
    return KC_PLAIN_A * NC + MC * KC_PLAIN_A + 2 * (GMAP_INTS + 4) * (NC // NR)


def pack_b(b):
    """``B [K, N]`` (or ``[batch, K, N]``) as zero-padded ``NR``-column panels ``[..., ceil(N/NR), K, NR]``."""
    b = np.asarray(b, np.float32)
    k, n = b.shape[-2:]
    npan = -(-n // NR)
    out = np.zeros(b.shape[:-2] + (k, npan * NR), np.float32)
    out[..., :n] = b
    out = out.reshape(b.shape[:-2] + (k, npan, NR))
    return np.ascontiguousarray(np.moveaxis(out, -2, -3))


def _row_addr(builder, base, r, mv, stride):
    """Address of row ``min(r, mv-1)``: rows past the block repeat its last row, so loads stay in bounds."""
    i64t = simd.I64
    rr = builder.select(builder.icmp_signed("<", ir.Constant(i64t, r), mv), ir.Constant(i64t, r),
                        builder.sub(mv, ir.Constant(i64t, 1)))
    return builder.add(base, builder.mul(builder.mul(rr, stride), ir.Constant(i64t, 4)))


def _flag(builder, flags, bit):
    i64t = simd.I64
    return builder.icmp_unsigned("!=", builder.and_(flags, ir.Constant(i64t, bit)), ir.Constant(i64t, 0))


def _make_micro(nvr, mr=MR, panels=False, stream=False):
    """The micro-kernel intrinsic on register blocks of ``mr`` rows x ``nvr`` vectors.

    C[r, 0:nv] (op)= sum_k A[r, k] * B[k, 0:nvr*VW] for r < mv (byte addresses, float strides).

    ``flags``: LOAD adds the values in ``C`` to the sums; FAST_BIAS adds ``bias[r]``
    (float32 at ``bias + 4r``), FAST_RES a residual block at ``res`` (stride
    ``ldc``), then FAST_RELU, FAST_CLIP (bounds ``act_alpha``, ``act_beta`` of
    the ``EPILOGUE`` struct at ``ep``), FAST_LEAKY (slope ``act_alpha``), FAST_SIGMOID, FAST_SILU or
    FAST_HARD_SWISH apply before the store. ``bias`` and ``res``
    must be readable even when their flag is off. Rows ``>= mv`` and columns
    ``>= nv`` are neither read from ``C`` nor written.

    GRID_MAP: the block's columns are pixels of a padded grid whose rows are
    wider than the image's, and each vector ``h`` of a row goes to two places:
    lanes ``[0, n1)`` at float offset ``o1`` of the row in ``C``, lanes ``[s2,
    e2)`` at ``o2`` (the next image row), from the int64s ``[o1, n1, o2, s2,
    e2]`` per vector at ``gmap``; ``nv`` is then unused (the map holds it).
    ``res`` and a LOAD'ed ``C`` are read through the same map.

    ``panels``: ``A`` is always in ``MR``-row panels (``sak == MR``), ``sai``
    floats apart, and the block spans ``mr / MR`` of them; no strided path.

    ``stream``: with a strided ``A`` (not GRID_MAP), ``gmap`` is an address
    whose cache lines, one a k-step from ``gmap``, are hinted into L2 while the
    block computes: data a later call reads from memory (pass an address in
    cache for none).
    """
    def micro(typingctx, a, sai, sak, b, ldb, c, ldc, kk, mv, nv, ep, bias, res, flags, gmap):
        return types.int64(*([types.int64] * 15)), codegen

    def codegen(context, builder, sig, args):
        a, sai, sak, b, ldb, c, ldc, kk, mv, nv, ep, bias, res, flags, gmap = args
        i64t, f32t = simd.I64, simd.F32
        four = ir.Constant(i64t, 4)
        rows = [_row_addr(builder, a, r, mv, sai) for r in range(mr)]
        caddr = [builder.add(c, builder.add(builder.mul(builder.mul(ir.Constant(i64t, r), ldc), four),
                                            ir.Constant(i64t, 4 * VW * h))) for r in range(mr) for h in range(nvr)]

        def masks():
            # Lanes of the block's valid columns, none for rows past mv.
            out = []
            for r in range(mr):
                live = builder.icmp_signed("<", ir.Constant(i64t, r), mv)
                for h in range(nvr):
                    cnt = builder.select(live, builder.sub(nv, ir.Constant(i64t, h * VW)), ir.Constant(i64t, 0))
                    out.append(simd.lane_mask(builder, cnt))
            return out

        # Full blocks (the common case) load and store without masks: computing
        # 2*MR masks costs as much as a short K loop.
        full = builder.and_(builder.icmp_signed("==", mv, ir.Constant(i64t, mr)),
                            builder.icmp_signed("==", nv, ir.Constant(i64t, nvr * VW)))
        # The sums start from zero and C (a later K slice) is added after the
        # loop: its lines, hinted into L1 now, arrive while the loop runs
        # instead of stalling its start (C is L3-resident on big GEMMs).
        for x in caddr:
            simd.prefetch(builder, x)
        init = [ir.Constant(simd.vec(), [0.0] * VW)] * (mr * nvr)

        def step(k, acc, packed):
            bk = builder.add(b, builder.mul(builder.mul(k, ldb), four))
            bv = [simd.vload(builder, builder.add(bk, ir.Constant(i64t, 4 * VW * h))) for h in range(nvr)]
            # B rows stream from L2 or memory: ask for the rows PREFETCH_ROWS ahead now.
            ahead = builder.add(bk, builder.mul(builder.mul(ldb, four), ir.Constant(i64t, PREFETCH_ROWS)))
            for line in range(0, nvr * VW * 4, 64):
                simd.prefetch(builder, builder.add(ahead, ir.Constant(i64t, line)))
            new = []
            # Packed A (MR-row panels, all weights) puts row r at a constant
            # offset from one pointer: MR row pointers held across the loop
            # spilled to the stack at MR = 12 (seen in the assembly).
            ak = builder.add(a, builder.mul(k, ir.Constant(i64t, 4 * mr))) if packed else None
            if packed:  # weights stream from memory on their first panel: ask for them A_PREFETCH bytes ahead
                simd.prefetch(builder, builder.add(ak, ir.Constant(i64t, A_PREFETCH)))
            koff = None if packed else builder.mul(builder.mul(k, sak), four)
            if stream and not packed:
                simd.prefetch(builder, builder.add(gmap, builder.mul(k, ir.Constant(i64t, 64))), 2)
            for r in range(mr):
                addr = builder.add(ak, ir.Constant(i64t, 4 * r)) if packed else builder.add(rows[r], koff)
                s = builder.load(builder.inttoptr(addr, f32t.as_pointer()), align=4)
                sv = simd.splat(builder, s)
                for h in range(nvr):
                    new.append(simd.fma(builder, sv, bv[h], acc[r * nvr + h]))
            return new

        def step_panels(k, acc):
            bk = builder.add(b, builder.mul(builder.mul(k, ldb), four))
            bv = [simd.vload(builder, builder.add(bk, ir.Constant(i64t, 4 * VW * h))) for h in range(nvr)]
            ak = builder.add(a, builder.mul(k, ir.Constant(i64t, 4 * MR)))
            new = []
            for r in range(mr):
                pan = builder.mul(builder.mul(sai, ir.Constant(i64t, r // MR)), four)
                addr = builder.add(builder.add(ak, pan), ir.Constant(i64t, 4 * (r % MR)))
                sv = simd.splat(builder, builder.load(builder.inttoptr(addr, f32t.as_pointer()), align=4))
                new += [simd.fma(builder, sv, bv[h], acc[r * nvr + h]) for h in range(nvr)]
            return new

        # Not unrolled: LLVM's loop is already 3 uops of overhead.
        if panels:
            _, acc = _kloop(builder, ir.Constant(i64t, 0), init, 1, kk, step_panels)
        else:
            packed = builder.and_(builder.icmp_signed("==", sai, ir.Constant(i64t, 1)),
                                  builder.icmp_signed("==", sak, ir.Constant(i64t, mr)))
            with builder.if_else(packed) as (in_panels, strided):
                with in_panels:
                    _, acc_p = _kloop(builder, ir.Constant(i64t, 0), init, 1, kk, lambda k, acc: step(k, acc, True))
                    blk_p = builder.block
                with strided:
                    _, acc_s = _kloop(builder, ir.Constant(i64t, 0), init, 1, kk, lambda k, acc: step(k, acc, False))
                    blk_s = builder.block
            acc = _merge(builder, acc_p, blk_p, acc_s, blk_s)

        def grid_targets():
            m = [builder.load(builder.inttoptr(builder.add(gmap, ir.Constant(i64t, 8 * q)), i64t.as_pointer()))
                 for q in range(GMAP_INTS)]
            out = []
            for r in range(mr):
                live = builder.icmp_signed("<", ir.Constant(i64t, r), mv)
                none = ir.Constant(ir.VectorType(ir.IntType(1), VW), [0] * VW)
                row = builder.mul(builder.mul(ir.Constant(i64t, r), ldc), four)
                for h in range(nvr):
                    o1, n1, o2, s2, e2 = m[5 * h:5 * h + 5]
                    m1 = simd.lane_mask(builder, n1)
                    m2 = builder.and_(simd.lane_mask(builder, e2), builder.not_(simd.lane_mask(builder, s2)))
                    out.append([(builder.add(c, builder.add(row, builder.mul(o, four))), builder.select(live, mk, none))
                                for o, mk in ((o1, m1), (o2, m2))])
            return out

        with builder.if_else(_flag(builder, flags, GRID_MAP)) as (mapped, plain):
            with mapped:
                _store_block(builder, acc, grid_targets(), c, mv, ep, bias, res, flags, mr)
            with plain:
                with builder.if_else(full) as (whole, ragged):
                    with whole:
                        _store_block(builder, acc, [[(x, None)] for x in caddr], c, mv, ep, bias, res, flags, mr)
                    with ragged:
                        _store_block(builder, acc, [[(x, mk)] for x, mk in zip(caddr, masks())], c, mv, ep, bias,
                                     res, flags, mr)
        return ir.Constant(i64t, 0)

    micro.__name__ = micro.__qualname__ = (f"_micro_{mr}x{nvr}v{'_panels' if panels else ''}"
                                           f"{'_stream' if stream else ''}")
    return intrinsic(micro)


micro = _make_micro(NV)
# Half-width blocks for a last panel of at most VW columns: the FMAs of the
# empty vector are skipped (14x14 planes: 196 pixels = 6 panels + 4 columns).
_micro_half = _make_micro(1)
# A last panel of at most VW columns under A in panels, two row blocks at once where a sweep holds both
# (deep K): the half-width kernel's 8 accumulators leave the fma pipes waiting on their latency.
_micro_half_tall = _make_micro(1, 2 * MR, panels=True)
# The pixel-rows conv's blocks (A: pixels, strided; B: weight panels streamed ahead through gmap): seven rows
# for planes of 7x7 or 14x14 pixels (49 = 7 x 7), else eight.
micro_7rows = _make_micro(NV, 7, stream=True)
micro_8rows = _make_micro(NV, stream=True)


def _kloop(builder, k0, acc0, unroll, kk, step):
    """Emit ``while k + unroll <= kk: acc = step(k + u, acc) for u < unroll``; returns the final ``(k, acc)``."""
    i64t = simd.I64
    pre = builder.block
    head = builder.append_basic_block("mk.head")
    body = builder.append_basic_block("mk.body")
    done = builder.append_basic_block("mk.done")
    builder.branch(head)
    builder.position_at_end(head)
    k = builder.phi(i64t)
    acc = [builder.phi(v.type) for v in acc0]
    k.add_incoming(k0, pre)
    for x, v in zip(acc, acc0):
        x.add_incoming(v, pre)
    builder.cbranch(builder.icmp_signed("<=", builder.add(k, ir.Constant(i64t, unroll)), kk), body, done)
    builder.position_at_end(body)
    cur = acc
    for u in range(unroll):
        cur = step(builder.add(k, ir.Constant(i64t, u)), cur)
    k1 = builder.add(k, ir.Constant(i64t, unroll))
    end = builder.block
    builder.branch(head)
    k.add_incoming(k1, end)
    for x, v in zip(acc, cur):
        x.add_incoming(v, end)
    builder.position_at_end(done)
    return k, acc


def _maybe(builder, cond, vals, fn):
    """``fn(vals)`` when ``cond`` holds, else ``vals``: one well-predicted branch for the whole block."""
    pre = builder.block
    with builder.if_then(cond):
        new = fn(vals)
        then = builder.block
    return _merge(builder, new, then, vals, pre)


def _merge(builder, xs, x_block, ys, y_block):
    """One phi per pair: ``xs`` when control came from ``x_block``, ``ys`` from ``y_block``."""
    out = []
    for x, y in zip(xs, ys):
        phi = builder.phi(x.type)
        phi.add_incoming(x, x_block)
        phi.add_incoming(y, y_block)
        out.append(phi)
    return out


def _store_block(builder, acc, targets, c, mv, ep, bias, res, flags, mr=MR):
    # ``targets[q]``: the (address, lane mask or None) pairs vector q of the
    # block is read from and stored to; several pairs have disjoint masks.
    # Same operation order as the scalar epilogue (acc + bias + res, then the
    # activation), so a value never depends on which path computed it. Each
    # step is skipped by one branch when its flag is off: selecting per vector
    # cost as much as a short K loop.
    i64t, f32t = simd.I64, simd.F32
    fload, fb, fr, frelu, fclip, fleaky = (_flag(builder, flags, bit)
                                           for bit in (LOAD, FAST_BIAS, FAST_RES, FAST_RELU, FAST_CLIP, FAST_LEAKY))
    zero = ir.Constant(simd.vec(), [0.0] * VW)

    def ep_value(off):
        return simd.splat(builder, builder.load(builder.inttoptr(builder.add(ep, ir.Constant(i64t, off)),
                                                                 f32t.as_pointer())))

    def add_bias(vals):
        out = []
        for r in range(mr):
            bv = simd.splat(builder, builder.load(builder.inttoptr(
                _row_addr(builder, bias, r, mv, ir.Constant(i64t, 1)), f32t.as_pointer()), align=4))
            per = len(vals) // mr  # vectors per row: NV, or 1 in the half-width kernel
            out += [builder.fadd(v, bv) for v in vals[r * per:(r + 1) * per]]
        return out

    def add_block(vals, shift):
        # Reads the block through the targets, ``shift`` bytes on (C: 0, the residual: res - c).
        out = []
        for v, tq in zip(vals, targets):
            w = None
            for x, mk in tq:
                x = builder.add(x, shift)
                ld = simd.vload(builder, x) if mk is None else simd.masked_load(builder, x, mk)
                w = ld if w is None else builder.select(mk, ld, w)
            out.append(builder.fadd(v, w))
        return out

    def add_res(vals):
        return add_block(vals, builder.sub(res, c))

    # Relu and Clip compare and select so that NaN passes, as in the unfused
    # ops (x86 compiles each to one max/min instruction, operands swapped).
    def clip(vals):
        lo, hi = ep_value(8 * EPILOGUE.act_alpha), ep_value(8 * EPILOGUE.act_beta)
        return [simd.vclamp_above(builder, simd.vclamp_below(builder, v, lo), hi) for v in vals]

    def leaky(vals):
        slope = ep_value(8 * EPILOGUE.act_alpha)
        return [builder.select(builder.fcmp_ordered(">=", v, zero), v, builder.fmul(v, slope)) for v in vals]

    vals = _maybe(builder, fload, acc, lambda vs: add_block(vs, ir.Constant(i64t, 0)))
    vals = _maybe(builder, fb, vals, add_bias)
    vals = _maybe(builder, fr, vals, add_res)
    vals = _maybe(builder, frelu, vals, lambda vs: [simd.vclamp_below(builder, v, zero) for v in vs])
    vals = _maybe(builder, fclip, vals, clip)
    vals = _maybe(builder, fleaky, vals, leaky)
    for bit, name in ((FAST_SIGMOID, "sigmoid"), (FAST_SILU, "silu"), (FAST_HARD_SWISH, "hard_swish")):
        vals = _maybe(builder, _flag(builder, flags, bit), vals,
                      lambda vs, name=name: vact.call(builder, name, vs))
    for v, tq in zip(vals, targets):
        for x, mk in tq:
            if mk is None:
                simd.vstore(builder, v, x)
            else:
                simd.masked_store(builder, v, x, mk)


@numba.njit(inline="always")
def rows_activation(cv, co, ldc, mv, n, epa):
    """The epilogue's activation on ``mv`` rows of ``n`` floats of ``C`` (row ``i`` at ``co + i * ldc``).

    Callers apply it once a row block's sweep over its panels is done: one
    pass per row rather than per ``NR`` columns (a pass's set-up costs more
    than 32 GELUs).
    """
    act = ep_int(epa, EPILOGUE.act)
    aa, ab = ep_float(epa, EPILOGUE.act_alpha), ep_float(epa, EPILOGUE.act_beta)
    for i in range(mv):
        activation_run(act, cv, co + i * ldc, co + i * ldc + n, aa, ab)


@numba.njit(inline="always")
def _epilogue(cv, co, ldc, mv, nv, epa, cadd, cao, sci, scj, res, with_act):
    """``C = alpha*C + beta*Cadd + res`` on an ``mv x nv`` block just computed, then its activation
    if ``with_act`` (else the caller applies it with ``rows_activation``)."""
    alpha, beta = ep_float(epa, EPILOGUE.alpha), ep_float(epa, EPILOGUE.beta)
    aa, ab = ep_float(epa, EPILOGUE.act_alpha), ep_float(epa, EPILOGUE.act_beta)
    act, has_c, has_res = ep_int(epa, EPILOGUE.act), ep_int(epa, EPILOGUE.has_c) != 0, ep_int(epa, EPILOGUE.has_res) != 0
    for i in range(mv):
        r = co + i * ldc
        for j in range(nv):
            q = U(r + j)  # unsigned: no wraparound test, the loop vectorizes
            v = alpha * cv[q]
            if has_c:
                v += beta * cadd[U(cao + i * sci + j * scj)]
            if has_res:
                v += res[q]
            cv[q] = v
        if with_act:
            activation_run(act, cv, r, r + nv, aa, ab)


@numba.njit(inline="always")
def pack_panels(b, ldb, rows_tab, k0, kc, ncols, dst, pstride):
    """Copy ``B[k0:k0+kc, 0:ncols]`` to ``ceil(ncols/NR)`` panels of ``kc x NR`` (zero-padded), ``pstride`` bytes apart.

    Row ``k`` of ``B`` starts ``k * ldb`` floats after ``b``, or ``tab[k]``
    floats after it when ``rows_tab`` (the address of an int64 table) is not 0.
    Rows outer, panels inner: each row of ``B`` is read once, front to back.
    """
    tab = i64(rows_tab, k0 + kc)
    npan = (ncols + NR - 1) // NR
    for k in range(kc):
        src = b + ((k0 + k) * ldb if rows_tab == 0 else tab[k0 + k]) * 4
        out = dst + k * NR * 4
        for jp in range(npan):
            for h in range(NV):
                v_store(out + jp * pstride + h * VW * 4, v_load_n(src + (jp * NR + h * VW) * 4, ncols - jp * NR - h * VW))


@intrinsic
def _pack_a_vec(typingctx, src, sai, last, kv, dst):
    """Pack ``kv * VW`` k of ``MR`` rows (row ``r`` at ``src + min(r, last) * sai`` bytes, unit k stride) into ``dst``.

    ``dst`` gets ``[k][MR]`` floats: one panel of a row-major A, ``VW`` k at a
    time as ``MR`` loads, an in-register transpose and ``MR`` stores.
    """
    def codegen(context, builder, sig, args):
        src, sai, last, kv, dst = args
        i64t = simd.I64
        rows = [builder.add(src, builder.mul(builder.select(builder.icmp_signed("<", ir.Constant(i64t, r), last),
                                                           ir.Constant(i64t, r), last), sai)) for r in range(MR)]

        def step(j, acc):
            off = builder.mul(j, ir.Constant(i64t, 4 * VW))
            vals = simd.transpose(builder, [simd.vload(builder, builder.add(x, off)) for x in rows])
            out = builder.add(dst, builder.mul(off, ir.Constant(i64t, MR)))
            for q, v in enumerate(vals):
                simd.vstore(builder, v, builder.add(out, ir.Constant(i64t, 4 * VW * q)))
            return acc
        _kloop(builder, ir.Constant(i64t, 0), [], 1, kv, step)
        return ir.Constant(i64t, 0)
    return types.int64(*([types.int64] * 5)), codegen


@numba.njit(inline="always")
def _pack_a(a, sai, sak, i0, mc, k0, kc, dst):
    """Rows ``[i0, i0+mc)`` x ``[k0, k0+kc)`` of a strided A as ``MR``-row panels ``[ceil(mc/MR), kc, MR]``."""
    av = f32(a, 1 << 40)
    d = f32(dst, 1 << 40)
    # Row-major A (unit k stride): VW k of a panel per transpose in registers.
    kv = kc // VW if sak == 1 and VW >= MR else 0
    for ib in range((mc + MR - 1) // MR):
        base = ib * kc * MR
        src = (i0 + ib * MR) * sai + k0 * sak
        last = min(MR, mc - ib * MR) - 1  # rows past the block repeat its last: the micro-kernel never stores them
        if kv > 0:
            _pack_a_vec(a + src * 4, sai * 4, last, kv, dst + base * 4)
        # k outer, rows inner: the stores run contiguously (one row of the panel
        # at a time), 2x faster than a column of the panel at a time.
        for k in range(kv * VW, kc):
            for r in range(MR):
                d[base + k * MR + r] = av[src + min(r, last) * sai + k * sak]


@numba.njit(inline="always")
def _grid_map(gm, g, nv, gw, gd):
    """Fill ``gm`` with the GRID_MAP of a panel whose first column is grid pixel ``g``; returns its first image offset.

    Vector ``h``'s lanes are grid pixels ``g + h*VW + l``: those left of the
    extra columns of their grid row go to that image row, the rest (after the
    ``gd`` extra columns) to the next; ``gw >= VW`` keeps it to two rows.
    """
    ow = gw - gd
    base = g - (g // gw) * gd
    for h in range(NV):
        gh = g + h * VW
        r0 = gh // gw
        c0 = gh - r0 * gw
        lim = nv - h * VW
        o1 = gh - r0 * gd - base
        gm[5 * h] = o1
        gm[5 * h + 1] = min(ow - c0, lim)
        gm[5 * h + 2] = o1 - gd
        gm[5 * h + 3] = gw - c0
        gm[5 * h + 4] = min(gw - c0 + ow, lim)
    return base


@numba.njit(inline="always")
def _gemv_row(a, sak, b, bpk, n, kk, c):
    """``c[0:n] = a[0:kk] @ B`` for one row ``a`` (float stride ``sak``) over ``NR``-column panels of ``B``
    (``bpk`` floats apart, zero-padded): four panels at a time, eight independent fma chains.

    The micro-kernel spends ``MR`` rows of fmas on a one-row block, seven of them
    repeating the first, and is bound by them; here every fma is used, so one
    row streams the panels as fast as memory delivers them. Each column is the
    same fma chain over ``k`` as the micro-kernel's whole-``K`` block, so the
    sums are bit-identical.
    """
    vs = VW * 4
    pb = bpk * 4
    npan = (n + NR - 1) // NR
    j = 0
    while j + 4 <= npan:
        p0 = b + j * pb
        a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = v_zero()
        for k in range(kk):
            av = v_splat(f32(a + k * sak * 4, 1)[0])
            q = p0 + k * NR * 4
            a0 = v_fma(av, v_load(q), a0)
            a1 = v_fma(av, v_load(q + vs), a1)
            a2 = v_fma(av, v_load(q + pb), a2)
            a3 = v_fma(av, v_load(q + pb + vs), a3)
            a4 = v_fma(av, v_load(q + 2 * pb), a4)
            a5 = v_fma(av, v_load(q + 2 * pb + vs), a5)
            a6 = v_fma(av, v_load(q + 3 * pb), a6)
            a7 = v_fma(av, v_load(q + 3 * pb + vs), a7)
        o = c + j * NR * 4
        left = n - j * NR
        v_store_n(o, a0, left)
        v_store_n(o + vs, a1, left - VW)
        v_store_n(o + 2 * vs, a2, left - 2 * VW)
        v_store_n(o + 3 * vs, a3, left - 3 * VW)
        v_store_n(o + 4 * vs, a4, left - 4 * VW)
        v_store_n(o + 5 * vs, a5, left - 5 * VW)
        v_store_n(o + 6 * vs, a6, left - 6 * VW)
        v_store_n(o + 7 * vs, a7, left - 7 * VW)
        j += 4
    for jp in range(j, npan):  # the last panels one at a time
        p0 = b + jp * pb
        a0 = a1 = v_zero()
        for k in range(kk):
            av = v_splat(f32(a + k * sak * 4, 1)[0])
            a0 = v_fma(av, v_load(p0 + k * NR * 4), a0)
            a1 = v_fma(av, v_load(p0 + k * NR * 4 + vs), a1)
        left = n - jp * NR
        v_store_n(c + jp * NR * 4, a0, left)
        v_store_n(c + jp * NR * 4 + vs, a1, left - VW)


@numba.njit(nogil=True)
def _shallow_rows(a, m, b, ldb, n, kk, c, ldc, scratch, epa, cadd, sci, res, fl):
    """``gemm_tile``'s shallow case: ``A`` in ``MR``-row panels, a plain ``B`` of at most ``SHALLOW_K`` rows, the
    whole epilogue in registers (``fl`` its FAST_* flags).

    Full panels of ``B`` are read in place and a ragged last one is packed once
    into ``scratch``; row blocks sweep ``NC`` columns at a time (that part of
    ``B`` stays in L1/L2). A few dozen ``k`` steps per register block leave
    the loop around the micro-kernel as the cost, so it is kept this small.
    """
    nfull = n // NR
    tail = n - nfull * NR
    if tail > 0:
        pack_panels(b + nfull * NR * 4, ldb, 0, 0, kk, tail, scratch, kk * NR * 4)
    nib = (m + MR - 1) // MR
    for jc in range(0, n, NC):
        je = min(n, jc + NC)
        for ib in range(nib):
            i0 = ib * MR
            mv = min(MR, m - i0)
            ai = a + i0 * kk * 4
            bias = cadd + i0 * sci * 4
            for j0 in range(jc, je, NR):
                nv = min(NR, n - j0)
                cblk = c + (i0 * ldc + j0) * 4
                rblk = res + (i0 * ldc + j0) * 4 if fl & FAST_RES else cblk
                bb = bias if fl & FAST_BIAS else cblk
                if nv == NR:
                    micro(ai, 1, MR, b + j0 * 4, ldb, cblk, ldc, kk, mv, nv, epa, bb, rblk, fl, 0)
                elif nv > VW:
                    micro(ai, 1, MR, scratch, NR, cblk, ldc, kk, mv, nv, epa, bb, rblk, fl, 0)
                else:
                    _micro_half(ai, 1, MR, scratch, NR, cblk, ldc, kk, mv, nv, epa, bb, rblk, fl, 0)
    return 0


@numba.njit(nogil=True)
def gemm_tile(a, sai, sak, sblk, m, b, ldb, bpk, n, kk, c, ldc, scratch, epa, cadd, sci, scj, res, whole_k,
              gw=0, gd=0, g0=0):
    """C[0:m, 0:n] = epilogue(A[0:m, :kk] @ B[:kk, 0:n]); byte addresses, float strides.

    Row block ``i`` of ``MR`` rows of ``A`` starts ``i * sblk`` floats after ``a``
    (``MR * sai`` for a plain matrix, ``kk * MR`` for packed panels). ``B`` is
    plain with row stride ``ldb`` when ``bpk == 0``, packed ``NR``-column panels
    ``bpk`` floats apart with row stride ``NR`` when ``bpk > 0`` (see
    ``pack_b``), and when ``bpk < 0`` row ``k`` starts ``tab[k]`` floats after
    ``b``, ``ldb`` being the address of the int64 table ``tab`` (implicit GEMM). ``epa``
    is the address of an ``EPILOGUE`` struct (in the caller's parameter row,
    ``slot_address(p, R.ep)``) where ``fast`` >= 0 means the whole epilogue
    is the micro-kernel's (FAST_* flags); ``cadd`` is the address of this tile's
    ``C[0, 0]`` addend (strides ``sci``, ``scj``; a per-row bias when fast),
    ``res`` of its residual (laid out like ``C``). ``whole_k``: the op has a
    single row block, so one row block of packed ``B`` may skip the K slices.
    ``gw > 0``: column ``j`` is pixel ``g0 + j`` of a grid with rows ``gw``
    wide, ``gd`` more than the image's (implicit GEMM on padded planes); ``C``
    and ``res`` are the image (row stride ``ldc``, ``C[0, 0]`` its first
    pixel), pixels in the extra columns are dropped, and the epilogue must be
    the micro-kernel's (``fast >= 0``). Needs ``gw >= VW`` and ``scratch_floats()``.
    A plain ``B`` of at most ``SHALLOW_K`` rows under panels of ``A`` with the
    epilogue in registers takes ``_shallow_rows``.
    """
    big = 1 << 40
    cv = f32(c, big)
    cav = f32(cadd, big)
    rv = f32(res, big)
    fast = ep_int(epa, EPILOGUE.fast)
    if m == 1 and bpk > 0 and whole_k and gw == 0 and fast <= 0 and NV == 2:
        # One row over packed panels (a batch-1 fully connected layer): every fma used.
        _gemv_row(a, sak, b, bpk, n, kk, c)
        if fast < 0:
            _epilogue(cv, 0, ldc, 1, n, epa, cav, 0, sci, scj, rv, True)
        return 0
    in_place = sai == 1 and sak == MR and sblk == kk * MR
    if in_place and bpk == 0 and gw == 0 and fast >= 0 and kk <= SHALLOW_K:
        return _shallow_rows(a, m, b, ldb, n, kk, c, ldc, scratch, epa, cadd, sci, res, fast)
    kc_max = KC if in_place else KC_PLAIN_A
    # One row block over packed B panels reuses no panel: skip the K slices and
    # stream each panel once, end to end (A is then read in place). The caller
    # decides from the whole op, not this tile, so that every tiling sums alike.
    nk = 1 if whole_k and m <= MR and bpk > 0 else max(1, (kk + kc_max - 1) // kc_max)
    kcn = (kk + nk - 1) // nk  # equal slices: no thin last slice
    npan = (n + NR - 1) // NR
    # A already in MR-row panels (conv weights) is read in place; a strided A is
    # packed MC rows at a time, so its rows stream contiguously from L2 (row
    # strides of whole pages otherwise alias in L1 and the TLB), unless there
    # are too few column panels to repay the copy. A plain B is packed NC
    # columns at a time, once per K slice, and shared by every row chunk.
    pack_a = not in_place and npan >= 4 and nk * kc_max >= kk
    mc_n = MC if pack_a or m * kc_max * 4 > A_SLICE_BYTES else m
    apack = scratch + KC_PLAIN_A * NC * 4
    # Full panels of a plain B are read in place by few row blocks (B_IN_PLACE_BLOCKS).
    b_in_place = bpk == 0 and m <= B_IN_PLACE_BLOCKS * MR
    npc = NC // NR
    gmap = apack + MC * KC_PLAIN_A * 4
    gm = i64(gmap, GMAP_INTS * npc)
    pt = i64(gmap + GMAP_INTS * npc * 8, 4 * npc)  # per panel of the chunk: B address, its row stride, C column, width
    # Shallow K (one slice): row blocks outer, so C is written 8 rows at a time
    # (a few write streams the L2 prefetcher follows) instead of every row of
    # the tile a panel at a time (in a model C is cold); deeper K keeps
    # panels outer (B panels would come from L2 for every row block).
    rows_outer = kk <= KC
    for kb in range(nk):
        k0 = kb * kcn
        kc = max(0, min(kcn, kk - k0))
        last = kb == nk - 1
        fl = LOAD if kb > 0 else 0
        if last and fast > 0:
            fl |= fast
        if gw > 0:
            fl |= GRID_MAP
        for jc in range(0, npan, NC // NR):
            jn = min(NC // NR, npan - jc)
            if bpk <= 0:
                # In place, only a ragged last panel is packed.
                jp0 = jn - 1 if b_in_place else 0
                if not b_in_place or n - (jc + jp0) * NR < NR:
                    j0 = (jc + jp0) * NR
                    pack_panels(b + j0 * 4, ldb if bpk == 0 else 0, ldb if bpk < 0 else 0, k0, kc,
                                min((jn - jp0) * NR, n - j0), scratch + jp0 * kc * NR * 4, kc * NR * 4)
            for ic in range(0, m, mc_n):
                mc = min(mc_n, m - ic)
                if pack_a:
                    if jc == 0 or mc_n < m:  # all rows fit one chunk: packed once per K slice
                        _pack_a(a, sai, sak, ic, mc, k0, kc, apack)
                    ab, asai, asak, ablk = apack, 1, MR, kc * MR
                else:
                    ab, asai, asak, ablk = a + k0 * sak * 4, sai, sak, sblk
                for jp in range(jn):
                    j0 = (jc + jp) * NR
                    nv = min(NR, n - j0)
                    lb = NR
                    if bpk > 0:
                        bp = b + ((jc + jp) * bpk + k0 * NR) * 4
                    elif b_in_place and nv == NR:
                        bp, lb = b + (k0 * ldb + j0) * 4, ldb
                    else:
                        bp = scratch + jp * kc * NR * 4
                    cj = j0
                    if gw > 0:
                        cj = _grid_map(gm[jp * GMAP_INTS:], g0 + j0, nv, gw, gd)
                    pt[4 * jp], pt[4 * jp + 1], pt[4 * jp + 2], pt[4 * jp + 3] = bp, lb, cj, nv
                nib = (mc + MR - 1) // MR
                grp = 1 if rows_outer else nib  # row blocks per sweep over the panels
                for ig in range(0, nib, grp):
                    for jp in range(jn):
                        j0 = (jc + jp) * NR
                        bp, lb, cj, nv = pt[4 * jp], pt[4 * jp + 1], pt[4 * jp + 2], pt[4 * jp + 3]
                        ib, ib_end = ig, min(nib, ig + grp)
                        while ib < ib_end:
                            i0 = ic + ib * MR
                            tall = nv <= VW and ib + 1 < ib_end and gw == 0 and asai == 1 and asak == MR
                            mv = min(2 * MR if tall else MR, m - i0)
                            cblk = c + (i0 * ldc + cj) * 4
                            bias = cadd + i0 * sci * 4 if fl & FAST_BIAS else cblk
                            rblk = res + (i0 * ldc + cj) * 4 if fl & FAST_RES else cblk
                            ai = ab + (ib * ablk if pack_a else (ic // MR + ib) * ablk) * 4
                            if nv > VW:
                                micro(ai, asai, asak, bp, lb, cblk, ldc, kc, mv, nv, epa, bias, rblk, fl,
                                      gmap + jp * GMAP_INTS * 8)
                            elif tall:
                                _micro_half_tall(ai, ablk, MR, bp, lb, cblk, ldc, kc, mv, nv, epa, bias, rblk, fl, 0)
                            else:
                                _micro_half(ai, asai, asak, bp, lb, cblk, ldc, kc, mv, nv, epa, bias, rblk, fl,
                                            gmap + jp * GMAP_INTS * 8)
                            if last and fast < 0:
                                _epilogue(cv, i0 * ldc + j0, ldc, mv, nv, epa, cav, i0 * sci + j0 * scj, sci, scj, rv,
                                          False)
                            ib += 2 if tall else 1
                    if last and fast < 0:  # the activation once per row of the swept panels
                        c0 = jc * NR
                        for ib in range(ig, min(nib, ig + grp)):
                            i0 = ic + ib * MR
                            rows_activation(cv, i0 * ldc + c0, ldc, min(MR, m - i0), min(n, c0 + jn * NR) - c0, epa)
    return 0


@tile_kernel(GEMM, scratch=_gemm_scratch)
def f32_gemm(p, tile, scratch):
    m, n, kk = p[GEMM.m], p[GEMM.n], p[GEMM.k]
    sai, sak, ldb, sci, scj = p[GEMM.sai], p[GEMM.sak], p[GEMM.ldb], p[GEMM.sci], p[GEMM.scj]
    mb, nb, nmb, nnb, bpk = p[GEMM.mb], p[GEMM.nb], p[GEMM.n_mblk], p[GEMM.n_nblk], p[GEMM.bpk]
    per = nmb * nnb
    bt = tile // per
    rem = tile - bt * per
    i0 = (rem // nnb) * mb
    j0 = (rem % nnb) * nb
    rows = min(m, i0 + mb) - i0
    j1 = min(n, j0 + nb)
    offs = i64(p[GEMM.offs], 2 * (bt + 1))
    yo = bt * m * n + i0 * n + j0
    a = p[GEMM.a] + (offs[2 * bt] + i0 * sai) * 4
    b = p[GEMM.b] + (offs[2 * bt + 1] + ((j0 // NR) * bpk if bpk > 0 else j0)) * 4
    gemm_tile(a, sai, sak, MR * sai, rows, b, ldb, bpk, j1 - j0, kk, p[GEMM.y] + yo * 4, n, scratch,
              slot_address(p, GEMM.ep), p[GEMM.c] + (i0 * sci + j0 * scj) * 4, sci, scj, p[GEMM.y], m <= MR)
    return 0


@tile_kernel(TRANSPOSE2D)
def f32_transpose2d(p, tile, scratch):
    r, s, per = p[TRANSPOSE2D.rows], p[TRANSPOSE2D.cols], p[TRANSPOSE2D.cols_per_tile]
    x = f32(p[TRANSPOSE2D.x], r * s)
    y = f32(p[TRANSPOSE2D.y], r * s)
    lo = tile * per
    hi = min(s, lo + per)
    for j in range(lo, hi):
        for i in range(r):
            y[j * r + i] = x[i * s + j]
    return 0

