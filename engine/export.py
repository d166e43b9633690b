"""Write tilerun's passed graph back to ONNX: the model conversion behind ``tilerun convert``.

``convert_model`` loads a model, runs the compile-time passes that ONNX can
express (static input shapes, Identity/Dropout removal, constant folding,
BatchNorm folding into Conv, dead-node removal; not the epilogue fusion, which
has no ONNX form), writes the graph out as a ModelProto and converts it to the
target opset with onnx's version converter. Weights stay out of the proto
while the converter runs (it copies the whole model), and are attached after.
With ``dynamic_batch`` the graph is passed at batch 1, Reshapes to constant
shapes that start with that batch copy it from their input instead, and the
inputs and outputs get a symbolic batch dim. tilerun-internal ops the passes
create (``ChannelAffine``, of ``INTERNAL_DOMAIN``) are written as the ONNX ops
they stand for. This module does not check the result: the command does.
"""
import numpy as np
import onnx
from onnx import helper, numpy_helper, version_converter

from .arguments import check_count, check_input_shapes
from .errors import ArgumentError, ModelError
from .importer import import_model
from .load import load_model, model_opset
from .passes import run_passes
from .passes.batch_generic import free_reshape_batch
from .ops.registry import INTERNAL_DOMAIN
from .passes.fold_batchnorm import CHANNEL_AFFINE

TARGET_OPSET = 17
BATCH_PARAM = "N"


def convert_model(model, opset=None, batch_size=1, input_shapes=None, dynamic_batch=False):
    """The converted ``onnx.ModelProto`` of ``model`` (path, bytes or ModelProto); see the module doc.

    ``opset`` None means ``TARGET_OPSET``, or the model's own opset when that is newer
    (no model is converted down unless asked).
    """
    check_count("batch_size", batch_size, allow_none=True)
    check_input_shapes(input_shapes)
    proto = load_model(model)
    if opset is None:
        opset = max(TARGET_OPSET, model_opset(proto))
    graph = import_model(proto)
    # A dynamic batch is compiled at batch 1; Reshapes that bake it in are freed afterwards
    # (``tilerun convert`` runs the result at two batch sizes to confirm).
    run_passes(graph, 1 if dynamic_batch else batch_size, input_shapes, fuse=False)
    if dynamic_batch:
        free_reshape_batch(graph)
    skeleton, weights = graph_to_onnx(graph, proto, dynamic_batch)
    converted = convert_opset(skeleton, opset)
    # The version converter keeps the IR version; a newer opset may need a newer one.
    converted.ir_version = max(converted.ir_version, helper.find_min_ir_version_for(list(converted.opset_import)))
    attach_weights(converted, weights)
    return converted


def graph_to_onnx(graph, original, dynamic_batch=False):
    """``(ModelProto, weights)``: the graph at ``original``'s opset, initializers holding no data yet.

    ``weights`` maps initializer name → numpy array, for ``attach_weights``.
    """
    nodes, weights = [], {}
    for node in graph.nodes:
        for p, consts in _onnx_nodes(graph, node):
            nodes.append(p)
            weights.update(consts)
        for name in node.inputs:
            v = graph.value(name)
            if v is not None and v.is_const and node.domain != INTERNAL_DOMAIN:
                weights[name] = v.const
    for name in graph.outputs:
        v = graph.values[name]
        if v.is_const and not any(name in n.output for n in nodes):
            # A fully folded output: ONNX outputs must be produced, so a Constant node gives it.
            nodes.append(helper.make_node("Constant", [], [name], name=f"{name}/const",
                                          value=numpy_helper.from_array(np.asarray(v.const), name)))
    declared_in = {i.name: i for i in original.graph.input}
    declared_out = {o.name: o for o in original.graph.output}
    inputs = [_value_info(graph.values[n], declared_in.get(n), dynamic_batch) for n in graph.inputs]
    outputs = [_value_info(graph.values[n], declared_out.get(n), dynamic_batch) for n in graph.outputs]
    placeholders = [_placeholder(name, arr) for name, arr in weights.items()]
    g = helper.make_graph(nodes, original.graph.name or "tilerun", inputs, outputs, placeholders)
    opsets = [helper.make_opsetid(o.domain, o.version) for o in original.opset_import]
    if not any(o.domain in ("", "ai.onnx") for o in opsets):
        opsets.append(helper.make_opsetid("", model_opset(original)))
    m = helper.make_model(g, opset_imports=opsets, producer_name="tilerun convert")
    m.ir_version = max(original.ir_version, helper.find_min_ir_version_for(opsets), 4)
    for p in original.metadata_props:
        m.metadata_props.add(key=p.key, value=p.value)
    return m, weights


