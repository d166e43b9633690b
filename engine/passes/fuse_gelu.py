"""Recognise Gelu written out in primitives and fuse it into the MatMul/Gemm that produces its input.

Exports spell Gelu in many orders: ``x * 0.5 * (1 + Erf(x / sqrt2))``,
``0.5 * x * (1 + Erf(x * 0.7071))``, the tanh form ``0.5 * x * (1 +
Tanh(0.7978 * (x + 0.044715 * x^3)))`` with ``Pow`` or ``x*x*x``. Instead of
listing them, the pass grows a region of scalar-constant elementwise nodes
around each Erf/Tanh (back to the one tensor ``x`` they start from, forward
until a value equals Gelu of ``x``) and checks the region numerically on
sample points against the exact (erf) and the tanh Gelu. A match whose
intermediate values feed nothing outside the region, and whose ``x`` comes
from a float32 MatMul/Gemm with no fused activation and no other reader,
becomes that node's fused activation ``"Gelu"`` or ``"GeluTanh"``. Not here:
a Gelu whose input comes from elsewhere (it stays in primitives).
"""
import math

import numpy as np

from .fuse_util import absorb, is_op, scalar_const

_ELEMENTWISE = {"Mul": np.multiply, "Add": np.add, "Sub": np.subtract, "Div": np.divide, "Pow": np.power}
_UNARY = {"Erf": np.vectorize(math.erf), "Tanh": np.tanh, "Sqrt": np.sqrt}
_MAX_REGION = 12
_SAMPLES = np.linspace(-6.0, 6.0, 49)
_GELU = 0.5 * _SAMPLES * (1.0 + np.vectorize(math.erf)(_SAMPLES / math.sqrt(2.0)))
_GELU_TANH = 0.5 * _SAMPLES * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (_SAMPLES + 0.044715 * _SAMPLES ** 3)))
_TOL = 1e-5 * (1.0 + np.abs(_SAMPLES))


def fuse_gelu(graph):
    """Fuse every recognised Gelu region into its producing MatMul/Gemm, in place."""
    changed = True
    while changed:
        changed = False
        producers, consumers = graph.producers(), graph.consumers()
        for node in graph.nodes:
            if is_op(node, "Erf", "Tanh") and _try(graph, node, producers, consumers):
                changed = True
                break


def _try(graph, seed, producers, consumers):
    x = _source(graph, seed.inputs[0], producers)
    if x is None:
        return False
    p = producers.get(x)
    if not is_op(p, "MatMul", "Gemm") or p.fused.activation or x in graph.outputs:
        return False
    region, values = [], {x: _SAMPLES}
    order = {id(n): i for i, n in enumerate(graph.nodes)}
    for node in sorted(_grow(graph, x, consumers, producers), key=lambda n: order[id(n)]):
        out = _evaluate(graph, node, values)
        if out is None:
            return False
        region.append(node)
        values[node.outputs[0]] = out
        name = _match(out)
        if name and _closed(graph, x, region, consumers):
            p.fused.activation = (name, 0.0, 0.0)
            p.outputs = [node.outputs[0]]
            absorb(graph, p, region, node)
            return True
    return False


def _source(graph, name, producers, depth=6):
    """The one non-constant tensor the elementwise chain feeding ``name`` starts from."""
    node = producers.get(name)
    if depth == 0 or not is_op(node, *_ELEMENTWISE, *_UNARY):
        return name
    found = {_source(graph, i, producers, depth - 1) for i in node.inputs if scalar_const(graph, i) is None}
    return found.pop() if len(found) == 1 else None


def _grow(graph, x, consumers, producers):
    """Elementwise nodes reachable from ``x`` whose inputs are ``x``, scalar constants or region values."""
    region, frontier = {}, [x]
    while frontier and len(region) < _MAX_REGION:
        name = frontier.pop()
        for n in consumers.get(name, ()):
            if id(n) in region or not is_op(n, *_ELEMENTWISE, *_UNARY) or len(n.outputs) != 1:
                continue
            region[id(n)] = n
            frontier.append(n.outputs[0])
    return list(region.values())


def _evaluate(graph, node, values):
    args = []
    for i in node.inputs:
        if i in values:
            args.append(values[i])
        elif scalar_const(graph, i) is not None:
            args.append(np.float64(np.float32(scalar_const(graph, i))))
        else:
            return None
    with np.errstate(all="ignore"):
        if node.op_type in _UNARY and len(args) == 1:
            return _UNARY[node.op_type](args[0])
        if node.op_type in _ELEMENTWISE and len(args) == 2:
            return _ELEMENTWISE[node.op_type](args[0], args[1])
    return None


def _match(out):
    if np.all(np.abs(out - _GELU) <= _TOL):
        return "Gelu"
    if np.all(np.abs(out - _GELU_TANH) <= _TOL):
        return "GeluTanh"
    return None


def _closed(graph, x, region, consumers):
    """Nothing outside the region reads ``x`` or a region value other than the last."""
    inside = {id(n) for n in region}
    names = [x] + [n.outputs[0] for n in region[:-1]]
    return all(name not in graph.outputs and all(id(c) in inside for c in consumers.get(name, ()))
               for name in names)
