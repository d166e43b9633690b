"""Lowering of Conv (float32, NCHW, 1-D and 2-D) onto the conv kernels.

Pads (explicit or ``auto_pad``) resolve to begin pads and output sizes at
compile time. Weights must be constants: they are packed once as
``[Cout, cin_g*kh*kw]`` rows, the GEMM's ``A``. Channel-per-group 1 (depthwise,
any multiplier) uses the direct depthwise kernel; everything else is a GEMM
over (output-channel block x pixel block) tiles, per image and group, with 1x1
stride-1 unpadded convolutions reading the activation in place, strides 1
and 2 by implicit GEMM on the padded (phase-split) input, larger strides by
im2col. Where tiles split output channels, ``B`` is packed once for all of
them by its own row (``f32_pack_cols``, ``f32_im2col``). Fused
activation and residual (``attrs["_activation"]``, ``attrs["_residual"]``
= input 3) run in the epilogue; a fused max pool (``attrs["_maxpool"]``, the
pool node) runs on bands of conv rows in scratch (``f32_conv_maxpool``).
Not supported: 3-D convolution.
"""
import numpy as np

from tilerun.kernels.conv import DIRECT, FROM_COLS, GRID, GRID_COLS, IM2COL, conv_maxpool_scratch, dw_pad_shape
from tilerun.kernels.elementwise import IDENTITY
from tilerun.kernels.gemm import MR, NR, scratch_floats
from tilerun.kernels.simd import VW

from ..errors import node_error
from .base import F32, Lowering, const_input, expect_dtype, expect_rank
from .gemm import epilogue_row, fused_activation
from .pool import pool_geometry
from .registry import register

PIX_BLOCK = 2 * NR  # im2col columns built at a time
SMALL_PIX = 8 * NR  # at most this many output pixels: tile over output channels
BAND_BYTES = 1 << 20  # conv rows a fused max pool's tile computes at most


def _ints(node, name, n, default):
    v = node.attrs.get(name)
    if v is None or len(v) == 0:
        return [default] * n
    if len(v) != n:
        raise node_error(node, f"attribute {name} must have {n} values, given {list(v)}")
    return [int(x) for x in v]


