"""Pooling, softmax and normalization ops against the reference evaluator (and ONNX Runtime)."""
import numpy as np
import pytest
from onnx import helper

import tilerun
from oracle import check_against_reference, make_model, run_tilerun
from tilerun.errors import ModelError
from tilerun.ops import pool as pool_ops

F = np.float32


def _run(op, x, attrs, opset=19, use_ort=False, inits=(), extra_inputs=(), outputs=("y",), **tol):
    node = helper.make_node(op, ["x"] + [n for n, _ in inits] + list(extra_inputs), list(outputs), **attrs)
    m = make_model([node], [("x", F, x.shape)], [(o, F, None) for o in outputs if o], inits, opset=opset)
    return check_against_reference(m, {"x": x}, use_ort=use_ort, **tol)


def _x(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(F)


POOL_CASES = [
    dict(kernel_shape=[3, 3]),
    dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
    dict(kernel_shape=[3, 2], strides=[2, 2], pads=[1, 0, 2, 1], ceil_mode=1),
    dict(kernel_shape=[3, 3], strides=[2, 3], pads=[1, 2, 0, 1], ceil_mode=1),
    dict(kernel_shape=[2, 3], strides=[3, 2], ceil_mode=1),
    dict(kernel_shape=[2, 2], strides=[2, 2], auto_pad="SAME_UPPER"),
    dict(kernel_shape=[3, 2], auto_pad="SAME_LOWER", strides=[2, 1]),
    dict(kernel_shape=[3, 2], auto_pad="VALID", strides=[2, 2]),
    dict(kernel_shape=[3, 3], dilations=[2, 1], pads=[2, 1, 1, 1]),
    dict(kernel_shape=[2, 2], dilations=[2, 2], strides=[2, 1], ceil_mode=1),
    dict(kernel_shape=[5, 5], strides=[1, 1], pads=[2, 2, 2, 2]),
]


@pytest.fixture(params=["f32_pool2d_cv", "f32_pool2d"])
def pool_kernel(request, monkeypatch):
    """Each 2-D pool kernel in turn: channels along the vectors (small planes, the default here) or along the
    rows (larger planes, forced by a zero ``POOL_CV_MAX_PIXELS``)."""
    if request.param == "f32_pool2d":
        monkeypatch.setattr(pool_ops, "POOL_CV_MAX_PIXELS", 0)
    return request.param


def _pool_kernels(op, x, attrs):
    m = make_model([helper.make_node(op, ["x"], ["y"], **attrs)], [("x", F, x.shape)], [("y", F, None)])
    with tilerun.compile_model(m, num_cores=1) as eng:
        return {r.kernel.name for r in eng.plan.rows}


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
@pytest.mark.parametrize("attrs", POOL_CASES)
def test_pool_2d(op, attrs, pool_kernel):
    x = _x((2, 3, 11, 13), 1)
    # The reference evaluator's MaxPool sizes SAME_LOWER with floor(in/stride) and pads it
    # like SAME_UPPER, against the spec; ONNX Runtime follows the spec.
    _run(op, x, attrs, use_ort=attrs.get("auto_pad", "").startswith("SAME"))
    takes = "dilations" not in attrs and (pool_kernel == "f32_pool2d_cv" or attrs.get("strides", [1, 1])[1] <= 2)
    assert (pool_kernel in _pool_kernels(op, x, attrs)) == takes


@pytest.mark.parametrize("attrs", [a for a in POOL_CASES if "auto_pad" not in a])
def test_avgpool_count_include_pad(attrs, pool_kernel):
    x = _x((1, 2, 10, 9), 2)
    _run("AveragePool", x, dict(attrs, count_include_pad=1))


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
@pytest.mark.parametrize("shape, attrs", [
    ((2, 21, 7, 7), dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1])),                      # two images, 21 channels
    ((1, 40, 14, 14), dict(kernel_shape=[3, 3], strides=[2, 2], pads=[0, 0, 1, 1])),    # Inception's reductions
    ((1, 35, 27, 26), dict(kernel_shape=[3, 2], strides=[1, 3], pads=[1, 0, 2, 1], ceil_mode=1)),
])
def test_pool_channel_vectors(op, shape, attrs):
    # Channel blocks of VW planes, the last one partial, split over two cores; a NaN plane stays NaN (ONNX
    # Runtime gives -FLT_MAX in some all-NaN max windows, the reference evaluator fails on them).
    x = _x(shape, 12)
    m = make_model([helper.make_node(op, ["x"], ["y"], **attrs)], [("x", F, x.shape)], [("y", F, None)])
    clean = check_against_reference(m, {"x": x}, use_ort=True)[0]
    x[0, 5] = np.nan
    y = run_tilerun(m, [x], num_cores=2)[0]
    assert np.isnan(y[0, 5]).all()
    y[0, 5] = clean[0, 5]
    np.testing.assert_array_equal(y, clean)
    assert "f32_pool2d_cv" in _pool_kernels(op, x, attrs)


