"""Direct-rows convolutions (``kernels/stem.py``: stems and the convs the grid path would pad and pack) against
ONNX Runtime, at 1 and 2 cores.

Shapes cover both column strides and a row stride of 3, padding on some sides
only, output channels that are not a multiple of the register block, two
images, widths that are not a multiple of the vector, the epilogue (bias,
residual, every activation kind: on the registers, in the store, in a pass),
where the path is taken and where not, and what NaN and infinities do.
"""
import numpy as np
import pytest
from onnx import helper

import tilerun
from tilerun.kernels import stem as ST
from tilerun.ops import conv_paths
from oracle import assert_kernel_matches_ort, conv_graph, make_model, reference_outputs

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
    ((1, 3, 16, 40), 40, 3, (1, 3), (1, 1, 1, 1)),     # column stride 3, a full and a ragged channel panel
    ((1, 3, 35, 33), 64, 7, (2, 2), (3, 3, 3, 3)),     # a ResNet stem: 7x7, two full panels
])
def test_stem_shapes(xshape, cout, k, strides, pads):
    assert_matches_ort(*stem_graph(xshape, cout, k, strides, pads))


@pytest.mark.parametrize("cout", [8, 32])
def test_stem_dilation(cout):
    model, feeds = stem_graph((1, 3, 21, 19), cout, strides=(2, 1))
    model.graph.node[0].attribute.append(helper.make_attribute("dilations", [2, 3]))
    assert_matches_ort(model, feeds)


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


def test_stem_path_not_taken(monkeypatch):
    # one input channel (depthwise path), a 1x1 of many channels, a row stride of 3 past STEM_MAX_CIN channels,
    # and the direct-rows path switched off: the other paths
    assert_matches_ort(*stem_graph((1, 1, 16, 16), 4), stem=False)
    assert_matches_ort(*stem_graph((1, 6, 16, 16), 4, k=1, pads=(0, 0, 0, 0), strides=(1, 1)), stem=False)
    assert_matches_ort(*stem_graph((1, 6, 16, 16), 4, strides=(3, 3)), stem=False)
    monkeypatch.setattr(conv_paths, "ROWS_DIRECT", False)
    assert_matches_ort(*stem_graph((1, 6, 16, 16), 4), stem=False)


@pytest.mark.parametrize("xshape, cout, k, strides, pads", [
    ((1, 24, 56, 56), 40, 3, (2, 2), (1, 1, 1, 1)),    # 3x3 stride 2 onto 28-pixel rows: blocks of 7 pixels
    ((2, 20, 28, 28), 70, 3, (2, 2), (1, 1, 1, 1)),    # rows of 14, two images, a ragged third panel
    ((1, 40, 7, 7), 96, 3, (1, 1), (1, 1, 1, 1)),      # a 7x7 plane: its three panels split over two workers
    ((1, 16, 27, 27), 48, 5, (1, 1), (2, 2, 2, 2)),    # 5x5 on 27-pixel rows: blocks of 8, the last one short
    ((1, 12, 15, 13), 9, 3, (2, 1), (0, 1, 1, 0)),     # one vector of channels, one-sided pads, odd sizes
])
def test_rows_direct_shapes(xshape, cout, k, strides, pads):
    # f32_conv_stem on more input channels than a stem has (the direct-rows path), at 1 and 2 cores
    assert_matches_ort(*stem_graph(xshape, cout, k, strides, pads))


@pytest.mark.parametrize("xshape, cout, act, linear", [
    # a small plane: the tile's rows all held, each panel sweeps them
    ((1, 40, 7, 7), 96, "Relu", (True, True)),
    # one tile of 60 rows at 1 core is past LINEAR_RING_BYTES (the ring of kh rows), tiles of 6 at 2 are not
    ((1, 120, 60, 60), 40, "Tanh", (False, True)),
])
def test_rows_direct_ring_layouts(xshape, cout, act, linear):
    model, feeds = stem_graph(xshape, cout, strides=(1, 1), act=act, seed=5)
    assert_matches_ort(model, feeds)
    for cores in (1, 2):
        with tilerun.compile_model(model, num_cores=cores) as eng:
            (row,) = [r for r in eng.plan.rows if r.kernel.name == "f32_conv_stem"]
            a = dict(zip(ST.STEM._ints, row.params))
            layout = ST.stem_layout(a["c"], a["in_h"], a["in_w"], a["cout"], a["out_w"], a["kh"], a["kw"], a["sh"],
                                    a["sw"], a["dh"], a["dw"], a["pad_l"], a["pool_kh"], a["pool_ow"],
                                    a["rows_per_tile"])
            assert layout[0] == linear[cores - 1]


