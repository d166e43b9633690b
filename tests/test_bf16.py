"""BF16 precision mode against FP32 ONNX Runtime, and its FP32 fallback.

Tolerances come from BF16's 8-bit mantissa: rounding an FP32 value to BF16
(nearest even) changes it by at most 2^-9 relative, so a product of two
rounded operands is off by at most about 2^-8 relative; the sums are FP32.
In a K-term dot product the per-term errors have random signs, so the error
grows like sqrt(K): its standard deviation is at most 2^-8 * sqrt(sum_k
(a_k b_k)^2), and we allow 6 times that, per element (``dot_atol``); for
operands of scale ``sa`` and ``sb`` that is 6 * 2^-8 * sqrt(K) * sa * sb
(``bf16_atol``). A wrong kernel (a dropped or misplaced K pair, a wrong
column) is off by about sqrt(K) * sa * sb, some 40 times more. Each BF16 test also
checks that the BF16 kernels ran and that the result differs from FP32's,
and that 1 and 2 cores give bit-identical outputs.
"""
import numpy as np
import onnx
import pytest
from onnx import helper

import tilerun
from tilerun import precision
from tilerun.errors import ArgumentError
from tilerun.kernels.gemm_bf16 import cpu_supports_bf16

from oracle import make_model, reference_outputs

needs_bf16 = pytest.mark.skipif(not cpu_supports_bf16(), reason="this CPU lacks avx512_bf16 (or AVX-512 lanes)")
BF16_KERNELS = {"bf16_gemm", "bf16_conv", "bf16_pack_cols"}


def bf16_atol(k, sa=1.0, sb=1.0):
    """Six standard deviations of the error of a K-term BF16 dot product of operands of scale ``sa``, ``sb``."""
    return 6 * 2.0 ** -8 * np.sqrt(k) * sa * sb


def dot_atol(a, b):
    """Per element of ``a @ b``: six standard deviations of its BF16 error, from the products' sizes."""
    return 6 * 2.0 ** -8 * np.sqrt((a.astype(np.float64) ** 2) @ (b.astype(np.float64) ** 2)) + 1e-6


def run_bf16(model, feeds):
    """Outputs at 1 and 2 cores (asserted bit-identical) and the kernels the plan used."""
    outs = []
    for cores in (1, 2):
        with tilerun.compile_model(model, num_cores=cores, precision="bf16") as eng:
            assert eng.config.precision == "bf16"
            outs.append(eng.run(list(feeds.values())))
            kernels = {r.kernel.name for r in eng.plan.rows}
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b, err_msg="1-core and 2-core BF16 runs differ")
    return outs[0], kernels


def check_bf16(model, feeds, atol):
    """BF16 outputs within ``atol`` of FP32 ONNX Runtime, not equal to tilerun's FP32 ones; returns the kernels used."""
    got, kernels = run_bf16(model, feeds)
    ref = reference_outputs(model, feeds, use_ort=True)
    with tilerun.compile_model(model, num_cores=1) as eng:
        fp32 = eng.run(list(feeds.values()))
    assert kernels & BF16_KERNELS, f"no BF16 kernel in the plan: {sorted(kernels)}"
    for g, r, f in zip(got, ref, fp32):
        assert g.shape == r.shape and g.dtype == np.float32
        over = np.abs(g - r) - atol
        assert over.max() <= 0, f"error over the BF16 bound by {over.max():.4g} (bound {np.max(atol):.4g})"
        assert not np.array_equal(g, f), "the BF16 result equals FP32's: BF16 did not run"
    return kernels


