"""BERT-style encoders and a GPT-2-style decoder built with ``onnx.helper``, shaped like Hugging Face exports.

``bert_like``: inputs ``input_ids`` and ``attention_mask`` (and, when asked,
``token_type_ids``; int64 ``[batch, seq]``, symbolic), output
``last_hidden_state`` (float32 ``[batch, seq, hidden]``). Per layer, as
exports lay it out: Q/K/V MatMul + bias, heads split by a Reshape whose
shape is computed from the input (Shape -> Gather -> Concat) and a
Transpose, scores scaled and masked, Softmax, context merged back, output
projection, residual Add + LayerNorm, an Erf-GELU feed-forward, residual
Add + LayerNorm. Options mirror what different exporters write:

* ``mask``: ``"additive"`` (``(1 - mask) * -10000``), ``"hf"`` (older
  transformers: the mask unsqueezed, cast, ``(1 - m) * finfo.min``) or
  ``"sdpa"`` (recent transformers: the bool mask expanded to
  ``[batch, 1, seq, seq]``, ``And``-ed, ``Where(m, 0, finfo.min)``, and the
  probabilities of fully masked rows zeroed by ``Where(IsNaN(p), 0, p)``);
* ``layer_norm``: ``"op"`` (LayerNormalization, opset 17) or
  ``"decomposed"`` (ReduceMean/Sub/Pow/Add/Sqrt/Div, as opset < 17 exports;
  the model is then opset 14);
* ``token_type_ids``: a third input with its own embedding table;
* ``gelu``: ``"mul"`` (``x * erf(x * (1/sqrt 2))``) or ``"div"``
  (``erf(x / sqrt 2)``, as torch writes it);
* ``layout``: ``"dynamic"`` (head reshapes from ``Shape``, K transposed
  after the split, scores times ``1/sqrt(dh)``) or ``"torch"`` (the classic
  torch.onnx BERT export: positions sliced from a constant ``position_ids``
  buffer, constant ``[0, 0, heads, dh]`` reshapes, K transposed by
  ``[0, 2, 3, 1]``, scores divided by ``sqrt(dh)``), the form ONNX
  Runtime's transformer optimizer fuses into ``EmbedLayerNormalization``
  and ``Attention`` (with ``mask="hf"``).

``BERT_BASE`` and ``BERT_SMALL`` are the two shapes tests use.
``gpt2_like``: a decoder (``input_ids`` in, ``logits`` out through the tied
embedding) with a causal mask written as ``Trilu`` or as a slice of a
constant lower-triangle buffer with ``Where``, and the tanh GELU. Not here:
a pooler, KV caches, or reading real weights.
"""
import numpy as np
import onnx
from onnx import helper, numpy_helper

BERT_BASE = dict(layers=12, hidden=768, heads=12)
BERT_SMALL = dict(layers=4, hidden=256, heads=4)
F32_MIN = float(np.finfo(np.float32).min)


def bert_like(layers=4, hidden=256, heads=4, vocab=1000, max_positions=512, seed=0, *, mask="additive",
              layer_norm="op", token_type_ids=False, gelu="mul", layout="dynamic"):
    """The encoder as a ModelProto (opset 17; 14 with ``layer_norm="decomposed"``)."""
    if mask not in ("additive", "hf", "sdpa") or layer_norm not in ("op", "decomposed") or gelu not in ("mul", "div") \
            or layout not in ("dynamic", "torch"):
        raise ValueError(f"unknown option: mask={mask!r}, layer_norm={layer_norm!r}, gelu={gelu!r}, layout={layout!r}")
    rng = np.random.default_rng(seed)
    b = _Builder(rng, decomposed_ln=layer_norm == "decomposed", gelu=gelu, torch_layout=layout == "torch")
    dh = hidden // heads
    b.const("word_emb", rng.standard_normal((vocab, hidden)) * 0.02)
    b.const("pos_emb", rng.standard_normal((max_positions, hidden)) * 0.02)
    _common_consts(b, heads, dh)
    b.const("neg", np.array(-10000.0, np.float32))
    emb = b.embeddings(max_positions)
    if token_type_ids:
        b.const("type_emb", rng.standard_normal((2, hidden)) * 0.02)
        b.node("Gather", ["type_emb", "token_type_ids"], ["typ"], axis=0)
        emb = b.node("Add", [emb, "typ"], ["emb_t"])
    x = b.layer_norm(emb, hidden)
    _MASKS[mask](b)
    for _ in range(layers):
        x = b.encoder_layer(x, hidden, heads, sdpa=mask == "sdpa")
    b.node("Identity", [x], ["last_hidden_state"])
    ints = onnx.TensorProto.INT64
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if token_type_ids else [])
    graph = helper.make_graph(
        b.nodes, "bert_like", [helper.make_tensor_value_info(n, ints, ["batch", "seq"]) for n in names],
        [helper.make_tensor_value_info("last_hidden_state", onnx.TensorProto.FLOAT, ["batch", "seq", hidden])],
        b.inits)
    return _model(graph, 14 if layer_norm == "decomposed" else 17)


