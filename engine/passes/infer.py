"""Shape inference and constant folding in one walk over the graph.

Each node whose inputs are all constant is computed now (so the light models'
``ConstantOfShape`` weights, ``Shape`` → ``Reshape`` chains and the like become
constants); ``Shape`` and ``Size`` fold from static shapes alone. Every other
node's output shapes and dtypes come from its lowering's ``infer``, which also
validates it. Nodes of op types tilerun does not support are collected and
reported together, with their node names (and domain, outside ONNX's default
one). A node with constant inputs folds through its lowering's ``fold``; one
without a lowering folds through onnx's reference evaluator only when onnx
knows its op (custom ops of an unregistered domain are reported, not folded).
A default-domain node without a lowering that ONNX defines by a function
body is replaced by that body (``expand_functions``) and its nodes inferred.

This is the boundary where a malformed graph must turn into a ``ModelError``:
anything else a lowering's rule raises on a bad node is reported as that
node's error; tensors with negative dims or over ``MAX_TENSOR_BYTES`` are
refused (before folding, too); run-time tensors must have a dtype the kernels
carry (float16/float64 may only appear in constants that fold away).
A quantized model (QDQ or QOperator ops, ``QUANTIZED_OPS``) is refused first,
with the nodes that make it one, before the reference evaluator is asked to
fold any of them.
"""
import numpy as np
import onnx

from ..errors import ModelError, QuantizedModelError, TilerunError, UnsupportedOpError, node_error
from ..ir import SUPPORTED_DTYPES, Value
from ..ops import registry
from ..ops.base import reference_fold
from .expand_functions import expand_node

_SHAPE_ONLY = {"Shape", "Size"}
MAX_TENSOR_BYTES = 1 << 32  # one tensor over 4 GiB is a malformed shape, not a model
# Ops that make a model quantized (ONNX's and ONNX Runtime's com.microsoft ones), besides any QLinear*.
QUANTIZED_OPS = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "ConvInteger", "MatMulInteger",
                 "QGemm", "QAttention", "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "MatMulNBits",
                 "DynamicQuantizeLSTM", "QEmbedLayerNormalization"}
QUANTIZED_DOMAINS = registry.DEFAULT_DOMAINS + ("com.microsoft",)


def infer_and_fold(graph):
    """Fill shape/dtype (and data when constant) of every value, in place; fold constant nodes away."""
    refuse_quantized(graph)
    for name in graph.inputs:
        v = graph.values[name]
        _check_runtime_dtype(v, f"graph input {name!r}")
        if int(np.prod(v.shape, dtype=object)) * v.dtype.itemsize > MAX_TENSOR_BYTES:
            raise ModelError(f"graph input {name!r} of shape {list(v.shape)} would take more than tilerun's "
                             f"limit of {MAX_TENSOR_BYTES} bytes per tensor")
    kept, missing = [], {}
    for node in graph.nodes:
        try:
            _infer_node(graph, node, kept, missing)
        except TilerunError:
            raise
        except Exception as e:  # a lowering's rule tripped on a malformed node: report it as the model's fault
            raise node_error(node, f"malformed node ({type(e).__name__}: {e})") from e
    if missing:
        known = list(registry.supported_ops()) + [f"{d}.{op}" for d, op in registry.domain_ops()]
        raise UnsupportedOpError(missing, known)
    for node in kept:
        for name in node.inputs:
            if name and graph.values[name].shape is None:
                raise node_error(node, f"input {name!r} has no shape: no node, input or initializer defines it")
    for node in kept:
        for name in node.outputs:
            if name:
                _check_runtime_dtype(graph.values[name], f"tensor {name!r} (output of node {node.name!r}, "
                                                         f"{node.op_type})")
    graph.nodes = kept


def refuse_quantized(graph):
    """Raise ``QuantizedModelError`` naming the quantization nodes, if the graph has any tilerun cannot lower."""
    found = {}
    for node in graph.nodes:
        quantized = node.op_type in QUANTIZED_OPS or node.op_type.startswith("QLinear")
        if quantized and node.domain in QUANTIZED_DOMAINS and \
                registry.resolve(node.op_type, graph.opset, node.domain) is None:
            found.setdefault(_op_name(node), []).append(node.name)
    if found:
        raise QuantizedModelError(found)


