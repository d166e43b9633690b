"""The attention pass and kernel: Q.K^T -> scale -> mask -> Softmax -> .V as one tiled op, against ONNX Runtime.

Graphs are built as exports write them (heads split by Reshape + Transpose,
merged back by Transpose + Reshape), checked on 1 core and all cores
(bit-identical) against ONNX Runtime, and the plan is checked to hold one
``Attention`` and no Softmax. Covered: masked keys, sequences that are not a
multiple of the query or key block, several key blocks (online softmax
rescaling), Sq != Sk, a full additive mask, keys given pre-transposed, NaN
propagation, and a graph whose scores are also an output (not fused).
"""
import math

import numpy as np
import pytest
from onnx import helper

import tilerun
from oracle import check_against_reference, make_model

F = np.float32


def _ops(model):
    with tilerun.compile_model(model) as eng:
        return [r.op_type for r in eng.plan.rows]


def _attention_model(b, sq, sk, heads, dh, mask_shape=(1, 1), div=True, extra_outputs=()):
    """Inputs q [b, sq, heads*dh], k and v [b, sk, heads*dh], mask [b, *mask_shape, sk]; output like q."""
    hid = heads * dh
    nodes = [helper.make_node("Reshape", ["q", "qshape"], ["q4"]),
             helper.make_node("Transpose", ["q4"], ["qh"], perm=[0, 2, 1, 3]),
             helper.make_node("Reshape", ["k", "kshape"], ["k4"]),
             helper.make_node("Transpose", ["k4"], ["kh"], perm=[0, 2, 1, 3]),
             helper.make_node("Transpose", ["kh"], ["kt"], perm=[0, 1, 3, 2]),
             helper.make_node("Reshape", ["v", "kshape"], ["v4"]),
             helper.make_node("Transpose", ["v4"], ["vh"], perm=[0, 2, 1, 3]),
             helper.make_node("MatMul", ["qh", "kt"], ["scores"]),
             helper.make_node("Div" if div else "Mul", ["scores", "scale"], ["scaled"]),
             helper.make_node("Add", ["scaled", "mask"], ["masked"]),
             helper.make_node("Softmax", ["masked"], ["probs"], axis=-1),
             helper.make_node("MatMul", ["probs", "vh"], ["ctx"]),
             helper.make_node("Transpose", ["ctx"], ["merged"], perm=[0, 2, 1, 3]),
             helper.make_node("Reshape", ["merged", "yshape"], ["y"])]
    scale = math.sqrt(dh) if div else 1 / math.sqrt(dh)
    inits = [("qshape", np.array([b, sq, heads, dh], np.int64)), ("kshape", np.array([b, sk, heads, dh], np.int64)),
             ("yshape", np.array([b, sq, hid], np.int64)), ("scale", np.array(scale, F))]
    ins = [("q", F, (b, sq, hid)), ("k", F, (b, sk, hid)), ("v", F, (b, sk, hid)),
           ("mask", F, (b,) + tuple(mask_shape) + (sk,))]
    outs = [("y", F, None)] + [(o, F, None) for o in extra_outputs]
    return make_model(nodes, ins, outs, inits)


def _feeds(rng, b, sq, sk, heads, dh, mask_shape=(1, 1), masked_tail=3):
    hid = heads * dh
    mask = np.zeros((b,) + tuple(mask_shape) + (sk,), F)
    mask[..., sk - masked_tail:] = -10000.0
    return {"q": rng.standard_normal((b, sq, hid)).astype(F), "k": rng.standard_normal((b, sk, hid)).astype(F),
            "v": rng.standard_normal((b, sk, hid)).astype(F), "mask": mask}


@pytest.mark.parametrize("b,sq,sk,heads,dh", [(1, 16, 16, 2, 8), (2, 37, 37, 3, 16), (1, 20, 50, 2, 64),
                                              (1, 130, 600, 2, 32)])
def test_attention_is_one_op_and_matches_onnxruntime(b, sq, sk, heads, dh):
    rng = np.random.default_rng(sq + sk)
    m = _attention_model(b, sq, sk, heads, dh)
    check_against_reference(m, _feeds(rng, b, sq, sk, heads, dh), use_ort=True, rtol=1e-4, atol=2e-5)
    ops = _ops(m)
    assert "Attention" in ops and "Softmax" not in ops and "Transpose" not in ops


def test_full_additive_mask_and_mul_scale():
    rng = np.random.default_rng(7)
    b, s, heads, dh = 2, 40, 2, 16
    m = _attention_model(b, s, s, heads, dh, mask_shape=(1, s), div=False)
    feeds = _feeds(rng, b, s, s, heads, dh, mask_shape=(1, s), masked_tail=0)
    feeds["mask"][:] = np.triu(np.full((s, s), -1e9, F), 1)  # causal as an additive tensor
    check_against_reference(m, feeds, use_ort=True, rtol=1e-4, atol=2e-5)
    assert "Attention" in _ops(m)