def _onnx_nodes(graph, node):
    """``[(NodeProto, {new constant name: array})]`` standing for one graph node in ONNX."""
    if any(k.startswith("_") for k in node.attrs):
        raise ModelError(f"node {node.name!r} ({node.op_type}) carries a fused epilogue, which ONNX cannot express")
    if node.op_type == CHANNEL_AFFINE and node.domain == INTERNAL_DOMAIN:
        return _channel_affine(graph, node)
    if not onnx.defs.has(node.op_type, node.domain):
        raise ModelError(f"node {node.name!r}: op {node.op_type!r} is internal to tilerun and has no ONNX form")
    return [(_node_proto(node), {})]


def _channel_affine(graph, node):
    """``x * s + t`` per channel (axis 1) as ONNX Mul and Add with (C, 1, ..., 1) constants."""
    x, s, t = (graph.value(n) for n in node.inputs)
    bshape = (-1,) + (1,) * (len(x.shape) - 2)
    sname, tname, mid = f"{node.name}/scale_c", f"{node.name}/shift_c", f"{node.name}/scaled"
    mul = helper.make_node("Mul", [node.inputs[0], sname], [mid], name=f"{node.name}/mul")
    add = helper.make_node("Add", [mid, tname], [node.outputs[0]], name=f"{node.name}/add")
    return [(mul, {sname: s.const.reshape(bshape)}), (add, {tname: t.const.reshape(bshape)})]


def _node_proto(node):
    p = onnx.NodeProto()
    p.op_type, p.name, p.domain = node.op_type, node.name, node.domain
    p.input.extend(node.inputs)
    p.output.extend(node.outputs)
    if node.proto is not None:
        p.attribute.extend(node.proto.attribute)
    else:
        p.attribute.extend(helper.make_attribute(k, v) for k, v in sorted(node.attrs.items()))
    return p


def _placeholder(name, arr):
    t = onnx.TensorProto()
    t.name = name
    t.data_type = helper.np_dtype_to_tensor_dtype(arr.dtype)
    t.dims.extend(arr.shape)
    return t


def _value_info(value, declared, dynamic_batch):
    """ValueInfo of a graph input/output: its static shape, or the declared one with a symbolic batch."""
    if value.dtype is not None:
        elem = helper.np_dtype_to_tensor_dtype(value.dtype)
    elif declared is not None:
        elem = declared.type.tensor_type.elem_type
    else:
        elem = onnx.TensorProto.FLOAT
    if not dynamic_batch and value.shape is not None and all(isinstance(d, int) for d in value.shape):
        return helper.make_tensor_value_info(value.name, elem, list(value.shape))
    if declared is None or not declared.type.tensor_type.HasField("shape"):
        return helper.make_tensor_value_info(value.name, elem, None)
    dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else (d.dim_param or None)
            for d in declared.type.tensor_type.shape.dim]
    if dims:
        dims[0] = BATCH_PARAM
    return helper.make_tensor_value_info(value.name, elem, dims)


def convert_opset(model, opset):
    """``model`` converted to default-domain ``opset`` by onnx's version converter (no-op when equal)."""
    newest = onnx.defs.onnx_opset_version()
    if not isinstance(opset, int) or not 7 <= opset <= newest:
        raise ArgumentError(f"target opset must be an integer from 7 to {newest}, given {opset!r}")
    if model_opset(model) == opset:
        return model
    try:
        return version_converter.convert_version(model, opset)
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(f"cannot convert the model from opset {model_opset(model)} to {opset}: {first}") from None


def attach_weights(model, weights):
    """Fill the data of ``model``'s initializers from ``weights`` (name → array), in place."""
    for i, t in enumerate(model.graph.initializer):
        arr = weights.get(t.name)
        if arr is not None and not t.raw_data and _is_placeholder(t):
            # np.ascontiguousarray makes a 0-d array 1-d: a scalar must stay a scalar (its rank is semantics).
            arr = np.asarray(arr)
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(np.ascontiguousarray(arr).reshape(arr.shape),
                                                                        t.name))


def _is_placeholder(t):
    return not any((t.float_data, t.int32_data, t.int64_data, t.double_data, t.uint64_data, t.string_data,
                    t.external_data))
