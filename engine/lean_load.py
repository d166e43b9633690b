"""Read an ``.onnx`` file without holding it twice: the graph's structure, then its weights one at a time.

``onnx.load`` reads the whole file into memory and parses it into a second
copy, so a model's weights briefly take twice their size, before the importer
makes a third copy as numpy arrays. ``load_split`` walks the protobuf wire
format of the file instead: it parses everything but the graph's initializers
into a ``ModelProto`` and yields each initializer as its own ``TensorProto``,
read from the file when the importer asks for it, so at most one raw tensor is
in memory beside the arrays already made. External data is read from beside
the file as ``onnx.load`` does. Not here: checks of the graph (the importer)
or opset conversion (``load.load_model``, which the caller falls back to).
"""
import os

import onnx
from onnx.external_data_helper import load_external_data_for_tensor, uses_external_data

from .errors import ModelError

MODEL_GRAPH = 7        # ModelProto.graph
GRAPH_INITIALIZER = 5  # GraphProto.initializer
VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5


def load_split(path):
    """``(proto, initializers, where)`` of the model at ``path``: ``proto`` without the graph's initializers,
    a generator of them as ``TensorProto``s in file order (it keeps the file open until exhausted), and a
    dict it fills as it goes: initializer name -> ``(offset, length)`` for ``read_initializer``."""
    f = open(path, "rb")
    try:
        top, graph, spans = _split(f, os.path.getsize(path))
        proto = onnx.ModelProto()
        proto.ParseFromString(bytes(top) + _key(MODEL_GRAPH, LENGTH) + _varint(len(graph)) + bytes(graph))
    except Exception as e:
        f.close()
        raise ModelError(f"cannot read ONNX model {path!r}: {type(e).__name__}: {e}") from None
    where = {}
    return proto, _initializers(f, spans, os.path.dirname(os.path.abspath(path)), where), where


def read_initializer(path, span):
    """The ``TensorProto`` at ``span`` (from ``load_split``'s dict) of the model file at ``path``, read again."""
    with open(path, "rb") as f:
        return _tensor(f, span, os.path.dirname(os.path.abspath(path)))


def _initializers(f, spans, base_dir, where):
    with f:
        for span in spans:
            t = _tensor(f, span, base_dir)
            where[t.name] = span
            yield t


def _tensor(f, span, base_dir):
    f.seek(span[0])
    t = onnx.TensorProto()
    t.ParseFromString(f.read(span[1]))
    if uses_external_data(t):
        load_external_data_for_tensor(t, base_dir)
    return t


def _split(f, size):
    """The top-level fields but the graph, the graph's fields but its initializers (raw bytes), and the
    ``(offset, length)`` of each initializer's message."""
    top, graph, spans = bytearray(), bytearray(), []
    for field, wire, start, body, end in _fields(f, 0, size):
        if field == MODEL_GRAPH and wire == LENGTH:
            for gfield, gwire, gstart, gbody, gend in _fields(f, body, end):
                if gfield == GRAPH_INITIALIZER and gwire == LENGTH:
                    spans.append((gbody, gend - gbody))
                else:
                    graph += _read(f, gstart, gend)
        else:
            top += _read(f, start, end)
    return top, graph, spans


def _fields(f, pos, end):
    """``(field number, wire type, key offset, payload offset, end offset)`` of each field in ``[pos, end)``."""
    while pos < end:
        f.seek(pos)
        key, n = _read_varint(f)
        field, wire = key >> 3, key & 7
        body = pos + n
        if wire == VARINT:
            _, m = _read_varint(f)
            stop = body + m
        elif wire == FIXED64:
            stop = body + 8
        elif wire == FIXED32:
            stop = body + 4
        elif wire == LENGTH:
            length, m = _read_varint(f)
            body += m
            stop = body + length
        else:
            raise ValueError(f"unsupported protobuf wire type {wire} at byte {pos}")
        if stop > end:
            raise ValueError(f"field {field} at byte {pos} runs past its message's end ({stop} > {end})")
        yield field, wire, pos, body, stop
        pos = stop


def _read(f, start, end):
    f.seek(start)
    return f.read(end - start)


def _read_varint(f):
    """The varint at the file's position and the bytes it took."""
    value = shift = n = 0
    while True:
        b = f.read(1)
        if not b:
            raise ValueError("the file ends inside a varint")
        n += 1
        value |= (b[0] & 0x7F) << shift
        if b[0] < 0x80:
            return value, n
        shift += 7


def _varint(value):
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _key(field, wire):
    return _varint((field << 3) | wire)