@pytest.mark.parametrize("cip", [0, 1])
@pytest.mark.parametrize("attrs", [
    dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1),
    dict(kernel_shape=[3, 2], strides=[2, 2], pads=[0, 1, 1, 0], ceil_mode=1),
    dict(kernel_shape=[2, 2], strides=[3, 3], ceil_mode=1),
    dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1, dilations=[1, 2]),
])
def test_avgpool_ceil_mode_edges_match_both_oracles(attrs, cip):
    x = _x((1, 3, 8, 10), 3)
    for use_ort in (False, True):
        _run("AveragePool", x, dict(attrs, count_include_pad=cip), use_ort=use_ort)


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
def test_pool_1d_and_3d(op):
    _run(op, _x((2, 4, 17), 4), dict(kernel_shape=[3], strides=[2], pads=[1, 2], ceil_mode=1))
    _run(op, _x((1, 2, 5, 6, 7), 5), dict(kernel_shape=[2, 3, 2], strides=[2, 1, 2], pads=[1, 0, 1, 0, 1, 1]))


@pytest.mark.parametrize("opset", [7, 8, 10, 11, 12])
def test_pool_old_opsets(opset):
    x = _x((1, 3, 9, 9), 6)
    _run("MaxPool", x, dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]), opset=opset)
    extra = {"count_include_pad": 1} if opset >= 7 else {}
    _run("AveragePool", x, dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], **extra), opset=opset)


def test_pool_random_shapes():
    rng = np.random.default_rng(7)
    for trial in range(8):
        nd = int(rng.integers(1, 3)) + (trial == 7)
        spatial = [int(v) for v in rng.integers(4, 14, nd)]
        k = [int(v) for v in rng.integers(1, 4, nd)]
        d = [int(v) for v in rng.integers(1, 3, nd)]
        pads = [int(rng.integers(0, a)) for a in k] + [int(rng.integers(0, a)) for a in k]
        attrs = dict(kernel_shape=k, strides=[int(v) for v in rng.integers(1, 4, nd)], pads=pads,
                     dilations=d, ceil_mode=int(rng.integers(0, 2)))
        x = _x([int(rng.integers(1, 3)), int(rng.integers(1, 5))] + spatial, trial)
        # ONNX Runtime: the reference evaluator indexes out of bounds on some dilated ceil-mode windows.
        _run("MaxPool", x, attrs, use_ort=True)
        _run("AveragePool", x, dict(attrs, count_include_pad=int(rng.integers(0, 2))), use_ort=True)


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
@pytest.mark.parametrize("shape", [(2, 3, 7, 5), (1, 64, 3), (2, 3, 2, 3, 4), (3, 40, 1, 1)])
def test_global_pool(op, shape):
    # The reference evaluator's GlobalMaxPool mis-shapes ranks other than 4.
    _run(op, _x(shape, 8), {}, use_ort=op == "GlobalMaxPool")


def test_maxpool_large_tiles_bit_identical():
    _run("MaxPool", _x((1, 32, 56, 56), 9), dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]))
    _run("AveragePool", _x((1, 32, 56, 56), 9), dict(kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1]))


