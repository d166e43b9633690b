"""Recognise scaled dot-product attention and replace it with one ``Attention`` node (internal domain).

The pattern, as exports write it (shapes ``[B, H, S, dh]``)::

    S = MatMul(Q, K^T)  [-> Mul(scale) | Div(scale)]  [-> Add(mask)]
    P = Softmax(S, axis=-1);  Y = MatMul(P, V)  [-> Transpose]

``Q``, ``K^T`` and ``V`` may each come through Transposes of a contiguous
rank-4 tensor (the head split), which the node reads in place through
strides; a Transpose after the last MatMul (the head merge) becomes the
layout of the node's output. The mask is any float32 tensor that
broadcasts to ``[B, H, Sq, Sk]`` over batch, head and query (not over keys).
A ``Where(causal, S, fill)`` between the scale and the mask, with a
constant lower-triangular ``causal`` (query ``i`` sees keys ``j <= i + Sk -
Sq``, as decoders slice it from a constant buffer) and a ``fill`` of at most
-1e30, becomes the node's ``causal`` flag; a causal mask already folded to an
additive constant is an ordinary mask. Every intermediate must feed only the
next step. Not here: rank-3 heads, or K and V whose batch or head axes broadcast.
"""
import numpy as np

from ..ir import Node
from ..ops.registry import INTERNAL_DOMAIN
from .fuse_util import absorb, is_op, other_input, scalar_const, sole_consumer


def fuse_attention(graph):
    """Replace every recognised attention by one ``Attention`` node, in place."""
    for sm in [n for n in graph.nodes if is_op(n, "Softmax")]:
        found = _match(graph, sm, graph.producers(), graph.consumers())
        if found is not None:
            node, absorbed = found
            absorb(graph, node, absorbed, absorbed[-1])


def _rank4_f32(graph, name):
    v = graph.values.get(name)
    return v is not None and v.shape is not None and len(v.shape) == 4 and v.dtype == np.float32


def _match(graph, sm, producers, consumers):
    x = sm.inputs[0]
    if not _rank4_f32(graph, x) or sm.attrs.get("axis", -1) not in (-1, 3):
        return None
    chain, mask, scale = [sm], "", 1.0
    p = _sole_producer(graph, x, producers, consumers)
    if is_op(p, "Add"):
        s_in = next((i for i in p.inputs if is_op(producers.get(i), "MatMul", "Mul", "Div", "Where")), None)
        mask = other_input(p, s_in) if s_in else None
        if not mask or not _mask_ok(graph, mask, graph.values[x].shape):
            return None
        chain.append(p)
        p = _sole_producer(graph, s_in, producers, consumers)
    causal = 0
    if is_op(p, "Where") and _causal_select(graph, p, graph.values[x].shape):
        causal = 1
        chain.append(p)
        p = _sole_producer(graph, p.inputs[1], producers, consumers)
    if is_op(p, "Mul", "Div"):
        src, c = p.inputs[0], scalar_const(graph, p.inputs[1])
        if c is None and p.op_type == "Mul":
            src, c = p.inputs[1], scalar_const(graph, p.inputs[0])
        if c is None or c == 0:
            return None
        scale = 1.0 / c if p.op_type == "Div" else c
        chain.append(p)
        p = _sole_producer(graph, src, producers, consumers)
    if not is_op(p, "MatMul") or len(p.inputs) != 2 or p.fused.bias or p.fused.activation:
        return None
    chain.append(p)
    pv = sole_consumer(graph, sm.outputs[0], consumers)
    if not is_op(pv, "MatMul") or pv.inputs[0] != sm.outputs[0] or pv.fused.bias or pv.fused.activation:
        return None
    ins = [_through_transposes(graph, name, producers, consumers) for name in (p.inputs[0], p.inputs[1],
                                                                             pv.inputs[1])]
    if any(i is None for i in ins):
        return None
    (q, qp, qt), (k, kp, kt), (v, vp, vt) = ins
    if qp[3] != 3 or vp[3] != 3 or not _shapes_agree(graph, (q, qp), (k, kp), (v, vp)):
        return None
    out, yp, last = pv.outputs[0], [0, 1, 2, 3], pv
    merge = sole_consumer(graph, out, consumers)
    if is_op(merge, "Transpose") and _rank4_f32(graph, merge.outputs[0]):
        out, yp, last = merge.outputs[0], list(merge.attrs["perm"]), merge
    absorbed = qt + kt + vt + chain + [pv] + ([last] if last is not pv else [])
    order = {id(n): i for i, n in enumerate(graph.nodes)}
    absorbed.sort(key=lambda n: order[id(n)])
    node = Node("Attention", f"{sm.name}__attention", [q, k, v, mask], [out],
                {"scale": float(scale), "causal": causal, "q_perm": qp, "k_perm": kp, "v_perm": vp, "y_perm": yp},
                INTERNAL_DOMAIN)
    return node, absorbed


def _sole_producer(graph, name, producers, consumers):
    """The producer of ``name`` when ``name`` feeds only one node and is not a graph output."""
    return producers.get(name) if sole_consumer(graph, name, consumers) is not None else None


def _through_transposes(graph, name, producers, consumers):
    """``(base, perm, transposes)``: ``name`` is ``base.transpose(perm)``, through sole-consumer Transposes."""
    if not _rank4_f32(graph, name):
        return None
    perm, nodes = [0, 1, 2, 3], []
    t = _sole_producer(graph, name, producers, consumers)
    while is_op(t, "Transpose") and _rank4_f32(graph, t.inputs[0]):
        tp = list(t.attrs.get("perm") or [3, 2, 1, 0])
        perm = [tp[a] for a in perm]
        nodes.append(t)
        name = t.inputs[0]
        t = _sole_producer(graph, name, producers, consumers)
    return name, perm, nodes


def _shapes_agree(graph, q, k, v):
    """Q ``[B, H, Sq, dh]``, K^T ``[B, H, dh, Sk]``, V ``[B, H, Sk, dh]`` with equal B, H, dh and Sk."""
    (bq, hq, _, dq), (bk, hk, dk, sk), (bv, hv, sv, dv) = (
        [graph.values[n].shape[a] for a in perm] for n, perm in (q, k, v))
    return bq == bk == bv and hq == hk == hv and dq == dk == dv and sk == sv


def _mask_ok(graph, name, scores_shape):
    v = graph.values[name]
    if v.dtype != np.float32 or v.shape is None or len(v.shape) > 4 or not v.shape:
        return False
    shape = (1,) * (4 - len(v.shape)) + tuple(v.shape)
    return shape[3] == scores_shape[3] and all(a in (1, b) for a, b in zip(shape[:3], scores_shape[:3]))


def _causal_select(graph, where, scores_shape):
    """True for ``Where(cond, S, fill)`` with ``cond`` the constant causal triangle and ``fill`` <= -1e30."""
    cond, fill = graph.values.get(where.inputs[0]), scalar_const(graph, where.inputs[2])
    if cond is None or not cond.is_const or cond.dtype != np.bool_ or fill is None or fill > -1e30:
        return False
    sq, sk = scores_shape[2], scores_shape[3]
    c = np.asarray(cond.const)
    if c.ndim < 2 or c.shape[-2:] != (sq, sk) or any(d != 1 for d in c.shape[:-2]):
        return False
    tri = np.arange(sk)[None, :] <= np.arange(sq)[:, None] + (sk - sq)
    return bool(np.array_equal(c.reshape(sq, sk), tri))
