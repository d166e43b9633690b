"""Load an ONNX model from a path, bytes or a ModelProto, and bring its opset into range.

Models with external data load it from beside the file. Models older than
``MIN_OPSET`` are converted up with onnx's version converter (and their
PRelu slopes made to broadcast as before, which the converter leaves undone);
models newer than the installed onnx knows are refused with a clear error.
Beyond that, this module does not look inside the graph: the importer does.
"""
import os

import onnx
from onnx import numpy_helper, version_converter

from .errors import ArgumentError, ModelError
from .lean_load import load_split, read_initializer

MIN_OPSET = 7


def load_model(model):
    """Return an ``onnx.ModelProto`` from a path, ``bytes`` or a ModelProto."""
    if isinstance(model, onnx.ModelProto):
        proto = model
    elif isinstance(model, (bytes, bytearray, memoryview)):
        proto = _parse(bytes(model), "the given bytes")
    elif isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if os.path.isdir(path):
            raise ModelError(f"model path is a directory: expected a path to an .onnx file, given {path!r}")
        if not os.path.isfile(path):
            raise ModelError(f"model file not found: expected a path to an .onnx file, given {path!r}")
        if os.path.getsize(path) == 0:
            raise ModelError(f"cannot read ONNX model {path!r}: the file is empty (0 bytes)")
        try:
            proto = onnx.load(path, load_external_data=True)
        except Exception as e:  # protobuf raises DecodeError, RuntimeWarning, ...; all mean a bad file
            raise ModelError(f"cannot read ONNX model {path!r}: {type(e).__name__}: {e}") from None
        _check_graph(proto, f"ONNX model {path!r}")
    else:
        raise ArgumentError(f"model must be a path, bytes or onnx.ModelProto, given {type(model).__name__}")
    return _bring_opset_in_range(proto)


def load_for_import(model):
    """``(proto, initializers, reread)`` for ``importer.import_model``: from a path, the file's weights are
    read one at a time (``lean_load``) rather than all held twice, and ``reread`` (a ``Reread``) reads an
    initializer again; anything else (or a model whose opset needs
    converting up) loads whole with ``load_model``, with no separate initializers and no ``reread``."""
    if isinstance(model, (str, os.PathLike)) and os.path.isfile(model) and os.path.getsize(model) > 0:
        path = os.fspath(model)
        proto, initializers, where = load_split(path)
        _check_graph(proto, f"ONNX model {path!r}")
        if model_opset(proto) >= MIN_OPSET:
            return _bring_opset_in_range(proto), initializers, Reread(path, where)
        initializers.close()
    return load_model(model), (), None


class Reread:
    """``reread(name)``: an initializer of the model file read again, as a numpy array; ``name in reread``:
    whether it is one the file holds."""

    def __init__(self, path, where):
        self._path, self._where = path, where

    def __contains__(self, name):
        return name in self._where

    def __call__(self, name):
        return numpy_helper.to_array(read_initializer(self._path, self._where[name]))


def _parse(data, what):
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except Exception as e:
        raise ModelError(f"cannot parse ONNX model from {what}: {type(e).__name__}: {e}") from None
    _check_graph(proto, what)
    return proto


def _check_graph(proto, what):
    """An empty or graph-less message parses as a ModelProto of opset 1: say what it is instead."""
    if not proto.graph.node and not proto.graph.output:
        raise ModelError(f"cannot read {what}: it holds no ONNX graph (expected a serialized ModelProto "
                         f"with nodes and outputs)")


def model_opset(proto):
    """The default-domain opset version the model imports (1 when it names none)."""
    for imp in proto.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return imp.version
    return 1


def _bring_opset_in_range(proto):
    opset = model_opset(proto)
    newest = onnx.defs.onnx_opset_version()
    if opset > newest:
        raise ModelError(f"model opset {opset} is newer than this onnx package knows (at most {newest}); "
                         f"upgrade onnx or convert the model down")
    if opset < MIN_OPSET:
        try:
            proto = version_converter.convert_version(proto, MIN_OPSET)
        except Exception as e:
            raise ModelError(f"model opset {opset} is older than {MIN_OPSET} and could not be converted: {e}") from None
        _per_channel_prelu_slopes(proto)
    return proto


def _per_channel_prelu_slopes(proto):
    """Reshape constant ``[C]`` PRelu slopes to ``[C, 1, ...]`` (in place) in a model converted from below opset 7.

    Before opset 7 such a slope applied per channel (axis 1 of an N-D ``X``);
    from opset 7 it broadcasts along the last axis, and onnx's converter keeps
    it as it was. ``X``'s rank comes from onnx's shape inference; a slope
    whose ``X`` has no known rank of at least 3 is left as it is.
    """
    nodes = [n for n in proto.graph.node if n.op_type == "PRelu" and n.domain in ("", "ai.onnx")]
    if not nodes:
        return
    try:
        inferred = onnx.shape_inference.infer_shapes(proto).graph
    except Exception:  # no ranks: the slopes stay, and the importer reports what does not fit
        return
    ranks = {v.name: len(v.type.tensor_type.shape.dim) for v in [*inferred.input, *inferred.value_info]
             if v.type.tensor_type.HasField("shape")}
    inits = {t.name: t for t in proto.graph.initializer}
    declared = {v.name: v for v in proto.graph.input}
    for node in nodes:
        slope, rank = inits.get(node.input[1]), ranks.get(node.input[0], 0)
        if slope is None or rank < 3 or len(slope.dims) != 1 or slope.dims[0] <= 1:
            continue
        dims = [slope.dims[0]] + [1] * (rank - 2)
        slope.dims[:] = dims
        if slope.name in declared and declared[slope.name].type.tensor_type.HasField("shape"):
            shape = declared[slope.name].type.tensor_type.shape
            del shape.dim[:]
            for d in dims:
                shape.dim.add().dim_value = d
