"""Conv, Gemm and MatMul against the reference evaluator, with fused epilogues and random shapes."""
import numpy as np
import pytest
from onnx import helper

import tilerun
from oracle import check_against_reference, make_model
from tilerun.ops import conv_paths

F = np.float32


@pytest.fixture(autouse=True)
def _gemm_paths(monkeypatch):
    """These tests drive the GEMM paths (grid, im2col, pixels): the direct-rows path that would take their
    one-group convs has its own tests (``test_stem.py``)."""
    monkeypatch.setattr(conv_paths, "ROWS_DIRECT", False)


def _check(m, feeds, ref_scale=1.0):
    tol = 1e-4 * max(1.0, ref_scale)
    check_against_reference(m, feeds, rtol=1e-4, atol=tol)


def conv_case(xshape, wshape, bias=True, seed=0, act=None, **attrs):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(xshape).astype(F)
    w = (rng.standard_normal(wshape) * 0.3).astype(F)
    inits = [("w", w)]
    ins = ["x", "w"]
    if bias:
        inits.append(("b", rng.standard_normal(wshape[0]).astype(F)))
        ins.append("b")
    nodes = [helper.make_node("Conv", ins, ["c" if act else "y"], **attrs)]
    if act:
        nodes.append(helper.make_node(act[0], ["c"], ["y"], **act[1]))
    m = make_model(nodes, [("x", F, xshape)], [("y", F, None)], inits)
    _check(m, {"x": x}, ref_scale=np.sqrt(np.prod(wshape[1:])))
    return m


@pytest.mark.parametrize("xshape,wshape,attrs", [
    ((1, 3, 10, 12), (5, 3, 3, 3), {}),                                            # plain 3x3
    ((2, 8, 9, 9), (12, 4, 3, 3), {"group": 2, "pads": [1, 1, 1, 1]}),             # grouped
    ((1, 6, 11, 11), (6, 1, 3, 3), {"group": 6, "pads": [1, 1, 1, 1]}),            # depthwise
    ((1, 4, 12, 10), (12, 1, 3, 5), {"group": 4, "strides": [2, 1], "pads": [0, 2, 1, 1]}),  # multiplier 3
    ((1, 5, 15, 14), (7, 5, 3, 3), {"dilations": [2, 3], "pads": [2, 1, 0, 3]}),   # dilated, asymmetric
    ((2, 4, 17, 13), (6, 4, 5, 3), {"strides": [3, 2], "pads": [2, 1, 2, 1]}),     # strided
    ((1, 3, 8, 8), (4, 3, 2, 2), {"auto_pad": "SAME_UPPER", "strides": [2, 2]}),
    ((1, 3, 9, 8), (4, 3, 4, 4), {"auto_pad": "SAME_LOWER"}),
    ((1, 3, 9, 8), (4, 3, 4, 4), {"auto_pad": "SAME_UPPER"}),
    ((1, 3, 9, 8), (4, 3, 4, 3), {"auto_pad": "VALID", "strides": [2, 1]}),
    ((1, 3, 9, 8), (4, 3, 3, 3), {"auto_pad": "NOTSET"}),
    ((2, 40, 7, 9), (70, 40, 1, 1), {}),                                           # 1x1 direct
    ((1, 16, 9, 9), (20, 16, 1, 1), {"strides": [2, 2]}),                          # 1x1 strided
    ((1, 8, 6, 6), (8, 8, 1, 1), {"pads": [1, 0, 0, 1]}),                          # 1x1 padded
    ((1, 5, 19, 17), (7, 5, 3, 3), {"strides": [2, 2], "dilations": [2, 1], "pads": [1, 2, 0, 1]}),  # phases
    ((1, 3, 23, 21), (8, 3, 7, 7), {"strides": [2, 1], "pads": [3, 3, 2, 3]}),     # stem-like, mixed strides
    ((1, 64, 28, 28), (96, 64, 3, 3), {"strides": [2, 2], "pads": [1, 1, 1, 1]}),  # channel tiles, packed once
    ((1, 64, 28, 28), (128, 64, 1, 1), {"strides": [2, 2]}),                       # 1x1 s2, channel tiles
    ((1, 64, 14, 14), (128, 64, 1, 1), {}),                                        # 1x1 direct, channel tiles
    ((2, 5, 30), (7, 5, 3), {"pads": [1, 2], "strides": [2]}),                     # 1-D
    ((1, 4, 25), (4, 1, 5), {"group": 4, "dilations": [2], "auto_pad": "SAME_UPPER"}),  # 1-D depthwise
])
@pytest.mark.parametrize("bias", [True, False])
def test_conv(xshape, wshape, attrs, bias):
    conv_case(xshape, wshape, bias=bias, **attrs)


