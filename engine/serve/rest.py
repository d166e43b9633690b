"""The Open Inference Protocol (KServe v2) over HTTP/REST, as a FastAPI application.

Endpoints: ``GET /v2/health/live``, ``/v2/health/ready``, ``/v2`` (server
metadata), ``/v2/models/NAME[/versions/V]`` (model metadata),
``.../ready``, ``POST .../infer`` (JSON or the binary tensor data extension)
and ``GET /metrics`` (Prometheus). Errors are ``{"error": message}`` with the
status of the ``ServeError``; an unexpected failure is a 500 with its message
and a logged traceback, never a dropped connection. The body is read with
the size limit applied while it streams in. ``create_app`` builds the app
for any ASGI server (the model server runs it under uvicorn; Ray Serve can
mount it).
"""
import asyncio
import json
import logging
import time

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from . import logs
from .errors import ServeError, TooLarge
from .rest_codec import HEADER_LENGTH, decode, encode

# Bodies this much over the limit are still read (and dropped) so the client sees the 413.
DRAIN_FACTOR = 4
OFFLOAD_BYTES = 1 << 20  # a JSON body this large is decoded off the event loop


def create_app(plane):
    """The FastAPI app serving ``plane`` (a ``DataPlane``)."""
    app = FastAPI(title="tilerun model server", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_exception_handler(HTTPException, _http_error)

    @app.get("/v2/health/live")
    async def live():
        return _json({"live": True})

    @app.get("/v2/health/ready")
    async def ready():
        return _json({"ready": plane.ready}, 200 if plane.ready else 503)

    @app.get("/v2")
    async def server_metadata():
        return _json(plane.server_metadata())

    @app.get("/metrics")
    async def metrics():
        return Response(plane.metrics.render(), media_type=plane.metrics.content_type)

    async def model_metadata(model_name: str, version: str = None):
        try:
            return _json(plane.model(model_name, version).metadata())
        except ServeError as e:
            return _error(e)

    async def model_ready(model_name: str, version: str = None):
        try:
            plane.model(model_name, version)
        except ServeError as e:
            return _error(e)
        return _json({"name": model_name, "ready": plane.ready}, 200 if plane.ready else 503)

    async def infer(request: Request, model_name: str, version: str = None):
        return await _infer(plane, request, model_name, version)

    for base in ("/v2/models/{model_name}", "/v2/models/{model_name}/versions/{version}"):
        app.add_api_route(base, model_metadata, methods=["GET"])
        app.add_api_route(base + "/ready", model_ready, methods=["GET"])
        app.add_api_route(base + "/infer", infer, methods=["POST"])
    return app


async def _infer(plane, request, model_name, version):
    t0 = time.perf_counter()
    code, message, rid = 500, None, None
    try:
        model = plane.admit(model_name, version)
        body = await _read_body(request, plane.max_request_bytes)
        header = request.headers.get(HEADER_LENGTH)
        if header is None and len(body) > OFFLOAD_BYTES:
            req = await asyncio.get_running_loop().run_in_executor(None, decode, model, body, header)
        else:
            req = decode(model, body, header)
        rid = req.id
        results = await model.infer(req.arrays)
        content, headers = encode(model, req, results)
        code = 200
        return Response(content, headers=headers)
    except ServeError as e:
        code, message = e.status, str(e)
        return _error(e)
    except Exception as e:  # a bug of ours: answer it, log it, keep serving
        message = f"internal error: {type(e).__name__}: {e}"
        logs.event("internal_error", logging.ERROR, exc_info=True, model=model_name)
        return _json({"error": message}, 500)
    finally:
        plane.answered(model_name, "rest", code, time.perf_counter() - t0, message, rid)


async def _read_body(request, limit):
    """The request body; ``TooLarge`` past ``limit`` bytes (small excesses are drained first)."""
    declared = request.headers.get("content-length")
    declared = int(declared) if declared and declared.isdigit() else None
    if declared is not None and declared > DRAIN_FACTOR * limit:
        raise TooLarge(f"request body is {declared} bytes, over the server's limit of {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
        elif size > DRAIN_FACTOR * limit:
            break
    if size > limit:
        raise TooLarge(f"request body is {declared or f'at least {size}'} bytes, over the server's limit of "
                       f"{limit} bytes")
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _json(obj, status=200):
    return Response(json.dumps(obj, separators=(",", ":")), status, media_type="application/json")


def _error(e):
    return Response(json.dumps({"error": str(e)}), e.status, headers=e.headers, media_type="application/json")


async def _http_error(request, exc):
    return Response(json.dumps({"error": str(exc.detail)}), exc.status_code, media_type="application/json")