def gemm_model(m, n, k, trans_b=False, bias=True, act=None, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((n, k) if trans_b else (k, n)).astype(np.float32)
    inits = [("w", w)] + ([("c", rng.standard_normal(n).astype(np.float32))] if bias else [])
    nodes = [helper.make_node("Gemm", ["x", "w"] + (["c"] if bias else []), ["g" if act else "y"], transB=int(trans_b))]
    if act:
        nodes.append(helper.make_node(act, ["g"], ["y"]))
    return make_model(nodes, [("x", np.float32, [m, k])], [("y", np.float32, [m, n])], inits)


@needs_bf16
@pytest.mark.parametrize("m,n,k,trans_b,act", [(1, 10, 64, False, None), (7, 33, 31, True, None),
                                              (9, 65, 129, False, "Relu"), (40, 200, 300, True, "Sigmoid"),
                                              (130, 96, 1, False, None)])
def test_gemm_ragged_shapes(m, n, k, trans_b, act):
    model = gemm_model(m, n, k, trans_b, act=act)
    x = np.random.default_rng(1).standard_normal((m, k)).astype(np.float32)
    w = onnx.numpy_helper.to_array(model.graph.initializer[0])
    kernels = check_bf16(model, {"x": x}, dot_atol(x, w.T if trans_b else w))
    assert "bf16_gemm" in kernels


@needs_bf16
def test_matmul_batched_activations_constant_weights():
    rng = np.random.default_rng(2)
    w = rng.standard_normal((96, 50)).astype(np.float32)
    model = make_model([helper.make_node("MatMul", ["x", "w"], ["y"])], [("x", np.float32, [2, 5, 96])],
                       [("y", np.float32, [2, 5, 50])], [("w", w)])
    x = rng.standard_normal((2, 5, 96)).astype(np.float32)
    check_bf16(model, {"x": x}, dot_atol(x.reshape(10, 96), w).reshape(2, 5, 50))


@needs_bf16
def test_matmul_fused_activation_and_vector_weights():
    rng = np.random.default_rng(3)
    w, v = rng.standard_normal((70, 40)).astype(np.float32), rng.standard_normal(40).astype(np.float32)
    model = make_model([helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["y"]),
                        helper.make_node("MatMul", ["y", "v"], ["z"])],
                       [("x", np.float32, [3, 70])], [("y", np.float32, [3, 40]), ("z", np.float32, [3])],
                       [("w", w), ("v", v)])
    x = rng.standard_normal((3, 70)).astype(np.float32)
    y = np.maximum(x @ w, 0)
    got, kernels = run_bf16(model, {"x": x})
    assert kernels == {"bf16_gemm"}
    assert np.all(np.abs(got[0] - y) <= dot_atol(x, w))
    # The second product's input carries the first one's BF16 error (at most dot_atol(x, w)) too.
    assert np.all(np.abs(got[1] - y @ v) <= dot_atol(y, v[:, None])[:, 0] + dot_atol(x, w) @ np.abs(v))


def conv_model(x_shape, cout, kernel, strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1), residual=False,
               act="Relu", pool=False, group=1, seed=0):
    rng = np.random.default_rng(seed)
    cin = x_shape[1]
    w = (rng.standard_normal((cout, cin // group, *kernel)) / np.sqrt(cin // group * kernel[0] * kernel[1]))
    inits = [("w", w.astype(np.float32)), ("b", rng.standard_normal(cout).astype(np.float32))]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], strides=list(strides), pads=list(pads),
                              dilations=list(dilations), group=group)]
    oh = (x_shape[2] + pads[0] + pads[2] - dilations[0] * (kernel[0] - 1) - 1) // strides[0] + 1
    ow = (x_shape[3] + pads[1] + pads[3] - dilations[1] * (kernel[1] - 1) - 1) // strides[1] + 1
    last = "c"
    feeds = [("x", np.float32, list(x_shape))]
    if residual:
        nodes.append(helper.make_node("Add", ["c", "r"], ["a"]))
        feeds.append(("r", np.float32, [x_shape[0], cout, oh, ow]))
        last = "a"
    if act:
        nodes.append(helper.make_node(act, [last], ["z"]))
        last = "z"
    if pool:
        nodes.append(helper.make_node("MaxPool", [last], ["p"], kernel_shape=[3, 3], strides=[2, 2], pads=[1] * 4))
        last, oh, ow = "p", (oh - 1) // 2 + 1, (ow - 1) // 2 + 1
    nodes[-1].output[0] = "y"
    model = make_model(nodes, feeds, [("y", np.float32, [x_shape[0], cout, oh, ow])], inits)
    rng = np.random.default_rng(seed + 1)
    return model, {name: rng.standard_normal(shape).astype(np.float32) for name, _, shape in feeds}


CONVS = {
    "3x3": dict(x_shape=(1, 16, 12, 12), cout=24, kernel=(3, 3), pads=(1, 1, 1, 1)),
    "1x1": dict(x_shape=(2, 40, 9, 9), cout=20, kernel=(1, 1), residual=True),
    "1x1_stride2": dict(x_shape=(1, 33, 10, 10), cout=17, kernel=(1, 1), strides=(2, 2)),
    "stem_7x7_odd_k": dict(x_shape=(1, 3, 30, 30), cout=16, kernel=(7, 7), strides=(2, 2), pads=(3, 3, 3, 3),
                           pool=True),
    "3x3_stride2_dilated": dict(x_shape=(1, 8, 15, 13), cout=9, kernel=(3, 3), strides=(2, 2), dilations=(2, 2),
                                pads=(2, 2, 2, 2), act="Sigmoid"),
    "small_plane_channel_split": dict(x_shape=(1, 96, 5, 5), cout=160, kernel=(3, 3), pads=(1, 1, 1, 1),
                                      residual=True),
    "narrow_rows": dict(x_shape=(1, 12, 40, 2), cout=8, kernel=(3, 1), pads=(1, 0, 1, 0), act=None),
}


