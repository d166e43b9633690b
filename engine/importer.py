"""Turn an ``onnx.ModelProto`` into the engine's ``Graph``.

Initializers and ``Constant`` nodes become constant values; the remaining graph
inputs become the model's inputs with their declared (possibly dynamic) dims;
every node's attributes are parsed once into Python values with the ONNX
spec's defaults filled in. Nodes are put in topological order (cycles and
dangling inputs are errors). Shapes are bound later, by the shape pass.
Nodes keep their domain; the graph's ``Opset`` carries the version the model
imports of every domain, by which the registry resolves them. A node of
tilerun's internal domain (``registry.INTERNAL_DOMAIN``) is refused: only the
passes create those.
"""
import itertools

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .errors import ModelError
from .ir import Graph, Node, Value
from .plan import aligned
from .load import model_opset
from .ops.registry import INTERNAL_DOMAIN

_ONNX_DTYPES = {
    onnx.TensorProto.FLOAT: np.float32, onnx.TensorProto.INT64: np.int64,
    onnx.TensorProto.INT32: np.int32, onnx.TensorProto.BOOL: np.bool_,
    onnx.TensorProto.UINT8: np.uint8, onnx.TensorProto.INT8: np.int8,
    onnx.TensorProto.INT16: np.int16, onnx.TensorProto.UINT16: np.uint16,
    onnx.TensorProto.UINT32: np.uint32, onnx.TensorProto.UINT64: np.uint64,
    onnx.TensorProto.DOUBLE: np.float64, onnx.TensorProto.FLOAT16: np.float16,
}


def numpy_dtype(elem_type, what):
    """The numpy dtype of ONNX element type ``elem_type``; ``what`` names the tensor in errors."""
    try:
        return np.dtype(_ONNX_DTYPES[elem_type])
    except KeyError:
        name = onnx.TensorProto.DataType.Name(elem_type) if elem_type in onnx.TensorProto.DataType.values() else elem_type
        raise ModelError(f"{what}: element type {name} is not supported "
                         f"(expected one of float, int64, int32, int16, int8, uint64, uint32, uint16, uint8, bool)") from None


class Opset(int):
    """The model's default-domain opset version (an int), carrying ``domains``: other domain → version."""

    def __new__(cls, version, domains=None):
        self = super().__new__(cls, version)
        self.domains = dict(domains or {})
        return self


def model_opsets(proto):
    """The ``Opset`` of ``proto``: its default-domain version and the version of every other domain it imports."""
    return Opset(model_opset(proto), {imp.domain: int(imp.version) for imp in proto.opset_import
                                      if imp.domain not in ("", "ai.onnx")})


ALIGNED_FROM_BYTES = 4096  # smaller constants are copied where a plan reads them; they cost nothing