@pytest.mark.parametrize("seed", range(6))
def test_conv_random(seed):
    rng = np.random.default_rng(100 + seed)
    g = int(rng.choice([1, 1, 2, 3]))
    cin_g, cout_g = int(rng.integers(1, 9)), int(rng.integers(1, 20))
    k = [int(v) for v in rng.integers(1, 5, 2)]
    st = [int(v) for v in rng.integers(1, 4, 2)]
    dl = [int(v) for v in rng.integers(1, 3, 2)]
    pads = [int(v) for v in rng.integers(0, 3, 4)]
    hw = [int(rng.integers(k[i] * dl[i] + 1, 40)) for i in range(2)]
    conv_case((int(rng.integers(1, 3)), cin_g * g, *hw), (cout_g * g, cin_g, *k), seed=seed,
              bias=bool(rng.integers(2)), group=g, strides=st, dilations=dl, pads=pads)


def test_conv_large_channels():
    conv_case((1, 64, 14, 14), (96, 64, 3, 3), pads=[1, 1, 1, 1])


@pytest.mark.parametrize("act", [("Relu", {}), ("LeakyRelu", {"alpha": 0.2}), ("Sigmoid", {}), ("Tanh", {}),
                                 ("HardSigmoid", {"alpha": 0.3, "beta": 0.4}), ("HardSwish", {})])
@pytest.mark.parametrize("dw", [False, True])
def test_conv_fused_activation(act, dw):
    shape = (6, 1, 3, 3) if dw else (6, 4, 3, 3)
    m = conv_case((1, 6 if dw else 4, 9, 9), shape, act=act, pads=[1, 1, 1, 1], group=6 if dw else 1)
    with tilerun.compile_model(m) as eng:
        assert {r.op_type for r in eng.plan.rows} == {"Conv"}


def test_conv_fused_clip():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 4, 8, 8)).astype(F)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Clip", ["c", "lo", "hi"], ["y"])]
    m = make_model(nodes, [("x", F, x.shape)], [("y", F, None)],
                   [("w", rng.standard_normal((8, 4, 3, 3)).astype(F)), ("lo", np.array(-1, F)), ("hi", np.array(2, F))])
    _check(m, {"x": x}, 6)


@pytest.mark.parametrize("dw", [False, True])
@pytest.mark.parametrize("act", [None, "Relu", "LeakyRelu"])
def test_conv_residual_activation(dw, act):
    # 16 channels x 49 pixels: full register blocks (fused in the micro-kernel) and ragged ones
    rng = np.random.default_rng(6)
    c = 16
    x = rng.standard_normal((2, c, 7, 7)).astype(F)
    r = rng.standard_normal((2, c, 7, 7)).astype(F)
    w = rng.standard_normal((c, 1 if dw else c, 3, 3)).astype(F)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], group=c if dw else 1),
             helper.make_node("Add", ["r", "c"], ["s" if act else "y"])]
    if act:
        nodes.append(helper.make_node(act, ["s"], ["y"]))
    m = make_model(nodes, [("x", F, x.shape), ("r", F, r.shape)], [("y", F, None)],
                   [("w", w), ("b", rng.standard_normal(c).astype(F))])
    _check(m, {"x": x, "r": r}, 12)
    with tilerun.compile_model(m) as eng:
        # the add and activation run in the conv's epilogue (rows that build its columns may precede it)
        assert {r.op_type for r in eng.plan.rows} == {"Conv"}
        assert eng.plan.rows[-1].kernel.name in ("f32_conv_gemm", "f32_conv_dw", "f32_grid_out")