def gpt2_like(layers=2, hidden=128, heads=4, vocab=1000, max_positions=512, seed=0, *, causal="trilu"):
    """A GPT-2-style decoder as a ModelProto (opset 17): pre-LayerNorm blocks, causal mask, tied-embedding logits.

    ``causal``: ``"trilu"`` (a ones matrix of the run's ``[seq, seq]`` shape
    through ``Trilu``) or ``"where"`` (a slice of a constant ``[max, max]``
    lower triangle, as GPT-2's ``bias`` buffer). Either way the masked scores
    are ``Where(causal, s, finfo.min)``.
    """
    if causal not in ("trilu", "where"):
        raise ValueError(f"causal must be 'trilu' or 'where', given {causal!r}")
    rng = np.random.default_rng(seed)
    b = _Builder(rng)
    dh = hidden // heads
    word = rng.standard_normal((vocab, hidden)) * 0.02
    b.const("word_emb", word)
    b.const("pos_emb", rng.standard_normal((max_positions, hidden)) * 0.01)
    b.const("word_emb_t", np.ascontiguousarray(word.T))
    _common_consts(b, heads, dh)
    b.const("min", np.array(F32_MIN, np.float32))
    x = b.embeddings()
    if causal == "trilu":
        b.node("Concat", ["seq_len", "seq_len"], ["ss"], axis=0)
        b.node("ConstantOfShape", ["ss"], ["ones"], value=numpy_helper.from_array(np.array([1.0], np.float32)))
        b.node("Trilu", ["ones"], ["tri"], upper=0)
        b.node("Cast", ["tri"], ["causal"], to=onnx.TensorProto.BOOL)
    else:
        b.const("bias_buf", np.tril(np.ones((max_positions, max_positions), bool))[None, None])
        b.const("ax23", np.array([2, 3], np.int64))
        b.node("Concat", ["seq_len", "seq_len"], ["ss"], axis=0)
        b.node("Slice", ["bias_buf", "zero2", "ss", "ax23"], ["causal"])
        b.const("zero2", np.array([0, 0], np.int64))
    for _ in range(layers):
        x = b.decoder_layer(x, hidden, heads)
    x = b.layer_norm(x, hidden)
    b.node("MatMul", [x, "word_emb_t"], ["logits"])
    graph = helper.make_graph(
        b.nodes, "gpt2_like", [helper.make_tensor_value_info("input_ids", onnx.TensorProto.INT64, ["batch", "seq"])],
        [helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, ["batch", "seq", vocab])], b.inits)
    return _model(graph, 17)


def _model(graph, opset):
    used = {i for n in graph.node for i in n.input}
    kept = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _common_consts(b, heads, dh):
    for name, value in [("zero", [0]), ("one_i", [1]), ("two", [2]), ("heads_dh", [heads, dh]), ("ax12", [1, 2]),
                        ("ax_last", [-1])]:
        b.const(name, np.array(value, np.int64))
    b.const("zero_s", np.array(0, np.int64))
    b.const("one_s", np.array(1, np.int64))
    b.const("one_f", np.array(1.0, np.float32))
    b.const("zero_f", np.array(0.0, np.float32))
    b.const("two_f", np.array(2.0, np.float32))
    b.const("scale", np.array(1.0 / np.sqrt(dh), np.float32))
    b.const("sqrt_dh", np.array(np.sqrt(dh), np.float32))
    b.const("half", np.array(0.5, np.float32))
    b.const("rsqrt2", np.array(1.0 / np.sqrt(2.0), np.float32))
    b.const("sqrt2", np.array(np.sqrt(2.0), np.float32))
    b.const("eps", np.array(1e-12, np.float32))


