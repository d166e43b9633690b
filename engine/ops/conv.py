"""Lowering of Conv (float32, NCHW, 1-D and 2-D) onto the conv kernels.

Pads (explicit or ``auto_pad``) resolve to begin pads and output sizes at
compile time (``pool.window_geometry``, shared with the pools). Weights must
be constants: they are packed once as per-group ``MR``-row panels, the GEMM's
``A``. ``conv_paths.choose_path`` decides the path and its tiles; this module
turns that decision into rows (``kernels/conv.py``, ``kernels/conv_pack.py``
and ``kernels/depthwise.py`` document each kernel's row). The fused epilogue
(``node.fused``: activation, residual = input 3, a max pool) runs in the GEMM
core's epilogue or, for a pool, on bands of conv rows in scratch.
``Conv.absorbs`` says which max pools a conv can take.
Not supported: 3-D convolution.
"""
import numpy as np

from tilerun.kernels import affine as AF
from tilerun.kernels import conv as K
from tilerun.kernels import conv_pack as P
from tilerun.kernels import depthwise as DW
from tilerun.kernels import stem as ST
from tilerun.kernels import winograd as W
from tilerun.kernels.elementwise import IDENTITY
from tilerun.kernels.gemm import MR, REGISTER_ACTIVATIONS, epilogue, pack_b
from tilerun.kernels.simd import VW

from .. import tiling
from . import bf16
from ..errors import node_error
from .base import F32, Lowering, const_input, expect_dtype, expect_rank
from .conv_paths import ConvShape, as_1x1, choose_path, pixel_rows_block, winograd_tiles, winograd_wins
from .gemm import fused_activation
from .pool import pool_geometry
from .window import window_geometry
from .registry import register

PIX_BLOCK = 2 * K.NR  # im2col columns built at a time
BAND_BYTES = 1 << 20  # conv rows a fused max pool's tile computes at most
# Every band of a fused conv + max pool reads all the conv's weights: only
# stems and early layers qualify.
POOL_FUSE_WEIGHT_BYTES = 1 << 19
# Paths whose weights are [panels][K][width] (pack_panels of one group, pack_b): a conv's gates (Fused.gate)
# scale their K columns; any other path scales X instead.
GATED_PATHS = ("direct", "pixel_rows")
# Largest input plane a depthwise conv takes with vectors across channels (f32_conv_dw_cv).
DW_CV_MAX_PIXELS = 112 * 112
# What one row of a padding pass costs beyond its floats, in tiling's work units (floats moved): about 3 ns a
# row of 8 floats on one core (RegNetY's 440 x 14x14 stride-2 planes: 14,080 rows in 47-61 us).
PAD_ROW_UNITS = 100
_SOURCE = {"direct": K.DIRECT, "im2col": K.IM2COL}


def conv_geometry(node, xs, ws):
    """Resolve attributes: ``(strides, dilations, begin pads, output spatial shape)``."""
    ks = list(ws[2:])
    if node.attrs.get("kernel_shape") and list(node.attrs["kernel_shape"]) != ks:
        raise node_error(node, f"kernel_shape {list(node.attrs['kernel_shape'])} disagrees with weights {list(ws)}")
    out, st, dl, begin, _ = window_geometry(node, xs[2:], ks)
    return st, dl, begin, out


