"""Fuse activations and residual adds into the Conv/Gemm/MatMul/ChannelAffine that produce their input.

``Conv → Relu`` becomes one Conv with ``attrs["_activation"] = ("Relu", alpha, beta)``;
``Conv → Add(other) [→ Relu]`` becomes one Conv with ``attrs["_residual"] = other``,
so the epilogue adds the residual and applies the activation while the tile is
still in cache; ``Conv → MaxPool`` becomes one Conv with ``attrs["_maxpool"]``
(the pool node). A fusion applies only to ONNX's default-domain ops (a custom
op of the same name is left alone) and when the intermediate tensor feeds
nothing else and is not a graph output. The fused node takes the position of
the last node it absorbs, which keeps the order topological (the residual may
be computed after the Conv in the original order).
"""
import numpy as np

from ..ops.registry import DEFAULT_DOMAINS

PRODUCERS = {"Conv", "Gemm", "MatMul", "ChannelAffine"}
RESIDUAL_PRODUCERS = {"Conv"}

_F32_MAX = float(np.finfo(np.float32).max)
# Every band of a fused conv + max pool reads all the conv's weights: only
# stems and early layers qualify (VGG-19's 9 MiB layers read theirs once per
# band and ran 1.22 -> 1.26x ORT).
POOL_FUSE_WEIGHT_BYTES = 1 << 19


def activation_of(node, graph):
    """``(op_type, alpha, beta)`` if ``node`` is a fusable activation, else None."""
    if node.domain not in DEFAULT_DOMAINS:
        return None
    a = node.attrs
    op = node.op_type
    if op in ("Relu", "Sigmoid", "Tanh", "HardSwish"):
        return (op, 0.0, 0.0)
    if op == "LeakyRelu":
        return (op, float(a.get("alpha", 0.01)), 0.0)
    if op == "HardSigmoid":
        return (op, float(a.get("alpha", 0.2)), float(a.get("beta", 0.5)))
    if op == "Clip":
        lo, hi = a.get("min", -_F32_MAX), a.get("max", _F32_MAX)
        for k, name in ((1, "lo"), (2, "hi")):
            if len(node.inputs) > k and node.inputs[k]:
                v = graph.values[node.inputs[k]]
                if v.const is None:
                    return None
                if name == "lo":
                    lo = float(v.const.reshape(-1)[0])
                else:
                    hi = float(v.const.reshape(-1)[0])
        return (op, float(lo), float(hi))
    return None


def fuse_epilogues(graph):
    """Apply residual-add, activation and max-pool fusion, in place."""
    _fuse(graph, _residual_step)
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
    if p is None or p.op_type not in kinds or p.domain not in DEFAULT_DOMAINS or "_activation" in p.attrs:
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
    p.attrs["_activation"] = act
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
        if p is None or "_residual" in p.attrs or o.const is not None:
            continue
        if tuple(o.shape) != tuple(out.shape) or tuple(graph.values[mine].shape) != tuple(out.shape):
            continue
        p.attrs["_residual"] = other
        p.inputs = list(p.inputs) + [""] * (3 - len(p.inputs)) + [other]
        p.outputs = [node.outputs[0]]
        _replace(graph, p, node)
        return True
    return False


def _maxpool_step(graph, node, producers, consumers):
    # Conv [→ Relu/Clip/LeakyRelu] → MaxPool: the conv computes bands of rows
    # and pools each while it is in cache (ops/conv.py), so the conv's output,
    # the largest tensor of a CNN's stem, is never written to memory. Only
    # the shapes that path takes: a 2-D implicit-GEMM conv (group 1, strides
    # <= 2, not a plain 1x1) with rows of at least 16 pixels and its epilogue
    # in registers, weights of at most POOL_FUSE_WEIGHT_BYTES, and a max pool
    # without dilation or Indices, column stride <= 2.
    if node.op_type != "MaxPool" or node.domain not in DEFAULT_DOMAINS or len(node.outputs) > 1 and node.outputs[1]:
        return False
    x = node.inputs[0]
    p = producers.get(x)
    if p is None or p.op_type != "Conv" or p.domain not in DEFAULT_DOMAINS:
        return False
    if "_residual" in p.attrs or "_maxpool" in p.attrs:
        return False
    if len(consumers.get(x, ())) != 1 or x in graph.outputs or graph.values[x].dtype != np.float32:
        return False
    act = p.attrs.get("_activation")
    if act is not None and act[0] not in ("Relu", "Clip", "LeakyRelu"):
        return False
    xs = graph.values[x].shape
    w = graph.values[p.inputs[1]]
    if len(xs) != 4 or w.const is None or len(w.shape) != 4 or int(p.attrs.get("group", 1)) != 1 or w.shape[1] < 2:
        return False
    if w.const.size * 4 > POOL_FUSE_WEIGHT_BYTES:
        return False
    strides = list(p.attrs.get("strides") or [1, 1])
    pads = list(p.attrs.get("pads") or [0] * 4)
    if max(strides) > 2 or (tuple(w.shape[2:]) == (1, 1) and strides == [1, 1] and not any(pads)):
        return False
    if xs[3] < 16 or any(int(d) != 1 for d in node.attrs.get("dilations") or [1]):
        return False
    if int(node.attrs.get("storage_order", 0)) != 0 or int((node.attrs.get("strides") or [1, 1])[-1]) > 2:
        return False
    p.attrs["_maxpool"] = node
    p.outputs = [node.outputs[0]]
    _replace(graph, p, node)
    return True


def _replace(graph, fused, absorbed):
    # The fused node moves to where the absorbed node was: all of its inputs exist there.
    nodes = [n for n in graph.nodes if n is not fused]
    at = next(i for i, n in enumerate(nodes) if n is absorbed)
    nodes[at] = fused
    graph.nodes = nodes
