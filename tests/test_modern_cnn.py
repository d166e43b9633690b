"""MobileNetV3-small, EfficientNet-B0 and RegNetY-400MF-style graphs against ONNX Runtime.

Depthwise and grouped convs, squeeze-excitation (HardSigmoid and Sigmoid
gates), HardSwish and SiLU as ``x * Sigmoid(x)``: narrow, small-input versions
keep the tests fast while the blocks and their fusions are the full models'.
"""
import numpy as np
import onnx
import pytest

import tilerun
from oracle import check_cnn_on_one_and_all_cores, reference_outputs
from tilerun.models import MODERN_CNNS, random_inputs


@pytest.mark.parametrize("name", sorted(MODERN_CNNS))
def test_modern_cnn_matches_onnxruntime(name):
    model = MODERN_CNNS[name](seed=1, size=64, width=0.5, classes=10)
    onnx.checker.check_model(model)
    ops = {r.op_type for r in check_cnn_on_one_and_all_cores(model)}
    # Activations (SiLU's Sigmoid and Mul included) run in the producing conv's epilogue.
    assert not ops & {"Sigmoid", "HardSigmoid", "HardSwish", "Relu", "Add"}, ops


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MODERN_CNNS))
def test_modern_cnn_full_size(name):
    model = MODERN_CNNS[name](seed=0)
    x = random_inputs(model, seed=0)
    ref = reference_outputs(model, {"input": x[0]}, use_ort=True)[0]
    with tilerun.compile_model(model) as eng:
        assert eng.input_shapes == [(1, 3, 224, 224)]
        (y,) = eng.run(x)
    np.testing.assert_allclose(y, ref, rtol=1e-3, atol=1e-4 * float(np.abs(ref).max()))


def _conv_silu_graph(extra_consumer, residual=False):
    from onnx import helper, numpy_helper
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((8, 4, 3, 3)).astype(np.float32), "w")
    wr = numpy_helper.from_array(rng.standard_normal((8, 4, 1, 1)).astype(np.float32), "wr")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c0" if residual else "c"], pads=[1, 1, 1, 1]),
             helper.make_node("Sigmoid", ["c"], ["s"]), helper.make_node("Mul", ["s", "c"], ["y"])]
    if residual:  # Conv -> Add(another conv's output) -> SiLU
        nodes += [helper.make_node("Conv", ["x", "wr"], ["r0"]), helper.make_node("Add", ["c0", "r0"], ["c"])]
    outs = [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)]
    if extra_consumer:
        nodes.append(helper.make_node("Relu", ["c"], ["r"]))
        outs.append(helper.make_tensor_value_info("r", onnx.TensorProto.FLOAT, None))
    g = helper.make_graph(nodes, "silu", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4, 9, 9])],
                          outs, [w, wr])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("extra_consumer", [False, True])
def test_silu_fuses_only_when_the_conv_output_feeds_nothing_else(extra_consumer, residual):
    model = _conv_silu_graph(extra_consumer, residual)
    x = np.random.default_rng(1).standard_normal((1, 4, 9, 9)).astype(np.float32)
    x[0, 0, 4, 4] = np.nan
    ref = reference_outputs(model, {"x": x}, use_ort=True)
    with tilerun.compile_model(model) as eng:
        out = eng.run([x])
        ops = [r.op_type for r in eng.plan.rows]
    for o, r in zip(out, ref):
        np.testing.assert_allclose(o, r, rtol=1e-5, atol=1e-5)  # NaN where the reference has NaN
    assert ("Sigmoid" in ops) == extra_consumer, ops
    assert "Add" not in ops, ops  # the residual add is in the conv's epilogue, before the SiLU