@pytest.mark.parametrize("attrs", [
    dict(kernel_shape=[3, 3], strides=[2, 2]),                                   # squeezenet's pools
    dict(kernel_shape=[2, 2], strides=[2, 2]),                                   # VGG's
    dict(kernel_shape=[3, 4], strides=[2, 2], pads=[1, 1, 1, 2], ceil_mode=1),  # even taps, padded, ceil
])
def test_maxpool_stride2_rows_of_several_vectors(attrs, monkeypatch):
    # 55 outputs a row: whole vectors take the rows' max first, then one
    # deinterleave per tap; the last rows and the ragged tail take the other path.
    monkeypatch.setattr(pool_ops, "POOL_CV_MAX_PIXELS", 0)
    x = _x((2, 5, 23, 111), 11)
    _run("MaxPool", x, attrs)
    assert "f32_pool2d" in _pool_kernels("MaxPool", x, attrs)


def _compile_error(op, x, attrs, outputs=("y",), opset=19, inits=()):
    node = helper.make_node(op, ["x"] + [n for n, _ in inits], list(outputs), **attrs)
    m = make_model([node], [("x", F, x.shape)], [(o, F, None) for o in outputs if o], inits, opset=opset)
    with pytest.raises(ModelError) as e:
        tilerun.compile_model(m, num_cores=1)
    return str(e.value)


def test_pool_errors():
    x = _x((1, 2, 6, 6))
    assert "Indices" in _compile_error("MaxPool", x, dict(kernel_shape=[2, 2]), outputs=("y", "idx"))
    assert "kernel_shape" in _compile_error("MaxPool", x, dict(kernel_shape=[2]))
    assert "pads" in _compile_error("AveragePool", x, dict(kernel_shape=[2, 2], pads=[2, 0, 0, 0]))
    assert "larger" in _compile_error("MaxPool", x, dict(kernel_shape=[8, 2]))


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("opset", [11, 13])
@pytest.mark.parametrize("axis", [None, 0, 1, 2, -1, -2])
def test_softmax(op, opset, axis):
    x = _x((3, 4, 5, 6), 10) * 5
    attrs = {} if axis is None else {"axis": axis}
    # The reference evaluator applies opset-13 Softmax semantics at every opset.
    _run(op, x, attrs, opset=opset, use_ort=opset < 13)


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_softmax_large_and_opset7(op):
    _run(op, _x((2, 10, 100), 11) * 30, {}, opset=7, use_ort=True)
    # Large logits: the reference evaluator's LogSoftmax underflows to -inf, ONNX Runtime does not.
    _run(op, _x((1, 600, 300), 12) * 30, {"axis": 1}, opset=13, use_ort=True)
    _run(op, _x((64, 2048), 13) * 30, {}, opset=13, use_ort=True)