@pytest.mark.parametrize("kshape, dilations, pads", [
    ((1, 7), (1, 1), (0, 3, 0, 3)),     # a 1x7 kernel (Inception-v3's factorized convs)
    ((7, 1), (1, 1), (3, 0, 3, 0)),     # its 7x1 partner: seven kernel rows in the ring
    ((3, 3), (2, 3), (2, 3, 2, 3)),     # dilated
])
def test_rows_direct_kernel_shapes(kshape, dilations, pads):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((1, 24, 17, 17)).astype(F)
    w = (rng.standard_normal((40, 24) + kshape) / np.sqrt(24 * kshape[0] * kshape[1])).astype(F)
    node = helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=list(kshape), dilations=list(dilations),
                            pads=list(pads))
    model = make_model([node], [("x", F, x.shape)], [("y", F, None)], [("w", w)])
    assert_matches_ort(model, {"x": x})


@pytest.mark.parametrize("act, residual", [("Relu", True), ("Tanh", False), ("LeakyRelu", True)])
def test_rows_direct_epilogue_with_channel_split(act, residual):
    # a 7x7 output on two workers splits its output channels: the residual and the activation's own pass
    # must cover exactly each tile's channels
    model, feeds = stem_graph((1, 24, 7, 7), 100, strides=(1, 1), act=act, residual=residual, seed=3)
    assert_matches_ort(model, feeds)
    with tilerun.compile_model(model, num_cores=2) as eng:
        (row,) = [r for r in eng.plan.rows if r.kernel.name == "f32_conv_stem"]
        assert row.n_tiles == 2


def pooled_stem_graph(xshape, cout, k, strides, pads, pool, act, seed):
    """``stem_graph`` followed by a MaxPool (``pool``: its attributes), the activation between them."""
    model, feeds = stem_graph(xshape, cout, k, strides, pads, act=act, seed=seed)
    last = model.graph.output[0].name
    model.graph.node.append(helper.make_node("MaxPool", [last], ["p"], **pool))
    del model.graph.output[:]
    model.graph.output.append(helper.make_tensor_value_info("p", 1, None))
    return model, feeds


@pytest.mark.parametrize("xshape, cout, k, strides, pads, pool", [
    # squeezenet: 3x3 stride 2 unpadded, then a 3x3 stride 2 pool; two full panels
    ((1, 3, 47, 45), 64, 3, (2, 2), (0, 0, 0, 0), dict(kernel_shape=[3, 3], strides=[2, 2])),
    # a ResNet stem: 7x7 stride 2, a padded 3x3 stride 2 pool; one narrow panel, two images
    ((2, 3, 40, 38), 16, 7, (2, 2), (3, 3, 3, 3), dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])),
    # a ragged panel, a 2x2 pool with ceil mode and one-sided pads
    ((1, 4, 29, 31), 24, 3, (1, 1), (1, 1, 1, 1),
     dict(kernel_shape=[2, 3], strides=[2, 2], pads=[0, 1, 1, 0], ceil_mode=1)),
    # a narrow plane (12 conv columns) and a pool of column stride 3
    ((1, 3, 24, 24), 8, 3, (2, 2), (1, 1, 1, 1), dict(kernel_shape=[3, 3], strides=[2, 3])),
])
@pytest.mark.parametrize("act", [None, "Relu", "HardSwish", "LeakyRelu"])
def test_stem_max_pool(xshape, cout, k, strides, pads, pool, act):
    # The pool runs on the stem's conv rows in scratch (channel vectors), pooled rows split over tiles.
    model, feeds = pooled_stem_graph(xshape, cout, k, strides, pads, pool, act, seed=5)
    assert_matches_ort(model, feeds)
    with tilerun.compile_model(model, num_cores=2) as eng:
        assert [r.kernel.name for r in eng.plan.rows] == ["f32_conv_stem"]


def test_stem_max_pool_nan():
    # Pool windows whose conv outputs are all NaN give NaN, windows without NaN the max (as the unfused pool
    # does); windows with both are left open. The conv's outputs come from ORT (the graph without its Relu and
    # pool: ORT's Relu turns NaN into 0).
    pool = dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    model, feeds = pooled_stem_graph((1, 3, 30, 30), 32, 3, (2, 2), (1, 1, 1, 1), pool, "Relu", seed=6)
    feeds["x"][0, :, 10:14, 10:14] = np.nan
    conv_only, _ = stem_graph((1, 3, 30, 30), 32, 3, (2, 2), (1, 1, 1, 1), seed=6)
    c = reference_outputs(conv_only, feeds, use_ort=True)[0]
    c = np.pad(np.where(c < 0, 0, c), ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)  # Relu, NaN kept
    windows = np.stack([c[:, :, i:i + 15:2, j:j + 15:2] for i in range(3) for j in range(3)])
    for n in (1, 2):
        with tilerun.compile_model(model, num_cores=n) as eng:
            y = eng.run([feeds["x"]])[0]
            assert [r.kernel.name for r in eng.plan.rows] == ["f32_conv_stem"]
        all_nan, no_nan = np.isnan(windows).all(0), ~np.isnan(windows).any(0)
        assert all_nan.any() and np.isnan(y[all_nan]).all()
        np.testing.assert_allclose(y[no_nan], windows.max(0)[no_nan], rtol=1e-5, atol=1e-5)