def _additive_mask(b):
    b.node("Cast", ["attention_mask"], ["mask_f"], to=onnx.TensorProto.FLOAT)
    b.node("Sub", ["one_f", "mask_f"], ["mask_inv"])
    b.node("Mul", ["mask_inv", "neg"], ["mask_add2"])
    b.node("Unsqueeze", ["mask_add2", "ax12"], ["mask_add"])  # [batch, 1, 1, seq]


def _hf_mask(b):
    b.const("min", np.array(F32_MIN, np.float32))
    b.node("Unsqueeze", ["attention_mask", "one_i"], ["mask_3d"])
    b.node("Unsqueeze", ["mask_3d", "two"], ["mask_4d"])
    b.node("Cast", ["mask_4d"], ["mask_f"], to=onnx.TensorProto.FLOAT)
    b.node("Sub", ["one_f", "mask_f"], ["mask_inv"])
    b.node("Mul", ["mask_inv", "min"], ["mask_add"])


def _sdpa_mask(b):
    """``mask_bool`` ``[batch, 1, seq, seq]`` and ``mask_add`` (0 or finfo.min) as recent transformers exports."""
    b.const("min", np.array(F32_MIN, np.float32))
    b.const("t_true", np.array(True))
    b.node("Cast", ["attention_mask"], ["mask_b"], to=onnx.TensorProto.BOOL)
    b.node("Unsqueeze", ["mask_b", "ax12"], ["mask_4d"])
    b.node("Shape", ["attention_mask"], ["m_shape"])
    b.node("Slice", ["m_shape", "zero", "one_i"], ["m_batch"])
    b.node("Slice", ["m_shape", "one_i", "two"], ["m_seq"])
    b.node("Concat", ["m_batch", "one_i", "m_seq", "m_seq"], ["m_target"], axis=0)
    b.node("Expand", ["mask_4d", "m_target"], ["mask_exp"])
    b.node("And", ["mask_exp", "t_true"], ["mask_bool"])
    b.node("Where", ["mask_bool", "zero_f", "min"], ["mask_add"])


_MASKS = {"additive": _additive_mask, "hf": _hf_mask, "sdpa": _sdpa_mask}