@pytest.mark.parametrize("cin,cout,hw", [
    (16, 20, 12),  # 144 pixels: four full panels read in place, a ragged last one of 16 (half width), ragged rows
    (24, 13, 11),  # 121 pixels: a ragged last panel of 25, wider than one vector
    (64, 9, 9),    # the deepest input read in place for every row block
    (65, 16, 12),  # one channel deeper: the packed path
])
@pytest.mark.parametrize("silu", [False, True])
def test_conv_1x1_shallow_input(cin, cout, hw, silu):
    # A 1x1 conv of a shallow input with its epilogue in registers reads the full column panels of
    # its input in place for every row block (gemm._shallow_rows); the residual, SiLU and NaNs ride along.
    rng = np.random.default_rng(cin)
    x = rng.standard_normal((1, cin, hw, hw)).astype(F)
    x[0, 3, 2, 5] = np.nan
    r = rng.standard_normal((1, cout, hw, hw)).astype(F)
    w = (rng.standard_normal((cout, cin, 1, 1)) * 0.3).astype(F)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"]), helper.make_node("Add", ["c", "r"], ["s"])]
    nodes += ([helper.make_node("Sigmoid", ["s"], ["g"]), helper.make_node("Mul", ["s", "g"], ["y"])] if silu
              else [helper.make_node("Relu", ["s"], ["y"])])
    m = make_model(nodes, [("x", F, x.shape), ("r", F, r.shape)], [("y", F, None)],
                   [("w", w), ("b", rng.standard_normal(cout).astype(F))])
    _check(m, {"x": x, "r": r}, np.sqrt(cin))
    with tilerun.compile_model(m, num_cores=1) as eng:
        assert [r.kernel.name for r in eng.plan.rows] == ["f32_conv_gemm"]
        y = eng.run({"x": x, "r": r})[0]
    assert np.isnan(y[0, :, 2, 5]).all() and np.isfinite(np.delete(y.reshape(cout, -1), 2 * hw + 5, axis=1)).all()


@pytest.mark.parametrize("xshape,wshape,attrs", [
    ((1, 32, 20, 19), (24, 32, 3, 3), {"pads": [1, 1, 1, 1]}),                  # K in two slices, read back mapped
    ((1, 6, 40, 37), (10, 6, 3, 3), {"strides": [2, 2], "pads": [1, 0, 1, 2]}),  # stride 2
    ((1, 8, 20, 14), (20, 8, 3, 3), {"pads": [1, 1, 1, 1]}),                    # grid rows exactly one vector wide
])
@pytest.mark.parametrize("act", [None, ("Relu", {}), ("Sigmoid", {}), ("Tanh", {})])
def test_conv_grid_straight_to_image(xshape, wshape, attrs, act):
    # A register epilogue stores the grid's pixels straight into the image;
    # any other activation keeps the grid temporary and its copy-out pass.
    m = conv_case(xshape, wshape, act=act, **attrs)
    with tilerun.compile_model(m) as eng:
        kernels = [r.kernel.name for r in eng.plan.rows]
    assert ("f32_grid_out" in kernels) == (act is not None and act[0] == "Tanh")


@pytest.mark.parametrize("xshape,wshape,attrs", [
    ((1, 16, 13, 13), (40, 16, 3, 3), {"pads": [1, 1, 1, 1]}),                        # 6 panels of pixels, 7 of grid
    ((2, 12, 11, 9), (20, 12, 3, 3), {"pads": [2, 1, 0, 1], "dilations": [2, 1]}),  # batch, dilated, asymmetric
    ((1, 32, 7, 7), (64, 32, 3, 3), {"pads": [1, 1, 1, 1]}),    # equal cost, channel tiles: no grid copy-out
    ((1, 64, 14, 14), (48, 64, 3, 3), {"strides": [2, 2], "pads": [1, 1, 1, 1]}),  # the same at stride 2
])
def test_conv_small_plane_packs_pixels(xshape, wshape, attrs, monkeypatch):
    # Small planes pack the image's pixels' columns, not the padded grid's (the direct path: Winograd off).
    monkeypatch.setattr(conv_paths, "WINOGRAD", False)
    m = conv_case(xshape, wshape, act=("Relu", {}), **attrs)
    with tilerun.compile_model(m) as eng:
        assert "f32_pack_pixels" in [r.kernel.name for r in eng.plan.rows]


def test_small_plane_padding_pass_split_over_workers(monkeypatch):
    # Rows of a 7x7 plane are 9 floats, and their set-up is most of a padding pass: 440 channels are padded by
    # both workers instead of one while the other waits.
    monkeypatch.setattr(conv_paths, "WINOGRAD", False)
    m = conv_case((1, 440, 7, 7), (16, 440, 3, 3), act=("Relu", {}), pads=[1, 1, 1, 1])
    with tilerun.compile_model(m, num_cores=2) as eng:
        pad = [r for r in eng.plan.rows if r.kernel.name == "f32_pad_planes"]
        assert len(pad) == 1 and pad[0].n_tiles >= 2


