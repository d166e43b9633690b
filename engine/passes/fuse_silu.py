"""Fuse SiLU written as ``x * Sigmoid(x)`` into the Conv/Gemm/MatMul that produces ``x``.

Exporters (torch's ``silu``, EfficientNet's swish) write SiLU as two nodes,
``s = Sigmoid(x)`` and ``y = Mul(x, s)``: two passes over the tensor and two
hand-offs. When ``x`` comes from an epilogue producer (``fuse.PRODUCERS``)
without an activation and feeds only those two nodes, the producer gets
``fused.activation = ("Silu", 0, 0)`` and writes ``y`` itself; a Conv that
already took a residual add (``fuse.fuse_residuals`` runs first) qualifies, so
``Conv -> Add -> SiLU`` is one Conv. Not done here:
a SiLU whose input has other consumers or no fusable producer stays as two
nodes; ``x * HardSigmoid(x)`` is left alone (exporters write HardSwish).
"""
import numpy as np

from ..ops.registry import DEFAULT_DOMAINS
from .fuse import PRODUCERS, _fuse, _replace


def fuse_silu(graph):
    """Turn every fusable ``Producer -> Sigmoid -> Mul(x, sigmoid)`` into the producer with a Silu epilogue."""
    _fuse(graph, _silu_step)


def _silu_step(graph, mul, producers, consumers):
    if mul.op_type != "Mul" or mul.domain not in DEFAULT_DOMAINS or len(mul.inputs) != 2:
        return False
    for k in (0, 1):
        x, s = mul.inputs[k], mul.inputs[1 - k]
        sig = producers.get(s)
        if sig is None or sig.op_type != "Sigmoid" or sig.domain not in DEFAULT_DOMAINS or sig.inputs[0] != x:
            continue
        p = producers.get(x)
        if p is None or (p.domain, p.op_type) not in PRODUCERS or p.fused.activation is not None:
            continue
        if x in graph.outputs or s in graph.outputs or graph.values[x].dtype != np.float32:
            continue
        if len(consumers.get(s, ())) != 1 or {id(n) for n in consumers.get(x, ())} != {id(sig), id(mul)}:
            continue
        if tuple(graph.values[mul.outputs[0]].shape) != tuple(graph.values[x].shape):
            continue
        p.fused.activation = ("Silu", 0.0, 0.0)
        p.outputs = [mul.outputs[0]]
        graph.nodes = [n for n in graph.nodes if n is not sig]
        _replace(graph, p, mul)
        return True
    return False