def _check_runtime_dtype(value, what):
    """Run-time tensors must have a dtype kernels handle; float16/float64 only ever fold at compile time."""
    if value.dtype is not None and not value.is_const and value.dtype not in SUPPORTED_DTYPES:
        raise ModelError(f"{what} has dtype {value.dtype}; tilerun computes in float32 and carries integer and "
                         f"bool tensors (expected one of {', '.join(str(d) for d in SUPPORTED_DTYPES)}); "
                         f"convert the model's {value.dtype} tensors to float32")


def _infer_node(graph, node, kept, missing):
    ins = [graph.value(i) for i in node.inputs]
    lowering = registry.resolve(node.op_type, graph.opset, node.domain)
    if any(v is not None and v.shape is None for v in ins):
        # Downstream of an unsupported node: nothing to infer, but report it too.
        if lowering is None:
            missing.setdefault(_op_name(node), []).append(node.name)
        kept.append(node)
        return
    if lowering is None and not _onnx_knows(node):
        missing.setdefault(_op_name(node), []).append(node.name)
        kept.append(node)
        return
    if node.op_type in _SHAPE_ONLY and node.domain in registry.DEFAULT_DOMAINS and ins and ins[0] is not None:
        _set_outputs(graph, node, [_shape_fold(node, ins[0])])
        return
    if all(v is None or v.is_const for v in ins) and node.op_type not in ("RandomNormal", "RandomUniform"):
        _check_fold_size(node, lowering, ins)
        arrays = [None if v is None else v.const for v in ins]
        fold = lowering.fold if lowering is not None else reference_fold
        _set_outputs(graph, node, fold(node, arrays, graph.opset))
        return
    if lowering is None:
        body = expand_node(graph, node)
        if body is None:
            missing.setdefault(_op_name(node), []).append(node.name)
            kept.append(node)
            return
        for step in body:
            _infer_node(graph, step, kept, missing)
        return
    out_types = list(lowering.infer(node, ins))
    named = [o for o in node.outputs if o]
    if len(out_types) < len(node.outputs) and len(named) > len(out_types):
        raise node_error(node, f"has outputs {list(node.outputs)}, expected at most {len(out_types)}")
    for name, (shape, dtype) in zip(node.outputs, out_types):
        if name:
            shape = tuple(int(d) for d in shape)
            _check_size(node, name, shape, np.dtype(dtype))
            v = graph.values[name]
            v.shape, v.dtype = shape, np.dtype(dtype)
    kept.append(node)


def _check_fold_size(node, lowering, ins):
    """Refuse, before computing it, a constant fold whose output would be absurdly large."""
    shapes = []
    onnx_op = node.domain in registry.DEFAULT_DOMAINS
    if onnx_op and node.op_type == "ConstantOfShape" and ins and ins[0] is not None:
        shapes = [tuple(int(d) for d in np.asarray(ins[0].const).reshape(-1))]
    elif onnx_op and node.op_type == "Range" and len(ins) == 3 and all(v is not None for v in ins):
        start, limit, delta = (float(np.asarray(v.const).reshape(-1)[0]) for v in ins)
        if delta != 0 and np.isfinite([start, limit, delta]).all():
            shapes = [(max(int(np.ceil((limit - start) / delta)), 0),)]
    elif lowering is not None:
        try:
            shapes = [tuple(int(d) for d in shape) for shape, _ in lowering.infer(node, ins)]
        except Exception:
            shapes = []  # the reference evaluator has the last word on folding
    for name, shape in zip(list(node.outputs) + [""] * len(shapes), shapes):
        _check_size(node, name, shape, np.dtype(np.float64))


def _check_size(node, name, shape, dtype):
    if any(d < 0 for d in shape):
        raise node_error(node, f"output {name!r} would have shape {list(shape)}; expected non-negative dims")
    nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if nbytes > MAX_TENSOR_BYTES:
        raise node_error(node, f"output {name!r} of shape {list(shape)} would take {nbytes} bytes, more than "
                               f"tilerun's limit of {MAX_TENSOR_BYTES} bytes per tensor")


def _onnx_knows(node):
    """Whether onnx has a schema for ``node``'s op (so its reference evaluator may fold it); default domain: assumed."""
    if node.domain in registry.DEFAULT_DOMAINS:
        return True
    return onnx.defs.has(node.op_type, node.domain)


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