def pack_panels(w, groups):
    """Weights ``[Cout, cin_g, ...]`` as per-group ``MR``-row panels ``[G, nblk, K, MR]`` (zero-padded rows)."""
    cout = w.shape[0]
    cout_g, kk = cout // groups, int(np.prod(w.shape[1:]))
    nblk = -(-cout_g // MR)
    a = np.zeros((groups, nblk * MR, kk), np.float32)
    a[:, :cout_g] = np.asarray(w, np.float32).reshape(groups, cout_g, kk)
    return np.ascontiguousarray(a.reshape(groups, nblk, MR, kk).transpose(0, 1, 3, 2))


def conv_shape(node, xs, ws):
    """The ``ConvShape`` of a Conv on input shape ``xs`` with weights ``ws`` (1-D as a unit height)."""
    st, dl, begin, out = conv_geometry(node, xs, ws)
    if len(xs) == 3:
        xs, ws = (xs[0], xs[1], 1, xs[2]), (ws[0], ws[1], 1, ws[2])
        st, dl, begin, out = [1] + st, [1] + dl, [0] + begin, [1] + out
    n, c, h, wd = xs
    return ConvShape(n, c, h, wd, ws[0], out[0], out[1], ws[2], ws[3], st[0], st[1], dl[0], dl[1], begin[0],
                     begin[1], int(node.attrs["group"]))


@register("Conv", 1)
@register("Conv", 11)
class Conv(Lowering):
    """Conv with groups, strides, dilations, pads/auto_pad and optional bias."""

    def infer(self, node, inputs):
        if not 2 <= len(node.inputs) <= (5 if node.fused.gate else 4) or inputs[0] is None or inputs[1] is None:
            raise node_error(node, f"expected 2 or 3 inputs (X, W[, B]), given {len(node.inputs)}")
        x, w = inputs[0], inputs[1]
        for v in inputs[:3]:
            if v is not None:
                expect_dtype(node, v, [F32])
        expect_rank(node, x, (3, 4), "X")
        const_input(node, w, "weight W")
        if len(w.shape) != len(x.shape):
            raise node_error(node, f"weights {list(w.shape)} must have the rank of X {list(x.shape)}")
        g = int(node.attrs["group"])
        cout, cin_g = w.shape[:2]
        if g < 1 or x.shape[1] != cin_g * g or cout % g:
            raise node_error(node, f"X has {x.shape[1]} channels, W is {list(w.shape)} with group {g}: expected "
                                   f"C = group * W[1] and W[0] divisible by group")
        b = inputs[2] if len(inputs) > 2 else None
        if b is not None and tuple(b.shape) != (cout,):
            raise node_error(node, f"bias B must have shape [{cout}], given {list(b.shape)}")
        _, _, _, out = conv_geometry(node, x.shape, w.shape)
        if node.fused.pool is not None:
            out = pool_geometry(node.fused.pool, (x.shape[0], cout, *out))[0]
        return [((x.shape[0], cout, *out), F32)]

    def absorbs(self, node, pool, graph):
        """Whether this conv can compute max pool ``pool`` on its own output (``f32_conv_stem``, ``f32_conv_maxpool``).

        A 2-D conv of one group with its epilogue in registers, and a max pool
        without dilation or Indices. A stem (2 to ``STEM_MAX_CIN`` input
        channels) takes any such pool; otherwise only the shapes the band path
        takes: a grid conv (strides <= 2, not a plain 1x1, not one Winograd
        takes) with rows of at least 16 pixels, weights of at most
        ``POOL_FUSE_WEIGHT_BYTES``, and a pool of column stride <= 2.
        """
        act = node.fused.activation
        if act is not None and fused_activation(node)[0] not in REGISTER_ACTIVATIONS:
            return False
        xs = graph.values[node.outputs[0]].shape
        w = graph.values[node.inputs[1]]
        if len(xs) != 4 or not w.is_const or len(w.shape) != 4 or int(node.attrs["group"]) != 1 or w.shape[1] < 2:
            return False
        if any(int(d) != 1 for d in pool.attrs.get("dilations") or [1]) or int(pool.attrs.get("storage_order", 0)):
            return False
        if w.shape[1] <= ST.STEM_MAX_CIN:
            return True
        strides = list(node.attrs.get("strides") or [1, 1])
        pads = list(node.attrs.get("pads") or [0] * 4)
        if w.const.size * 4 > POOL_FUSE_WEIGHT_BYTES or xs[3] < 16:
            return False
        if max(strides) > 2 or (tuple(w.shape[2:]) == (1, 1) and strides == [1, 1] and not any(pads)):
            return False
        if fused_activation(node)[0] in W.EPILOGUE_ACTIVATIONS and winograd_wins(
                conv_shape(node, tuple(graph.values[node.inputs[0]].shape), tuple(w.shape))):
            return False  # Winograd and a separate pool beat the direct conv with the pool fused
        return int((pool.attrs.get("strides") or [1, 1])[-1]) <= 2

    def lower(self, node, inputs, outputs, plan):
        x, w, y = inputs[0], inputs[1], outputs[0]
        b = inputs[2] if len(inputs) > 2 else None
        res = inputs[3] if len(inputs) > 3 else None
        gate = inputs[4] if len(inputs) > 4 else None
        s = conv_shape(node, tuple(x.shape), tuple(w.const.shape))
        if res is not None and tuple(res.shape) != tuple(y.shape):
            raise node_error(node, f"residual {res.name!r} has shape {list(res.shape)}, expected {list(y.shape)}")
        act, aa, ab = fused_activation(node)
        epi = epilogue(1.0, 1.0, act, aa, ab, b is not None, res is not None, row_bias=True)
        path = None if bf16.conv_applies(plan, s) else choose_path(
            s, epi["fast"] >= 0, plan.num_workers, node.fused.pool is not None, act in W.EPILOGUE_ACTIVATIONS)
        if gate is not None and (path is None or path.kind not in GATED_PATHS or s.n != 1):
            x, gate = _scale_channels(node, plan, x, gate), None  # the gates on X itself
        if path is None:
            return bf16.emit_conv(node, plan, s, x, w.const, b, res, y, epi, _pad_planes)
        emit = _EMITTERS.get(path.kind, _emit_gemm)
        emit(_ConvRows(node, plan, s, path, x, w.const, b, res, y, epi, gate))


class _ConvRows:
    """What every emitter of one conv needs: node, plan, shape, path, tensors, epilogue."""

    def __init__(self, node, plan, s, path, x, w, b, res, y, epi, gate=None):
        self.node, self.plan, self.s, self.path = node, plan, s, path
        self.x, self.w, self.b, self.res, self.y, self.epi = x, w, b, res, y, epi
        self.flops = 2 * s.n * s.cout * s.npix * s.k
        self.gate = gate  # per input channel: the weights' columns are scaled by it per request

    def conv_row(self, kernel, x, y, tiles, ep=None, res=None, koffs=None, bias=None, flops=None, **ints):
        """Add one ``CONV`` row (``f32_conv_gemm`` / ``f32_conv_dw``); unset ints are 0."""
        s, path = self.s, self.path
        values = dict(groups=s.groups, cout_g=s.cout_g, cin_g=s.cin_g, co_per_tile=0, pix_panels=path.pix_panels,
                      n_cob=path.n_cob, n_pb=path.n_pb, source=0, pix_block=PIX_BLOCK, pix_chunks=1, hq=0, wq=0,
                      plane_stride=0, to_image=0)
        values.update(ints)
        self.plan.add(self.node, kernel, x=x, w=self.packed_weights(kernel), bias=bias, res=res, koffs=koffs,
                      y=y, ep=ep or self.epi, tiles=tiles, flops=self.flops if flops is None else flops,
                      **s.ints(), **values)

    def packed_weights(self, kernel):
        """The weights ``kernel`` reads: packed once at compile time, and where the conv has gates, a copy scaled
        by them per request (a row before the conv's; the gated paths add one conv row, so this runs once)."""
        packed = self._packed(kernel)
        if self.gate is None:
            return packed
        k, width = self.s.k, packed.shape[-1]  # [panels][K][width]: pack_panels' (one group) or pack_b's layout
        gated = self.plan.temp(packed.shape, np.float32, "gated_w")
        # Row (panel, k) of the weights is a "plane" of width floats whose channel is k.
        _scale_planes(self.node, self.plan, packed, self.gate, gated, packed.size // width, k, width)
        return gated

    def _packed(self, kernel):
        w, s, node = self.w, self.s, self.node
        if kernel is DW.f32_conv_dw_cv:
            return self.plan.weight(lambda: DW.pack_channel_blocks(w, VW), "conv_w",
                                    key=(node.name, "conv_dw_cv", w.shape))
        if kernel is ST.f32_conv_stem:
            return self.plan.weight(lambda: ST.pack_weights(np.reshape(w, (s.cout, s.cin_g, s.kh, s.kw))), "conv_w",
                                    key=(node.name, "conv_stem", w.shape))
        if kernel is W.f32_conv_winograd:
            return self.plan.weight(lambda: W.pack_weights(w), "conv_w", key=(node.name, "winograd", w.shape))
        if kernel is K.f32_conv_pixel_rows:
            return self.plan.weight(lambda: pack_b(np.asarray(w, np.float32).reshape(s.cout, -1).T), "conv_w",
                                    key=(node.name, "pixel_rows", w.shape))
        if kernel is DW.f32_conv_dw:
            return self.plan.weight(lambda: np.asarray(w, np.float32).reshape(s.cout, -1), "conv_w",
                                    key=(node.name, "conv_dw", w.shape))
        return self.plan.weight(lambda: pack_panels(w, s.groups), "conv_w", key=(node.name, "conv_w", w.shape))

    @property
    def gemm_tiles(self):
        return self.s.n * self.s.groups * self.path.tiles


def _emit_depthwise(r):
    s = r.s
    if _channel_vectors(s, r.res):
        # Whole channel groups per tile while there are enough of them; else bands of rows, each
        # re-reading kh - sh rows of its neighbour's input.
        groups = s.n * -(-s.cout // VW)
        bands = max(1, min(s.out_h, -(-tiling.tile_cap(r.plan.num_workers) // groups)))
        tiles, rows = r.plan.split(groups * s.out_h, s.out_w * s.kh * s.kw * VW, granule=-(-s.out_h // bands))
        r.conv_row(DW.f32_conv_dw_cv, r.x, r.y, tiles, bias=r.b, co_per_tile=rows, n_cob=tiles)
        return
    tiles, cpt = r.plan.split(s.n * s.cout, s.npix * s.kh * s.kw)
    r.conv_row(DW.f32_conv_dw, r.x, r.y, tiles, bias=r.b, res=r.res, co_per_tile=cpt, n_cob=tiles)


def _scale_channels(node, plan, x, gate):
    """``x * gate[image, channel]`` into a temporary (gates a conv cannot take into its weights)."""
    n, c = x.shape[:2]
    out = plan.temp(x.shape, np.float32, "gated_x")
    _scale_planes(node, plan, x, gate, out, n * c, n * c, int(np.prod(x.shape[2:], dtype=np.int64)))
    return out


def _scale_planes(node, plan, x, gate, y, planes, channels, hw):
    """One ``f32_channel_affine`` row: plane ``p`` (``hw`` floats) of ``x`` times ``gate[p % channels]`` into
    ``y`` (a zero shift, no activation)."""
    zero = plan.weight(lambda: np.zeros(channels, np.float32), "zero_shift", key=("zero_shift", channels))
    tiles, per = plan.split(planes, hw)
    plan.add(node, AF.f32_channel_affine, x=x, s=gate, t=zero, y=y, planes=planes, channels=channels, hw=hw,
             planes_per_tile=per, act=IDENTITY, alpha=0.0, beta=0.0, tiles=tiles, flops=planes * hw)


def _channel_vectors(s, res):
    """True when ``f32_conv_dw_cv`` takes the depthwise conv: one input channel per output channel, strides
    1 and 2 on both axes, no dilation or residual, planes of at most ``DW_CV_MAX_PIXELS`` (its grid stays in L2)."""
    return (s.c == s.cout and s.groups == s.c and s.sh == s.sw and s.sh <= 2 and s.dh == s.dw == 1 and res is None
            and s.in_h * s.in_w <= DW_CV_MAX_PIXELS)


def _emit_gemm(r):
    """The ``direct`` and ``im2col`` paths; columns packed by their own row when tiles split channels."""
    s, source, x = r.s, _SOURCE[r.path.kind], r.x
    if r.path.pack_cols:
        if source == K.IM2COL:
            x = _im2col(r)
        else:
            x = _pack_cols(r, x, None, s.npix, s.npix, s.cin_g * s.npix)
        source = K.FROM_COLS
    r.conv_row(K.f32_conv_gemm, x, r.y, r.gemm_tiles, bias=r.b, res=r.res, source=source)


def _emit_grid(r):
    s, g, path = r.s, r.path.grid, r.path
    if path.pad_in_tile:
        xp, koffs, source = r.x, _tap_offsets(r), K.GRID_PAD
    else:
        (xp, koffs), source = _pad_planes(r), K.GRID
    grid = dict(hq=g.hq, wq=g.wq, plane_stride=g.plane_stride)
    ngrid = g.columns(s)
    src = xp
    if path.pack_cols:
        src, source = _pack_cols(r, xp, koffs, ngrid, 0, s.cin_g * g.plane_stride), K.GRID_COLS
    flops = 2 * s.n * s.cout * ngrid * s.k
    if path.to_image:
        r.conv_row(K.f32_conv_gemm, src, r.y, r.gemm_tiles, bias=r.b, res=r.res, koffs=koffs, flops=flops,
                   source=source, to_image=1, **grid)
        return
    out = r.plan.temp((s.n * s.cout * ngrid,), np.float32, "conv_grid")
    r.conv_row(K.f32_conv_gemm, src, out, r.gemm_tiles, ep=epilogue(), koffs=koffs, flops=flops, source=source,
               **grid)
    tiles, per = r.plan.split(s.n * s.cout, s.npix)
    r.plan.add(r.node, K.f32_grid_out, grid=out, bias=r.b, res=r.res, y=r.y, n=s.n, cout=s.cout, out_h=s.out_h,
               out_w=s.out_w, wq=g.wq, planes_per_tile=per, ep=r.epi, tiles=tiles, flops=s.n * s.cout * s.npix)


def _pack_pixels(r, plain):
    """Emit ``f32_pack_pixels`` from the padded planes: each image-group's pixels' columns in ``NR``-column panels
    (``grid_pixels``), or with ``plain`` its im2col matrix ``[k][pixels]``; returns the new temporary."""
    s, g = r.s, r.path.grid
    xp, koffs = _pad_planes(r)
    npix = s.npix if plain else r.path.pix_panels * K.NR
    cols = r.plan.temp((s.n * s.groups * s.k * npix,), np.float32, "conv_im2col" if plain else "conv_cols")
    nt, per = r.plan.split(s.k, 2 * s.npix)  # each element is copied twice (through a row in scratch)
    r.plan.add(r.node, P.f32_pack_pixels, x=xp, koffs=koffs, cols=cols, n_ig=s.n * s.groups, k=s.k, out_h=s.out_h,
               out_w=s.out_w, wq=g.wq, ig_stride=s.cin_g * g.plane_stride, rows_per_tile=per, n_row_tiles=nt,
               plain=int(plain), tiles=s.n * s.groups * nt, flops=s.n * s.groups * s.k * s.npix)
    return cols


def _emit_grid_pixels(r):
    r.conv_row(K.f32_conv_gemm, _pack_pixels(r, False), r.y, r.gemm_tiles, bias=r.b, res=r.res, source=K.FROM_COLS)


def _emit_grid_pixel_rows(r):
    """The im2col matrix ``[k][pixels]`` of each image (``f32_pack_pixels``, plain), then ``f32_conv_pixel_rows``
    on it as the input of the 1x1 conv ``as_1x1(s)``, with this conv's weights, bias, residual and activation."""
    cols = _pack_pixels(r, True)
    _emit_pixel_rows(_ConvRows(r.node, r.plan, as_1x1(r.s), r.path, cols, r.w, r.b, r.res, r.y, r.epi))


def _emit_conv_maxpool(r):
    """``f32_conv_maxpool``: tiles of pooled rows, each computing the conv rows it reads into scratch.

    A tile's windows' rows are computed once, plus the ``kh - sh`` rows two
    neighbouring tiles share; a band stays under ``BAND_BYTES``.
    """
    s, g, plan = r.s, r.path.grid, r.plan
    if r.epi["fast"] < 0 or s.groups != 1:
        raise node_error(r.node, "internal: a fused max pool needs a register epilogue and group 1")
    xp, koffs = _pad_planes(r)
    (poh, pow_), pk, ps, pb, _, _ = pool_geometry(r.node.fused.pool, (s.n, s.cout, s.out_h, s.out_w))
    _, per = plan.split(poh, ps[0] * s.out_w * s.cout * s.k * 2)
    per = max(1, min(per, ((BAND_BYTES // (s.cout * g.wq * 4)) - pk[0]) // ps[0] + 1))
    per = tiling.band_rows(poh, per, s.n, plan.num_workers, pk[0], ps[0])
    nt = -(-poh // per)
    plan.add(r.node, K.f32_conv_maxpool, x=xp, w=r.packed_weights(K.f32_conv_maxpool), bias=r.b, koffs=koffs,
             y=r.y, n=s.n, c=s.c, cout=s.cout, out_h=s.out_h, out_w=s.out_w, wq=g.wq,
             plane_stride=g.plane_stride, k=s.k, pool_kh=pk[0], pool_kw=pk[1], pool_sh=ps[0], pool_sw=ps[1],
             pool_pad_t=pb[0], pool_pad_l=pb[1], pool_oh=poh, pool_ow=pow_, rows_per_tile=per,
             band_rows=min(s.out_h, (per - 1) * ps[0] + pk[0]), tiles_per_image=nt, ep=r.epi, tiles=s.n * nt,
             flops=r.flops)


def _emit_winograd(r):
    s, path = r.s, r.path
    th, tw4 = winograd_tiles(s)
    r.plan.add(r.node, W.f32_conv_winograd, x=r.x, u=r.packed_weights(W.f32_conv_winograd), bias=r.b, res=r.res,
               y=r.y, n=s.n, c=s.c, cout=s.cout, in_h=s.in_h, in_w=s.in_w, out_h=s.out_h, out_w=s.out_w,
               pad_t=s.pad_t, pad_l=s.pad_l, tiles_h=th, tw4=tw4, n_cb=path.n_pb,
               n_cob=path.n_cob, ep=r.epi, gemm_ep=epilogue(), tiles=s.n * path.n_pb * path.n_cob, flops=r.flops)


def _emit_stem(r):
    """``f32_conv_stem``: tiles of output rows of one image (pooled rows where a max pool is fused), and of a
    share of its output channels where whole rows deal unevenly over the workers (a 7x7 output on two)."""
    s, plan, pool = r.s, r.plan, r.node.fused.pool
    if pool is not None:
        (rows, pow_), pk, ps, pb, _, _ = pool_geometry(pool, (s.n, s.cout, s.out_h, s.out_w))
    else:
        rows, pow_, pk, ps, pb = s.out_h, 0, (0, 0), (1, 1), (0, 0)
    _, per = plan.split(s.n * rows, max(1, ps[0]) * s.out_w * s.cout * s.k * 2)
    per = min(per, rows)
    per = tiling.band_rows(rows, per, s.n, plan.num_workers, max(pk[0], 1), ps[0]) if pool is not None else per
    nt = -(-rows // per)
    workers, panels = plan.num_workers, -(-s.cout // ST.panel_shape(s.cout, s.out_w)[0])
    npt = 1
    if pool is None and panels > 1 and -(-s.n * nt // workers) * per * workers > tiling.BALANCE_SLACK * s.n * rows:
        per, nt, npt = rows, 1, min(panels, workers)
    plan.add(r.node, ST.f32_conv_stem, x=r.x, w=r.packed_weights(ST.f32_conv_stem), bias=r.b, res=r.res, y=r.y,
             **s.ints(), pool_kh=pk[0], pool_kw=pk[1], pool_sh=ps[0], pool_sw=ps[1], pool_pad_t=pb[0],
             pool_pad_l=pb[1], pool_oh=rows if pool is not None else 0, pool_ow=pow_, rows_per_tile=per,
             tiles_per_image=nt, panel_tiles=npt, ep=r.epi, tiles=s.n * nt * npt, flops=r.flops)


def _emit_pixel_rows(r):
    """``f32_conv_pixel_rows``: weights packed as ``NR``-channel panels of ``W`` transposed (``gemm.pack_b``)."""
    r.conv_row(K.f32_conv_pixel_rows, r.x, r.y, r.gemm_tiles, bias=r.b, res=r.res, pix_block=pixel_rows_block(r.s.npix),
               pix_chunks=r.path.pix_chunks)


_EMITTERS = {"depthwise": _emit_depthwise, "stem": _emit_stem, "grid": _emit_grid, "grid_pixels": _emit_grid_pixels,
             "grid_pixel_rows": _emit_grid_pixel_rows, "conv_maxpool": _emit_conv_maxpool,
             "winograd": _emit_winograd, "pixel_rows": _emit_pixel_rows}


def _pad_planes(r):
    """Emit ``f32_pad_planes`` into the grid's padded planes; returns them and the tap-offset table ``koffs``."""
    s, g, plan = r.s, r.path.grid, r.plan
    # The last grid panel reads up to NR - 1 columns past the grid, from the last plane's tail.
    slack = 2 * K.NR + g.wq
    xp = plan.temp((s.n * s.c * g.plane_stride + slack,), np.float32, "conv_padded")
    # A plane's cost is what it reads as well as what it writes (a stride-2 1x1 conv reads four times more),
    # plus each row's own set-up, which is most of it on small planes (a row of a 7x7 plane's phase is 8 floats).
    rows = g.row_phases * g.col_phases * g.hq
    tiles, per = plan.split(s.n * s.c, g.plane_stride + s.in_h * s.in_w + PAD_ROW_UNITS * rows)
    plan.add(r.node, P.f32_pad_planes, x=r.x, xp=xp, planes=s.n * s.c, in_h=s.in_h, in_w=s.in_w, hq=g.hq, wq=g.wq,
             pad_t=s.pad_t, pad_l=s.pad_l, planes_per_tile=per, slack=slack, sh=s.sh, sw=s.sw,
             row_phases=g.row_phases, col_phases=g.col_phases, tiles=tiles, flops=s.n * s.c * g.plane_stride)
    return xp, _tap_offsets(r)


def _tap_offsets(r):
    """The int64 table ``koffs``: where B's row for tap ``(ci, ki, kj)`` starts in an image-group's padded planes."""
    s, g = r.s, r.path.grid
    ci, ki, kj = np.meshgrid(np.arange(s.cin_g), np.arange(s.kh), np.arange(s.kw), indexing="ij")
    rd, cd = ki * s.dh, kj * s.dw
    phase = (rd % s.sh) * g.col_phases + cd % s.sw
    offs = ci * g.plane_stride + phase * g.hq * g.wq + rd // s.sh * g.wq + cd // s.sw
    return r.plan.weight(offs.reshape(-1).astype(np.int64), "conv_koffs")


def _pack_cols(r, x, koffs, ncols, ldb, ig_stride):
    """Emit ``f32_pack_cols`` packing each image-group's ``B`` into a new temporary; returns it."""
    s, plan = r.s, r.plan
    npan = -(-ncols // K.NR)
    cols = plan.temp((s.n * s.groups * npan * s.k * K.NR,), np.float32, "conv_cols")
    nt, per = plan.split(npan, s.k * K.NR)
    plan.add(r.node, P.f32_pack_cols, x=x, koffs=koffs, cols=cols, n_ig=s.n * s.groups, ncols=ncols, k=s.k,
             ldb=ldb, ig_stride=ig_stride, panels_per_tile=per, n_panel_tiles=nt, tiles=s.n * s.groups * nt,
             flops=s.n * s.groups * npan * s.k * K.NR)
    return cols


def _im2col(r):
    """Emit ``f32_im2col`` into a new temporary; returns it."""
    s, plan = r.s, r.plan
    npan = -(-s.npix // K.NR)
    cols = plan.temp((s.n * s.groups * npan * s.k * K.NR,), np.float32, "conv_cols")
    nt, ppt = plan.split(s.npix, s.k, granule=K.NR)
    plan.add(r.node, P.f32_im2col, x=r.x, cols=cols, **s.ints(drop=("cout",)), groups=s.groups, cin_g=s.cin_g,
             pix_per_tile=ppt, n_pix_tiles=nt, tiles=s.n * s.groups * nt, flops=s.n * s.groups * s.npix * s.k)
    return cols
