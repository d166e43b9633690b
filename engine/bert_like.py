"""A BERT-style encoder built with ``onnx.helper``, shaped like a Hugging Face export, with seeded weights.

Inputs ``input_ids`` and ``attention_mask`` (int64 ``[batch, seq]``, both
symbolic), output ``last_hidden_state`` (float32 ``[batch, seq, hidden]``).
Per layer, as exports lay it out: Q/K/V MatMul + bias, heads split by a
Reshape whose shape is computed from the input (Shape -> Gather -> Concat)
and a Transpose, scores scaled and masked (``(1 - mask) * -10000``),
Softmax, context merged back, output projection, residual Add +
LayerNormalization, an Erf-GELU feed-forward, residual Add +
LayerNormalization. Not here: token-type embeddings, a pooler, or reading
real weights.
"""
import numpy as np
import onnx
from onnx import helper, numpy_helper


def bert_like(layers=4, hidden=256, heads=4, vocab=1000, max_positions=512, seed=0):
    """The encoder as a ModelProto (opset 17)."""
    rng = np.random.default_rng(seed)
    b = _Builder(rng)
    dh = hidden // heads
    b.const("word_emb", rng.standard_normal((vocab, hidden)) * 0.02)
    b.const("pos_emb", rng.standard_normal((max_positions, hidden)) * 0.02)
    for name, value in [("zero", [0]), ("one_i", [1]), ("two", [2]), ("heads_dh", [heads, dh]), ("ax12", [1, 2])]:
        b.const(name, np.array(value, np.int64))
    b.const("one_f", np.array(1.0, np.float32))
    b.const("neg", np.array(-10000.0, np.float32))
    b.const("scale", np.array(1.0 / np.sqrt(dh), np.float32))
    b.const("half", np.array(0.5, np.float32))
    b.const("rsqrt2", np.array(1.0 / np.sqrt(2.0), np.float32))
    # Positions 0..seq-1 from the input's own shape, as exports compute them.
    b.node("Shape", ["input_ids"], ["ids_shape"])
    b.node("Gather", ["ids_shape", "one_i"], ["seq_len"], axis=0)
    b.node("Squeeze", ["seq_len", "zero"], ["seq_scalar"])
    b.const("zero_s", np.array(0, np.int64))
    b.const("one_s", np.array(1, np.int64))
    b.node("Range", ["zero_s", "seq_scalar", "one_s"], ["positions"])
    b.node("Gather", ["word_emb", "input_ids"], ["tok"], axis=0)
    b.node("Gather", ["pos_emb", "positions"], ["pos"], axis=0)
    b.node("Add", ["tok", "pos"], ["emb"])
    x = b.layer_norm("emb", hidden)
    b.node("Cast", ["attention_mask"], ["mask_f"], to=onnx.TensorProto.FLOAT)
    b.node("Sub", ["one_f", "mask_f"], ["mask_inv"])
    b.node("Mul", ["mask_inv", "neg"], ["mask_add2"])
    b.node("Unsqueeze", ["mask_add2", "ax12"], ["mask_add"])  # [batch, 1, 1, seq]
    for _ in range(layers):
        x = b.encoder_layer(x, hidden, heads)
    b.node("Identity", [x], ["last_hidden_state"])
    ints = onnx.TensorProto.INT64
    graph = helper.make_graph(
        b.nodes, "bert_like",
        [helper.make_tensor_value_info("input_ids", ints, ["batch", "seq"]),
         helper.make_tensor_value_info("attention_mask", ints, ["batch", "seq"])],
        [helper.make_tensor_value_info("last_hidden_state", onnx.TensorProto.FLOAT, ["batch", "seq", hidden])],
        b.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


class _Builder:
    def __init__(self, rng):
        self.rng, self.nodes, self.inits = rng, [], []

    def const(self, name, value):
        value = np.asarray(value)
        self.inits.append(numpy_helper.from_array(value.astype(np.float32) if value.dtype == np.float64 else value,
                                                  name))
        return name

    def fresh(self, stem):
        return f"{stem}{len(self.nodes)}"

    def node(self, op, ins, outs, **attrs):
        self.nodes.append(helper.make_node(op, ins, outs, name=self.fresh(op), **attrs))
        return outs[0]

    def dense(self, x, cin, cout):
        w = self.const(self.fresh("w"), self.rng.standard_normal((cin, cout)) * np.sqrt(1.0 / cin))
        bias = self.const(self.fresh("b"), self.rng.standard_normal(cout) * 0.02)
        y = self.node("MatMul", [x, w], [self.fresh("mm")])
        return self.node("Add", [y, bias], [self.fresh("dense")])

    def layer_norm(self, x, hidden):
        g = self.const(self.fresh("ln_g"), 1.0 + 0.1 * self.rng.standard_normal(hidden))
        beta = self.const(self.fresh("ln_b"), 0.1 * self.rng.standard_normal(hidden))
        return self.node("LayerNormalization", [x, g, beta], [self.fresh("ln")], axis=-1, epsilon=1e-12)

    def heads(self, x):
        """``[batch, seq, hidden]`` -> ``[batch, heads, seq, dh]``, the shape computed from ``x``."""
        shape = self.node("Shape", [x], [self.fresh("shape")])
        bs = self.node("Slice", [shape, "zero", "two"], [self.fresh("bs")])  # [batch, seq]
        target = self.node("Concat", [bs, "heads_dh"], [self.fresh("target")], axis=0)
        y = self.node("Reshape", [x, target], [self.fresh("split")])
        return self.node("Transpose", [y], [self.fresh("heads")], perm=[0, 2, 1, 3])

    def encoder_layer(self, x, hidden, heads):
        q, k, v = (self.heads(self.dense(x, hidden, hidden)) for _ in range(3))
        kt = self.node("Transpose", [k], [self.fresh("kt")], perm=[0, 1, 3, 2])
        s = self.node("MatMul", [q, kt], [self.fresh("scores")])
        s = self.node("Mul", [s, "scale"], [self.fresh("scaled")])
        s = self.node("Add", [s, "mask_add"], [self.fresh("masked")])
        p = self.node("Softmax", [s], [self.fresh("probs")], axis=-1)
        ctx = self.node("MatMul", [p, v], [self.fresh("ctx")])
        ctx = self.node("Transpose", [ctx], [self.fresh("merge")], perm=[0, 2, 1, 3])
        shape = self.node("Shape", [x], [self.fresh("xshape")])
        ctx = self.node("Reshape", [ctx, shape], [self.fresh("ctx_flat")])
        attn = self.dense(ctx, hidden, hidden)
        x = self.layer_norm(self.node("Add", [attn, x], [self.fresh("res1")]), hidden)
        h = self.dense(x, hidden, 4 * hidden)
        e = self.node("Erf", [self.node("Mul", [h, "rsqrt2"], [self.fresh("hs")])], [self.fresh("erf")])
        e = self.node("Add", [e, "one_f"], [self.fresh("erf1")])
        g = self.node("Mul", [self.node("Mul", [h, e], [self.fresh("he")]), "half"], [self.fresh("gelu")])
        out = self.dense(g, 4 * hidden, hidden)
        return self.layer_norm(self.node("Add", [out, x], [self.fresh("res2")]), hidden)
