"""Real torch.onnx exports of Hugging Face models (random-init tiny configs) against ONNX Runtime.

``tests/data`` holds six exports made with torch 2.13 and transformers 5
from configs with hidden size 32, 2 layers and 2 heads (no downloaded
weights): BERT and RoBERTa through the dynamo exporter, DistilBERT, GPT-2
(no KV cache, a causal mask), a sentence-transformers style MiniLM (BERT with
masked mean pooling and L2 normalisation: ReduceSum, Clip, ReduceL2) and ViT
(32x32 images, 8x8 patches: Conv, the class token's Concat/Expand) through
the TorchScript exporter, all opset 17. Together they carry the mask
arithmetic of recent transformers (And, IsNaN, Where over an expanded
bool mask), GatherND, GatherElements, CumSum (RoBERTa's position ids) and
Range. Outputs must equal ONNX Runtime's at batch 1 and 4, seq 16, 128 and 384,
with the last row half padded.
"""
import os

import numpy as np
import onnx
import pytest

from oracle import reference_outputs, run_tilerun

DATA = os.path.join(os.path.dirname(__file__), "data")
EXPORTS = ["bert_tiny_dynamo", "distilbert_tiny_ts", "roberta_tiny_dynamo", "gpt2_tiny_ts", "minilm_tiny_ts"]


@pytest.mark.parametrize("seq", [16, 128, 384])
@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("name", EXPORTS)
def test_export_matches_onnxruntime(name, batch, seq):
    model = onnx.load(os.path.join(DATA, name + ".onnx"))
    rng = np.random.default_rng(batch * 1000 + seq)
    mask = np.ones((batch, seq), np.int64)
    mask[-1, seq // 2:] = 0
    feeds = {"input_ids": rng.integers(0, 100, (batch, seq)), "attention_mask": mask}
    ours = run_tilerun(model, [feeds[i.name] for i in model.graph.input])
    refs = reference_outputs(model, feeds, use_ort=True)
    assert len(ours) == len(refs)
    for a, r in zip(ours, refs):  # last_hidden_state, and the pooler output where the model has one
        assert a.shape == r.shape
        np.testing.assert_allclose(a, r, rtol=1e-3, atol=1e-4 * float(np.abs(r).max()))


@pytest.mark.parametrize("batch", [1, 4])
def test_vit_export_matches_onnxruntime(batch):
    model = onnx.load(os.path.join(DATA, "vit_tiny_ts.onnx"))
    x = np.random.default_rng(batch).standard_normal((batch, 3, 32, 32)).astype(np.float32)
    ours = run_tilerun(model, [x])
    ref = reference_outputs(model, {"pixel_values": x}, use_ort=True)
    assert ours[0].shape == ref[0].shape == (batch, 17, 32)
    np.testing.assert_allclose(ours[0], ref[0], rtol=1e-3, atol=1e-4 * float(np.abs(ref[0]).max()))