@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("n", [1, 15, 16, 17, 63, 64, 65, 129, 4099])
@pytest.mark.parametrize("axis", [-1, 0])
def test_softmax_against_float64(op, n, axis):
    # Rows (axis -1) take the exponentials and their sum in one vector pass, four vectors at a time, then one
    # vector at a time with a masked tail: widths around those steps. Logits spread over +-90 (exp's
    # saturation and underflow ends); every output within a few float32 ulps of float64's, LogSoftmax's too
    # next to a large max (``(x - max) - log(sum)``).
    x = _x((5, n), 15) * 30
    x[1] = np.linspace(-90, 90, n, dtype=F)
    x[2] = 7.0  # every lane equal: 1/n exactly
    x = np.ascontiguousarray(x if axis == -1 else x.T)
    for cores in (1, 2):
        m = make_model([helper.make_node(op, ["x"], ["y"], axis=axis)], [("x", F, x.shape)], [("y", F, None)])
        with tilerun.compile_model(m, num_cores=cores) as eng:
            y = eng.run([x])[0].astype(np.float64)
        d = x.astype(np.float64) - x.max(axis=axis, keepdims=True)
        log_s = np.log(np.exp(d).sum(axis=axis, keepdims=True))
        if op == "Softmax":
            np.testing.assert_allclose(y, np.exp(d - log_s), rtol=2e-5, atol=1e-37)
            np.testing.assert_allclose(y.sum(axis=axis), 1.0, rtol=1e-5)
        else:
            np.testing.assert_allclose(y, d - log_s, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("op, axis", [("Softmax", -1), ("LogSoftmax", -1), ("GlobalMaxPool", None)])
def test_long_row_max_keeps_nan_and_infinities(op, axis):
    # Rows of 1000 (15 runs of four vectors, then a ragged tail) take the max four vectors at a time. A NaN
    # in the vectors' part or in the tail makes the row's max NaN, as ReduceMax's and numpy's: Softmax's rows
    # are then NaN as in ONNX Runtime, and GlobalMaxPool gives NaN where ONNX Runtime skips the NaN, so it is
    # checked against the reference evaluator (numpy's max).
    x = _x((6, 1, 1000), 14) * 30
    x[0, 0, 10] = np.nan
    x[1, 0, 995] = np.nan
    x[2, 0, 500] = np.inf
    x[3, 0, :] = -np.inf
    x[4, 0, 999] = 1e3  # the max in the tail
    if op == "GlobalMaxPool":
        y = _run(op, x.reshape(6, 1, 1, 1000), {})[0]
        assert np.isnan(y[:2]).all() and y[2] == np.inf and y[3] == -np.inf and y[4] == 1e3
    else:
        y = _run(op, x.reshape(6, 1000), {"axis": axis}, use_ort=True)[0]
        assert np.isnan(y[:2]).all() and not np.isnan(y[4:]).any()


def _lrn_spec(x, size, alpha=1e-4, beta=0.75, bias=1.0):
    """LRN written straight from the ONNX operator text, in float64."""
    x64, C = x.astype(np.float64), x.shape[1]
    sq = np.zeros_like(x64)
    for c in range(C):
        lo, hi = max(0, c - (size - 1) // 2), min(C - 1, c + -(-(size - 1) // 2))
        sq[:, c] = (x64[:, lo:hi + 1] ** 2).sum(axis=1)
    return (x64 / (bias + alpha / size * sq) ** beta).astype(F)


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 9])
def test_lrn(size):
    x = _x((2, 7, 5, 6), 14) * 3
    attrs = dict(size=size, alpha=1e-2, beta=0.75, bias=2.0)
    # The reference evaluator's LRN window is wrong for channels ≥ 2, and ONNX Runtime takes
    # only odd sizes on 4-D inputs: compare with the spec formula, and with ONNX Runtime where it runs.
    m = make_model([helper.make_node("LRN", ["x"], ["y"], **attrs)], [("x", F, x.shape)], [("y", F, None)], opset=13)
    one = run_tilerun(m, [x], num_cores=1)[0]
    np.testing.assert_array_equal(one, run_tilerun(m, [x])[0])
    np.testing.assert_allclose(one, _lrn_spec(x, **attrs), rtol=1e-5, atol=1e-6)
    if size % 2:
        check_against_reference(m, {"x": x}, use_ort=True)


def test_lrn_defaults_and_3d():
    x = _x((1, 10, 4, 3, 2), 15)
    m = make_model([helper.make_node("LRN", ["x"], ["y"], size=3)], [("x", F, x.shape)], [("y", F, None)], opset=7)
    np.testing.assert_allclose(run_tilerun(m, [x], num_cores=1)[0], _lrn_spec(x, 3), rtol=1e-5, atol=1e-6)


def _bn_inits(c, seed, shape=None):
    rng = np.random.default_rng(seed)
    shape = shape or (c,)
    return [("s", rng.standard_normal(shape).astype(F)), ("b", rng.standard_normal(shape).astype(F)),
            ("mean", rng.standard_normal(shape).astype(F)), ("var", rng.random(shape).astype(F) + 0.1)]


@pytest.mark.parametrize("shape", [(2, 3), (2, 5, 7), (1, 4, 6, 5), (2, 3, 2, 3, 4)])
@pytest.mark.parametrize("opset", [7, 9, 15])
def test_batchnorm(shape, opset):
    # The reference evaluator fails on BatchNormalization before opset 14.
    _run("BatchNormalization", _x(shape, 16), dict(epsilon=1e-3), opset=opset, inits=_bn_inits(shape[1], 17),
         use_ort=opset < 14)


