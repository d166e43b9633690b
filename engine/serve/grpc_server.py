"""The Open Inference Protocol (KServe v2) over gRPC: ``inference.GRPCInferenceService`` on grpc.aio.

Health, server and model metadata, model readiness and ``ModelInfer``, with
the tensors in ``raw_input_contents`` (what Triton and KServe clients send)
or in typed ``contents``; outputs always come back as
``raw_output_contents``. A refused request aborts with the ``ServeError``'s
status code (INVALID_ARGUMENT, NOT_FOUND, UNAVAILABLE...) and its message.
Requests over the size limit are refused by gRPC itself
(RESOURCE_EXHAUSTED). The handlers run on the same event loop as the REST
server and hand work to the engines with ``arun``.
"""
import logging
import time

import grpc
import numpy as np

from . import logs
from .errors import BadRequest, ServeError
from .models import VERSION
from .tensors import array_from_bytes, array_from_list, check_declared, little_endian
from .v2_proto import METHODS, SERVICE, classes

# Which typed ``contents`` field carries each datatype.
CONTENTS = {"BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
            "INT64": "int64_contents", "UINT8": "uint_contents", "UINT16": "uint_contents",
            "UINT32": "uint_contents", "UINT64": "uint64_contents", "FP32": "fp32_contents",
            "FP64": "fp64_contents"}


def create_server(plane, address, max_workers=None):
    """A ``grpc.aio.Server`` serving ``plane`` on ``address`` (``host:port``); returns (server, port)."""
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", plane.max_request_bytes),
                                      ("grpc.max_send_message_length", -1),
                                      ("grpc.so_reuseport", 0)])
    service = _Service(plane)
    handlers = {name: grpc.unary_unary_rpc_method_handler(
        getattr(service, name), request_deserializer=classes[req].FromString,
        response_serializer=classes[resp].SerializeToString) for name, (req, resp) in METHODS.items()}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    try:
        port = server.add_insecure_port(address)
    except RuntimeError as e:
        raise OSError(f"cannot listen on {address} for gRPC: {e}") from None
    return server, port


class _Service:
    """The RPC handlers."""

    def __init__(self, plane):
        self.plane = plane

    async def ServerLive(self, request, context):
        return classes["ServerLiveResponse"](live=True)

    async def ServerReady(self, request, context):
        return classes["ServerReadyResponse"](ready=self.plane.ready)

    async def ServerMetadata(self, request, context):
        return classes["ServerMetadataResponse"](**self.plane.server_metadata())

    async def ModelReady(self, request, context):
        await _call(context, self.plane.model, request.name, request.version)
        return classes["ModelReadyResponse"](ready=self.plane.ready)

    async def ModelMetadata(self, request, context):
        m = await _call(context, self.plane.model, request.name, request.version)
        return classes["ModelMetadataResponse"](**m.metadata())

    async def ModelInfer(self, request, context):
        t0 = time.perf_counter()
        code, message = 500, None
        try:
            model = self.plane.admit(request.model_name, request.model_version)
            arrays, outputs = decode(model, request)
            results = await model.infer(arrays)
            code = 200
            return encode(model, request, outputs, results)
        except ServeError as e:
            code, message = e.status, str(e)
            await context.abort(grpc.StatusCode[e.grpc_code], message)
        except Exception as e:
            code, message = 500, f"internal error: {type(e).__name__}: {e}"
            logs.event("internal_error", logging.ERROR, exc_info=True, model=request.model_name)
            await context.abort(grpc.StatusCode.INTERNAL, message)
        finally:
            self.plane.answered(request.model_name, "grpc", code, time.perf_counter() - t0, message,
                                request.id or None)


async def _call(context, fn, *args):
    try:
        return fn(*args)
    except ServeError as e:
        await context.abort(grpc.StatusCode[e.grpc_code], str(e))


def decode(model, request):
    """(arrays by input name, output names) of a ``ModelInferRequest``, checked against ``model``."""
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise BadRequest(f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} inputs")
    specs = {s.name: s for s in model.inputs}
    arrays = {}
    for i, t in enumerate(request.inputs):
        spec = specs.get(t.name)
        if spec is None:
            raise BadRequest(f"model {model.name!r} has no input {t.name!r}; its inputs are "
                             f"{', '.join(s.describe() for s in model.inputs)}")
        if spec.name in arrays:
            raise BadRequest(f"input {spec.name!r} is given twice")
        shape = check_declared(spec, t.datatype, list(t.shape))
        if raw:
            arrays[spec.name] = array_from_bytes(spec, shape, raw[i])
        elif spec.datatype in CONTENTS and t.HasField("contents"):
            arrays[spec.name] = array_from_list(spec, shape, list(getattr(t.contents, CONTENTS[spec.datatype])))
        else:
            raise BadRequest(f"input {spec.name!r}: expected its data in raw_input_contents"
                             f"{' or contents.' + CONTENTS[spec.datatype] if spec.datatype in CONTENTS else ''}, "
                             f"given neither")
    missing = [s for s in model.inputs if s.name not in arrays]
    if missing:
        raise BadRequest(f"missing input {', '.join(s.describe() for s in missing)}: model {model.name!r} "
                         f"expects {', '.join(s.describe() for s in model.inputs)}")
    names = [o.name for o in request.outputs] or [s.name for s in model.outputs]
    unknown = [n for n in names if n not in {s.name for s in model.outputs}]
    if unknown:
        raise BadRequest(f"model {model.name!r} has no output {unknown[0]!r}; its outputs are "
                         f"{', '.join(s.describe() for s in model.outputs)}")
    return arrays, names


def encode(model, request, names, results):
    """The ``ModelInferResponse`` with the outputs ``names``, as raw contents."""
    by_name = dict(zip(model.engine.output_names, results))
    specs = {s.name: s for s in model.outputs}
    response = classes["ModelInferResponse"](model_name=model.name, model_version=VERSION, id=request.id)
    for name in names:
        a = by_name[name]
        response.outputs.add(name=name, datatype=specs[name].datatype, shape=a.shape)
        response.raw_output_contents.append(np.ascontiguousarray(a, little_endian(a.dtype)).tobytes())
    return response
