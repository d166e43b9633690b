"""Transformer test models shaped like Hugging Face exports, against ONNX Runtime.

Every ``bert_like`` variant (mask arithmetic of older and recent
transformers, decomposed LayerNorm, token-type ids, torch's head layout)
and both causal-mask forms of ``gpt2_like``, at seq 16/128/384 and batch
1/4, compared with rtol 1e-3 and atol 1e-4 times the output's largest
magnitude. Padding rows of the attention mask are exercised. The small
shape at seq 16 is the fast tier; longer sequences and BERT-base shape are
slow.
"""
import numpy as np
import pytest

from tilerun.bert_like import BERT_BASE, BERT_SMALL, bert_like, gpt2_like

from oracle import reference_outputs, run_tilerun

VARIANTS = {
    "additive": {},
    "hf": dict(mask="hf", gelu="div", layout="torch"),
    "sdpa": dict(mask="sdpa", token_type_ids=True),
    "decomposed": dict(layer_norm="decomposed", mask="hf"),
}


def _feeds(model, batch, seq, vocab=1000, seed=0):
    rng = np.random.default_rng(seed)
    feeds = {"input_ids": rng.integers(0, vocab, (batch, seq))}
    names = [i.name for i in model.graph.input]
    if "attention_mask" in names:
        mask = np.ones((batch, seq), np.int64)
        mask[-1, seq // 2 + 1:] = 0  # the last row padded
        feeds["attention_mask"] = mask
    if "token_type_ids" in names:
        feeds["token_type_ids"] = (rng.random((batch, seq)) < 0.5).astype(np.int64)
    return feeds


def _check(model, feeds):
    (ours,) = run_tilerun(model, list(feeds.values()))
    (ref,) = reference_outputs(model, feeds, use_ort=True)
    assert ours.shape == ref.shape
    assert np.isfinite(ours).all()
    np.testing.assert_allclose(ours, ref, rtol=1e-3, atol=1e-4 * float(np.abs(ref).max()))


def _shape_params(fast):
    out = []
    for seq in (16, 128, 384):
        for batch in (1, 4):
            marks = [] if (seq == 16 and fast) else [pytest.mark.slow]
            out.append(pytest.param(seq, batch, id=f"s{seq}b{batch}", marks=marks))
    return out


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("seq,batch", _shape_params(fast=True))
def test_bert_small_variants(variant, seq, batch):
    model = bert_like(**BERT_SMALL, **VARIANTS[variant])
    _check(model, _feeds(model, batch, seq))


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["additive", "sdpa"])
@pytest.mark.parametrize("seq,batch", _shape_params(fast=False))
def test_bert_base_shape(variant, seq, batch):
    model = bert_like(**BERT_BASE, **VARIANTS[variant])
    _check(model, _feeds(model, batch, seq))


@pytest.mark.parametrize("causal", ["trilu", "where"])
@pytest.mark.parametrize("seq,batch", _shape_params(fast=True))
def test_gpt2_like(causal, seq, batch):
    model = gpt2_like(layers=2, hidden=128, heads=4, causal=causal)
    _check(model, _feeds(model, batch, seq))


def test_gpt2_is_causal():
    """Changing a later token leaves earlier positions' logits untouched."""
    model = gpt2_like(layers=1, hidden=64, heads=4, vocab=50)
    ids = np.random.default_rng(1).integers(0, 50, (1, 12))
    other = ids.copy()
    other[0, 8] = (other[0, 8] + 1) % 50
    (a,) = run_tilerun(model, [ids])
    (b,) = run_tilerun(model, [other])
    np.testing.assert_array_equal(a[0, :8], b[0, :8])
    assert not np.allclose(a[0, 8:], b[0, 8:])


def test_bert_like_rejects_unknown_option():
    with pytest.raises(ValueError, match="mask"):
        bert_like(mask="nope")
