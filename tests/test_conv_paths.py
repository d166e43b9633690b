"""The conv path and tile decision as a pure function (``ops/conv_paths.py``), on synthetic shapes."""
import pytest

from tilerun.kernels.gemm import MR, NR
from tilerun.kernels.simd import VW
from tilerun.ops.conv_paths import SMALL_PIX, ConvShape, GridGeometry, choose_path, column_cost
from tilerun.tiling import conv_gemm_tiles


def shape(c=64, cout=64, hw=56, k=3, s=1, pad=1, groups=1, n=1):
    out = (hw + 2 * pad - k) // s + 1
    return ConvShape(n, c, hw, hw, cout, out, out, k, k, s, s, 1, 1, pad, pad, groups)


@pytest.mark.parametrize("s, kind", [
    (shape(k=1, pad=0), "direct"),                       # 1x1 stride 1 unpadded: B read in place
    (shape(), "stem"),                                   # 3x3 stride 1, one group: direct rows, no padding pass
    (shape(s=2), "stem"),                                # stride 2 likewise
    (shape(groups=4), "grid"),                           # grouped 3x3 stride 1: implicit GEMM
    (shape(s=2, groups=4), "grid"),                      # stride 2: phase-split planes
    (shape(s=3), "im2col"),                              # larger strides
    (shape(c=32, cout=32, groups=32), "depthwise"),      # one input channel per group
    (shape(c=256, cout=256, hw=13, groups=2), "grid_pixels"),  # small plane: 13x13 grid costs more than its pixels
    (shape(c=2048, cout=512, hw=9, pad=0), "grid_pixel_rows"),  # a ring of rows past ROWS_RING_BYTES; 7x7 output
])
def test_path_by_shape(s, kind):
    assert choose_path(s, True, 2).kind == kind


@pytest.mark.parametrize("workers", [1, 2])
def test_strided_1x1_onto_7x7_takes_pixel_rows(workers):
    # ResNet-50's last downsample: its grid is its 49 pixels (no extra columns), which the pixel rows beat
    assert choose_path(shape(c=1024, cout=2048, hw=14, k=1, s=2, pad=0), True, workers).kind == "grid_pixel_rows"


def test_grid_goes_to_the_image_only_with_a_register_epilogue():
    assert choose_path(shape(groups=2), True, 2).to_image
    assert not choose_path(shape(groups=2), False, 2).to_image


def test_fused_pool_takes_the_band_path():
    p = choose_path(shape(c=8, cout=64, hw=224, k=7, s=2, pad=3), True, 2, pool=True)
    assert p.kind == "conv_maxpool" and p.grid == GridGeometry.of(shape(c=8, cout=64, hw=224, k=7, s=2, pad=3))
    # a stem (at most STEM_MAX_CIN input channels) pools in its own kernel
    assert choose_path(shape(c=3, cout=64, hw=224, k=7, s=2, pad=3), True, 2, pool=True).kind == "stem"


def test_grid_geometry_splits_stride_two_into_phases():
    g = GridGeometry.of(shape(s=2))
    assert (g.row_phases, g.col_phases) == (2, 2)
    assert g.hq == 28 + 1 and g.plane_stride == 4 * g.hq * g.wq


