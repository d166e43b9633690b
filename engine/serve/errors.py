"""Errors of the model server, each carrying its HTTP status and gRPC status code.

A request that the server refuses raises one of these at the boundary
(decoding, admission, lookup); the REST and gRPC front ends turn it into a
status and a one-line message naming what was expected and what was given.
Nothing here imports a web framework: the gRPC code is kept as its name.
"""


class ServeError(Exception):
    """A refused or failed request: ``status`` (HTTP), ``grpc_code`` (a ``grpc.StatusCode`` name)."""

    status = 500
    grpc_code = "INTERNAL"
    headers = {}


class BadRequest(ServeError):
    """The request does not fit the protocol or the model's inputs (400 / INVALID_ARGUMENT)."""

    status = 400
    grpc_code = "INVALID_ARGUMENT"


class NotFound(ServeError):
    """No model of that name (or version) is served (404 / NOT_FOUND)."""

    status = 404
    grpc_code = "NOT_FOUND"


class TooLarge(ServeError):
    """The request body is over the server's size limit (413 / RESOURCE_EXHAUSTED)."""

    status = 413
    grpc_code = "RESOURCE_EXHAUSTED"


class Busy(ServeError):
    """The model's queue is full; the client should retry later (503 / UNAVAILABLE, ``Retry-After``)."""

    status = 503
    grpc_code = "UNAVAILABLE"
    headers = {"Retry-After": "1"}


class ShuttingDown(ServeError):
    """The server is draining and accepts no new requests (503 / UNAVAILABLE)."""

    status = 503
    grpc_code = "UNAVAILABLE"


class InferenceFailed(ServeError):
    """The engine failed while running an accepted request (500 / INTERNAL)."""
