"""Few-input-channel convolutions (``kernels/stem.py``) against ONNX Runtime, at 1 and 2 cores.

Shapes cover both column strides and a row stride of 3, padding on some sides
only, output channels that are not a multiple of the register block, two
images, widths that are not a multiple of the vector, the epilogue (bias,
residual, every activation kind: on the registers, in the store, in a pass),
where the path is taken and where not, and what NaN and infinities do.
"""
import numpy as np
import pytest
from onnx import helper

from oracle import assert_kernel_matches_ort, conv_graph

F = np.float32


def stem_graph(xshape, cout, k=3, strides=(2, 2), pads=(1, 1, 1, 1), **kw):
    return conv_graph(xshape, cout, pads, k=k, strides=strides, **kw)


def assert_matches_ort(model, feeds, stem=True):
    assert_kernel_matches_ort(model, feeds, "f32_conv_stem", stem)


@pytest.mark.parametrize("xshape, cout, k, strides, pads", [
    ((1, 3, 32, 32), 16, 3, (2, 2), (1, 1, 1, 1)),     # a MobileNet/EfficientNet stem
    ((1, 3, 37, 45), 13, 3, (2, 2), (0, 1, 1, 0)),     # odd sizes, ragged channel block, one-sided pads
    ((2, 3, 20, 70), 8, 3, (1, 1), (1, 1, 1, 1)),      # stride 1, two images, more than one block of a row
    ((1, 4, 17, 19), 6, 5, (3, 2), (2, 2, 2, 2)),      # four channels, 5x5, row stride 3
    ((1, 2, 9, 11), 5, 1, (1, 1), (0, 0, 0, 0)),       # 1x1
    ((1, 3, 18, 18), 24, 3, (2, 1), (1, 0, 1, 2)),     # row stride 2, column stride 1
])
def test_stem_shapes(xshape, cout, k, strides, pads):
    assert_matches_ort(*stem_graph(xshape, cout, k, strides, pads))


@pytest.mark.parametrize("act", ["Relu", "Clip", "HardSwish", "SiLU", "Sigmoid", "LeakyRelu", "Tanh"])
@pytest.mark.parametrize("residual", [False, True])
def test_stem_epilogue(act, residual):
    assert_matches_ort(*stem_graph((1, 3, 23, 29), 10, act=act, residual=residual, bias=not residual, seed=3))


def test_stem_nan_and_infinities():
    model, feeds = stem_graph((1, 3, 16, 16), 8, act="SiLU", seed=4)
    x = feeds["x"]
    x[0, 0, 3, 5] = np.nan
    x[0, 1, 9, 9] = np.inf
    x[0, 2, 12, 2] = -np.inf
    assert_matches_ort(model, feeds)


def test_stem_path_not_taken():
    # one input channel (depthwise path), column stride 3, dilation, groups: the other paths
    assert_matches_ort(*stem_graph((1, 1, 16, 16), 4), stem=False)
    assert_matches_ort(*stem_graph((1, 3, 16, 16), 4, strides=(1, 3)), stem=False)
    model, feeds = stem_graph((1, 3, 16, 16), 4)
    model.graph.node[0].attribute.append(helper.make_attribute("dilations", [2, 2]))
    assert_matches_ort(model, feeds, stem=False)
    assert_matches_ort(*stem_graph((1, 6, 16, 16), 4), stem=False)  # more channels than STEM_MAX_CIN
