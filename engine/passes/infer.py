"""Shape inference and constant folding in one walk over the graph.

Each node whose inputs are all constant is computed now (so the light models'
``ConstantOfShape`` weights, ``Shape`` → ``Reshape`` chains and the like become
constants); ``Shape`` and ``Size`` fold from static shapes alone. Every other
node's output shapes and dtypes come from its lowering's ``infer``, which also
validates it. Nodes of op types tilerun does not support are collected and
reported together, with their node names.
"""
import numpy as np

from ..errors import UnsupportedOpError, node_error
from ..ir import Value
from ..ops import registry
from ..ops.base import reference_fold

_SHAPE_ONLY = {"Shape", "Size"}


def infer_and_fold(graph):
    """Fill shape/dtype (and data when constant) of every value, in place; fold constant nodes away."""
    kept, missing = [], {}
    for node in graph.nodes:
        ins = [graph.value(i) for i in node.inputs]
        lowering = registry.resolve(node.op_type, graph.opset, node.domain)
        if any(v is not None and v.shape is None for v in ins):
            # Downstream of an unsupported node: nothing to infer, but report it too.
            if lowering is None:
                missing.setdefault(_op_name(node), []).append(node.name)
            kept.append(node)
            continue
        if node.op_type in _SHAPE_ONLY and ins and ins[0] is not None:
            _set_outputs(graph, node, [_shape_fold(node, ins[0])])
            continue
        if all(v is None or v.const is not None for v in ins) and node.op_type not in ("RandomNormal", "RandomUniform"):
            arrays = [None if v is None else v.const for v in ins]
            fold = lowering.fold if lowering is not None else reference_fold
            _set_outputs(graph, node, fold(node, arrays, graph.opset))
            continue
        if lowering is None:
            missing.setdefault(_op_name(node), []).append(node.name)
            kept.append(node)
            continue
        out_types = lowering.infer(node, ins)
        for name, (shape, dtype) in zip(node.outputs, out_types):
            if name:
                v = graph.values[name]
                v.shape, v.dtype = tuple(int(d) for d in shape), np.dtype(dtype)
        kept.append(node)
    if missing:
        raise UnsupportedOpError(missing, registry.supported_ops())
    graph.nodes = kept


def _op_name(node):
    return f"{node.domain}.{node.op_type}" if node.domain else node.op_type


def _shape_fold(node, v):
    if node.op_type == "Size":
        return np.array(v.size, np.int64)
    shape = np.array(v.shape, np.int64)
    start, end = node.attrs.get("start", 0), node.attrs.get("end", None)
    return shape[slice(start, end)]


def _set_outputs(graph, node, arrays):
    if len(arrays) < len([o for o in node.outputs if o]):
        raise node_error(node, f"folding produced {len(arrays)} outputs, expected {len(node.outputs)}")
    for name, arr in zip(node.outputs, arrays):
        if name:
            arr = np.require(arr, requirements="C")
            if arr.dtype == np.float64:
                arr = arr.astype(np.float32)
            graph.values[name] = Value(name, tuple(int(d) for d in arr.shape), arr.dtype, arr)
