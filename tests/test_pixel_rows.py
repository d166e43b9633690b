"""1x1 convolutions with the pixels as GEMM rows (``f32_conv_pixel_rows``), against ONNX Runtime.

Shapes cover 7-row and 8-row register blocks, a last row block and a last
channel panel that are ragged, several pixel chunks with a ragged last one,
two images, the units split over 2 workers, the epilogue (bias, residual,
activations in the store and in a pass), NaN and infinities, and the shapes
where the path is and is not taken.
"""
import numpy as np
import pytest

from oracle import assert_kernel_matches_ort, conv_graph
from tilerun.ops.conv_paths import ConvShape, choose_path, pixel_rows_block

F = np.float32


def pointwise(xshape, cout, **kw):
    return conv_graph(xshape, cout, (0, 0, 0, 0), k=1, **kw)


def assert_matches_ort(model, feeds):
    assert_kernel_matches_ort(model, feeds, "f32_conv_pixel_rows")


@pytest.mark.parametrize("xshape, cout", [
    ((1, 96, 7, 7), 576),     # MobileNetV3's last stage: 49 pixels = 7 blocks of 7 rows
    ((1, 320, 7, 7), 1280),   # EfficientNet-B0's head conv: 40 channel panels
    ((2, 160, 7, 7), 232),    # two images, a last panel of 8 channels
    ((1, 128, 5, 8), 64),     # 40 pixels: 8-row blocks
    ((1, 132, 1, 17), 80),    # 17 pixels: a last row block of 3, a last panel of 16 channels
    ((1, 68, 1, 7), 40),      # a single row block
    ((2, 256, 30, 31), 64),   # deep input, few outputs: chunks of 448 pixels (the last of 34), 2 panels, 2 images
])
def test_pixel_rows_matches_ort(xshape, cout):
    assert_matches_ort(*pointwise(xshape, cout))


@pytest.mark.parametrize("act", [None, "Relu", "Clip", "HardSwish", "SiLU", "Sigmoid", "LeakyRelu"])
@pytest.mark.parametrize("residual", [False, True])
def test_pixel_rows_epilogue(act, residual):
    assert_matches_ort(*pointwise((1, 192, 7, 7), 96, act=act, residual=residual))


@pytest.mark.parametrize("xshape, cout", [
    ((2, 192, 7, 7), 96),      # whole planes: one pass per channel panel (32 x 49 outputs)
    ((1, 512, 10, 10), 64),    # whole planes of 100: a pass every 21 channels and one for the rest
    ((2, 256, 30, 31), 64),    # chunks of 448 pixels: a pass per channel and chunk
])
@pytest.mark.parametrize("act", ["SiLU", "Sigmoid"])
def test_pixel_rows_activation_passes_over_consecutive_planes(xshape, cout, act):
    assert_matches_ort(*pointwise(xshape, cout, act=act))


def test_pixel_rows_without_bias():
    assert_matches_ort(*pointwise((1, 256, 7, 7), 160, bias=False))


def test_pixel_rows_propagates_nan_and_infinities():
    model, feeds = pointwise((1, 128, 7, 7), 64, act="Relu")
    x = feeds["x"]
    x[0, 3, 2, 4] = np.nan
    x[0, 5, 6, 6] = np.inf
    x[0, 9, 0, 0] = -np.inf
    assert_matches_ort(model, feeds)


@pytest.mark.parametrize("c, cout, hw, taken", [
    (192, 1152, 7, True),     # 49 pixels fill 4 vectors of 16 (77%)
    (192, 1152, 14, False),   # 94%, and more output to transpose than input to pack
    (192, 1152, 8, False),    # 100%
    (256, 64, 56, True),      # ResNet-50's 256->64: packing 256 input planes costs more than transposing 64
    (64, 256, 56, False),     # and the other way round
])
def test_pixel_rows_where_it_costs_less(c, cout, hw, taken):
    s = ConvShape(1, c, hw, hw, cout, hw, hw, 1, 1, 1, 1, 1, 1, 0, 0, 1)
    assert (choose_path(s, True, 2).kind == "pixel_rows") == taken


def test_pixel_rows_block_pads_the_plane_least():
    assert pixel_rows_block(49) == 7 and pixel_rows_block(196) == 7
    assert pixel_rows_block(40) == 8 and pixel_rows_block(64) == 8 and pixel_rows_block(56) == 8


def test_pixel_rows_splits_channel_panels_over_workers():
    s = ConvShape(1, 320, 7, 7, 1280, 7, 7, 1, 1, 1, 1, 1, 1, 0, 0, 1)
    assert choose_path(s, True, 1).n_cob == 1
    assert choose_path(s, True, 2).n_cob > 1
    assert choose_path(s, True, 2).pix_chunks == 1


def test_pixel_rows_splits_the_plane_when_panels_are_too_few():
    """576->96 at 7x7 (MobileNetV3): 3 channel panels would go 2 against 1 on 2 workers; halves of the plane
    make 6 units. One worker keeps the plane whole."""
    s = ConvShape(1, 576, 7, 7, 96, 7, 7, 1, 1, 1, 1, 1, 1, 0, 0, 1)
    assert choose_path(s, True, 1).pix_chunks == 1
    two = choose_path(s, True, 2)
    assert two.kind == "pixel_rows" and two.pix_chunks == 2 and two.n_cob > 1
