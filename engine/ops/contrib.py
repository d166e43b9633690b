"""ONNX Runtime's ``com.microsoft`` transformer ops, composed from tilerun's own lowerings.

What ONNX Runtime's transformer optimizer writes into a BERT-class model:
FastGelu, BiasGelu, Gelu, SkipLayerNormalization, EmbedLayerNormalization,
Attention (packed QKV weights, optional ``mask_index``), FusedMatMul and
BiasAdd. Each is a short composition (``compose.Composer``) of default-domain
ops: Gelu rows, Add + LayerNormalization, Gather + Add + LayerNormalization,
the attention MatMul/Softmax chain. Registered in the ``com.microsoft``
domain with ``register_domain_op``. Not here: past/present key-value caches,
relative position bias, ``qkv_hidden_sizes`` with unequal sizes, a
``[2 * batch]`` mask_index (start and end positions), the optional
Mean/InvStdDev outputs of SkipLayerNormalization, FusedMatMul's
``transBatch`` forms; each is refused with a ``ModelError`` naming it.
"""
import numpy as np

from ..errors import node_error
from .base import F32, Lowering, expect_dtype, expect_inputs, expect_rank
from .compose import Composer
from .elementwise import broadcast_shape
from .registry import register_domain_op

DOMAIN = "com.microsoft"
I32 = np.dtype(np.int32)
I64 = np.dtype(np.int64)


def _opt(inputs, k):
    return inputs[k] if len(inputs) > k else None


def _float_inputs(node, inputs):
    for v in inputs:
        if v is not None and v.dtype.kind == "f":
            expect_dtype(node, v, [F32])


class _BiasGelu(Lowering):
    """``gelu(x + bias)``, bias optional; ``approximate`` picks the tanh form."""
    approximate = "none"
    min_inputs = 1

    def infer(self, node, inputs):
        expect_inputs(node, inputs, self.min_inputs, 2)
        _float_inputs(node, inputs)
        expect_dtype(node, inputs[0], [F32])
        return [(broadcast_shape(node, [v.shape for v in inputs if v is not None]), F32)]

    def lower(self, node, inputs, outputs, plan):
        c = Composer(node, plan)
        x = inputs[0]
        if _opt(inputs, 1) is not None:
            x = c.op("Add", [x, inputs[1]])
        c.op("Gelu", [x], out=outputs[0], approximate=self.approximate)


class _SkipLayerNorm(Lowering):
    """``LayerNorm(input + skip + bias) * gamma + beta``; output 3, when asked, is the sum before normalizing."""

    def infer(self, node, inputs):
        expect_inputs(node, inputs, 3, 5)
        _float_inputs(node, inputs)
        x = inputs[0]
        expect_rank(node, x, (2, 3))
        if tuple(inputs[1].shape) != tuple(x.shape):
            raise node_error(node, f"skip has shape {list(inputs[1].shape)}, expected the input's {list(x.shape)}")
        for k in (1, 2):
            if len(node.outputs) > k and node.outputs[k]:
                raise node_error(node, "outputs mean and inv_std_var are not supported (only output and the sum)")
        return [(x.shape, F32)] * min(len(node.outputs), 4)

    def lower(self, node, inputs, outputs, plan):
        c = Composer(node, plan)
        x, skip, gamma, beta, bias = (list(inputs) + [None] * 5)[:5]
        total = outputs[3] if len(outputs) > 3 and outputs[3] is not None else None
        s = c.op("Add", [x, skip], out=None if bias is not None else total)
        if bias is not None:
            s = c.op("Add", [s, bias], out=total)
        ins = [s, gamma] + ([beta] if beta is not None else [])
        c.op("LayerNormalization", ins, out=outputs[0], axis=-1, epsilon=float(node.attrs.get("epsilon", 1e-12)))


