"""Small graph helpers the pattern-fusion passes share: scalar constants, sole consumers, node replacement.

Not a pass itself; nothing here changes a graph except ``absorb``.
"""
import numpy as np

from ..ops.registry import DEFAULT_DOMAINS


def is_op(node, *op_types):
    """True when ``node`` is one of ONNX's own ``op_types`` (a custom op of the same name is not)."""
    return bool(node) and node.domain in DEFAULT_DOMAINS and node.op_type in op_types


def scalar_const(graph, name):
    """The float value of a one-element constant ``name``, else None."""
    v = graph.values.get(name) if name else None
    if v is None or not v.is_const or v.const.size != 1:
        return None
    return float(np.asarray(v.const).reshape(-1)[0])


def sole_consumer(graph, name, consumers):
    """The one node that reads ``name`` when it is not a graph output, else None."""
    users = consumers.get(name, ())
    if len(users) != 1 or name in graph.outputs:
        return None
    return users[0]


def other_input(node, name):
    """The input of a two-input ``node`` that is not ``name`` (None when ``name`` is not an input)."""
    if len(node.inputs) != 2 or name not in node.inputs:
        return None
    return node.inputs[1] if node.inputs[0] == name else node.inputs[0]


def absorb(graph, keeper, absorbed, last):
    """Drop the nodes ``absorbed`` and move ``keeper`` to where ``last`` (one of them) was, in place.

    ``last`` must be the absorbed node that comes latest in the graph's order:
    every input of the fused node exists by then, so the order stays topological.
    """
    gone = {id(n) for n in absorbed}
    nodes = []
    for n in graph.nodes:
        if n is last:
            nodes.append(keeper)
        elif n is not keeper and id(n) not in gone:
            nodes.append(n)
    graph.nodes = nodes
