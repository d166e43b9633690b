"""Fuse activations and residual adds into the Conv/Gemm/MatMul/ChannelAffine that produce their input.

``Conv → Relu`` becomes one Conv with ``fused.activation = ("Relu", alpha, beta)``;
``Conv → Add(other) [→ Relu]`` becomes one Conv with ``fused.residual = other``,
so the epilogue adds the residual and applies the activation while the tile is
still in cache; ``Conv → MaxPool`` becomes one Conv with ``fused.pool`` (the
pool node) where the conv's lowering says it ``absorbs`` that pool. A fusion
applies only to ONNX's default-domain ops (a custom op of the same name is
left alone) and when the intermediate tensor feeds nothing else and is not a
graph output. The fused node takes the position of
the last node it absorbs, which keeps the order topological (the residual may
be computed after the Conv in the original order).
"""
import numpy as np

from ..ops.registry import DEFAULT_DOMAINS, INTERNAL_DOMAIN, resolve
from .fold_batchnorm import CHANNEL_AFFINE

# (domain, op_type) of the nodes an epilogue fuses into: ONNX's own, and the fold pass's ChannelAffine.
PRODUCERS = {(d, op) for d in DEFAULT_DOMAINS for op in ("Conv", "Gemm", "MatMul")} | \
    {(INTERNAL_DOMAIN, CHANNEL_AFFINE)}
RESIDUAL_PRODUCERS = {(d, "Conv") for d in DEFAULT_DOMAINS}

_F32_MAX = float(np.finfo(np.float32).max)


def activation_of(node, graph):
    """``(op_type, alpha, beta)`` if ``node`` is a fusable activation, else None."""
    if node.domain not in DEFAULT_DOMAINS:
        return None
    a = node.attrs
    op = node.op_type
    if op in ("Relu", "Sigmoid", "Tanh", "HardSwish"):
        return (op, 0.0, 0.0)
    if op == "LeakyRelu":
        return (op, float(a["alpha"]), 0.0)
    if op == "HardSigmoid":
        return (op, float(a["alpha"]), float(a["beta"]))
    if op == "Clip":
        lo, hi = a.get("min", -_F32_MAX), a.get("max", _F32_MAX)
        for k, name in ((1, "lo"), (2, "hi")):
            if len(node.inputs) > k and node.inputs[k]:
                v = graph.values[node.inputs[k]]
                if not v.is_const:
                    return None
                if name == "lo":
                    lo = float(v.const.reshape(-1)[0])
                else:
                    hi = float(v.const.reshape(-1)[0])
        return (op, float(lo), float(hi))
    return None


def fuse_residuals(graph):
    """Fold each residual ``Add`` into the Conv producing one of its inputs, in place.

    Runs before the activation fusions (this module's and ``fuse_silu``), so an
    activation after the add, the epilogue's last step, fuses onto the same Conv.
    """
    _fuse(graph, _residual_step)


def fuse_epilogues(graph):
    """Apply activation and max-pool fusion, in place (after ``fuse_residuals``)."""
    _fuse(graph, _activation_step)
    _fuse(graph, _maxpool_step)


def _fuse(graph, step):
    changed = True
    while changed:
        changed = False
        consumers = graph.consumers()
        producers = graph.producers()
        for node in graph.nodes:
            if step(graph, node, producers, consumers):
                changed = True
                break


def _sole_fusable_producer(graph, name, producers, consumers, kinds):
    p = producers.get(name)
    if p is None or (p.domain, p.op_type) not in kinds or p.fused.activation is not None:
        return None
    if len(consumers.get(name, ())) != 1 or name in graph.outputs:
        return None
    if graph.values[name].dtype != np.float32:
        return None
    return p


def _activation_step(graph, node, producers, consumers):
    act = activation_of(node, graph)
    if act is None:
        return False
    p = _sole_fusable_producer(graph, node.inputs[0], producers, consumers, PRODUCERS)
    if p is None:
        return False
    p.fused.activation = act
    p.outputs = [node.outputs[0]]
    _replace(graph, p, node)
    return True


def _residual_step(graph, node, producers, consumers):
    if node.op_type not in ("Add", "Sum") or node.domain not in DEFAULT_DOMAINS:
        return False
    if len(node.inputs) != 2 or node.inputs[0] == node.inputs[1]:
        return False
    out = graph.values[node.outputs[0]]
    for k in (0, 1):
        mine, other = node.inputs[k], node.inputs[1 - k]
        p = _sole_fusable_producer(graph, mine, producers, consumers, RESIDUAL_PRODUCERS)
        o = graph.values[other]
        if p is None or p.fused.residual is not None or o.is_const:
            continue
        if tuple(o.shape) != tuple(out.shape) or tuple(graph.values[mine].shape) != tuple(out.shape):
            continue
        p.fused.residual = other
        p.inputs = list(p.inputs) + [""] * (3 - len(p.inputs)) + [other]
        p.outputs = [node.outputs[0]]
        _replace(graph, p, node)
        return True
    return False


def _maxpool_step(graph, node, producers, consumers):
    # Producer [-> activation] -> MaxPool, where the producer's lowering can
    # compute the pool on its own output (Conv.absorbs).
    if node.op_type != "MaxPool" or node.domain not in DEFAULT_DOMAINS or len(node.outputs) > 1 and node.outputs[1]:
        return False
    x = node.inputs[0]
    p = producers.get(x)
    if p is None or p.domain not in DEFAULT_DOMAINS or p.fused.residual is not None or p.fused.pool is not None:
        return False
    if len(consumers.get(x, ())) != 1 or x in graph.outputs or graph.values[x].dtype != np.float32:
        return False
    lowering = resolve(p.op_type, graph.opset, p.domain)
    if not getattr(lowering, "absorbs", None) or not lowering.absorbs(p, node, graph):
        return False
    p.fused.pool = node
    p.outputs = [node.outputs[0]]
    _replace(graph, p, node)
    return True


def _replace(graph, fused, absorbed):
    # The fused node moves to where the absorbed node was: all of its inputs exist there.
    nodes = [n for n in graph.nodes if n is not fused]
    at = next(i for i, n in enumerate(nodes) if n is absorbed)
    nodes[at] = fused
    graph.nodes = nodes
