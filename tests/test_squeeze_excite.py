"""Squeeze-and-excitation blocks fused into ``SqueezeExcite`` (a pool row and an excite row), against ONNX Runtime.

Both export forms in use: MobileNetV3's (Relu, HardSigmoid) and
EfficientNet's (SiLU written as x * Sigmoid(x), Sigmoid gate), at batch 1 and
2, with a NaN in one plane (its image's gates all become NaN, as in ORT);
a block large enough to split into tiles, some spanning two images, at 1 and
2 cores. A block whose pooled vector is read elsewhere must stay unfused and agree.
Gates folded into the next 1x1 conv's weights where x is much larger than
them (both weight layouts, with a residual, NaN), kept on x where it is not,
for two images, and under a BF16 conv.
"""
import numpy as np
import pytest
from onnx import helper, numpy_helper

import tilerun
from tilerun.kernels.gemm_bf16 import cpu_supports_bf16
from oracle import check_against_reference, make_model, reference_outputs

F = np.float32
C, CR = 24, 8


def _se_model(rng, style, batch, hw=(9, 7), pooled_output=False, c=C, cr=CR):
    nodes = [helper.make_node("GlobalAveragePool", ["x"], ["m"]),
             helper.make_node("Conv", ["m", "w1", "b1"], ["h0"])]
    if style == "mobilenet_v3":
        nodes += [helper.make_node("Relu", ["h0"], ["h"]), helper.make_node("Conv", ["h", "w2", "b2"], ["g0"]),
                  helper.make_node("HardSigmoid", ["g0"], ["g"], alpha=1 / 6, beta=0.5)]
    else:
        nodes += [helper.make_node("Sigmoid", ["h0"], ["hs"]), helper.make_node("Mul", ["h0", "hs"], ["h"]),
                  helper.make_node("Conv", ["h", "w2", "b2"], ["g0"]), helper.make_node("Sigmoid", ["g0"], ["g"])]
    nodes.append(helper.make_node("Mul", ["x", "g"], ["y"]))
    inits = [("w1", (rng.standard_normal((cr, c, 1, 1)) / np.sqrt(c)).astype(F)), ("b1", rng.standard_normal(cr).astype(F)),
             ("w2", (rng.standard_normal((c, cr, 1, 1)) / np.sqrt(cr)).astype(F)), ("b2", rng.standard_normal(c).astype(F))]
    outs = [("y", F, None)] + ([("m", F, None)] if pooled_output else [])
    return make_model(nodes, [("x", F, (batch, c) + hw)], outs, inits, opset=14)


def _kernels(model, cores=None):
    with tilerun.compile_model(model, num_cores=cores) as eng:
        return [r.kernel.name for r in eng.plan.rows]


def _tiles(model, cores):
    with tilerun.compile_model(model, num_cores=cores) as eng:
        return [r.n_tiles for r in eng.plan.rows]


@pytest.mark.parametrize("style", ["mobilenet_v3", "efficientnet"])
@pytest.mark.parametrize("batch", [1, 2])
def test_squeeze_excite_is_a_pool_row_and_an_excite_row(style, batch):
    rng = np.random.default_rng(batch)
    m = _se_model(rng, style, batch)
    x = rng.standard_normal((batch, C, 9, 7)).astype(F)
    x[-1, 3, 2, 2] = np.nan
    y = check_against_reference(m, {"x": x}, use_ort=True, rtol=1e-5, atol=1e-6)[0]
    assert _kernels(m) == ["f32_se_pool", "f32_squeeze_excite"]
    assert np.isnan(y[-1]).all() and not np.isnan(y[:-1]).any()