class _EmbedLayerNorm(Lowering):
    """Word + position (+ segment) embeddings, LayerNorm; ``mask_index`` (int32 ``[batch]``) counts the mask's ones.

    Without a mask, ``mask_index`` is zeros, as ONNX Runtime gives it.
    """

    def infer(self, node, inputs):
        expect_inputs(node, inputs, 1, 9)
        for k, what in ((0, "input_ids"), (2, "word_embedding"), (3, "position_embedding"), (5, "gamma"),
                        (6, "beta")):
            if _opt(inputs, k) is None:
                raise node_error(node, f"input {what} is required but omitted")
        ids = inputs[0]
        expect_rank(node, ids, 2)
        for k, what in ((0, "input_ids"), (1, "segment_ids"), (7, "mask"), (8, "position_ids")):
            v = _opt(inputs, k)
            if v is not None:
                expect_dtype(node, v, [I32, I64], what)
        _float_inputs(node, inputs)
        batch, seq = ids.shape
        hidden = inputs[2].shape[-1]
        if inputs[3].shape[0] < seq:
            raise node_error(node, f"position_embedding has {inputs[3].shape[0]} rows, expected at least the "
                                   f"sequence length {seq}")
        out = [((batch, seq, hidden), F32), ((batch,), I32), ((batch, seq, hidden), F32)]
        return out[:len(node.outputs)]

    def lower(self, node, inputs, outputs, plan):
        c = Composer(node, plan)
        ids, seg, word, pos, seg_emb, gamma, beta, mask, pos_ids = (list(inputs) + [None] * 9)[:9]
        batch, seq = ids.shape
        emb = c.op("Gather", [word, ids], axis=0)
        if pos_ids is None:
            pos_ids = c.const(np.arange(seq, dtype=np.int64))
        emb = c.op("Add", [emb, c.op("Gather", [pos, pos_ids], axis=0)])
        if seg is not None and seg_emb is not None:
            emb = c.op("Add", [emb, c.op("Gather", [seg_emb, seg], axis=0)])
        total = outputs[2] if len(outputs) > 2 else None
        if total is not None:  # the sum as its own output: one more pass, only when a consumer asks
            c.op("Add", [emb, c.const(np.zeros((), F32))], out=total)
        c.op("LayerNormalization", [emb, gamma, beta], out=outputs[0], axis=-1,
             epsilon=float(node.attrs.get("epsilon", 1e-12)))
        if len(outputs) > 1 and outputs[1] is not None:
            if mask is None:
                # No mask: zeros, as ONNX Runtime gives.
                c.op("Expand", [c.const(np.zeros(1, I32)), c.const(np.array([batch], np.int64))], out=outputs[1])
            else:
                m = mask if mask.dtype == I32 else c.op("Cast", [mask], to=6)
                c.op("ReduceSum", [m, c.const(np.array([1], np.int64))], out=outputs[1], keepdims=0)


class _Attention(Lowering):
    """Multi-head self-attention with packed QKV weights ``[hidden, 3 * hidden]`` and bias ``[3 * hidden]``."""

    def infer(self, node, inputs):
        expect_inputs(node, inputs, 2, 10)
        x, w = inputs[0], inputs[1]
        expect_rank(node, x, 3)
        expect_dtype(node, x, [F32])
        for k, what in ((4, "past"), (5, "relative_position_bias"), (6, "past_sequence_length")):
            if _opt(inputs, k) is not None:
                raise node_error(node, f"input {what} is not supported")
        if len(node.outputs) > 1 and node.outputs[1]:
            raise node_error(node, "output present is not supported")
        sizes = node.attrs.get("qkv_hidden_sizes")
        if sizes and len(set(int(s) for s in sizes)) != 1:
            raise node_error(node, f"qkv_hidden_sizes {list(sizes)} are unequal; expected one size for Q, K and V")
        heads = int(node.attrs.get("num_heads", 0))
        hidden = w.shape[-1] // 3
        if len(w.shape) != 2 or w.shape[0] != x.shape[-1] or w.shape[1] != 3 * hidden or heads < 1 or hidden % heads:
            raise node_error(node, f"weights {list(w.shape)} with num_heads {heads}: expected [{x.shape[-1]}, 3 * H] "
                                   f"with H divisible by num_heads")
        mask = _opt(inputs, 3)
        if mask is not None:
            b, s = x.shape[:2]
            if tuple(mask.shape) not in ((b,), (b, s)):
                raise node_error(node, f"mask_index has shape {list(mask.shape)}, expected [{b}] (lengths) or "
                                       f"[{b}, {s}] (0/1 mask)")
        return [((x.shape[0], x.shape[1], hidden), F32)]

    def lower(self, node, inputs, outputs, plan):
        c = Composer(node, plan)
        x, w = inputs[0], inputs[1]
        bias, mask = _opt(inputs, 2), _opt(inputs, 3)
        b, s, _ = x.shape
        heads = int(node.attrs["num_heads"])
        hidden = w.shape[1] // 3
        dh = hidden // heads
        qkv = c.op("MatMul", [x, w])
        if bias is not None:
            qkv = c.op("Add", [qkv, bias])
        split = c.op("Reshape", [qkv, c.const(np.array([b, s, 3, heads, dh], np.int64))])
        qkv = c.op("Transpose", [split], perm=[2, 0, 3, 1, 4])  # [3, b, heads, s, dh]
        q, k, v = (c.op("Gather", [qkv, c.const(np.array(i, np.int64))], axis=0) for i in range(3))
        scale = node.attrs.get("scale")
        scale = float(scale) if scale else 1.0 / np.sqrt(dh)
        kt = c.op("Transpose", [k], perm=[0, 1, 3, 2])
        scores = c.op("Mul", [c.op("MatMul", [q, kt]), c.const(np.array(scale, F32))])
        fill = float(node.attrs.get("mask_filter_value", -10000.0))
        if mask is not None:
            scores = c.op("Add", [scores, self._mask_bias(c, mask, b, s, fill)])
        if int(node.attrs.get("unidirectional", 0)):
            causal = np.where(np.tril(np.ones((s, s), bool)), 0.0, fill).astype(F32)
            scores = c.op("Add", [scores, c.const(causal)])
        probs = c.op("Softmax", [scores], axis=-1)
        ctx = c.op("Transpose", [c.op("MatMul", [probs, v])], perm=[0, 2, 1, 3])
        c.op("Reshape", [ctx, c.const(np.array([b, s, hidden], np.int64))], out=outputs[0])

    def _mask_bias(self, c, mask, b, s, fill):
        """``[b, 1, 1, s]`` additive bias: 0 where attended, ``fill`` where masked."""
        if len(mask.shape) == 1:  # lengths: position j is attended while j < length
            lengths = mask if mask.dtype == I64 else c.op("Cast", [mask], to=7)
            lengths = c.op("Reshape", [lengths, c.const(np.array([b, 1], np.int64))])
            keep = c.op("Less", [c.const(np.arange(s, dtype=np.int64)[None, :]), lengths])
        else:
            m = mask if mask.dtype == I64 else c.op("Cast", [mask], to=7)
            keep = c.op("Not", [c.op("Equal", [m, c.const(np.zeros((), I64))])])
        bias = c.op("Where", [keep, c.const(np.zeros((), F32)), c.const(np.array(fill, F32))])
        return c.op("Reshape", [bias, c.const(np.array([b, 1, 1, s], np.int64))])


