"""Fold per-channel affine ops (inference BatchNormalization, Mul/Add by a per-channel constant).

A chain of such ops is one map ``y = x * s + t`` per channel. After a Conv
whose weights are constants it folds into the Conv: ``conv(x, W * s) + (B * s
+ t)``, so nothing runs for it. A chain that does not follow a Conv (e.g.
DenseNet's pre-activation ``BatchNormalization → Mul → Add``, after a Concat)
becomes one ``ChannelAffine`` node (``tilerun``'s own op, in the internal
domain ``INTERNAL_DOMAIN``, inputs ``[x, s, t]``), which the fuse pass may give a Relu/Clip epilogue: one pass over
memory instead of one per op. Only a link whose input feeds nothing else and
is not a graph output joins a chain; all arithmetic is done in float64.
"""
import numpy as np

from ..ir import Node, Value
from ..ops.registry import INTERNAL_DOMAIN

CHANNEL_AFFINE = "ChannelAffine"


def fold_batchnorm(graph):
    """Fold affine chains into Convs, and merge the other chains into ChannelAffine nodes, in place."""
    _fold_into_convs(graph)
    _merge_chains(graph)


def affine_of(graph, node, channels):
    """``(s, t)`` float64 vectors of length ``channels`` if ``node`` is a per-channel affine map of input 0."""
    if node.domain or not node.inputs or not node.outputs or len([o for o in node.outputs if o]) != 1:
        return None
    x = graph.value(node.inputs[0])
    if x is None or x.shape is None or len(x.shape) < 2 or x.dtype != np.float32 or x.shape[1] != channels:
        return None
    if node.op_type == "BatchNormalization" and len(node.inputs) >= 5:
        if int(node.attrs.get("training_mode", 0) or 0):
            return None
        params = [graph.value(n) for n in node.inputs[1:5]]
        if any(p is None or not p.is_const or p.const.size != channels for p in params):
            return None
        scale, bias, mean, var = (p.const.astype(np.float64).reshape(-1) for p in params)
        s = scale / np.sqrt(var + float(node.attrs.get("epsilon", 1e-5)))
        return s, bias - mean * s
    if node.op_type in ("Mul", "Add") and len(node.inputs) == 2:
        c = graph.value(node.inputs[1])
        if c is None or not c.is_const or c.dtype != np.float32:
            return None
        vec = _channel_vector(c.const, x.shape)
        if vec is None:
            return None
        one, zero = np.ones(channels), np.zeros(channels)
        return (vec, zero) if node.op_type == "Mul" else (one, vec)
    return None


def _channel_vector(const, shape):
    """The per-channel values of ``const`` broadcast against ``shape`` (axis 1), or None."""
    c = np.asarray(const, np.float64)
    if c.ndim > len(shape):
        return None
    full = (1,) * (len(shape) - c.ndim) + c.shape
    if any(d != 1 for i, d in enumerate(full) if i != 1) or full[1] not in (1, shape[1]):
        return None
    return np.broadcast_to(c.reshape(-1), (shape[1],)).astype(np.float64)


def _sole_consumer(graph, name, consumers):
    users = consumers.get(name, ())
    if len(users) != 1 or name in graph.outputs:
        return None
    return users[0]


def _fold_into_convs(graph):
    consumers = graph.consumers()
    drop = set()
    for conv in graph.nodes:
        if conv.op_type != "Conv" or conv.domain or len(conv.inputs) > 3 or id(conv) in drop:
            continue
        w = graph.value(conv.inputs[1])
        b = graph.value(conv.inputs[2]) if len(conv.inputs) > 2 and conv.inputs[2] else None
        if w is None or not w.is_const or (b is not None and not b.is_const):
            continue
        cout = w.const.shape[0]
        s_tot, t_tot, last = np.ones(cout), np.zeros(cout), None
        out = conv.outputs[0]
        while True:
            nxt = _sole_consumer(graph, out, consumers)
            if nxt is None or nxt.inputs[0] != out:
                break
            st = affine_of(graph, nxt, cout)
            if st is None:
                break
            s_tot, t_tot = s_tot * st[0], t_tot * st[0] + st[1]
            drop.add(id(nxt))
            last, out = nxt, nxt.outputs[0]
        if last is None:
            continue
        w_new = (w.const.astype(np.float64) * s_tot.reshape(-1, *([1] * (w.const.ndim - 1)))).astype(np.float32)
        b_old = b.const.astype(np.float64) if b is not None else 0.0
        b_new = (b_old * s_tot + t_tot).astype(np.float32)
        wname, bname = _fresh(graph, f"{conv.name}/W_folded"), _fresh(graph, f"{conv.name}/B_folded")
        graph.values[wname] = Value(wname, w_new.shape, w_new.dtype, w_new)
        graph.values[bname] = Value(bname, b_new.shape, b_new.dtype, b_new)
        for old in conv.inputs[1:]:  # the unfolded weights, once nothing else reads them: freed now
            if len(consumers.get(old, ())) == 1 and old not in graph.outputs and old not in graph.inputs:
                del graph.values[old]
        conv.inputs = [conv.inputs[0], wname, bname]
        conv.outputs = [out]
    graph.nodes = [n for n in graph.nodes if id(n) not in drop]


def _merge_chains(graph):
    consumers = graph.consumers()
    drop, replace = set(), {}
    for head in graph.nodes:
        if id(head) in drop:
            continue
        x = graph.value(head.inputs[0]) if head.inputs else None
        if x is None or x.shape is None or len(x.shape) < 2:
            continue
        st = affine_of(graph, head, x.shape[1])
        if st is None:
            continue
        s_tot, t_tot = st
        chain, out = [head], head.outputs[0]
        while True:
            nxt = _sole_consumer(graph, out, consumers)
            if nxt is None or nxt.inputs[0] != out:
                break
            more = affine_of(graph, nxt, x.shape[1])
            if more is None:
                break
            s_tot, t_tot = s_tot * more[0], t_tot * more[0] + more[1]
            chain.append(nxt)
            out = nxt.outputs[0]
        if len(chain) == 1 and head.op_type != "BatchNormalization":
            continue  # a lone Mul or Add is an elementwise op already
        sname, tname = _fresh(graph, f"{head.name}/scale"), _fresh(graph, f"{head.name}/shift")
        graph.values[sname] = Value(sname, (x.shape[1],), np.dtype(np.float32), s_tot.astype(np.float32))
        graph.values[tname] = Value(tname, (x.shape[1],), np.dtype(np.float32), t_tot.astype(np.float32))
        node = Node(CHANNEL_AFFINE, f"{head.name}/affine", [head.inputs[0], sname, tname], [out],
                    domain=INTERNAL_DOMAIN)
        replace[id(chain[-1])] = node
        drop.update(id(n) for n in chain[:-1])
    graph.nodes = [replace.get(id(n), n) for n in graph.nodes if id(n) not in drop]


def _fresh(graph, name):
    base, k = name, 0
    while name in graph.values:
        k += 1
        name = f"{base}:{k}"
    return name
