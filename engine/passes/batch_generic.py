"""Reshapes that bake the export batch follow the batch instead.

Models exported at batch 1 often flatten with a constant ``Reshape [1, 2048]``,
which breaks at any other batch. ``free_reshape_batch`` rewrites the leading
1 of such a constant shape into 0 (ONNX: copy the input's dim) where the
Reshape's input has leading dim 1 at the export batch: at that batch the
result is unchanged, and at another batch the leading dim follows the input's.
``batch_generic`` finds those Reshapes on a copy of a graph inferred at its
export shapes and rewrites them in the graph itself. A heuristic: it assumes
the input's leading dim is the batch (``tilerun convert --dynamic-batch``
checks the result at two batch sizes; the engine checks each batch's shapes
as it builds that batch's plan). Not here: Reshapes whose shape is computed.
"""
from ..ir import Value


def free_reshape_batch(graph):
    """Rewrite, in place, each constant-shape Reshape whose shape and input both lead with 1 (shapes inferred)."""
    changed = []
    for node in graph.nodes:
        if node.op_type != "Reshape" or len(node.inputs) < 2 or node.attrs.get("allowzero", 0):
            continue
        x, v = graph.value(node.inputs[0]), graph.value(node.inputs[1])
        if v is None or not v.is_const or v.const.ndim != 1 or not v.const.size or int(v.const[0]) != 1:
            continue
        if not x.shape or x.shape[0] != 1:
            continue
        _free(graph, node, v.const)
        changed.append(node.name)
    return changed


def batch_generic(graph, export_shapes, infer):
    """Make ``graph``'s batch-baking Reshapes batch-generic; ``infer(copy, shapes)`` runs the shape passes.

    Returns the names of the Reshapes rewritten.
    """
    probe = graph.copy()
    infer(probe, export_shapes)
    names = set(free_reshape_batch(probe))
    for node in graph.nodes:
        v = graph.value(node.inputs[1]) if node.name in names and len(node.inputs) > 1 else None
        if v is not None and v.is_const:  # still a constant before folding: rewrite it here too
            _free(graph, node, v.const)
    return sorted(names)


def _free(graph, node, shape):
    shape = shape.copy()
    shape[0] = 0
    name = f"{node.name}/shape_free_batch"
    graph.values[name] = Value(name, shape.shape, shape.dtype, shape)
    node.inputs = [node.inputs[0], name] + node.inputs[2:]
