"""Winograd F(4x4, 3x3) convolution (``kernels/winograd.py``) against ONNX Runtime and a float64 direct conv.

Shapes cover cropped last tiles (sizes not multiples of 4), padding on some
sides only, several column blocks and images, more output channels than one
pass of the 36 GEMMs keeps (and not a multiple of the register block), the
epilogue (bias, residual, Relu, Clip, HardSwish), the channel split of two
workers, and what a NaN does.
"""
import numpy as np
import pytest
from onnx import helper

import tilerun
from oracle import conv_graph, make_model, reference_outputs
from tilerun.kernels import winograd as W
from tilerun.ops import conv_paths

F = np.float32


def run(model, feeds, cores):
    with tilerun.compile_model(model, num_cores=cores) as eng:
        out = eng.run(list(feeds.values()))[0].copy()
        kernels = [r.kernel.name for r in eng.plan.rows]
    return out, kernels


def assert_matches_ort(model, feeds, cores=(1, 2)):
    ref = reference_outputs(model, feeds, use_ort=True)[0]
    for n in cores:
        y, kernels = run(model, feeds, n)
        assert "f32_conv_winograd" in kernels, kernels
        np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4 * float(np.abs(ref).max()))


@pytest.mark.parametrize("xshape,cout,pads", [
    ((1, 16, 13, 13), 40, (1, 1, 1, 1)),     # one column block of 16 tiles, last row and column cropped
    ((2, 17, 30, 34), 20, (1, 1, 1, 1)),     # two images, several column blocks, odd channels
    ((1, 32, 23, 30), 72, (0, 0, 0, 0)),     # no padding; 72 channels: a second GEMM pass of 8
    ((1, 24, 19, 57), 130, (2, 0, 1, 1)),    # asymmetric pads; 130 channels: a ragged register block
])
def test_winograd_matches_onnxruntime(xshape, cout, pads):
    assert_matches_ort(*conv_graph(xshape, cout, pads))


@pytest.mark.parametrize("act", ["Relu", "Clip", "HardSwish"])
@pytest.mark.parametrize("residual", [False, True])
def test_winograd_epilogue(act, residual):
    model, feeds = conv_graph((1, 20, 17, 21), 24, act=act, bias=not residual, residual=residual)
    assert_matches_ort(model, feeds)
    assert run(model, feeds, 1)[1] == ["f32_conv_winograd"]  # the epilogue is the conv's; no padded copy


def test_winograd_splits_output_channels_over_two_workers():
    model, feeds = conv_graph((1, 64, 14, 14), 96)
    with tilerun.compile_model(model, num_cores=2) as eng:
        (row,) = [r for r in eng.plan.rows if r.kernel.name == "f32_conv_winograd"]
        assert row.n_tiles >= 2  # one column block: the tiles are channel blocks
    assert_matches_ort(model, feeds)


def test_winograd_error_is_bounded_against_float64():
    # Unit-variance data at ResNet-50's widest 3x3 layer: the transforms' rounding stays under 5e-5 of the
    # output's scale (the direct path's is about 4e-7; measured per layer by benchmarks/winograd_layers.py).
    model, feeds = conv_graph((1, 256, 28, 28), 64, bias=False)
    x = feeds["x"][0].astype(np.float64)
    w = next(i for i in model.graph.initializer if i.name == "w")
    w = np.frombuffer(w.raw_data, F).reshape(64, 256, 3, 3).astype(np.float64)
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    ref = sum(np.einsum("oc,chw->ohw", w[:, :, i, j], xp[:, i:i + 28, j:j + 28]) for i in range(3) for j in range(3))
    y, kernels = run(model, feeds, 1)
    assert "f32_conv_winograd" in kernels
    assert np.abs(y[0] - ref).max() / np.abs(ref).max() < 5e-5
    # The kernel computes what the float64 model of its algorithm computes.
    np.testing.assert_allclose(W.reference(xp[:, :30, :30], w), ref, rtol=1e-9, atol=1e-9)


def test_winograd_nan_reaches_every_output_it_touches():
    # A NaN input poisons every output ONNX Runtime's does, and at most the 4x4 tiles whose 6x6 input
    # windows hold it; every other output matches.
    model, feeds = conv_graph((1, 16, 20, 20), 16)
    feeds["x"][0, 3, 9, 10] = np.nan
    ref = reference_outputs(model, feeds, use_ort=True)[0]
    y, _ = run(model, feeds, 1)
    assert np.isnan(y[np.isnan(ref)]).all()
    reach = np.zeros((20, 20), bool)
    for ty in range(5):
        for tx in range(5):  # padded input rows 4ty .. 4ty + 5 hold input row 9 + 1 (pad)
            if 4 * ty <= 10 <= 4 * ty + 5 and 4 * tx <= 11 <= 4 * tx + 5:
                reach[4 * ty:4 * ty + 4, 4 * tx:4 * tx + 4] = True
    assert not np.isnan(y[:, :, ~reach]).any()
    np.testing.assert_allclose(y[:, :, ~reach], ref[:, :, ~reach], rtol=1e-4, atol=1e-4 * np.nanmax(np.abs(ref)))


def test_conv_before_max_pool_stays_winograd():
    # VGG: a Winograd conv keeps its max pool as a separate op instead of the direct conv + pool band kernel.
    rng = np.random.default_rng(3)
    w = (rng.standard_normal((32, 32, 3, 3)) / 17).astype(F)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("MaxPool", ["r"], ["y"], kernel_shape=[2, 2], strides=[2, 2])]
    model = make_model(nodes, [("x", F, (1, 32, 32, 32))], [("y", F, None)], [("w", w)], opset=17)
    feeds = {"x": rng.standard_normal((1, 32, 32, 32)).astype(F)}
    ref = reference_outputs(model, feeds, use_ort=True)[0]
    y, kernels = run(model, feeds, None)
    assert "f32_conv_winograd" in kernels and "f32_conv_maxpool" not in kernels
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)
