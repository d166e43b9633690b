"""Which way a convolution runs and how its GEMM is tiled: a pure function of shape, epilogue and workers.

``ConvShape`` is the resolved geometry of one 2-D convolution (1-D arrives
as a unit height); ``choose_path`` returns a ``ConvPath`` naming the path
and the GEMM tiles, which ``ops/conv.py`` turns into rows. Paths:

* ``depthwise`` — one input channel per group: the direct depthwise kernel.
* ``direct`` — a 1x1, stride-1, unpadded conv: the GEMM reads the activation in place.
* ``im2col`` — strides above 2: columns built per tile in scratch.
* ``grid`` — strides 1 and 2: implicit GEMM over zero-padded (phase-split)
  planes, stored straight into the image when the epilogue runs in registers
  (``to_image``), else onto the grid and copied out by ``f32_grid_out``; a
  grouped conv whose tiles are whole image-groups pads in each tile
  (``pad_in_tile``) instead of by a padding pass.
* ``grid_pixels`` — a small plane whose grid's extra columns cost more than
  a pass packing its pixels' columns once, without the grid's extras.
* ``grid_pixel_rows`` — such a plane where ``pixel_rows`` wins on the 1x1
  conv over its im2col matrix (``as_1x1``; a 7x7 output's 49 pixels are 7
  row blocks of 7 instead of 64 columns): the matrix is written once, plain.
* ``conv_maxpool`` — a grid conv whose max pool is fused (``Conv.absorbs``).
* ``stem`` — one group of 2 to ``STEM_MAX_CIN`` input channels, with or
  without a fused max pool, or any one-group conv larger than 1x1 of strides
  at most 2 without a pool (``rows_direct_wins``): ``kernels/stem.py``'s
  direct conv with the output channels along the vectors, tiles of output
  (or pooled) rows, split over output channels where rows deal unevenly.
* ``pixel_rows`` — a plain 1x1 conv of one group run with the pixels as the
  GEMM's rows (register blocks of 7 or 8) and the output channels along the
  vectors, each block transposed into the image (``kernels/conv.py``'s
  ``f32_conv_pixel_rows``), where ``pixel_rows_cost`` puts it at most
  ``PIXEL_ROWS_SHARE`` of the direct path's: planes whose pixels fill
  vectors badly (7x7: 49 pixels take 64 lanes), and deep convs with few
  output channels, whose direct path packs more input than this one transposes output.
* ``winograd`` — a 3x3 stride-1 conv of one group on a plane large enough
  that F(4x4, 3x3)'s four times fewer multiply-adds win (``winograd_wins``):
  ``kernels/winograd.py``; ``n_pb`` blocks of at most ``NR`` tile columns per image.

``pack_cols``: tiles split output channels, so the GEMM's ``B`` is packed once
by its own row for all of them (a plain 1x1 conv's tiles of at most two row
blocks read ``B`` in place instead). This module emits nothing and reads no graph.
"""
from dataclasses import dataclass

from tilerun.kernels.conv import PIXEL_CHUNK, grid_pad_floats
from tilerun.kernels.gemm import MR, NR
from tilerun.kernels.simd import VW
from tilerun.kernels.stem import STEM_MAX_CIN, stem_layout

from .. import tiling

SMALL_PIX = 8 * NR  # at most this many output pixels: tile over output channels
WINOGRAD = True  # False: every conv takes the direct paths (benchmarks compare the two)
WINOGRAD_MIN_CHANNELS = 16
WINOGRAD_MIN_COLUMNS = 16
WINO_IN_CYCLES, WINO_OUT_CYCLES = 400, 250
# pixel_rows_cost: what moving one vector of floats costs in fmas (single-core kernel times, data in cache:
# 256->64 at 56x56 with and without its transposes, the direct path with packed and with plain input).
PACK_FMAS, TRANSPOSE_FMAS = 10, 24
# What the grid's GEMM tiles pay per vector of B they pack from the padded planes, in fmas (RegNetY's groups of
# 8 on 14x14 planes, single-core kernel times: the grid's GEMM against the GEMM on packed pixels).
GRID_PACK_FMAS = 5
PIXEL_ROWS_SHARE = 0.95
# A plain 1x1 conv whose tiles split its output channels, each into more row blocks than this, packs its
# B once by its own row (pack_cols) for all of them; tiles of fewer read it in place.
PACK_COLS_BLOCKS = 2
# A grouped conv's tile pads its image-group's planes itself (GRID_PAD) while they take at most this much
# scratch, half an L2 of 1 MiB: RegNetY's 8-channel groups take 29 KiB (14x14, 28x28) to 416 KiB (112x112
# stride 2).
PAD_IN_TILE_BYTES = 512 * 1024