@pytest.mark.parametrize("xshape,wshape,attrs", [
    ((1, 440, 7, 7), (440, 8, 3, 3), {"group": 55, "pads": [1, 1, 1, 1]}),                  # RegNetY's last stage
    ((1, 208, 28, 28), (208, 8, 3, 3), {"group": 26, "strides": [2, 2], "pads": [1, 1, 1, 1]}),  # phase-split
    ((2, 24, 11, 9), (12, 8, 3, 3), {"group": 3, "pads": [2, 1, 0, 1], "dilations": [2, 1]}),  # batch, dilated
    ((1, 128, 16, 16), (128, 8, 3, 3), {"group": 16, "pads": [1, 1, 1, 1]}),               # grid straight to image
])
@pytest.mark.parametrize("cores", [1, 2])
def test_grouped_conv_tiles_pad_their_own_planes(xshape, wshape, attrs, cores):
    # A grouped conv whose tiles are whole image-groups pads each group's planes in the tile (GRID_PAD): no
    # padding pass, the same result.
    m = conv_case(xshape, wshape, act=("Relu", {}), **attrs)
    with tilerun.compile_model(m, num_cores=cores) as eng:
        kernels = [r.kernel.name for r in eng.plan.rows]
        assert "f32_pad_planes" not in kernels and "f32_conv_gemm" in kernels


@pytest.mark.parametrize("xshape,wshape,attrs,cores", [
    ((1, 64, 7, 7), (64, 64, 3, 3), {"pads": [1, 1, 1, 1]}, 1),                      # 49 pixels: 7 blocks of 7 rows
    ((2, 256, 7, 7), (96, 256, 3, 3), {"pads": [1, 1, 1, 1]}, 2),                    # depth 2304: two panel slices
    ((1, 64, 14, 14), (96, 64, 3, 3), {"strides": [2, 2], "pads": [1, 1, 1, 1]}, 1),  # stride 2 onto 7x7
    ((1, 128, 14, 14), (96, 128, 1, 1), {"strides": [2, 2]}, 2),                     # 1x1 stride 2 onto 7x7
])
def test_conv_small_plane_pixels_as_rows(xshape, wshape, attrs, cores, monkeypatch):
    # A small output plane whose pixels fill register rows better than vectors: the im2col matrix is written
    # plain and run as a 1x1 conv with the pixels as the GEMM's rows (the grid_pixel_rows path).
    monkeypatch.setattr(conv_paths, "WINOGRAD", False)
    m = conv_case(xshape, wshape, act=("Relu", {}), **attrs)
    with tilerun.compile_model(m, num_cores=cores) as eng:
        assert [r.kernel.name for r in eng.plan.rows] == ["f32_pad_planes", "f32_pack_pixels", "f32_conv_pixel_rows"]


@pytest.mark.parametrize("xshape,wshape,attrs", [
    ((1, 32, 14, 14), (40, 32, 1, 1), {"strides": [2, 2]}),                  # 1x1 stride 2 onto a 7x7 image
    ((2, 16, 12, 9), (24, 16, 3, 1), {"pads": [1, 0, 1, 0]}),                # a kernel one column wide
    ((1, 16, 9, 11), (20, 16, 5, 1), {"strides": [2, 2], "pads": [2, 0, 2, 0]}),
])
def test_conv_grid_without_extra_columns(xshape, wshape, attrs):
    # Grid rows as wide as the image's (a kernel one column wide): the grid is
    # the image, stored plainly even with rows narrower than a vector.
    m = conv_case(xshape, wshape, act=("Relu", {}), **attrs)
    with tilerun.compile_model(m) as eng:
        assert "f32_grid_out" not in [r.kernel.name for r in eng.plan.rows]