def test_squeeze_excite_split_over_channels():
    """Three images of 100 channels (checked at 1 and 2 cores): at 2 cores both rows take several tiles, and
    an excite tile holds the last planes of one image and the first of the next (each recomputes its images'
    hidden layer)."""
    rng = np.random.default_rng(7)
    m = _se_model(rng, "efficientnet", 3, hw=(20, 20), c=100, cr=25)
    x = rng.standard_normal((3, 100, 20, 20)).astype(F)
    check_against_reference(m, {"x": x}, use_ort=True, rtol=1e-5, atol=1e-6)
    assert _tiles(m, 1) == [1, 1]
    pool, excite = _tiles(m, 2)
    assert pool > 1 and excite > 1 and 100 % -(-300 // excite) != 0


def test_pooled_vector_read_elsewhere_stays_unfused():
    rng = np.random.default_rng(3)
    m = _se_model(rng, "efficientnet", 1, pooled_output=True)
    check_against_reference(m, {"x": rng.standard_normal((1, C, 9, 7)).astype(F)}, use_ort=True, rtol=1e-5,
                            atol=1e-6)
    assert "f32_squeeze_excite" not in _kernels(m)


def _se_conv_model(rng, batch, hw, c, cout, residual=False):
    """EfficientNet's block tail: squeeze-excitation, then a 1x1 conv (and a residual add) reading only its output."""
    se = _se_model(rng, "efficientnet", batch, hw=hw, c=c)
    nodes = list(se.graph.node) + [helper.make_node("Conv", ["y", "w3", "b3"], ["z0" if residual else "z"])]
    inits = [(t.name, numpy_helper.to_array(t)) for t in se.graph.initializer]
    inits += [("w3", (rng.standard_normal((cout, c, 1, 1)) / np.sqrt(c)).astype(F)),
              ("b3", rng.standard_normal(cout).astype(F))]
    ins = [("x", F, (batch, c) + hw)]
    if residual:
        nodes.append(helper.make_node("Add", ["z0", "r"], ["z"]))
        ins.append(("r", F, (batch, cout) + hw))
    return make_model(nodes, ins, [("z", F, None)], inits, opset=14)


def _feeds(rng, model):
    return {i.name: rng.standard_normal([d.dim_value for d in i.type.tensor_type.shape.dim]).astype(F)
            for i in model.graph.input}


@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("c, cout, hw, path", [(24, 8, (16, 16), "f32_conv_gemm"),
                                                (256, 32, (14, 14), "f32_conv_pixel_rows")])
def test_gates_fold_into_the_next_1x1_conv(residual, c, cout, hw, path):
    """Where x is at least FOLD_MIN_RATIO times the next conv's weights, the block writes only its gates and the
    conv scales its packed weights' columns by them (both layouts of 1x1 weights), at 1 and 2 cores; a NaN in
    one pixel makes its channel's gate NaN and so every output, as ONNX Runtime's x * g then conv does."""
    rng = np.random.default_rng(c + residual)
    m = _se_conv_model(rng, 1, hw, c, cout, residual)
    feeds = _feeds(rng, m)
    check_against_reference(m, feeds, use_ort=True, rtol=1e-4, atol=1e-5)
    kernels = _kernels(m)
    assert kernels[:4] == ["f32_se_pool", "f32_squeeze_excite", "f32_channel_affine", path], kernels
    feeds["x"][0, 5, 3, 3] = np.nan
    z = check_against_reference(m, feeds, use_ort=True, rtol=1e-4, atol=1e-5)[0]
    assert np.isnan(z).all()


@pytest.mark.parametrize("batch, hw", [(1, (5, 5)), (2, (16, 16))])
def test_gates_stay_on_x(batch, hw):
    """x not FOLD_MIN_RATIO times the weights (25 pixels, 8 output channels), or two images (one weight copy
    cannot hold two images' gates): the block multiplies x as before."""
    rng = np.random.default_rng(batch)
    m = _se_conv_model(rng, batch, hw, 24, 8)
    check_against_reference(m, _feeds(rng, m), use_ort=True, rtol=1e-4, atol=1e-5)
    kernels = _kernels(m)
    assert "f32_channel_affine" not in kernels and kernels[:2] == ["f32_se_pool", "f32_squeeze_excite"]


@pytest.mark.skipif(not cpu_supports_bf16(), reason="this CPU lacks avx512_bf16 (or AVX-512 lanes)")
def test_gates_on_x_under_a_bf16_conv():
    """The BF16 conv packs its weights its own way: the gates go onto x in a row of their own."""
    rng = np.random.default_rng(5)
    m = _se_conv_model(rng, 1, (16, 16), 64, 16)
    feeds = _feeds(rng, m)
    ref = reference_outputs(m, feeds, use_ort=True)[0]
    with tilerun.compile_model(m, num_cores=1, precision="bf16") as eng:
        scaled = [eng.plan.tensors[r.outputs[0]].shape for r in eng.plan.rows if r.kernel.name == "f32_channel_affine"]
        got = eng.run(list(feeds.values()))[0]
    assert scaled == [(1, 64, 16, 16)]  # one row, and it scales x, not the weights
    np.testing.assert_allclose(got, ref, atol=6 * 2.0 ** -8 * 8 * np.abs(ref).max(), rtol=0)