def import_model(proto, initializers=()):
    """Build the engine ``Graph`` of ``proto`` (a loaded, opset-checked ModelProto).

    ``initializers``: more of the graph's initializers as ``TensorProto``s,
    kept out of ``proto`` (``load.load_for_import``), converted one at a time.
    """
    g = proto.graph
    _check_text(g)
    opset = model_opsets(proto)
    values = {}
    for init in itertools.chain(g.initializer, initializers):
        if not isinstance(init.name, str):
            raise ModelError(f"an initializer name is not valid UTF-8 text: {init.name!r}")
        values[init.name] = _constant(init.name, _to_array(init, f"initializer {init.name!r}"))
    for sparse in g.sparse_initializer:
        values[sparse.values.name] = _constant(sparse.values.name, _sparse_to_dense(sparse))
    inputs = []
    for vi in g.input:
        if vi.name in values:
            if vi.name in inputs:
                raise ModelError(f"graph input {vi.name!r} is declared twice; expected unique input names")
            continue  # IR < 4 lists initializers among inputs
        if not vi.name:
            raise ModelError("a graph input has an empty name; expected every input to be named")
        values[vi.name] = _declared_value(vi)
        inputs.append(vi.name)
    nodes = []
    for i, np_ in enumerate(g.node):
        name = np_.name or f"{np_.op_type}_{i}"
        if np_.op_type == "Constant" and np_.domain in ("", "ai.onnx"):
            if len(np_.output) != 1 or not np_.output[0] or np_.output[0] in values:
                raise ModelError(f"Constant node {name!r}: expected one new output name, given {list(np_.output)}")
            values[np_.output[0]] = _constant(np_.output[0], _constant_node_value(np_, name))
            continue
        if np_.domain == INTERNAL_DOMAIN:
            raise ModelError(f"node {name!r} ({np_.op_type}): domain {INTERNAL_DOMAIN!r} is reserved for the ops "
                             f"tilerun's passes create; a model cannot use it")
        nodes.append(Node(np_.op_type, name, list(np_.input), list(np_.output),
                          parse_attributes(np_, opset), np_.domain, _detached(np_)))
    outputs = [o.name for o in g.output]
    if not outputs:
        raise ModelError("graph declares no outputs (expected at least one)")
    nodes = _topological(nodes, set(values), outputs)
    for n in nodes:
        for o in n.outputs:
            if o:
                values.setdefault(o, Value(o))
    for vi in g.output:
        if vi.name not in values:
            raise ModelError(f"graph output {vi.name!r} is produced by no node, input or initializer")
    return Graph(nodes, values, inputs, outputs, opset)


def _check_text(g):
    """Every name in the graph must be text: protobuf hands back bytes for invalid UTF-8."""
    def check(v, what):
        if not isinstance(v, str):
            raise ModelError(f"{what} is not valid UTF-8 text: {v!r}")
    for vi in list(g.input) + list(g.output):
        check(vi.name, "a graph input/output name")
    for n in g.node:
        for v in [n.name, n.op_type, n.domain] + list(n.input) + list(n.output):
            check(v, f"a name in node {n.name!r}")


def parse_attributes(node_proto, opset):
    """Attributes of ``node_proto`` as a dict, with the schema's defaults for absent ones."""
    attrs = {}

    def decoded(v):
        if isinstance(v, bytes):
            return v.decode("utf-8", "replace")
        if isinstance(v, list) and v and isinstance(v[0], bytes):
            return [x.decode("utf-8", "replace") for x in v]
        return v
    if node_proto.domain not in ("", "ai.onnx"):
        opset = getattr(opset, "domains", {}).get(node_proto.domain, opset)
    try:
        schema = onnx.defs.get_schema(node_proto.op_type, opset, node_proto.domain)
    except Exception:
        schema = None  # unknown op: reported by the lowering pass, with all the others
    if schema is not None:
        for name, a in schema.attributes.items():
            if a.default_value is not None and a.default_value.type != 0:
                attrs[name] = decoded(helper.get_attribute_value(a.default_value))
    for a in node_proto.attribute:
        declared = schema.attributes.get(a.name) if schema is not None else None
        if declared is not None and int(a.type) != int(declared.type):
            raise ModelError(f"node {node_proto.name!r} ({node_proto.op_type}): attribute {a.name!r} must be "
                             f"{_attr_type(declared.type)}, given {_attr_type(a.type)}")
        try:
            attrs[a.name] = decoded(helper.get_attribute_value(a))
        except Exception as e:
            raise ModelError(f"node {node_proto.name!r} ({node_proto.op_type}): attribute {a.name!r} cannot be "
                             f"read ({type(e).__name__}: {e})") from None
    return attrs


def _attr_type(t):
    try:
        return onnx.AttributeProto.AttributeType.Name(int(t))
    except ValueError:
        return f"type {int(t)}"


def _to_array(tensor, what):
    numpy_dtype(tensor.data_type, what)
    try:
        return numpy_helper.to_array(tensor)
    except Exception as e:
        raise ModelError(f"{what}: cannot read its data ({type(e).__name__}: {e})") from None


