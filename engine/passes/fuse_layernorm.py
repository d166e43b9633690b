"""Recognise LayerNorm written out in primitives and replace it with one LayerNormalization node.

The pattern exports produce (before opset 17 had the op)::

    mean = ReduceMean(x, axes=[-1]);  d = Sub(x, mean)
    var = ReduceMean(Pow(d, 2) or Mul(d, d), axes=[-1])
    y = Div(d, Sqrt(Add(var, eps)))  [ -> Mul(gamma) ] [ -> Add(beta) ]

with ``gamma``/``beta`` float32 constants over the last axis. The new node
normalises over the last axis in one kernel; it is ONNX's own op at opset >=
17 and the same lowering in tilerun's internal domain below that. Not here:
normalisation over several axes, or a run-time gamma/beta (the primitives stay).

``fuse_residual_layernorm`` then folds the residual add in front of a
last-axis LayerNormalization (``LayerNorm(a + b)``, ``a`` and ``b`` computed
tensors of one shape, constant gamma/beta) into one internal
``AddLayerNormalization`` node: its kernel adds and normalises each row while
it is in L1. When the sum is read elsewhere too (pre-LN decoders keep it as
the next residual) the node writes it as a second output.
"""
import numpy as np

from ..ir import Node, Value
from ..ops.registry import INTERNAL_DOMAIN
from .fuse_util import absorb, is_op, other_input, scalar_const, sole_consumer


def fuse_layernorm(graph):
    """Replace every recognised decomposed LayerNorm, in place."""
    for mean in [n for n in graph.nodes if is_op(n, "ReduceMean")]:
        consumers, producers = graph.consumers(), graph.producers()
        found = _match(graph, mean, consumers, producers)
        if found is not None:
            _replace(graph, *found)


def _last_axis_mean(graph, node):
    """True for a ReduceMean over the last axis only, keeping dims."""
    if not is_op(node, "ReduceMean") or not node.attrs.get("keepdims", 1):
        return False
    axes = node.attrs.get("axes")
    if axes is None and len(node.inputs) > 1 and node.inputs[1]:
        v = graph.values[node.inputs[1]]
        axes = None if not v.is_const else [int(a) for a in v.const.reshape(-1)]
    rank = len(graph.values[node.inputs[0]].shape)
    return axes is not None and len(axes) == 1 and axes[0] % rank == rank - 1


def _match(graph, mean, consumers, producers):
    x = mean.inputs[0]
    if graph.values[x].dtype != np.float32 or not _last_axis_mean(graph, mean):
        return None
    sub = sole_consumer(graph, mean.outputs[0], consumers)
    if not is_op(sub, "Sub") or sub.inputs != [x, mean.outputs[0]]:
        return None
    d = sub.outputs[0]
    users = list({id(u): u for u in consumers.get(d, ())}.values())
    if len(users) != 2 or d in graph.outputs:
        return None
    sq = next((u for u in users if is_op(u, "Pow") and u.inputs[0] == d and scalar_const(graph, u.inputs[1]) == 2.0
               or is_op(u, "Mul") and u.inputs == [d, d]), None)
    div = next((u for u in users if is_op(u, "Div") and u.inputs[0] == d), None)
    if sq is None or div is None:
        return None
    var = sole_consumer(graph, sq.outputs[0], consumers)
    add = var and _last_axis_mean(graph, var) and sole_consumer(graph, var.outputs[0], consumers)
    if not is_op(add, "Add") or scalar_const(graph, other_input(add, var.outputs[0])) is None:
        return None
    sqrt = sole_consumer(graph, add.outputs[0], consumers)
    if not is_op(sqrt, "Sqrt") or div.inputs[1] != sqrt.outputs[0] or len(consumers[sqrt.outputs[0]]) != 1:
        return None
    eps = scalar_const(graph, other_input(add, var.outputs[0]))
    chain, last, params = [mean, sub, sq, var, add, sqrt, div], div, {}
    n = graph.values[x].shape[-1]
    for op, key in (("Mul", "scale"), ("Add", "bias")):
        nxt = sole_consumer(graph, last.outputs[0], consumers)
        p = other_input(nxt, last.outputs[0]) if is_op(nxt, op) else None
        if p is None or not _last_axis_param(graph, p, n) or \
                tuple(graph.values[nxt.outputs[0]].shape) != tuple(graph.values[x].shape):
            break
        params[key], last = p, nxt
        chain.append(nxt)
    return x, eps, params, chain, last


def _last_axis_param(graph, name, n):
    v = graph.values[name]
    shape = tuple(v.shape)
    return v.is_const and v.dtype == np.float32 and shape[-1:] in ((n,), (1,)) and \
        all(d == 1 for d in shape[:-1]) and len(shape) >= 1


def _replace(graph, x, eps, params, chain, last):
    n = graph.values[x].shape[-1]
    names = []
    for key, fill in (("scale", 1.0), ("bias", 0.0)):
        name = params.get(key)
        if name is None or graph.values[name].const.size != n:
            arr = np.broadcast_to(graph.values[name].const.reshape(-1) if name else np.float32(fill), (n,))
            name = f"{last.outputs[0]}__ln_{key}"
            graph.values[name] = Value(name, (n,), np.dtype(np.float32), np.ascontiguousarray(arr, np.float32))
        names.append(name)
    domain = "" if graph.opset >= 17 else INTERNAL_DOMAIN
    ln = Node("LayerNormalization", f"{last.name}__layernorm", [x] + names, [last.outputs[0]],
              {"axis": -1, "epsilon": float(eps), "stash_type": 1}, domain)
    absorb(graph, ln, chain, last)


def fuse_residual_layernorm(graph):
    """Fold each ``Add`` that only feeds a last-axis LayerNormalization (or also other readers) into it, in place."""
    producers, consumers = graph.producers(), graph.consumers()
    for ln in [n for n in graph.nodes if n.op_type == "LayerNormalization" and n.domain in ("", INTERNAL_DOMAIN)]:
        add = producers.get(ln.inputs[0])
        if not _residual_add(graph, add, ln) or any(o for o in ln.outputs[1:]):
            continue
        total = add.outputs[0]
        params = [n for n in ln.inputs[1:3] if n]
        if any(not graph.values[p].is_const for p in params):
            continue
        keep_sum = total in graph.outputs or len(consumers.get(total, ())) > 1
        node = Node("AddLayerNormalization", f"{ln.name}__residual", list(add.inputs) + (ln.inputs[1:3] + [""])[:2],
                    ln.outputs[:1] + ([total] if keep_sum else []), {"epsilon": float(ln.attrs.get("epsilon", 1e-5))},
                    INTERNAL_DOMAIN)
        # At the Add's place: the node's other inputs are constants, and readers of the sum may come before the LayerNorm.
        absorb(graph, node, [add, ln], add)
        producers, consumers = graph.producers(), graph.consumers()


def _residual_add(graph, add, ln):
    """True for a float32 ``Add`` of two computed tensors of the LayerNorm input's shape, normalised on the last axis."""
    if not is_op(add, "Add") or len(add.inputs) != 2:
        return False
    x = graph.values[ln.inputs[0]]
    a, b = (graph.values[n] for n in add.inputs)
    if x.shape is None or a.shape is None or b.shape is None:
        return False
    rank = len(x.shape)
    return (x.dtype == np.float32 and rank >= 1 and int(ln.attrs.get("axis", -1)) % rank == rank - 1
            and not a.is_const and not b.is_const and tuple(a.shape) == tuple(b.shape) == tuple(x.shape))