def conv_geometry(node, xs, ws):
    """Resolve attributes: ``(strides, dilations, begin pads, output spatial shape)``."""
    nsp = len(xs) - 2
    ks = list(ws[2:])
    if node.attrs.get("kernel_shape") and list(node.attrs["kernel_shape"]) != ks:
        raise node_error(node, f"kernel_shape {list(node.attrs['kernel_shape'])} disagrees with weights {list(ws)}")
    st = _ints(node, "strides", nsp, 1)
    dl = _ints(node, "dilations", nsp, 1)
    pads = _ints(node, "pads", 2 * nsp, 0)
    if min(st) < 1 or min(dl) < 1 or min(pads) < 0 or min(ks) < 1:
        raise node_error(node, f"expected strides, dilations, kernel >= 1 and pads >= 0, given strides {st}, "
                               f"dilations {dl}, kernel {ks}, pads {pads}")
    auto = node.attrs.get("auto_pad", "NOTSET") or "NOTSET"
    auto = auto.decode() if isinstance(auto, bytes) else auto
    begin, out = [], []
    for i in range(nsp):
        size, ext = xs[2 + i], (ks[i] - 1) * dl[i] + 1
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            o = -(-size // st[i])
            total = max(0, (o - 1) * st[i] + ext - size)
            b = total // 2 if auto == "SAME_UPPER" else total - total // 2
        elif auto == "VALID":
            b, o = 0, (size - ext) // st[i] + 1
        elif auto == "NOTSET":
            b, o = pads[i], (size + pads[i] + pads[nsp + i] - ext) // st[i] + 1
        else:
            raise node_error(node, f"auto_pad {auto!r} is not NOTSET, SAME_UPPER, SAME_LOWER or VALID")
        if o < 1:
            raise node_error(node, f"output axis {i} would be empty: input {list(xs)}, kernel {ks}, "
                                   f"dilations {dl}, pads {pads}, strides {st}")
        begin.append(b)
        out.append(o)
    return st, dl, begin, out


def _gemm_tiles(plan, images, cout_g, npix, kk):
    """``(n_pix_blocks, pix_panels, n_co_blocks)`` for one image-group's GEMM (both split evenly).

    Few pixels (late layers, weights larger than activations): split output
    channels, so each tile streams only its own rows of the weights. Otherwise
    split the ``pix_panels`` column panels evenly (``tiling.split_even``),
    adding a channel split only when some worker would get no tile: a channel
    split costs a packing pass (``f32_pack_cols``), and asking for two tiles
    per worker measured 2-3% slower on squeezenet, ResNet-50 and Inception v1
    at 2 cores.
    """
    npan = -(-npix // NR)
    if npix <= SMALL_PIX and cout_g >= 2 * MR:
        return 1, npan, plan.split_even(cout_g, npix * kk, MR)
    npb = plan.split_even(npix, cout_g * kk, NR)
    ncob, want = 1, plan.num_workers
    if images * npb < want and cout_g > MR:
        ncob = min(-(-cout_g // MR), -(-want // (images * npb)))
    return npb, npan, ncob


def _column_cost(ncols):
    """Register-block vectors a row block spends on ``ncols`` columns (a last panel of <= VW columns is half-width)."""
    rem = ncols % NR
    return (ncols // NR) * (NR // VW) + -(-rem // VW)


def pack_panels(w, groups):
    """Weights ``[Cout, cin_g, ...]`` as per-group ``MR``-row panels ``[G, nblk, K, MR]`` (zero-padded rows)."""
    cout = w.shape[0]
    cout_g, kk = cout // groups, int(np.prod(w.shape[1:]))
    nblk = -(-cout_g // MR)
    a = np.zeros((groups, nblk * MR, kk), np.float32)
    a[:, :cout_g] = np.asarray(w, np.float32).reshape(groups, cout_g, kk)
    return np.ascontiguousarray(a.reshape(groups, nblk, MR, kk).transpose(0, 1, 3, 2))


@register("Conv", 1)
@register("Conv", 11)
class Conv(Lowering):
    """Conv with groups, strides, dilations, pads/auto_pad and optional bias."""

    def infer(self, node, inputs):
        if not 2 <= len(node.inputs) <= 4 or inputs[0] is None or inputs[1] is None:
            raise node_error(node, f"expected 2 or 3 inputs (X, W[, B]), given {len(node.inputs)}")
        x, w = inputs[0], inputs[1]
        for v in inputs[:3]:
            if v is not None:
                expect_dtype(node, v, [F32])
        expect_rank(node, x, (3, 4), "X")
        const_input(node, w, "weight W")
        if len(w.shape) != len(x.shape):
            raise node_error(node, f"weights {list(w.shape)} must have the rank of X {list(x.shape)}")
        g = int(node.attrs.get("group", 1))
        cout, cin_g = w.shape[:2]
        if g < 1 or x.shape[1] != cin_g * g or cout % g:
            raise node_error(node, f"X has {x.shape[1]} channels, W is {list(w.shape)} with group {g}: expected "
                                   f"C = group * W[1] and W[0] divisible by group")
        b = inputs[2] if len(inputs) > 2 else None
        if b is not None and tuple(b.shape) != (cout,):
            raise node_error(node, f"bias B must have shape [{cout}], given {list(b.shape)}")
        _, _, _, out = conv_geometry(node, x.shape, w.shape)
        pool = node.attrs.get("_maxpool")
        if pool is not None:
            out = pool_geometry(pool, (x.shape[0], cout, *out))[0]
        return [((x.shape[0], cout, *out), F32)]

    def lower(self, node, inputs, outputs, plan):
        x, w, y = inputs[0], inputs[1], outputs[0]
        b = inputs[2] if len(inputs) > 2 else None
        res = inputs[3] if len(inputs) > 3 else None
        xs, ws = tuple(x.shape), tuple(w.const.shape)
        st, dl, begin, out = conv_geometry(node, xs, ws)
        if len(xs) == 3:  # 1-D as 2-D with a unit height
            xs, ws = (xs[0], xs[1], 1, xs[2]), (ws[0], ws[1], 1, ws[2])
            st, dl, begin, out = [1] + st, [1] + dl, [0] + begin, [1] + out
        n, c, h, wd = xs
        cout, cin_g, kh, kw = ws
        g = int(node.attrs.get("group", 1))
        cout_g, kk, npix = cout // g, cin_g * kh * kw, out[0] * out[1]
        if res is not None and tuple(res.shape) != tuple(y.shape):
            raise node_error(node, f"residual {res.name!r} has shape {list(res.shape)}, expected {list(y.shape)}")
        act, aa, ab = fused_activation(node)
        ep_row = epilogue_row(1.0, 1.0, act, aa, ab, b is not None, res is not None, row_bias=True)
        ep = plan.weight(ep_row, "conv_ep")
        direct = DIRECT if kh == kw == 1 and st == [1, 1] and begin == [0, 0] and out == [h, wd] else IM2COL
        if cin_g > 1 and direct == IM2COL and max(st) <= 2:
            self._grid(node, plan, x, y, b, res, ep, ep_row[8] >= 0, w.const, n, c, h, wd, out, kh, kw, st, dl,
                       begin, g)
            return
        if cin_g == 1:
            kernel = "f32_conv_dw"
            wname = plan.weight(np.asarray(w.const, np.float32).reshape(cout, kk), "conv_w")
            tiles, cpt = plan.split(n * cout, npix * kh * kw)
            npan, ncob, npb = 0, tiles, 1
            plan.need_scratch(dw_pad_shape(h, wd, out[0], out[1], kh, kw, st[0], st[1], dl[0], dl[1], begin[0],
                                           begin[1])[3] * 4)
        else:
            kernel = "f32_conv_gemm"
            wname = plan.weight(pack_panels(w.const, g), "conv_w")
            npb, npan, ncob = _gemm_tiles(plan, n * g, cout_g, npix, kk)
            tiles, cpt = n * g * ncob * npb, 0
            plan.need_scratch((scratch_floats(kk) + (0 if direct else kk * PIX_BLOCK)) * 4)
        xname = x.name
        if kernel == "f32_conv_gemm" and ncob > 1:
            # Tiles split output channels: build the columns once, in their own row.
            if direct == IM2COL:
                xname = self._im2col(node, plan, x.name, n, c, h, wd, out, kh, kw, st, dl, begin, g, cin_g)
            else:
                xname = self._pack_cols(node, plan, x.name, 0, n * g, npix, kk, npix, cin_g * npix)
            direct = FROM_COLS
        ints = [n, c, h, wd, cout, out[0], out[1], kh, kw, st[0], st[1], dl[0], dl[1], begin[0], begin[1],
                g, cout_g, cin_g, cpt, npan, ncob, npb, direct, PIX_BLOCK, 0, 0, 0, 0]
        ins = [xname, wname, b.name if b is not None else ep, ep, res.name if res is not None else ep, ep]
        plan.add(node, kernel, ins, [y.name], ints, tiles, flops=2 * n * cout * npix * kk)

    @staticmethod
    def _grid(node, plan, x, y, b, res, ep, fast_ep, w, n, c, h, wd, out, kh, kw, st, dl, begin, g):
        """Stride-1 or -2 convolution as implicit GEMM over the zero-padded input (kernels/conv.py, GRID).

        A stride-2 axis is split into its even and odd phases (one phase when
        the kernel is 1 wide), so every tap reads one phase plane at a unit stride.
        The GEMM stores straight into ``y`` when its epilogue runs in registers
        and a grid row holds a whole vector; else into a grid temporary that
        ``f32_grid_out`` copies out, applying the epilogue.
        """
        oh, ow = out
        cout, cin_g = w.shape[:2]
        ph_r, ph_c = (st[0] if kh > 1 else 1), (st[1] if kw > 1 else 1)
        hq, wq = oh + (kh - 1) * dl[0] // st[0], ow + (kw - 1) * dl[1] // st[1]
        pq = hq * wq
        pstride, ngrid, kk, cout_g = ph_r * ph_c * pq, (oh - 1) * wq + ow, cin_g * kh * kw, cout // g
        # The last grid panel reads up to NR - 1 columns past the grid, from the last plane's tail.
        slack = 2 * NR + wq
        xp = plan.temp((n * c * pstride + slack,), np.float32, "conv_padded")
        # A plane's cost is what it reads as well as what it writes: a stride-2
        # 1x1 conv's pass writes a quarter of what it reads (ResNet-50's
        # 1024-plane downsample ran as one 80 us tile while the other core idled).
        tiles, per = plan.split(n * c, pstride + h * wd)
        plan.add(node, "f32_pad_planes", [x.name], [xp],
                 [n * c, h, wd, hq, wq, begin[0], begin[1], per, slack, st[0], st[1], ph_r, ph_c],
                 tiles, flops=n * c * pstride)
        ci, ki, kj = np.meshgrid(np.arange(cin_g), np.arange(kh), np.arange(kw), indexing="ij")
        rd, cd = ki * dl[0], kj * dl[1]
        phase = (rd % st[0]) * ph_c + cd % st[1]
        koffs = plan.weight((ci * pstride + phase * pq + rd // st[0] * wq + cd // st[1]).reshape(-1).astype(np.int64),
                            "conv_koffs")
        wname = plan.weight(pack_panels(w, g), "conv_w")
        bname = b.name if b is not None else ep
        rname = res.name if res is not None else ep
        pool = node.attrs.get("_maxpool")
        if pool is not None:
            if not (fast_ep and g == 1):
                raise node_error(node, "internal: a fused max pool needs a register epilogue and group 1")
            Conv._conv_maxpool(node, plan, pool, xp, koffs, wname, bname, ep, y, n, c, cout, oh, ow, wq, pstride, kk)
            return
        npix = oh * ow
        # Straight into the image needs the epilogue in registers and, where
        # grid rows have extra columns, a grid row of at least one vector.
        to_image = fast_ep and (wq >= VW or wq == ow)
        npb, npan, ncob = _gemm_tiles(plan, n * g, cout_g, ngrid, kk)
        cost_pix, cost_grid = _column_cost(npix), _column_cost(ngrid)
        if npix <= SMALL_PIX and (cost_pix < cost_grid or cost_pix == cost_grid and (ncob > 1 or not to_image)):
            # Small planes whose grid columns cost more register blocks than the
            # image's pixels (13x13: 6.5 panels against 6; 14x14: 7 against
            # 6.5): pack the pixels' columns once, without the grid's extra
            # columns. Squeezenet at 2 cores, a 13x13 64->256 layer with its
            # passes 0.26 -> 0.21 ms, the model -3.7% (im2col instead: -1.8%,
            # its short runs cost 0.07 ms). At equal cost too where the grid
            # would be packed anyway (a channel split) or copied out
            # (ResNet-50's 7x7 layers): one pass instead of two.
            npb, npan, ncob = _gemm_tiles(plan, n * g, cout_g, npix, kk)
            cols = plan.temp((n * g * npan * kk * NR,), np.float32, "conv_cols")
            nt, per = plan.split(kk, 2 * npix)  # each element is copied twice (through a row in scratch)
            plan.need_scratch((npix + NR) * 4)
            plan.add(node, "f32_pack_pixels", [xp, koffs], [cols], [n * g, kk, oh, ow, wq, cin_g * pstride, per, nt],
                     n * g * nt, flops=n * g * kk * npix)
            plan.need_scratch(scratch_floats(kk) * 4)
            ints = [n, c, h, wd, cout, oh, ow, kh, kw, st[0], st[1], dl[0], dl[1], begin[0], begin[1],
                    g, cout_g, cin_g, 0, npan, ncob, npb, FROM_COLS, PIX_BLOCK, 0, 0, 0, 0]
            plan.add(node, "f32_conv_gemm", [cols, wname, bname, ep, rname, ep], [y.name], ints, n * g * ncob * npb,
                     flops=2 * n * cout * npix * kk)
            return
        plan.need_scratch(scratch_floats(kk) * 4)
        mode, src = GRID, xp
        if ncob > 1:  # tiles split output channels: pack the columns once for all of them
            mode, src = GRID_COLS, Conv._pack_cols(node, plan, xp, koffs, n * g, ngrid, kk, 0, cin_g * pstride)
        ints = [n, c, h, wd, cout, oh, ow, kh, kw, st[0], st[1], dl[0], dl[1], begin[0], begin[1],
                g, cout_g, cin_g, 0, npan, ncob, npb, mode, PIX_BLOCK, hq, wq, pstride, int(to_image)]
        if to_image:
            plan.add(node, "f32_conv_gemm", [src, wname, bname, ep, rname, koffs], [y.name], ints,
                     n * g * ncob * npb, flops=2 * n * cout * ngrid * kk)
            return
        plain = plan.weight(epilogue_row(1.0, 0.0, IDENTITY, 0.0, 0.0, False, False), "conv_ep_plain")
        grid = plan.temp((n * cout * ngrid,), np.float32, "conv_grid")
        plan.add(node, "f32_conv_gemm", [src, wname, plain, plain, plain, koffs], [grid], ints, n * g * ncob * npb,
                 flops=2 * n * cout * ngrid * kk)
        tiles, per = plan.split(n * cout, oh * ow)
        plan.add(node, "f32_grid_out", [grid, bname, ep, rname], [y.name], [n, cout, oh, ow, wq, per], tiles,
                 flops=n * cout * oh * ow)

    @staticmethod
    def _conv_maxpool(node, plan, pool, xp, koffs, wname, bname, ep, y, n, c, cout, oh, ow, wq, pstride, kk):
        """Emit ``f32_conv_maxpool``: tiles of pooled rows, each computing the conv rows it reads into scratch.

        Its windows' rows are computed once per tile, plus the ``kh - sh``
        rows two neighbouring tiles share; a band stays under ``BAND_BYTES``.
        """
        (poh, pow_), pk, ps, pb, _, _ = pool_geometry(pool, (n, cout, oh, ow))
        row_cost = ps[0] * ow * cout * kk * 2
        _, per = plan.split(poh, row_cost)
        per = max(1, min(per, ((BAND_BYTES // (cout * wq * 4)) - pk[0]) // ps[0] + 1))
        per = Conv._balanced_rows(poh, per, n, plan.num_workers, pk[0], ps[0])
        nt = -(-poh // per)
        band_rows = min(oh, (per - 1) * ps[0] + pk[0])
        plan.need_scratch(conv_maxpool_scratch(cout, band_rows, wq) * 4)
        ints = [n, c, cout, oh, ow, wq, pstride, kk, pk[0], pk[1], ps[0], ps[1], pb[0], pb[1], poh, pow_, per,
                band_rows, nt]
        plan.add(node, "f32_conv_maxpool", [xp, wname, bname, ep, ep, koffs], [y.name], ints, n * nt,
                 flops=2 * n * cout * oh * ow * kk)

    @staticmethod
    def _balanced_rows(rows, per, n, workers, kh, sh):
        """Pooled rows per tile, at most ``per``, that leave the busiest worker the fewest conv rows to compute.

        A tile of ``p`` pooled rows computes ``(p - 1)*sh + kh`` conv rows.
        The band cap alone can leave a worker a whole tile more: VGG-19's
        112 pooled rows in bands of 9 made 13 tiles, 7 against 6 on 2 cores.
        """
        def busiest(p):
            return -(-n * -(-rows // p) // workers) * ((p - 1) * sh + kh)
        return min(range(max(1, per - workers), per + 1), key=lambda p: (busiest(p), -p))

    @staticmethod
    def _pack_cols(node, plan, x, tab, n_ig, ncols, kk, ldb, ig_stride):
        """Emit an ``f32_pack_cols`` row packing each image-group's ``B`` into a new temporary; returns its name."""
        npan = -(-ncols // NR)
        cols = plan.temp((n_ig * npan * kk * NR,), np.float32, "conv_cols")
        nt, per = plan.split(npan, kk * NR)
        plan.add(node, "f32_pack_cols", [x, tab or x], [cols], [n_ig, ncols, kk, ldb, ig_stride, per, nt],
                 n_ig * nt, flops=n_ig * npan * kk * NR)
        return cols

    @staticmethod
    def _im2col(node, plan, x, n, c, h, wd, out, kh, kw, st, dl, begin, g, cin_g):
        """Emit an ``f32_im2col`` row into a new temporary; returns its name."""
        npix, kk = out[0] * out[1], cin_g * kh * kw
        npan = -(-npix // NR)
        cols = plan.temp((n * g * npan * kk * NR,), np.float32, "conv_cols")
        nt, ppt = plan.split(npix, kk, granule=NR)
        plan.add(node, "f32_im2col", [x], [cols],
                 [n, c, h, wd, out[0], out[1], kh, kw, st[0], st[1], dl[0], dl[1], begin[0], begin[1], g, cin_g,
                  ppt, nt], n * g * nt, flops=n * g * npix * kk)
        return cols