def test_batchnorm_spatial0_opset7():
    shape = (2, 3, 4, 5)
    _run("BatchNormalization", _x(shape, 18), dict(spatial=0), opset=7, inits=_bn_inits(3, 19, shape[1:]),
         use_ort=True)


def test_batchnorm_errors():
    x = _x((1, 3, 4, 4))
    msg = _compile_error("BatchNormalization", x, {}, outputs=("y", "rm", "rv"), opset=15, inits=_bn_inits(3, 0))
    assert "training mode" in msg


@pytest.mark.parametrize("shape", [(2, 3, 7), (1, 4, 6, 5), (2, 2, 3, 3, 3)])
def test_instance_norm(shape):
    rng = np.random.default_rng(20)
    inits = [("s", rng.standard_normal(shape[1]).astype(F)), ("b", rng.standard_normal(shape[1]).astype(F))]
    _run("InstanceNormalization", _x(shape, 21) * 3 + 1, dict(epsilon=1e-4), opset=17, inits=inits)


@pytest.mark.parametrize("axis", [-1, -2, 1])
@pytest.mark.parametrize("with_bias", [True, False])
def test_layer_norm(axis, with_bias):
    shape = (2, 5, 6, 8)
    norm = shape[axis:]
    rng = np.random.default_rng(22)
    inits = [("s", rng.standard_normal(norm).astype(F))]
    if with_bias:
        inits.append(("b", rng.standard_normal(norm[-1:]).astype(F)))
    _run("LayerNormalization", _x(shape, 23) * 2 + 3, dict(axis=axis, epsilon=1e-5), opset=17, inits=inits)


def test_layer_norm_runtime_scale_and_stats():
    shape = (3, 4, 16)
    rng = np.random.default_rng(24)
    x, s, b = _x(shape, 25), rng.standard_normal(16).astype(F), rng.standard_normal(16).astype(F)
    node = helper.make_node("LayerNormalization", ["x", "s", "b"], ["y", "mean", "inv"], axis=-1)
    m = make_model([node], [("x", F, shape), ("s", F, (16,)), ("b", F, (16,))],
                   [("y", F, None), ("mean", F, None), ("inv", F, None)], opset=17)
    check_against_reference(m, {"x": x, "s": s, "b": b})


@pytest.mark.parametrize("shape", [(2, 3), (1, 4, 6, 5)])
def test_batchnorm_runtime_statistics(shape):
    c = shape[1]
    stats = dict(_bn_inits(c, 26))
    node = helper.make_node("BatchNormalization", ["x", "s", "b", "mean", "var"], ["y"], epsilon=1e-4)
    m = make_model([node], [("x", F, shape)] + [(k, F, (c,)) for k in ("s", "b", "mean", "var")],
                   [("y", F, None)], opset=15)
    check_against_reference(m, {"x": _x(shape, 27), **stats})


_CONFORMANCE = ("maxpool", "averagepool", "globalaveragepool", "globalmaxpool", "softmax", "logsoftmax", "lrn",
                "batchnorm", "instancenorm", "layer_normalization")
_REJECTED = ("uint8", "with_argmax")  # outside tilerun's scope: must fail at compile time


def test_onnx_conformance_cases():
    """Every ONNX conformance case of these ops runs and matches, or fails to compile clearly."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from onnx.backend.test.case.node import collect_testcases
        cases = [c for c in collect_testcases() if c.model is not None and "_expanded" not in c.name
                 and c.name[len("test_"):].startswith(_CONFORMANCE)]
    ran = 0
    for case in cases:
        if any(r in case.name for r in _REJECTED):
            with pytest.raises(ModelError):
                tilerun.compile_model(case.model, num_cores=1)
            continue
        for ins, outs in case.data_sets:
            got = run_tilerun(case.model, list(ins))
            assert len(got) == len(outs), case.name
            for g, o in zip(got, outs):
                assert g.shape == o.shape, case.name
                # Some cases store expected values rounded to 4 decimals.
                np.testing.assert_allclose(g, o, rtol=1e-3, atol=1e-4, err_msg=case.name)
            ran += 1
    assert ran >= 70
