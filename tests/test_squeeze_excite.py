"""Squeeze-and-excitation blocks fused into ``SqueezeExcite`` (a pool row and an excite row), against ONNX Runtime.

Both export forms in use: MobileNetV3's (Relu, HardSigmoid) and
EfficientNet's (SiLU written as x * Sigmoid(x), Sigmoid gate), at batch 1 and
2, with a NaN in one plane (its image's gates all become NaN, as in ORT);
a block large enough to split into tiles, some spanning two images, at 1 and
2 cores. A block whose pooled vector is read elsewhere must stay unfused and agree.
"""
import numpy as np
import pytest
from onnx import helper

import tilerun
from oracle import check_against_reference, make_model

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
