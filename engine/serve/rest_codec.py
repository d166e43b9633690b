"""The REST body of an inference request and of its answer: JSON, with the binary tensor data extension.

A request body is JSON, or (binary extension) a JSON header of
``Inference-Header-Content-Length`` bytes followed by the raw tensors in the
order of the inputs that declare ``parameters.binary_data_size``. ``decode``
checks it against a ``ServedModel``'s inputs and returns an ``InferRequest``
(arrays by input name, the outputs to return and how); ``encode`` writes the
answer the same way: outputs asked with ``binary_data`` (or every output when
the request sets ``binary_data_output``) as raw bytes after the JSON header.
Every refusal is a ``BadRequest`` naming the input and what was expected.
"""
import json
from typing import NamedTuple

import numpy as np

from .errors import BadRequest
from .models import VERSION
from .tensors import array_from_bytes, array_from_list, check_declared, little_endian

HEADER_LENGTH = "inference-header-content-length"


class InferRequest(NamedTuple):
    """A decoded request: its ``id`` (or None), arrays by input name, and ``(output name, binary)`` pairs."""

    id: object
    arrays: dict
    outputs: list


def decode(model, body, header_length=None):
    """The ``InferRequest`` in ``body`` (bytes) for ``model``; ``header_length`` is the extension's header."""
    head_end = _header_end(body, header_length)
    req = _json_object(body[:head_end] if head_end < len(body) else body)
    inputs = req.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise BadRequest(f"request must have a non-empty 'inputs' list, given {_kind(inputs)}")
    specs = {s.name: s for s in model.inputs}
    arrays, offset = {}, head_end
    for t in inputs:
        spec, shape, params = _input_header(model, specs, t, arrays)
        size = params.get("binary_data_size")
        if size is not None:
            if header_length is None:
                raise BadRequest(f"input {spec.name!r}: binary_data_size given, but the request has no "
                                 f"Inference-Header-Content-Length header")
            if not isinstance(size, int) or isinstance(size, bool) or size < 0 or offset + size > len(body):
                raise BadRequest(f"input {spec.name!r}: binary_data_size must be a byte count within the "
                                 f"{len(body) - offset} bytes left in the body, given {size!r}")
            arrays[spec.name] = array_from_bytes(spec, shape, body, offset, size)
            offset += size
        elif "data" in t:
            arrays[spec.name] = array_from_list(spec, shape, t["data"])
        else:
            raise BadRequest(f"input {spec.name!r}: expected 'data' or parameters.binary_data_size, given neither")
    missing = [s for s in model.inputs if s.name not in arrays]
    if missing:
        raise BadRequest(f"missing input {', '.join(s.describe() for s in missing)}: model {model.name!r} "
                         f"expects {', '.join(s.describe() for s in model.inputs)}")
    if offset != len(body):
        raise BadRequest(f"binary data is {len(body) - head_end} bytes, but the inputs' binary_data_size add "
                         f"up to {offset - head_end}")
    return InferRequest(_request_id(req), arrays, _outputs(model, req))


def encode(model, request, results):
    """``(body bytes, headers)`` of the answer to ``request``, ``results`` in the engine's output order."""
    by_name = dict(zip(model.engine.output_names, results))
    specs = {s.name: s for s in model.outputs}
    entries, chunks = [], []
    for name, binary in request.outputs:
        a, spec = by_name[name], specs[name]
        entry = {"name": name, "datatype": spec.datatype, "shape": list(a.shape)}
        if binary:
            raw = np.ascontiguousarray(a, little_endian(a.dtype)).tobytes()
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            entry["data"] = a.ravel().tolist()
        entries.append(entry)
    answer = {"model_name": model.name, "model_version": VERSION, "outputs": entries}
    if request.id is not None:
        answer["id"] = request.id
    head = json.dumps(answer, separators=(",", ":")).encode()
    if not chunks:
        return head, {"content-type": "application/json"}
    return b"".join([head, *chunks]), {"content-type": "application/octet-stream", HEADER_LENGTH: str(len(head))}


def _header_end(body, header_length):
    if header_length is None:
        return len(body)
    try:
        n = int(header_length)
    except ValueError:
        n = -1
    if not 0 <= n <= len(body):
        raise BadRequest(f"Inference-Header-Content-Length must be a byte count within the {len(body)}-byte "
                         f"body, given {header_length!r}")
    return n


def _json_object(text):
    try:
        req = json.loads(text)
    except (ValueError, UnicodeDecodeError) as e:
        raise BadRequest(f"request is not valid JSON: {e}") from None
    if not isinstance(req, dict):
        raise BadRequest(f"request must be a JSON object, given {_kind(req)}")
    return req


def _input_header(model, specs, t, seen):
    """(spec, shape, parameters) of one request input, checked against the model."""
    if not isinstance(t, dict) or not isinstance(t.get("name"), str):
        raise BadRequest(f"each input must be an object with a 'name', given {_kind(t)}")
    spec = specs.get(t["name"])
    if spec is None:
        raise BadRequest(f"model {model.name!r} has no input {t['name']!r}; its inputs are "
                         f"{', '.join(s.describe() for s in model.inputs)}")
    if spec.name in seen:
        raise BadRequest(f"input {spec.name!r} is given twice")
    shape = check_declared(spec, t.get("datatype"), t.get("shape"))
    params = t.get("parameters") or {}
    if not isinstance(params, dict):
        raise BadRequest(f"input {spec.name!r}: parameters must be an object, given {_kind(params)}")
    return spec, shape, params


def _outputs(model, req):
    """``(name, binary)`` of each output to return: those the request names, else all."""
    params = req.get("parameters") or {}
    default = bool(params.get("binary_data_output", False)) if isinstance(params, dict) else False
    asked = req.get("outputs")
    if asked is None:
        return [(s.name, default) for s in model.outputs]
    if not isinstance(asked, list):
        raise BadRequest(f"'outputs' must be a list, given {_kind(asked)}")
    names = {s.name for s in model.outputs}
    out = []
    for o in asked:
        if not isinstance(o, dict) or o.get("name") not in names:
            raise BadRequest(f"model {model.name!r} has no output {_name_of(o)!r}; its outputs are "
                             f"{', '.join(s.describe() for s in model.outputs)}")
        p = o.get("parameters") or {}
        out.append((o["name"], bool(p.get("binary_data", default)) if isinstance(p, dict) else default))
    return out


def _request_id(req):
    rid = req.get("id")
    if rid is not None and not isinstance(rid, str):
        raise BadRequest(f"request 'id' must be a string, given {_kind(rid)}")
    return rid


def _name_of(o):
    return o.get("name") if isinstance(o, dict) else o


def _kind(value):
    return "nothing" if value is None else type(value).__name__ if not isinstance(value, (dict, list)) else (
        f"{type(value).__name__} of {len(value)}")
