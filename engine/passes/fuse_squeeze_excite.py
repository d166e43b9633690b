"""Recognise squeeze-and-excitation and replace it with one ``SqueezeExcite`` node (internal domain).

The pattern, after the epilogue fusions (MobileNetV3, EfficientNet, RegNetY)::

    m = GlobalAveragePool(x);  h = Conv1x1(m) [+ activation]
    g = Conv1x1(h) + Sigmoid | HardSigmoid | ...;  y = Mul(x, g)

with constant weights, no residual and no pool fused into either conv, and
``m``, ``h``, ``g`` read by nothing else. ``x`` may have other readers (it is
only read). The node writes ``y``; where ``y`` feeds only a plain 1x1 conv
of one image whose weights are at most ``1 / FOLD_MIN_RATIO`` of ``x``, the
node writes the gates instead and the conv reads ``x`` and the gates
(``Fused.gate``). Not here: gates from a Gemm after a Flatten, spatial
attention.
"""
import numpy as np

from ..ir import Node, Value
from ..ops.gemm import fused_activation
from ..ops.registry import INTERNAL_DOMAIN
from .fuse_util import absorb, is_op, sole_consumer


# Gates go into the next conv's weights where x has at least this many times the weights' floats: the scaling
# row reads and writes the weights and is a row of its own, so it pays only where x is much the larger.
FOLD_MIN_RATIO = 4


def fuse_squeeze_excite(graph):
    """Replace every recognised squeeze-and-excitation block, in place."""
    for mul in [n for n in graph.nodes if is_op(n, "Mul")]:
        found = _match(graph, mul, graph.producers(), graph.consumers())
        if found is not None:
            _replace(graph, mul, *found)


def _pointwise(graph, node, cin, residual=False):
    """True for a Conv with a constant ``[cout, cin, 1, 1]`` weight, group 1, strides 1, no pads or pool, and no
    residual unless ``residual``."""
    if not is_op(node, "Conv") or (node.fused.residual is not None and not residual) or node.fused.pool is not None:
        return False
    w = graph.values[node.inputs[1]]
    if not w.is_const or len(w.shape) != 4 or tuple(w.shape[1:]) != (cin, 1, 1):
        return False
    a = node.attrs
    return (int(a.get("group", 1)) == 1 and all(int(s) == 1 for s in a.get("strides") or [1, 1])
            and not any(int(p) for p in a.get("pads") or []) and all(int(d) == 1 for d in a.get("dilations") or [1])
            and (len(node.inputs) < 3 or not node.inputs[2] or graph.values[node.inputs[2]].is_const))


def _match(graph, mul, producers, consumers):
    for k in (0, 1):
        x, g = mul.inputs[k], mul.inputs[1 - k]
        xv = graph.values[x]
        if xv.shape is None or len(xv.shape) != 4 or xv.dtype != np.float32 or xv.is_const:
            continue
        if tuple(graph.values[mul.outputs[0]].shape) != tuple(xv.shape):
            continue
        c = xv.shape[1]
        conv2 = producers.get(g)
        if conv2 is None or sole_consumer(graph, g, consumers) is not mul:
            continue
        conv1 = producers.get(conv2.inputs[0])
        if conv1 is None or sole_consumer(graph, conv1.outputs[0], consumers) is not conv2:
            continue
        pool = producers.get(conv1.inputs[0])
        if not is_op(pool, "GlobalAveragePool") or pool.inputs[0] != x or \
                sole_consumer(graph, pool.outputs[0], consumers) is not conv1:
            continue
        cr = graph.values[conv1.inputs[1]].shape[0]
        if _pointwise(graph, conv1, c) and _pointwise(graph, conv2, cr) and graph.values[conv2.inputs[1]].shape[0] == c:
            return x, pool, conv1, conv2
    return None


def _bias(graph, conv, n):
    if len(conv.inputs) > 2 and conv.inputs[2]:
        return conv.inputs[2]
    name = f"{conv.outputs[0]}__se_bias"
    graph.values[name] = Value(name, (n,), np.dtype(np.float32), np.zeros(n, np.float32))
    return name


def _replace(graph, mul, x, pool, conv1, conv2):
    c, cr = graph.values[conv2.inputs[1]].shape[0], graph.values[conv1.inputs[1]].shape[0]
    attrs = {}
    for i, conv in ((1, conv1), (2, conv2)):
        act, alpha, beta = fused_activation(conv)
        attrs.update({f"act{i}": int(act), f"act{i}_alpha": float(alpha), f"act{i}_beta": float(beta)})
    node = Node("SqueezeExcite", f"{mul.name}__se",
                [x, conv1.inputs[1], _bias(graph, conv1, cr), conv2.inputs[1], _bias(graph, conv2, c)],
                list(mul.outputs), attrs, INTERNAL_DOMAIN)
    absorb(graph, node, [pool, conv1, conv2, mul], mul)
    _fold_gates(graph, node, x)


def _fold_gates(graph, node, x):
    """Where ``node``'s output is read only by a plain 1x1 conv of one image whose weights are at most
    ``1 / FOLD_MIN_RATIO`` of ``x``, have ``node`` write only the gates and the conv take ``x`` and the gates
    (``Fused.gate``, its input 4): it scales its weights' columns per request instead of ``x`` being scaled,
    written and read again."""
    y = node.outputs[0]
    conv = sole_consumer(graph, y, graph.consumers())
    xv = graph.values[x]
    if conv is None or not _pointwise(graph, conv, xv.shape[1], True) or conv.inputs[0] != y or conv.fused.gate or \
            not all(isinstance(d, (int, np.integer)) for d in xv.shape) or xv.shape[0] != 1:
        return
    n, c = xv.shape[:2]
    if FOLD_MIN_RATIO * graph.values[conv.inputs[1]].shape[0] > int(np.prod(xv.shape[2:])):
        return  # x (c x pixels) is not much larger than the weights (cout x c): scaling x costs about as much
    gates = f"{y}__gates"
    graph.values[gates] = Value(gates, (n * c,), np.dtype(np.float32))
    del graph.values[y]
    node.outputs = [gates]
    node.attrs["gates_only"] = 1
    conv.inputs[0] = x
    conv.inputs += [""] * (4 - len(conv.inputs)) + [gates]
    conv.fused.gate = True
