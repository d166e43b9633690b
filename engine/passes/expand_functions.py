"""Function-op expansion: an ONNX op tilerun has no lowering for, but ONNX defines by a function body, becomes its body.

Many newer ops (Gelu-20, Swish, Mish, RMSNormalization, Attention-23,
HardSwish-22, Celu, Shrink, ...) are specified by a function of primitive
ops, plain or built for the node's attributes and input types ("context
dependent"). ``expand_node`` takes the body onnx gives for the newest
function version not above the model's opset, binds its formal inputs and
outputs to the node's, fills attribute references from the node (its own
attributes, then the schema defaults, then the function's), and renames the
body's inner values under the node's name. ``infer_and_fold`` calls it for a
default-domain node without a lowering, after input shapes are known (a
context-dependent body needs the input types) and before reporting the node
unsupported; body nodes that are themselves functions expand in turn. Not
here: ops of other domains, model-local functions, and speed: a body runs
as the string of primitive rows it is, until a lowering or fusion replaces it.
"""
import onnx
from onnx import helper

from ..importer import parse_attributes
from ..ir import Node, Value


def expand_node(graph, node):
    """The nodes that compute ``node`` by its ONNX function body, or None when ONNX defines it by none.

    New output values are added to ``graph.values`` (shape unknown until
    inferred); ``graph.nodes`` is left to the caller.
    """
    if node.domain not in ("", "ai.onnx"):
        return None
    body = _function_body(graph, node)
    if body is None:
        return None
    names = {formal: actual for formal, actual in zip(body.input, node.inputs)}
    names.update({formal: "" for formal in list(body.input)[len(node.inputs):]})
    names.update({formal: actual for formal, actual in zip(body.output, node.outputs)})
    prefix = f"{node.name}/{node.op_type}/"

    def rename(v):
        if not v:
            return ""
        if v not in names:
            names[v] = prefix + v
        return names[v]

    defaults = {a.name: a for a in body.attribute_proto}
    nodes = []
    for k, proto in enumerate(body.node):
        p = onnx.NodeProto()
        p.op_type, p.domain, p.name = proto.op_type, proto.domain, f"{prefix}{k}:{proto.op_type}"
        p.input.extend(rename(i) for i in proto.input)
        p.output.extend(rename(o) for o in proto.output)
        for a in proto.attribute:
            bound = _attribute(node, a, defaults) if a.ref_attr_name else a
            if bound is not None:
                p.attribute.append(bound)
        for o in p.output:
            if o and o not in graph.values:
                graph.values[o] = Value(o)
        nodes.append(Node(p.op_type, p.name, list(p.input), list(p.output), parse_attributes(p, graph.opset),
                          p.domain, p))
    return nodes


def _function_body(graph, node):
    """The ``FunctionProto`` onnx gives for ``node`` at the model's opset, or None."""
    try:
        schema = onnx.defs.get_schema(node.op_type, int(graph.opset), "")
    except onnx.defs.SchemaError:
        return None
    plain = [v for v in schema.function_opset_versions if v <= graph.opset]
    contextual = [v for v in schema.context_dependent_function_opset_versions if v <= graph.opset]
    if plain:
        data = schema.get_function_with_opset_version(max(plain))
    elif contextual:
        types = [_type_proto(graph.value(i)).SerializeToString() for i in node.inputs]
        data = schema.get_context_dependent_function_with_opset_version(max(contextual),
                                                                        _node_proto(node).SerializeToString(),
                                                                        types)
    else:
        return None
    if not data:
        return None
    body = onnx.FunctionProto()
    body.ParseFromString(data)
    return body


def _attribute(node, ref, defaults):
    """The caller's value for a body attribute that refers to it (``ref.ref_attr_name``), named ``ref.name``."""
    source = ref.ref_attr_name
    found = None
    if node.proto is not None:
        found = next((a for a in node.proto.attribute if a.name == source), None)
    if found is None and node.attrs.get(source) is not None:
        value = node.attrs[source]
        found = helper.make_attribute(source, value.encode() if isinstance(value, str) else value)
    if found is None:
        found = defaults.get(source)
    if found is None:
        return None
    bound = onnx.AttributeProto()
    bound.CopyFrom(found)
    bound.name = ref.name
    return bound


def _node_proto(node):
    if node.proto is not None:
        return node.proto
    return helper.make_node(node.op_type, node.inputs, node.outputs, name=node.name,
                            **{k: v for k, v in node.attrs.items() if v is not None})


def _type_proto(value):
    """A tensor ``TypeProto`` of ``value``'s dtype and static shape (an omitted input: an empty one)."""
    if value is None:
        return onnx.TypeProto()
    shape = None if value.shape is None else list(value.shape)
    return helper.make_tensor_type_proto(helper.np_dtype_to_tensor_dtype(value.dtype), shape)