@pytest.mark.parametrize("cores", [1, 2, 3])
def test_conv_uneven_channel_blocks(cores):
    # 100 channels = 13 row blocks dealt over several tiles of 1 or 2 blocks each.
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 64, 9, 9)).astype(F)
    w = (rng.standard_normal((100, 64, 3, 3)) * 0.1).astype(F)
    m = make_model([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])], [("x", F, x.shape)],
                   [("y", F, None)], [("w", w)])
    ref = tilerun.compile_model(m, num_cores=1).run({"x": x})[0]
    with tilerun.compile_model(m, num_cores=cores) as eng:
        conv = [r for r in eng.plan.rows if r.kernel.name == "f32_conv_gemm"]
        got = eng.run({"x": x})[0]
    if cores > 1:
        assert conv[0].n_tiles > 1
    _check(m, {"x": x}, 24)
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("cin", [300, 600])  # two K slices and three: later slices load C
@pytest.mark.parametrize("act", [None, "Relu", "Tanh"])  # no activation, one in registers, one in a pass after
def test_conv_last_panel_two_row_blocks(cin, act):
    # 13x13 = 169 pixels: 5 full column panels and a last one of 9 columns, which deep-K GEMMs run 16 rows at
    # a time; 21 channels = one such pair of row blocks and a ragged block of 5 rows. Every tiling sums alike.
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, cin, 13, 13)).astype(F)
    r = rng.standard_normal((1, 21, 13, 13)).astype(F)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"]), helper.make_node("Add", ["c", "r"], ["s" if act else "y"])]
    if act:
        nodes.append(helper.make_node(act, ["s"], ["y"]))
    m = make_model(nodes, [("x", F, x.shape), ("r", F, r.shape)], [("y", F, None)],
                   [("w", (rng.standard_normal((21, cin, 1, 1)) * 0.1).astype(F)),
                    ("b", rng.standard_normal(21).astype(F))])
    _check(m, {"x": x, "r": r}, np.sqrt(cin) * 0.1)
    outs = []
    for cores in (1, 2):
        with tilerun.compile_model(m, num_cores=cores) as eng:
            assert "f32_conv_gemm" in [row.kernel.name for row in eng.plan.rows]
            outs.append(eng.run({"x": x, "r": r})[0])
    for got in outs[1:]:
        np.testing.assert_array_equal(got, outs[0])


def test_conv_3d_rejected():
    m = make_model([helper.make_node("Conv", ["x", "w"], ["y"])], [("x", F, (1, 2, 4, 4, 4))], [("y", F, None)],
                   [("w", np.zeros((3, 2, 2, 2, 2), F))])
    with pytest.raises(ValueError, match="rank"):
        tilerun.compile_model(m)


def test_conv_runtime_weights_key_the_plan():
    """Weights given as a run-time input: the engine specialises on their values (a plan per weights)."""
    m = make_model([helper.make_node("Conv", ["x", "w"], ["y"])], [("x", F, (1, 2, 5, 5)), ("w", F, (3, 2, 3, 3))],
                   [("y", F, None)])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 2, 5, 5)).astype(F)
    for _ in range(2):
        check_against_reference(m, {"x": x, "w": rng.standard_normal((3, 2, 3, 3)).astype(F)}, rtol=1e-4,
                                atol=1e-4)


def test_conv_bad_group_rejected():
    m = make_model([helper.make_node("Conv", ["x", "w"], ["y"], group=2)], [("x", F, (1, 3, 5, 5))],
                   [("y", F, None)], [("w", np.zeros((4, 2, 3, 3), F))])
    with pytest.raises(ValueError, match="group"):
        tilerun.compile_model(m)


@pytest.mark.parametrize("ta", [0, 1])
@pytest.mark.parametrize("tb", [0, 1])
@pytest.mark.parametrize("cshape", [None, (), (1,), (45,), (33, 1), (33, 45)])
@pytest.mark.parametrize("const_b", [True, False])
def test_gemm(ta, tb, cshape, const_b):
    rng = np.random.default_rng(hash((ta, tb, cshape, const_b)) % 2**32)
    m_, k_, n_ = 33, 50, 45
    a = rng.standard_normal((k_, m_) if ta else (m_, k_)).astype(F)
    b = rng.standard_normal((n_, k_) if tb else (k_, n_)).astype(F)
    ins, inputs, inits, feeds = ["a", "b"], [("a", F, a.shape)], [], {"a": a}
    if const_b:
        inits.append(("b", b))
    else:
        inputs.append(("b", F, b.shape))
        feeds["b"] = b
    if cshape is not None:
        ins.append("c")
        inits.append(("c", rng.standard_normal(cshape).astype(F)))
    node = helper.make_node("Gemm", ins, ["y"], transA=ta, transB=tb, alpha=0.7, beta=1.3)
    _check(make_model([node], inputs, [("y", F, None)], inits, opset=13), feeds, 8)