def _sparse_to_dense(sparse):
    """The dense array of a SparseTensorProto (indices linear ``[nnz]`` or coordinates ``[nnz, rank]``)."""
    what = f"sparse initializer {sparse.values.name!r}"
    vals = _to_array(sparse.values, what)
    idx = _to_array(sparse.indices, f"{what} indices") if sparse.HasField("indices") else np.zeros(0, np.int64)
    dims = tuple(int(d) for d in sparse.dims)
    try:
        dense = np.zeros(dims, vals.dtype)
        flat = idx.reshape(-1) if idx.ndim == 1 else np.ravel_multi_index(tuple(idx.T), dims)
        dense.reshape(-1)[flat] = vals.reshape(-1)
    except Exception as e:
        raise ModelError(f"{what}: indices {list(idx.shape)} and values {list(vals.shape)} do not fit dims "
                         f"{list(dims)} ({type(e).__name__}: {e})") from None
    return dense


def _constant(name, arr):
    # Aligned as kernels read it, so a plan that reads a weight unpacked shares this array.
    arr = aligned(arr) if arr.nbytes >= ALIGNED_FROM_BYTES else np.require(arr, requirements="C")
    return Value(name, tuple(int(d) for d in arr.shape), arr.dtype, arr)


def _constant_node_value(node_proto, name):
    for a in node_proto.attribute:
        if a.name == "value":
            return _to_array(a.t, f"Constant node {name!r}")
        if a.name in ("value_float", "value_int"):
            return np.array(helper.get_attribute_value(a), dtype=np.float32 if a.name == "value_float" else np.int64)
        if a.name in ("value_floats", "value_ints"):
            return np.array(helper.get_attribute_value(a), dtype=np.float32 if a.name == "value_floats" else np.int64)
    raise ModelError(f"Constant node {name!r}: expected a value/value_float(s)/value_int(s) attribute, given "
                     f"{[a.name for a in node_proto.attribute]}")


def _declared_value(vi):
    t = vi.type
    if not t.HasField("tensor_type"):
        raise ModelError(f"graph input {vi.name!r}: expected a tensor, given {t.WhichOneof('value')}")
    dtype = numpy_dtype(t.tensor_type.elem_type, f"graph input {vi.name!r}")
    shape = None
    if t.tensor_type.HasField("shape"):
        # An explicit dim_value of 0 is an empty dim (as ONNX Runtime reads it), not an unknown one.
        shape = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                      for d in t.tensor_type.shape.dim)
    return Value(vi.name, shape, dtype)


def _topological(nodes, available, outputs):
    available = set(available) | {""}
    produced = {}
    for n in nodes:
        for o in n.outputs:
            if o in produced or o in available - {""}:
                raise ModelError(f"value {o!r} is produced twice (node {n.name!r}); ONNX graphs are SSA")
            if o:
                produced[o] = n
    for n in nodes:
        for i in n.inputs:
            if i not in available and i not in produced:
                raise ModelError(f"node {n.name!r} ({n.op_type}) reads {i!r}, which no node, input or initializer produces")
    order, state = [], {}
    for root in nodes:
        stack = [(root, False)]
        while stack:  # iterative DFS: deep graphs must not hit Python's recursion limit
            n, expanded = stack.pop()
            key = id(n)
            if expanded:
                state[key] = 2
                order.append(n)
                continue
            if state.get(key) == 2:
                continue
            if state.get(key) == 1:
                raise ModelError(f"graph has a cycle through node {n.name!r} ({n.op_type})")
            state[key] = 1
            stack.append((n, True))
            for i in reversed(n.inputs):
                p = produced.get(i)
                if p is not None and state.get(id(p)) != 2:
                    if state.get(id(p)) == 1:
                        raise ModelError(f"graph has a cycle through node {p.name!r} ({p.op_type})")
                    stack.append((p, False))
    return order


def _detached(node_proto):
    """A copy of ``node_proto`` that does not keep the whole ModelProto (and its weights) alive."""
    copy = onnx.NodeProto()
    copy.CopyFrom(node_proto)
    return copy