def test_small_ops_are_one_tile_and_chains_stay_on_one_worker():
    from tilerun.tiling import MIN_TILE_COST
    model = MODERN_CNNS["efficientnet_b0"](seed=0, size=64, width=0.5, classes=10)
    x = random_inputs(model, seed=0)
    with tilerun.compile_model(model, num_cores=2) as eng:
        rows, tiles = eng.plan.rows, eng.plan.tables["n_tiles"]
        trace = eng.trace(x, repeat=3)
    small = [(r, int(t)) for r, t in zip(rows, tiles) if r.flops < MIN_TILE_COST]
    assert small and all(t == 1 for _, t in small), [(r.node, r.kernel.name, t) for r, t in small if t > 1]
    # Consecutive single-tile ops (a squeeze-excitation chain) mostly run where their producer ran.
    ev = trace.events[np.argsort(trace.events[:, 3])]
    single = {i for i, t in enumerate(tiles) if t == 1}
    pairs = [(a, b) for a, b in zip(ev[:-1], ev[1:]) if a[1] in single and b[1] in single]
    same = sum(1 for a, b in pairs if a[0] == b[0])
    assert pairs and same >= 0.75 * len(pairs), (same, len(pairs))


@pytest.mark.parametrize("side,act", [(14, "silu"), (14, "sigmoid"), (56, "silu")])
def test_depthwise_activation_on_the_band_matches_onnxruntime(side, act):
    # f32_conv_dw_cv applies Sigmoid / SiLU to its band of results before transposing them out:
    # NaN, +inf and -inf inputs give what the unfused ops give (SiLU(-inf) = NaN, Sigmoid(-inf) = 0).
    from onnx import helper, numpy_helper
    rng = np.random.default_rng(4)
    c = 40  # two full channel groups and a ragged third
    w = numpy_helper.from_array((rng.standard_normal((c, 1, 3, 3)) * 0.3).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.standard_normal(c).astype(np.float32), "b")
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], group=c, pads=[1, 1, 1, 1]),
             helper.make_node("Sigmoid", ["c"], ["s" if act == "silu" else "y"])]
    if act == "silu":
        nodes.append(helper.make_node("Mul", ["c", "s"], ["y"]))
    g = helper.make_graph(nodes, "dw", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, c, side, side])],
                          [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)], [w, b])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    x = (rng.standard_normal((1, c, side, side)) * 4).astype(np.float32)
    x[0, 1, 5, 5], x[0, 17, 2, 3], x[0, 33, 7, 1] = np.nan, np.inf, -np.inf
    ref = reference_outputs(model, {"x": x}, use_ort=True)[0]
    with tilerun.compile_model(model) as eng:
        (y,) = eng.run([x])
        assert [r.kernel.name for r in eng.plan.rows] == ["f32_conv_dw_cv"]
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)


def test_vector_sigmoid_and_silu_error_bounds():
    """``kernels.vact``'s Sigmoid/SiLU against float64 over the whole float32 range its docstring bounds."""
    import numba
    from tilerun.kernels import vact

    @numba.njit
    def apply(y, silu):
        if silu:
            vact.silu_run(y, 0, y.size)
        else:
            vact.sigmoid_run(y, 0, y.size)

    x = np.concatenate([np.linspace(-100, 100, 400_003), [np.nan, np.inf, -np.inf, -87.0, -88.0, 89.0]])
    x = x.astype(np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        exact = 1 / (1 + np.exp(-x.astype(np.float64)))
        ref = x * exact
    sig, silu = x.copy(), x.copy()
    apply(sig, False)
    apply(silu, True)
    fin = np.isfinite(x)
    assert np.abs(sig[fin] - exact[fin]).max() < 1.5e-7
    small = fin & (np.abs(x) <= 16)
    assert (np.abs(sig[small] - exact[small]) / exact[small]).max() < 1e-6
    normal = fin & (np.abs(ref) > 1e-30)  # float32 values well above the denormals
    assert (np.abs(silu[normal] - ref[normal]) / np.abs(ref[normal])).max() < 4e-6
    # NaN in, NaN out; the infinities as float32's x * (1 / (1 + exp(-x))): SiLU(-inf) = -inf * 0
    assert np.isnan(sig[-6]) and np.isnan(silu[-6])
    assert sig[-5] == 1 and silu[-5] == np.inf and sig[-4] == 0 and np.isnan(silu[-4])
    assert sig[-2] == 0 and sig[-1] == 1