@needs_bf16
@pytest.mark.parametrize("name", sorted(CONVS))
def test_conv_shapes(name):
    cfg = CONVS[name]
    model, feeds = conv_model(**cfg)
    k = cfg["x_shape"][1] * cfg["kernel"][0] * cfg["kernel"][1]
    # Weights are scaled to 1/sqrt(K): the dot products have unit scale.
    kernels = check_bf16(model, feeds, bf16_atol(k, 1.0, 1.0 / np.sqrt(k)))
    assert "bf16_conv" in kernels


@needs_bf16
def test_nan_in_gives_nan_out():
    model = gemm_model(3, 40, 20, act="Relu")
    x = np.random.default_rng(4).standard_normal((3, 20)).astype(np.float32)
    x[1, 7] = np.nan
    got, _ = run_bf16(model, {"x": x})
    assert np.isnan(got[0][1]).all() and not np.isnan(got[0][[0, 2]]).any()
    model, feeds = conv_model(**CONVS["1x1"])
    feeds["x"][0, 3, 2, 5] = np.nan
    got, _ = run_bf16(model, feeds)
    assert np.isnan(got[0][0, :, 2, 5]).all() and np.isnan(got[0]).sum() == got[0].shape[1]


@needs_bf16
def test_depthwise_stays_fp32():
    model, feeds = conv_model((1, 8, 9, 9), 8, (3, 3), pads=(1, 1, 1, 1), group=8)
    got, kernels = run_bf16(model, feeds)
    assert not kernels & BF16_KERNELS
    with tilerun.compile_model(model, num_cores=1) as eng:
        np.testing.assert_array_equal(got[0], eng.run(list(feeds.values()))[0])


@needs_bf16
def test_light_model_top1_agrees_with_fp32_ort():
    from tilerun.models import light_model_path, random_inputs, randomize_weights, without_final_softmax
    model = without_final_softmax(randomize_weights(onnx.load(light_model_path("squeezenet")), seed=1))
    with tilerun.compile_model(model, num_cores=2, precision="bf16") as eng:
        assert {r.kernel.name for r in eng.plan.rows} & BF16_KERNELS
        agree = 0
        for seed in range(5):
            inputs = random_inputs(eng, seed=seed)
            got = eng.run(inputs)[0]
            ref = reference_outputs(model, dict(zip(eng.input_names, inputs)), use_ort=True)[0]
            # Twenty-odd layers of BF16 products: a few percent of the logits' range.
            assert np.abs(got - ref).max() <= 0.05 * np.abs(ref).max()
            agree += int(got.argmax() == ref.argmax())
    assert agree == 5


def test_precision_argument_is_checked():
    model = gemm_model(2, 3, 4)
    with pytest.raises(ArgumentError, match=r"precision must be one of \['fp32', 'bf16'\], given 'fp16'"):
        tilerun.compile_model(model, precision="fp16")


def test_fp32_is_the_default_and_says_so():
    with tilerun.compile_model(gemm_model(2, 3, 4), num_cores=1) as eng:
        assert eng.config.precision == "fp32"
        assert not {r.kernel.name for r in eng.plan.rows} & BF16_KERNELS


def test_cpu_without_bf16_runs_fp32(monkeypatch):
    monkeypatch.setattr(precision, "cpu_supports_bf16", lambda: False)
    model, feeds = conv_model(**CONVS["3x3"])
    with tilerun.compile_model(model, num_cores=1, precision="bf16") as eng:
        assert eng.config.precision == "fp32 (bf16 requested; CPU lacks avx512_bf16)"
        assert not {r.kernel.name for r in eng.plan.rows} & BF16_KERNELS
        got = eng.run(list(feeds.values()))[0]
    with tilerun.compile_model(model, num_cores=1) as eng:
        np.testing.assert_array_equal(got, eng.run(list(feeds.values()))[0])


def test_info_lists_matrix_extensions(capsys):
    from tilerun.cli import main
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("matrix"))
    assert "avx512_bf16" in line and "amx" in line and "vnni" in line


def test_cli_precision_flag_reaches_the_engine(capsys, tmp_path):
    from tilerun.cli import main
    path = tmp_path / "gemm.onnx"
    onnx.save(gemm_model(4, 8, 16), path)
    assert main(["benchmark", str(path), "--precision", "bf16", "--time", "0.05", "--warmup", "0",
                 "--num-cores", "1", "--quiet"]) == 0
    out = capsys.readouterr().out
    want = "bf16" if cpu_supports_bf16() else "fp32 (bf16 requested; CPU lacks avx512_bf16)"
    assert f"precision    {want}" in out