@pytest.mark.parametrize("workers", [1, 2, 16])
def test_gemm_tiles_cover_every_panel_and_channel_block(workers):
    for cout_g, npix, kk in [(64, 3136, 576), (512, 49, 4608), (16, 196, 144), (8, 12, 27)]:
        npb, npan, ncob = conv_gemm_tiles(1, cout_g, npix, kk, workers, MR, NR, SMALL_PIX)
        assert npan == -(-npix // NR)
        assert 1 <= npb <= npan and 1 <= ncob <= -(-cout_g // MR)


def test_small_planes_split_channels_not_pixels():
    npb, _, ncob = conv_gemm_tiles(1, 512, 49, 4608, 2, MR, NR, SMALL_PIX)
    assert npb == 1 and ncob > 1


def test_direct_tiles_of_two_row_blocks_read_their_input_in_place():
    """A plain 1x1 conv split over channels packs its input by a row of its own only when a tile has more
    than two row blocks (fewer read it in place, every tile at once)."""
    few = choose_path(shape(c=96, cout=96, hw=14, k=1, pad=0), True, 2)   # 12 blocks over 10 tiles
    many = choose_path(shape(c=512, cout=512, hw=7, k=1, pad=0, groups=2), True, 2)  # 32 blocks a group
    assert few.kind == "direct" and few.n_cob > 1 and not few.pack_cols
    assert many.kind == "direct" and -(-256 // MR) > 2 * many.n_cob and many.pack_cols


@pytest.mark.parametrize("cout", [96, 40])
def test_direct_channel_split_without_packing_matches_ort(cout):
    from oracle import assert_kernel_matches_ort, conv_graph
    model, feeds = conv_graph((1, 96, 14, 14), cout, (0, 0, 0, 0), k=1, act="Relu", residual=True)
    assert_kernel_matches_ort(model, feeds, "f32_pack_cols", taken=False)


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("hw, s", [(14, 1), (7, 1), (28, 2), (14, 2)])
def test_groups_of_few_channels_keep_the_grid_and_pad_in_their_tiles(hw, s, workers):
    # RegNetY's groups of 8: one row block takes the grid's few extra columns for less than a pass packing the
    # pixels costs, and each tile, a whole group, pads the group's planes itself.
    c = 440 if hw * s <= 14 else 208
    p = choose_path(shape(c=c, cout=c, hw=hw, s=s, groups=c // 8), True, workers)
    assert p.kind == "grid" and p.pad_in_tile and p.tiles == 1


def test_padding_in_tiles_needs_whole_groups_that_fit():
    one_group = choose_path(shape(c=64, cout=64, hw=28), False, 2)  # a padding pass when ROWS_DIRECT is off
    assert one_group.kind != "grid" or not one_group.pad_in_tile
    fits = choose_path(shape(c=48, cout=48, hw=112, s=2, groups=6), True, 1)  # 8 planes of 4 x 57 x 57: 416 KiB
    assert fits.kind == "grid" and fits.tiles == 1 and fits.pad_in_tile
    big = choose_path(shape(c=96, cout=96, hw=112, s=2, groups=6), True, 1)  # 16 such planes: 832 KiB
    assert big.kind == "grid" and big.tiles == 1 and not big.pad_in_tile
    split = choose_path(shape(c=48, cout=48, hw=112, s=2, groups=6), True, 2)
    assert split.tiles > 1 and not split.pad_in_tile


def test_column_cost_counts_half_width_last_panel():
    assert column_cost(NR) == NR // VW
    assert column_cost(VW) == 1  # a last panel of at most one vector runs the half-width kernel
    assert column_cost(NR + 1) == NR // VW + 1


@pytest.mark.parametrize("s, wins", [
    (shape(), True),                                     # ResNet-50's first stage
    (shape(c=512, cout=512, hw=14), True),               # 16 tiles of 4x4: enough columns
    (shape(c=128, cout=32, hw=13), True),                # 13x13: 4 x 4 tiles, the last row and column cropped
    (shape(c=512, cout=512, hw=7), False),               # 7x7: too few tiles for 36 GEMMs to pay
    (shape(s=2), False), (shape(k=5, pad=2), False), (shape(groups=2), False),
    (shape(c=8), False),                                 # too few input channels
])
def test_winograd_takes_large_3x3_stride_1_convs(s, wins):
    assert (choose_path(s, True, 2, winograd_epilogue=True).kind == "winograd") == wins
    assert choose_path(s, True, 2, winograd_epilogue=False).kind != "winograd"  # e.g. a Sigmoid epilogue


def test_winograd_splits_channels_only_when_column_blocks_are_too_few():
    one_block = choose_path(shape(c=256, cout=256, hw=14), True, 2, winograd_epilogue=True)
    assert one_block.n_pb == 1 and one_block.n_cob >= 2  # one column block: both workers need channel blocks
    many = choose_path(shape(c=64, cout=64, hw=112), True, 2, winograd_epilogue=True)
    # 28 x 28 tiles in VW-column units: blocks of at most NR columns, as many per worker.
    assert many.n_pb * NR >= 28 * 28 and many.n_pb % 2 == 0 and many.n_cob == 1
    seven = choose_path(shape(c=64, cout=64, hw=56), True, 2, winograd_epilogue=True)
    assert (seven.n_pb, seven.n_cob) == (8, 1)  # 14 units of 16 columns: 7 per worker, not blocks of 4 and 3
