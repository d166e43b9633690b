"""Recognise LayerNorm written out in primitives and replace it with one LayerNormalization node.

The pattern exports produce (before opset 17 had the op)::

    mean = ReduceMean(x, axes=[-1]);  d = Sub(x, mean)
    var = ReduceMean(Pow(d, 2) or Mul(d, d), axes=[-1])
    y = Div(d, Sqrt(Add(var, eps)))  [ -> Mul(gamma) ] [ -> Add(beta) ]

with ``gamma``/``beta`` float32 constants over the last axis. The new node
normalises over the last axis in one kernel; it is ONNX's own op at opset >=
17 and the same lowering in tilerun's internal domain below that. Not here:
normalisation over several axes, or a run-time gamma/beta (the primitives stay).
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