def test_pre_transposed_keys_without_mask():
    rng = np.random.default_rng(8)
    b, h, s, dh = 1, 2, 33, 16
    nodes = [helper.make_node("MatMul", ["q", "kt"], ["s"]), helper.make_node("Softmax", ["s"], ["p"], axis=3),
             helper.make_node("MatMul", ["p", "v"], ["y"])]
    m = make_model(nodes, [("q", F, (b, h, s, dh)), ("kt", F, (b, h, dh, s)), ("v", F, (b, h, s, dh))],
                   [("y", F, None)])
    feeds = {n: rng.standard_normal(shape).astype(F) for n, shape in
             (("q", (b, h, s, dh)), ("kt", (b, h, dh, s)), ("v", (b, h, s, dh)))}
    check_against_reference(m, feeds, use_ort=True, rtol=1e-4, atol=2e-5)
    assert _ops(m) == ["Attention", "Attention"]  # the K/V packing row, then the attention row


def test_nan_propagates_to_the_rows_that_see_it():
    rng = np.random.default_rng(9)
    b, s, heads, dh = 1, 24, 2, 8
    m = _attention_model(b, s, s, heads, dh)
    feeds = _feeds(rng, b, s, s, heads, dh)
    feeds["q"][0, 5, :dh] = np.nan   # query 5 of head 0
    y = check_against_reference(m, feeds, use_ort=True, rtol=1e-4, atol=2e-5)[0]
    assert np.isnan(y[0, 5, :dh]).all() and not np.isnan(y[0, 5, dh:]).any()
    assert np.isnan(y).sum() == dh
    feeds["q"][0, 5, :dh] = 0
    feeds["v"][0, 2, dh:] = np.nan   # key 2 of head 1: every query of head 1
    y = check_against_reference(m, feeds, use_ort=True, rtol=1e-4, atol=2e-5)[0]
    assert np.isnan(y[..., dh:]).all() and not np.isnan(y[..., :dh]).any()


def test_scores_used_elsewhere_stay_unfused():
    rng = np.random.default_rng(10)
    m = _attention_model(1, 12, 12, 2, 8, extra_outputs=("probs",))
    check_against_reference(m, _feeds(rng, 1, 12, 12, 2, 8), use_ort=True, rtol=1e-4, atol=2e-5)
    ops = _ops(m)
    assert "Attention" not in ops and "Softmax" in ops


@pytest.mark.parametrize("seq,batch", [(16, 1), (128, 4)])
def test_bert_like_with_every_fusion_matches_onnxruntime(seq, batch):
    from tilerun.bert_like import bert_like
    rng = np.random.default_rng(seq)
    m = bert_like(layers=2, hidden=64, heads=4)
    mask = np.ones((batch, seq), np.int64)
    mask[:, seq - seq // 4:] = 0
    feeds = {"input_ids": rng.integers(0, 1000, (batch, seq)).astype(np.int64), "attention_mask": mask}
    check_against_reference(m, feeds, use_ort=True, rtol=1e-3, atol=1e-4,
                            input_shapes={"input_ids": [batch, seq], "attention_mask": [batch, seq]})
    with tilerun.compile_model(m, input_shapes={"input_ids": [batch, seq], "attention_mask": [batch, seq]}) as eng:
        ops = [r.op_type for r in eng.plan.rows]
    assert ops.count("Attention") == 4 and "Softmax" not in ops and "Erf" not in ops


@pytest.mark.parametrize("sq,sk", [(45, 45), (20, 600)])
def test_causal_where_becomes_the_kernels_causal_flag(sq, sk):
    rng = np.random.default_rng(sq)
    b, heads, dh = 1, 2, 16
    m = _attention_model(b, sq, sk, heads, dh)
    g = m.graph
    # scaled -> Where(causal, scaled, finfo.min) -> Add(mask), as GPT-2 exports write it
    add = next(n for n in g.node if n.op_type == "Add")
    add.input[0] = "causal_scores"
    where = helper.make_node("Where", ["tri", "scaled", "fill"], ["causal_scores"])
    g.node.insert(list(g.node).index(add), where)
    tri = np.arange(sk)[None, :] <= np.arange(sq)[:, None] + (sk - sq)
    g.initializer.extend([helper.make_tensor("tri", 9, (1, 1, sq, sk), tri.reshape(-1).tolist()),
                          helper.make_tensor("fill", 1, (), [float(np.finfo(F).min)])])
    check_against_reference(m, _feeds(rng, b, sq, sk, heads, dh), use_ort=True, rtol=1e-4, atol=2e-5)
    ops = _ops(m)
    assert "Attention" in ops and "Where" not in ops and "Softmax" not in ops