def test_gemm_runtime_c_defaults():
    rng = np.random.default_rng(7)
    a, b, c = (rng.standard_normal(s).astype(F) for s in [(5, 300), (300, 70), (70,)])
    node = helper.make_node("Gemm", ["a", "b", "c"], ["y"], transB=0)
    m = make_model([node], [("a", F, a.shape), ("b", F, b.shape), ("c", F, c.shape)], [("y", F, None)], opset=11)
    _check(m, {"a": a, "b": b, "c": c}, 20)


@pytest.mark.parametrize("act", [("Relu", {}), ("Tanh", {})])
def test_gemm_fused_activation(act):
    rng = np.random.default_rng(8)
    a = rng.standard_normal((3, 64)).astype(F)
    nodes = [helper.make_node("Gemm", ["a", "w", "c"], ["g"], transB=1), helper.make_node(act[0], ["g"], ["y"])]
    m = make_model(nodes, [("a", F, a.shape)], [("y", F, None)],
                   [("w", (rng.standard_normal((100, 64)) * 0.2).astype(F)), ("c", rng.standard_normal(100).astype(F))])
    _check(m, {"a": a}, 4)
    with tilerun.compile_model(m) as eng:
        assert [r.op_type for r in eng.plan.rows] == ["Gemm"]


@pytest.mark.parametrize("n", [45, 128, 200, 1000])
@pytest.mark.parametrize("act", [None, "HardSwish"])
def test_gemm_one_row_matches_ort_and_a_batch(n, act):
    # One row over weight panels (a batch-1 classifier): four panels at a time, then one at a time, ragged last
    # panel. Its sums are the micro-kernel's: the same row in a batch of three comes out bit-identical.
    rng = np.random.default_rng(n)
    k = 300
    nodes = [helper.make_node("Gemm", ["a", "w", "c"], ["g" if act else "y"], transB=1)]
    if act:
        nodes.append(helper.make_node(act, ["g"], ["y"]))
    inits = [("w", (rng.standard_normal((n, k)) / 17).astype(F)), ("c", rng.standard_normal(n).astype(F))]
    a = rng.standard_normal((3, k)).astype(F)
    one = make_model(nodes, [("a", F, (1, k))], [("y", F, None)], inits, opset=14)
    three = make_model(nodes, [("a", F, (3, k))], [("y", F, None)], inits, opset=14)
    _check(one, {"a": a[:1]}, 1)
    with tilerun.compile_model(one) as e1, tilerun.compile_model(three) as e3:
        np.testing.assert_array_equal(e1.run([a[:1]])[0][0], e3.run([a])[0][0])


@pytest.mark.parametrize("sa,sb", [
    ((7,), (7,)), ((7,), (7, 5)), ((4, 7), (7,)), ((33, 70), (70, 41)), ((2, 3, 5, 7), (7, 9)),
    ((5, 7), (2, 7, 9)), ((2, 1, 5, 7), (3, 7, 4)), ((6,), (2, 6, 3)), ((2, 4, 6), (6,)), ((1, 130, 64), (64, 100)),
])
@pytest.mark.parametrize("const_b", [True, False])
def test_matmul(sa, sb, const_b):
    rng = np.random.default_rng(hash((sa, sb, const_b)) % 2**32)
    a = rng.standard_normal(sa).astype(F)
    b = rng.standard_normal(sb).astype(F)
    inputs, inits, feeds = [("a", F, sa)], [], {"a": a}
    if const_b:
        inits.append(("b", b))
    else:
        inputs.append(("b", F, sb))
        feeds["b"] = b
    _check(make_model([helper.make_node("MatMul", ["a", "b"], ["y"])], inputs, [("y", F, None)], inits), feeds, 10)


def test_matmul_fused_relu():
    rng = np.random.default_rng(9)
    a = rng.standard_normal((2, 10, 32)).astype(F)
    nodes = [helper.make_node("MatMul", ["a", "w"], ["g"]), helper.make_node("Relu", ["g"], ["y"])]
    m = make_model(nodes, [("a", F, a.shape)], [("y", F, None)], [("w", rng.standard_normal((32, 48)).astype(F))])
    _check(m, {"a": a}, 6)


def test_matmul_inner_mismatch_rejected():
    m = make_model([helper.make_node("MatMul", ["a", "b"], ["y"])], [("a", F, (3, 4)), ("b", F, (5, 6))],
                   [("y", F, None)])
    with pytest.raises(ValueError, match="inner"):
        tilerun.compile_model(m)