@dataclass(frozen=True)
class ConvShape:
    """Geometry of one 2-D convolution: input, output, kernel, strides, dilations, begin pads, groups."""
    n: int
    c: int
    in_h: int
    in_w: int
    cout: int
    out_h: int
    out_w: int
    kh: int
    kw: int
    sh: int
    sw: int
    dh: int
    dw: int
    pad_t: int
    pad_l: int
    groups: int

    @property
    def cin_g(self):
        return self.c // self.groups

    @property
    def cout_g(self):
        return self.cout // self.groups

    @property
    def k(self):
        """Depth of the GEMM: input channels per group x taps."""
        return self.cin_g * self.kh * self.kw

    @property
    def npix(self):
        return self.out_h * self.out_w

    def ints(self, drop=()):
        """The geometry as keyword slots of a conv row (``kernels.conv_pack._GEOMETRY`` names)."""
        names = ("n", "c", "in_h", "in_w", "cout", "out_h", "out_w", "kh", "kw", "sh", "sw", "dh", "dw", "pad_t",
                 "pad_l")
        return {k: getattr(self, k) for k in names if k not in drop}


@dataclass(frozen=True)
class GridGeometry:
    """The zero-padded, phase-split planes of an implicit-GEMM conv: ``hq x wq`` per phase."""
    row_phases: int
    col_phases: int
    hq: int
    wq: int

    @property
    def plane_stride(self):
        """Floats between two channels' planes (all their phases)."""
        return self.row_phases * self.col_phases * self.hq * self.wq

    def columns(self, s):
        """GEMM columns of the grid: every output row ``wq`` wide but the last."""
        return (s.out_h - 1) * self.wq + s.out_w

    @staticmethod
    def of(s):
        """The grid of ``ConvShape`` ``s`` (strides 1 or 2)."""
        return GridGeometry(s.sh if s.kh > 1 else 1, s.sw if s.kw > 1 else 1,
                            s.out_h + (s.kh - 1) * s.dh // s.sh, s.out_w + (s.kw - 1) * s.dw // s.sw)


@dataclass(frozen=True)
class ConvPath:
    """The chosen path and its GEMM tiles (pixel blocks x channel blocks, per image-group)."""
    kind: str
    n_pb: int = 1
    pix_panels: int = 0
    n_cob: int = 1
    pack_cols: bool = False
    to_image: bool = False
    grid: GridGeometry = None
    pix_chunks: int = 1
    pad_in_tile: bool = False

    @property
    def tiles(self):
        return self.n_pb * self.n_cob


def column_cost(ncols):
    """Register-block vectors a row block spends on ``ncols`` columns (a last panel of <= VW columns is half-width)."""
    rem = ncols % NR
    return (ncols // NR) * (NR // VW) + -(-rem // VW)


def _gemm_tiles(images, cout_g, npix, kk, workers):
    return tiling.conv_gemm_tiles(images, cout_g, npix, kk, workers, MR, NR, SMALL_PIX)


def as_1x1(s):
    """The plain 1x1 conv of one group whose input is ``s``'s im2col matrix ``[k][pixels]`` per image."""
    return ConvShape(s.n, s.k, s.out_h, s.out_w, s.cout, s.out_h, s.out_w, 1, 1, 1, 1, 1, 1, 0, 0, 1)


def pixel_rows_block(npix):
    """Rows (pixels) of ``pixel_rows``' register block: 7 or 8, whichever pads ``npix`` less (8 on a tie)."""
    return min((MR, 7), key=lambda r: -(-npix // r) * r)


def pixel_rows_cost(s, packed=False):
    """``(pixel_rows, direct)``: fmas of a plain 1x1 conv's register blocks on each path, plus the vectors the
    direct path packs (its input, unless it has at most two row blocks, or ``packed``: the input is packed on
    both paths) and pixel_rows transposes (its output)."""
    rb = pixel_rows_block(s.npix)
    direct = s.k * -(-s.cout // MR) * MR * column_cost(s.npix)
    if s.cout > 2 * MR and not packed:
        direct += PACK_FMAS * s.k * s.npix / VW
    rows = s.k * -(-s.npix // rb) * rb * -(-s.cout // NR) * (NR // VW) + TRANSPOSE_FMAS * s.cout * s.npix / VW
    return rows, direct


def _pixel_rows_path(s, workers, packed=False, extra=0.0):
    """``pixel_rows`` with its (panel, pixel chunk) units dealt evenly over tiles, or None where it does not win
    (``packed``: see ``pixel_rows_cost``; ``extra``: fmas its side pays on top)."""
    if s.groups != 1:
        return None
    rows, direct = pixel_rows_cost(s, packed)
    if rows + extra > PIXEL_ROWS_SHARE * direct:
        return None
    npan = -(-s.cout // NR)
    nch = -(-s.npix // PIXEL_CHUNK)
    if workers > 1 and s.n * npan * nch < 2 * workers:
        # Too few (panel, chunk) units to share evenly (3 panels on 2 workers: 2 against 1): smaller
        # chunks of whole register blocks.
        nch = min(-(-s.npix // pixel_rows_block(s.npix)), -(-2 * workers // (s.n * npan)))
    chunk = -(-s.npix // nch)
    cap = -(-tiling.tile_cap(workers) // s.n)
    return ConvPath("pixel_rows", n_cob=tiling.split_even(npan * nch, chunk * s.k * NR, workers, 1, cap),
                    pix_panels=npan, pix_chunks=nch)


def winograd_tiles(s):
    """``(tiles_h, tw4)``: rows of 4x4 output tiles and tiles per row rounded up to a vector load's ``VW // 4``."""
    seg, tw = VW // 4, -(-s.out_w // 4)
    return -(-s.out_h // 4), -(-tw // seg) * seg


def winograd_wins(s):
    """True when F(4x4, 3x3) takes conv ``s``: 3x3, stride 1, no dilation, one group, at least
    ``WINOGRAD_MIN_CHANNELS`` channels in and out, and per image at least ``WINOGRAD_MIN_COLUMNS`` tile columns
    (a tile is 16 pixels; on fewer, a 7x7 plane, the 36 GEMMs are too narrow to beat the direct path)."""
    if not WINOGRAD or (s.kh, s.kw, s.sh, s.sw, s.dh, s.dw, s.groups) != (3, 3, 1, 1, 1, 1, 1):
        return False
    th, tw4 = winograd_tiles(s)
    return min(s.c, s.cout) >= WINOGRAD_MIN_CHANNELS and th * tw4 >= WINOGRAD_MIN_COLUMNS


def _winograd_path(s, workers):
    """Column blocks per image, and the output-channel split that leaves the busiest worker least to do.

    Columns go in units of ``VW``, at most ``NR`` per block, dealt evenly over a
    number of blocks that is a multiple of the workers (where there are enough
    units), so no worker gets a whole block more. A channel split repeats the
    input transform in every part: cycles per ``NR`` columns, roughly,
    ``WINO_IN_CYCLES`` per input channel, 36 per channel pair (the 36 GEMMs)
    and ``WINO_OUT_CYCLES`` per output channel.
    """
    th, tw4 = winograd_tiles(s)
    units = -(-th * tw4 // VW)
    per_block = NR // VW
    ncb = -(-units // per_block)
    if s.n * units >= workers:
        while (s.n * ncb) % workers and ncb < units:
            ncb += 1
    nblk = -(-s.cout // MR)
    part = s.c * WINO_IN_CYCLES
    rest = s.cout * (36 * s.c + WINO_OUT_CYCLES)

    def busiest(ncob):
        return -(-s.n * ncb * ncob // workers) * (part + rest / ncob)
    ncob = min(range(1, min(nblk, 4) + 1), key=busiest)
    return ConvPath("winograd", ncb, n_cob=ncob)


ROWS_DIRECT = True  # False: only stems take f32_conv_stem (tests of the GEMM paths turn it off)
ROWS_RING_BYTES = 256 * 1024  # f32_conv_stem's ring of input rows, zeroed per tile, stays well inside L2


def rows_direct_wins(s):
    """True when ``f32_conv_stem`` takes conv ``s``: one group, more than one input channel, a kernel larger
    than 1x1, strides at most 2, and a ring of input rows of at most ``ROWS_RING_BYTES``.

    Its register blocks read the weights as vectors and broadcast input floats from any position, so it
    needs no padding or packing pass and computes no grid columns past the rows (stride 2, 7x7 to 28x28
    planes), which measured faster than the grid path's implicit GEMM (``benchmarks/README.md``).
    Winograd, where it applies, is chosen before this.
    """
    if not ROWS_DIRECT or s.groups != 1 or s.c < 2 or (s.kh, s.kw) == (1, 1) or max(s.sh, s.sw) > 2:
        return False
    ring = stem_layout(s.c, s.in_h, s.in_w, s.cout, s.out_w, s.kh, s.kw, s.sh, s.sw, s.dh, s.dw, s.pad_l, 0, 0, 1)[5]
    return ring * 4 <= ROWS_RING_BYTES


def choose_path(s, fast_epilogue, workers, pool=False, winograd_epilogue=False):
    """The ``ConvPath`` of ``ConvShape`` ``s``.

    ``fast_epilogue``: the epilogue runs in the micro-kernel's registers.
    ``pool``: a max pool was fused (legal only where ``Conv.absorbs`` said so).
    ``winograd_epilogue``: the epilogue is one the Winograd kernel applies.
    """
    images = s.n * s.groups
    if winograd_epilogue and not pool and winograd_wins(s):
        return _winograd_path(s, workers)
    if s.groups == 1 and 1 < s.c <= STEM_MAX_CIN or not pool and rows_direct_wins(s):
        return ConvPath("stem")
    plain_1x1 = (s.kh == s.kw == 1 and s.sh == s.sw == 1 and s.pad_t == s.pad_l == 0
                 and (s.out_h, s.out_w) == (s.in_h, s.in_w))
    if plain_1x1 and (path := _pixel_rows_path(s, workers)) is not None:
        return path
    if s.cin_g > 1 and not plain_1x1 and max(s.sh, s.sw) <= 2:
        grid = GridGeometry.of(s)
        if pool:
            return ConvPath("conv_maxpool", grid=grid)
        ngrid = grid.columns(s)
        # Straight into the image needs the epilogue in registers and, where
        # grid rows have extra columns, a grid row of at least one vector.
        to_image = fast_epilogue and (grid.wq >= VW or grid.wq == s.out_w)
        npb, npan, ncob = _gemm_tiles(images, s.cout_g, ngrid, s.k, workers)
        # Small planes: pack the pixels' columns once by their own pass where
        # that costs less than the register blocks the grid's extra columns
        # take in every row block, plus the grid's own packing (in its GEMM
        # tiles, or by a pass where tiles split channels) and its copy-out
        # (where it is not stored straight into the image). With few output
        # channels per group (RegNetY's 8) the extra columns are cheap and the pass is not.
        rows = -(-s.cout_g // MR) * MR
        grid_pass = (PACK_FMAS * s.k if ncob > 1 else GRID_PACK_FMAS * s.k) + (0 if to_image else PACK_FMAS * s.cout_g)
        cost_pix = s.k * rows * column_cost(s.npix) + PACK_FMAS * s.k * s.npix / VW
        cost_grid = s.k * rows * column_cost(ngrid) + grid_pass * ngrid / VW
        packs = cost_pix <= cost_grid
        if s.npix <= SMALL_PIX:
            # Or lay them out as a 1x1 conv's input and run that with the pixels
            # as rows, where that wins (against the unpacked grid, with its pass).
            extra = 0 if packs else PACK_FMAS * s.k * s.npix / VW
            rows = _pixel_rows_path(as_1x1(s), workers, packed=True, extra=extra) if s.groups == 1 else None
            if rows is not None:
                return ConvPath("grid_pixel_rows", n_cob=rows.n_cob, pix_panels=rows.pix_panels, grid=grid,
                                pix_chunks=rows.pix_chunks)
        if s.npix <= SMALL_PIX and packs:
            npb, npan, ncob = _gemm_tiles(images, s.cout_g, s.npix, s.k, workers)
            return ConvPath("grid_pixels", npb, npan, ncob, grid=grid)
        # A tile that is a whole image-group pads that group's planes in its
        # scratch: no padding pass, no hand-off, the planes hot for the GEMM.
        pad_in_tile = (s.groups > 1 and npb == ncob == 1
                       and grid_pad_floats(s.cin_g, grid.plane_stride, grid.wq) * 4 <= PAD_IN_TILE_BYTES)
        return ConvPath("grid", npb, npan, ncob, pack_cols=ncob > 1, to_image=to_image, grid=grid,
                        pad_in_tile=pad_in_tile)
    if s.cin_g == 1:
        return ConvPath("depthwise")
    npb, npan, ncob = _gemm_tiles(images, s.cout_g, s.npix, s.k, workers)
    if plain_1x1:
        # Tiles of at most PACK_COLS_BLOCKS row blocks read B in place (gemm_tile): a shared packing pass
        # would run alone, before any of them, over input that the other cores wrote.
        return ConvPath("direct", npb, npan, ncob,
                        pack_cols=ncob > 1 and -(-s.cout_g // MR) > PACK_COLS_BLOCKS * ncob)
    return ConvPath("im2col", npb, npan, ncob, pack_cols=ncob > 1)