class _Builder:
    def __init__(self, rng, decomposed_ln=False, gelu="mul", torch_layout=False):
        self.rng, self.nodes, self.inits = rng, [], []
        self.decomposed_ln, self.gelu_form, self.torch_layout = decomposed_ln, gelu, torch_layout

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

    def embeddings(self, max_positions=None):
        """Token + position embeddings, positions 0..seq-1 from the input's own shape, as exports compute them.

        In torch layout (``max_positions`` given) the positions are a slice of a
        constant ``position_ids`` buffer ``[1, max_positions]``, as BERT exports.
        """
        if self.torch_layout and max_positions:
            self.const("position_ids", np.arange(max_positions, dtype=np.int64)[None])
            self.node("Shape", ["input_ids"], ["ids_shape"])
            self.node("Gather", ["ids_shape", "one_i"], ["seq_len"], axis=0)
            self.node("Slice", ["position_ids", "zero", "seq_len", "one_i"], ["positions"])
            self.node("Gather", ["word_emb", "input_ids"], ["tok"], axis=0)
            self.node("Gather", ["pos_emb", "positions"], ["pos"], axis=0)
            return self.node("Add", ["tok", "pos"], ["emb"])
        self.node("Shape", ["input_ids"], ["ids_shape"])
        self.node("Gather", ["ids_shape", "one_i"], ["seq_len"], axis=0)
        self.node("Squeeze", ["seq_len", "zero"], ["seq_scalar"])
        self.node("Range", ["zero_s", "seq_scalar", "one_s"], ["positions"])
        self.node("Gather", ["word_emb", "input_ids"], ["tok"], axis=0)
        self.node("Gather", ["pos_emb", "positions"], ["pos"], axis=0)
        return self.node("Add", ["tok", "pos"], ["emb"])

    def dense(self, x, cin, cout):
        w = self.const(self.fresh("w"), self.rng.standard_normal((cin, cout)) * np.sqrt(1.0 / cin))
        bias = self.const(self.fresh("b"), self.rng.standard_normal(cout) * 0.02)
        y = self.node("MatMul", [x, w], [self.fresh("mm")])
        return self.node("Add", [y, bias], [self.fresh("dense")])

    def layer_norm(self, x, hidden):
        g = self.const(self.fresh("ln_g"), 1.0 + 0.1 * self.rng.standard_normal(hidden))
        beta = self.const(self.fresh("ln_b"), 0.1 * self.rng.standard_normal(hidden))
        if not self.decomposed_ln:
            return self.node("LayerNormalization", [x, g, beta], [self.fresh("ln")], axis=-1, epsilon=1e-12)
        mean = self.node("ReduceMean", [x], [self.fresh("ln_mean")], axes=[-1])
        d = self.node("Sub", [x, mean], [self.fresh("ln_d")])
        var = self.node("ReduceMean", [self.node("Pow", [d, "two_f"], [self.fresh("ln_sq")])],
                        [self.fresh("ln_var")], axes=[-1])
        std = self.node("Sqrt", [self.node("Add", [var, "eps"], [self.fresh("ln_ve")])], [self.fresh("ln_std")])
        y = self.node("Div", [d, std], [self.fresh("ln_n")])
        return self.node("Add", [self.node("Mul", [y, g], [self.fresh("ln_s")]), beta], [self.fresh("ln")])

    def heads(self, x):
        """``[batch, seq, hidden]`` -> ``[batch, heads, seq, dh]``, the shape computed from ``x``."""
        shape = self.node("Shape", [x], [self.fresh("shape")])
        bs = self.node("Slice", [shape, "zero", "two"], [self.fresh("bs")])  # [batch, seq]
        target = self.node("Concat", [bs, "heads_dh"], [self.fresh("target")], axis=0)
        y = self.node("Reshape", [x, target], [self.fresh("split")])
        return self.node("Transpose", [y], [self.fresh("heads")], perm=[0, 2, 1, 3])

    def merge(self, ctx, x):
        ctx = self.node("Transpose", [ctx], [self.fresh("merge")], perm=[0, 2, 1, 3])
        shape = self.node("Shape", [x], [self.fresh("xshape")])
        return self.node("Reshape", [ctx, shape], [self.fresh("ctx_flat")])

    def gelu(self, h):
        if self.gelu_form == "div":
            e = self.node("Erf", [self.node("Div", [h, "sqrt2"], [self.fresh("hs")])], [self.fresh("erf")])
        else:
            e = self.node("Erf", [self.node("Mul", [h, "rsqrt2"], [self.fresh("hs")])], [self.fresh("erf")])
        e = self.node("Add", [e, "one_f"], [self.fresh("erf1")])
        return self.node("Mul", [self.node("Mul", [h, e], [self.fresh("he")]), "half"], [self.fresh("gelu")])

    def gelu_tanh(self, h):
        c = self.const(self.fresh("c"), np.array(0.044715, np.float32))
        k = self.const(self.fresh("k"), np.array(np.sqrt(2.0 / np.pi), np.float32))
        three = self.const(self.fresh("three"), np.array(3.0, np.float32))
        cube = self.node("Mul", [self.node("Pow", [h, three], [self.fresh("h3")]), c], [self.fresh("ch3")])
        inner = self.node("Mul", [self.node("Add", [h, cube], [self.fresh("hi")]), k], [self.fresh("ki")])
        t = self.node("Add", [self.node("Tanh", [inner], [self.fresh("th")]), "one_f"], [self.fresh("t1")])
        return self.node("Mul", [self.node("Mul", [h, "half"], [self.fresh("hh")]), t], [self.fresh("gelu")])

    def encoder_layer(self, x, hidden, heads, sdpa=False):
        if self.torch_layout:
            return self.torch_encoder_layer(x, hidden, heads)
        q, k, v = (self.heads(self.dense(x, hidden, hidden)) for _ in range(3))
        kt = self.node("Transpose", [k], [self.fresh("kt")], perm=[0, 1, 3, 2])
        s = self.node("MatMul", [q, kt], [self.fresh("scores")])
        s = self.node("Mul", [s, "scale"], [self.fresh("scaled")])
        s = self.node("Add", [s, "mask_add"], [self.fresh("masked")])
        p = self.node("Softmax", [s], [self.fresh("probs")], axis=-1)
        if sdpa:  # rows with no attended key give NaN in torch's SDPA decomposition: zero them
            nan = self.node("IsNaN", [p], [self.fresh("isnan")])
            p = self.node("Where", [nan, "zero_f", p], [self.fresh("probs_ok")])
        ctx = self.merge(self.node("MatMul", [p, v], [self.fresh("ctx")]), x)
        attn = self.dense(ctx, hidden, hidden)
        x = self.layer_norm(self.node("Add", [attn, x], [self.fresh("res1")]), hidden)
        g = self.gelu(self.dense(x, hidden, 4 * hidden))
        out = self.dense(g, 4 * hidden, hidden)
        return self.layer_norm(self.node("Add", [out, x], [self.fresh("res2")]), hidden)

    def torch_encoder_layer(self, x, hidden, heads):
        split = self.const(self.fresh("split_shape"), np.array([0, 0, heads, hidden // heads], np.int64))
        flat = self.const(self.fresh("flat_shape"), np.array([0, 0, hidden], np.int64))
        q, k, v = (self.node("Reshape", [self.dense(x, hidden, hidden), split], [self.fresh("split")])
                   for _ in range(3))
        q = self.node("Transpose", [q], [self.fresh("q")], perm=[0, 2, 1, 3])
        k = self.node("Transpose", [k], [self.fresh("k")], perm=[0, 2, 3, 1])
        v = self.node("Transpose", [v], [self.fresh("v")], perm=[0, 2, 1, 3])
        s = self.node("Div", [self.node("MatMul", [q, k], [self.fresh("scores")]), "sqrt_dh"], [self.fresh("sc")])
        p = self.node("Softmax", [self.node("Add", [s, "mask_add"], [self.fresh("masked")])], [self.fresh("p")],
                      axis=-1)
        ctx = self.node("Transpose", [self.node("MatMul", [p, v], [self.fresh("ctx")])], [self.fresh("merge")],
                        perm=[0, 2, 1, 3])
        ctx = self.node("Reshape", [ctx, flat], [self.fresh("ctx_flat")])
        x = self.layer_norm(self.node("Add", [self.dense(ctx, hidden, hidden), x], [self.fresh("res1")]), hidden)
        out = self.dense(self.gelu(self.dense(x, hidden, 4 * hidden)), 4 * hidden, hidden)
        return self.layer_norm(self.node("Add", [out, x], [self.fresh("res2")]), hidden)

    def decoder_layer(self, x, hidden, heads):
        h = self.layer_norm(x, hidden)
        qkv = self.dense(h, hidden, 3 * hidden)
        q, k, v = (self.fresh(n) for n in "qkv")
        sizes = self.const(self.fresh("split_sizes"), np.array([hidden] * 3, np.int64))
        self.node("Split", [qkv, sizes], [q, k, v], axis=2)
        q, k, v = (self.heads(t) for t in (q, k, v))
        kt = self.node("Transpose", [k], [self.fresh("kt")], perm=[0, 1, 3, 2])
        s = self.node("Div", [self.node("MatMul", [q, kt], [self.fresh("scores")]), "sqrt_dh"], [self.fresh("sc")])
        s = self.node("Where", ["causal", s, "min"], [self.fresh("causal_s")])
        p = self.node("Softmax", [s], [self.fresh("probs")], axis=-1)
        ctx = self.merge(self.node("MatMul", [p, v], [self.fresh("ctx")]), h)
        x = self.node("Add", [x, self.dense(ctx, hidden, hidden)], [self.fresh("res1")])
        m = self.dense(self.gelu_tanh(self.dense(self.layer_norm(x, hidden), hidden, 4 * hidden)), 4 * hidden, hidden)
        return self.node("Add", [x, m], [self.fresh("res2")])
