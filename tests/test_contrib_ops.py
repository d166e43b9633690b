"""ONNX Runtime's ``com.microsoft`` transformer ops against ONNX Runtime itself, one by one and in an optimised BERT."""
import os

import numpy as np
import onnx
import pytest
from onnx import helper

import tilerun
from tilerun.bert_like import bert_like

from oracle import reference_outputs, run_tilerun

RNG = np.random.default_rng(11)
MS = "com.microsoft"


def _model(nodes, inputs, outputs, inits=()):
    vi = lambda n, t, s: helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(np.dtype(t)), s)  # noqa
    graph = helper.make_graph(nodes, "ms", [vi(*i) for i in inputs], [vi(*o) for o in outputs],
                              [onnx.numpy_helper.from_array(np.asarray(a), n) for n, a in inits])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(MS, 1)])
    model.ir_version = 8
    return model


def _check(model, feeds, rtol=1e-4, atol=1e-5):
    ours = run_tilerun(model, list(feeds.values()))
    ref = reference_outputs(model, feeds, use_ort=True)
    for a, r in zip(ours, ref):
        assert a.shape == r.shape and a.dtype == r.dtype
        np.testing.assert_allclose(a, r, rtol=rtol, atol=atol)


def _f(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("op,bias", [("FastGelu", True), ("FastGelu", False), ("BiasGelu", True), ("Gelu", False)])
def test_gelu_family(op, bias):
    ins = ["x"] + (["b"] if bias else [])
    model = _model([helper.make_node(op, ins, ["y"], domain=MS)], [("x", np.float32, [2, 5, 16])],
                   [("y", np.float32, None)], [("b", _f(16))] if bias else [])
    x = _f(2, 5, 16)
    x[0, 0, 0] = np.nan
    _check(model, {"x": x})


@pytest.mark.parametrize("bias,sum_out", [(True, True), (False, False), (True, False)])
def test_skip_layer_norm(bias, sum_out):
    ins = ["x", "skip", "g", "beta"] + (["bias"] if bias else [])
    outs = ["y"] + (["", "", "sum"] if sum_out else [])
    inits = [("g", 1 + 0.1 * _f(32)), ("beta", 0.1 * _f(32))] + ([("bias", _f(32))] if bias else [])
    model = _model([helper.make_node("SkipLayerNormalization", ins, outs, domain=MS, epsilon=1e-12)],
                   [("x", np.float32, [2, 7, 32]), ("skip", np.float32, [2, 7, 32])],
                   [("y", np.float32, None)] + ([("sum", np.float32, None)] if sum_out else []), inits)
    _check(model, {"x": _f(2, 7, 32), "skip": _f(2, 7, 32)})


@pytest.mark.parametrize("segments,mask", [(True, True), (False, False)])
def test_embed_layer_norm(segments, mask):
    ins = ["ids", "seg" if segments else "", "word", "pos", "segemb" if segments else "", "g", "beta"]
    ins += ["mask"] if mask else []
    inits = [("word", _f(50, 16)), ("pos", _f(32, 16)), ("g", 1 + 0.1 * _f(16)), ("beta", 0.1 * _f(16))]
    inits += [("segemb", _f(2, 16))] if segments else []
    inputs = [("ids", np.int32, [2, 9])] + ([("seg", np.int32, [2, 9])] if segments else [])
    inputs += [("mask", np.int32, [2, 9])] if mask else []
    model = _model([helper.make_node("EmbedLayerNormalization", ins, ["y", "mask_index"], domain=MS, epsilon=1e-12)],
                   inputs, [("y", np.float32, None), ("mask_index", np.int32, None)], inits)
    feeds = {"ids": RNG.integers(0, 50, (2, 9)).astype(np.int32)}
    if segments:
        feeds["seg"] = RNG.integers(0, 2, (2, 9)).astype(np.int32)
    if mask:
        feeds["mask"] = np.array([[1] * 9, [1] * 5 + [0] * 4], np.int32)
    _check(model, feeds)


@pytest.mark.parametrize("mask_kind,unidirectional", [("2d", 0), ("1d", 0), (None, 1), (None, 0)])
def test_packed_attention(mask_kind, unidirectional):
    b, s, h, heads = 2, 6, 32, 4
    ins = ["x", "w", "bias"] + (["mask"] if mask_kind else [])
    inputs = [("x", np.float32, [b, s, h])]
    feeds = {"x": _f(b, s, h)}
    if mask_kind == "2d":
        inputs.append(("mask", np.int32, [b, s]))
        feeds["mask"] = np.array([[1] * s, [1] * 3 + [0] * (s - 3)], np.int32)
    elif mask_kind == "1d":
        inputs.append(("mask", np.int32, [b]))
        feeds["mask"] = np.array([s, 4], np.int32)
    model = _model([helper.make_node("Attention", ins, ["y"], domain=MS, num_heads=heads,
                                     unidirectional=unidirectional)],
                   inputs, [("y", np.float32, None)], [("w", _f(h, 3 * h) * 0.2), ("bias", _f(3 * h))])
    _check(model, feeds)


def test_attention_with_past_is_refused():
    model = _model([helper.make_node("Attention", ["x", "w", "bias", "", "past"], ["y"], domain=MS, num_heads=2)],
                   [("x", np.float32, [1, 4, 8]), ("past", np.float32, [2, 1, 2, 3, 4])], [("y", np.float32, None)],
                   [("w", _f(8, 24)), ("bias", _f(24))])
    with pytest.raises(tilerun.ModelError, match="past is not supported"):
        tilerun.compile_model(model)


@pytest.mark.parametrize("ta,tb,alpha", [(0, 0, 1.0), (1, 0, 0.5), (0, 1, 2.0), (1, 1, 1.0)])
def test_fused_matmul(ta, tb, alpha):
    a = _f(2, 5, 3) if ta else _f(2, 3, 5)
    b = _f(4, 5) if tb else _f(5, 4)
    model = _model([helper.make_node("FusedMatMul", ["a", "b"], ["y"], domain=MS, transA=ta, transB=tb, alpha=alpha)],
                   [("a", np.float32, list(a.shape)), ("b", np.float32, list(b.shape))], [("y", np.float32, None)])
    _check(model, {"a": a, "b": b})


def test_bias_add():
    model = _model([helper.make_node("BiasAdd", ["x", "bias", "skip"], ["y"], domain=MS)],
                   [("x", np.float32, [2, 3, 8]), ("skip", np.float32, [2, 3, 8])], [("y", np.float32, None)],
                   [("bias", _f(8))])
    x, skip = _f(2, 3, 8), _f(2, 3, 8)
    (y,) = run_tilerun(model, [x, skip])  # ONNX Runtime has BiasAdd on CUDA only: numpy judges
    np.testing.assert_allclose(y, x + onnx.numpy_helper.to_array(model.graph.initializer[0]) + skip, rtol=1e-6)


def test_ort_optimized_bert_matches_original(tmp_path):
    pytest.importorskip("sympy", reason="ONNX Runtime's transformer optimizer needs sympy")
    optimizer = pytest.importorskip("onnxruntime.transformers.optimizer")
    model = bert_like(layers=2, hidden=64, heads=4, vocab=100, max_positions=64, mask="hf", gelu="div",
                      token_type_ids=True, layout="torch")
    path = os.path.join(tmp_path, "bert.onnx")
    onnx.save(model, path)
    optimized = optimizer.optimize_model(path, model_type="bert", num_heads=4, hidden_size=64, opt_level=0).model
    fused = {n.op_type for n in optimized.graph.node if n.domain == MS}
    assert {"Attention", "SkipLayerNormalization", "BiasGelu", "EmbedLayerNormalization"} <= fused, fused
    feeds = {"input_ids": RNG.integers(0, 100, (2, 16)), "attention_mask": np.ones((2, 16), np.int64),
             "token_type_ids": RNG.integers(0, 2, (2, 16))}
    feeds["attention_mask"][1, 10:] = 0
    (ours,) = run_tilerun(optimized, [feeds[i.name] for i in optimized.graph.input])
    (ref,) = reference_outputs(model, feeds, use_ort=True)
    np.testing.assert_allclose(ours, ref, rtol=1e-3, atol=1e-4 * np.abs(ref).max())


def test_ort_optimized_real_export_matches_original(tmp_path):
    """ONNX Runtime's optimizer on the dynamo BERT export (SkipLayerNormalization, BiasGelu) against the original."""
    pytest.importorskip("sympy", reason="ONNX Runtime's transformer optimizer needs sympy")
    optimizer = pytest.importorskip("onnxruntime.transformers.optimizer")
    path = os.path.join(os.path.dirname(__file__), "data", "bert_tiny_dynamo.onnx")
    optimized = optimizer.optimize_model(path, model_type="bert", num_heads=2, hidden_size=32, opt_level=0).model
    assert {"SkipLayerNormalization", "BiasGelu"} <= {n.op_type for n in optimized.graph.node if n.domain == MS}
    mask = np.ones((4, 32), np.int64)
    mask[-1, 16:] = 0
    feeds = {"input_ids": RNG.integers(0, 100, (4, 32)), "attention_mask": mask}
    ours = run_tilerun(optimized, [feeds[i.name] for i in optimized.graph.input])
    refs = reference_outputs(onnx.load(path), feeds, use_ort=True)
    for a, r in zip(ours, refs):
        np.testing.assert_allclose(a, r, rtol=1e-3, atol=1e-4 * np.abs(r).max())