class _FusedMatMul(Lowering):
    """``alpha * op(A) @ op(B)``, ``op`` a swap of the last two axes where ``transA``/``transB`` ask."""

    def infer(self, node, inputs):
        expect_inputs(node, inputs, 2)
        _float_inputs(node, inputs)
        for a in ("transBatchA", "transBatchB"):
            if int(node.attrs.get(a, 0)):
                raise node_error(node, f"attribute {a}=1 is not supported")
        a, b = (self._t(v.shape, node.attrs.get(f, 0)) for v, f in zip(inputs, ("transA", "transB")))
        if a[-1] != b[-2 if len(b) > 1 else 0]:
            raise node_error(node, f"inner dims differ: {list(a)} @ {list(b)}")
        batch = broadcast_shape(node, [a[:-2], b[:-2]])
        return [(tuple(batch) + (a[-2], b[-1]), F32)]

    @staticmethod
    def _t(shape, flag):
        shape = tuple(shape)
        return shape[:-2] + (shape[-1], shape[-2]) if int(flag) and len(shape) >= 2 else shape

    def lower(self, node, inputs, outputs, plan):
        c = Composer(node, plan)
        ab = []
        for v, flag in zip(inputs, ("transA", "transB")):
            if int(node.attrs.get(flag, 0)) and len(v.shape) >= 2:
                perm = list(range(len(v.shape)))
                perm[-2:] = perm[-1], perm[-2]
                v = c.op("Transpose", [v], perm=perm)
            ab.append(v)
        alpha = float(node.attrs.get("alpha", 1.0))
        if alpha == 1.0:
            c.op("MatMul", ab, out=outputs[0])
        else:
            c.op("Mul", [c.op("MatMul", ab), c.const(np.array(alpha, F32))], out=outputs[0])


class _BiasAdd(Lowering):
    """``x + bias + skip``."""

    def infer(self, node, inputs):
        expect_inputs(node, inputs, 3)
        _float_inputs(node, inputs)
        return [(broadcast_shape(node, [v.shape for v in inputs]), F32)]

    def lower(self, node, inputs, outputs, plan):
        c = Composer(node, plan)
        c.op("Add", [c.op("Add", [inputs[0], inputs[1]]), inputs[2]], out=outputs[0])


for _op, _cls in [("FastGelu", type("FastGelu", (_BiasGelu,), {"approximate": "tanh"})),
                  ("BiasGelu", type("BiasGelu", (_BiasGelu,), {"min_inputs": 2})),
                  ("Gelu", _BiasGelu), ("SkipLayerNormalization", _SkipLayerNorm),
                  ("EmbedLayerNormalization", _EmbedLayerNorm), ("Attention", _Attention),
                  ("FusedMatMul", _FusedMatMul), ("BiasAdd", _BiasAdd)]:
    register_domain_op(DOMAIN, _op, 1, _cls())
