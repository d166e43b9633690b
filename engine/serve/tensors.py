"""Tensors of the Open Inference Protocol: datatype names, model signatures, request arrays.

The protocol names element types (``FP32``, ``INT64``...) and gives a tensor
as a shape plus either JSON data or raw little-endian bytes. This module maps
those to numpy, describes a model's inputs and outputs (``TensorSpec``, with
-1 for a dimension that is not fixed) and turns one request tensor into an
array after checking it against the spec: every refusal is a ``BadRequest``
naming the input, what the model expects and what was given. It knows
nothing of HTTP, JSON bodies or protobuf messages.
"""
import math
from typing import NamedTuple

import numpy as np

from .errors import BadRequest

DATATYPES = {"BOOL": "bool", "UINT8": "uint8", "UINT16": "uint16", "UINT32": "uint32", "UINT64": "uint64",
             "INT8": "int8", "INT16": "int16", "INT32": "int32", "INT64": "int64",
             "FP16": "float16", "FP32": "float32", "FP64": "float64"}
_NAMES = {np.dtype(v): k for k, v in DATATYPES.items()}
# Which kinds of JSON values a datatype's kind accepts: no silent float -> int truncation.
_JSON_KINDS = {"b": "b", "u": "biu", "i": "biu", "f": "biuf"}


def datatype_name(dtype):
    """The protocol's name of a numpy dtype (``float32`` → ``FP32``)."""
    dtype = np.dtype(dtype)
    if dtype not in _NAMES:
        raise ValueError(f"no Open Inference Protocol datatype for numpy {dtype}")
    return _NAMES[dtype]


def little_endian(dtype):
    """``dtype`` in the byte order the protocol's raw tensors use."""
    return np.dtype(dtype).newbyteorder("<")


class TensorSpec(NamedTuple):
    """One input or output of a served model: name, protocol datatype, shape (-1: any size)."""

    name: str
    datatype: str
    shape: tuple

    @classmethod
    def of(cls, name, shape, dtype):
        """The spec of an engine tensor; dims that are not fixed positive integers become -1."""
        dims = (-1,) if shape is None else tuple(int(d) if isinstance(d, (int, np.integer)) and d >= 0 else -1
                                                 for d in shape)
        return cls(name, datatype_name(dtype), dims)

    @property
    def dtype(self):
        """The numpy dtype of the tensor's elements."""
        return np.dtype(DATATYPES[self.datatype])

    def metadata(self):
        """The protocol's tensor metadata object."""
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}

    def describe(self):
        """``name (FP32 [1, 3, 224, 224])``: for error messages."""
        return f"{self.name!r} ({self.datatype} {list(self.shape)})"


def check_declared(spec, datatype, shape):
    """Check a request tensor's declared datatype and shape against ``spec``; returns the shape as a tuple."""
    if not isinstance(datatype, str) or datatype != spec.datatype:
        raise BadRequest(f"input {spec.name!r}: expected datatype {spec.datatype}, given {datatype!r}")
    if (not isinstance(shape, (list, tuple))
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)):
        raise BadRequest(f"input {spec.name!r}: shape must be a list of non-negative integers, given {shape!r}")
    if len(shape) != len(spec.shape) or any(e != -1 and e != g for e, g in zip(spec.shape, shape)):
        raise BadRequest(f"input {spec.name!r}: expected shape {list(spec.shape)}, given {list(shape)}")
    return tuple(shape)


def nbytes(spec, shape):
    """How many raw bytes a tensor of ``shape`` holds."""
    return math.prod(shape) * spec.dtype.itemsize


def array_from_bytes(spec, shape, buf, offset=0, size=None):
    """The array ``shape`` read from ``buf[offset:offset + size]`` (raw little-endian), without a copy."""
    want = nbytes(spec, shape)
    size = len(buf) - offset if size is None else size
    if size != want:
        raise BadRequest(f"input {spec.name!r}: expected {want} bytes of binary data for {spec.datatype} "
                         f"{list(shape)}, given {size}")
    a = np.frombuffer(buf, little_endian(spec.dtype), math.prod(shape), offset).reshape(shape)
    return a if a.dtype.isnative else a.astype(spec.dtype)


def array_from_list(spec, shape, data):
    """The array ``shape`` from JSON ``data`` (flat or nested, row-major)."""
    try:
        given = np.asarray(data)
    except (ValueError, TypeError, OverflowError) as e:
        raise BadRequest(f"input {spec.name!r}: data is not a regular array of numbers ({e})") from None
    if given.size and given.dtype.kind not in _JSON_KINDS.get(spec.dtype.kind, ""):
        raise BadRequest(f"input {spec.name!r}: expected {spec.datatype} data, given values of numpy type "
                         f"{given.dtype}")
    if given.size != math.prod(shape):
        raise BadRequest(f"input {spec.name!r}: shape {list(shape)} holds {math.prod(shape)} elements, "
                         f"data has {given.size}")
    return given.astype(spec.dtype).reshape(shape)
