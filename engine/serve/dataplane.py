"""What the REST and gRPC front ends share: the models, the server's state, limits, metrics, logs.

``DataPlane`` looks models up by name (``NotFound`` naming the served
ones), refuses new requests while the server drains (``ShuttingDown``),
holds the request-size limit, and records every answered request in the
metrics (and in the log: always for errors, for every request with
``log_requests``). The front ends only translate between their wire format
and these calls.
"""
import logging

import tilerun

from . import logs
from .errors import NotFound, ShuttingDown
from .metrics import Metrics

EXTENSIONS = ["binary_tensor_data"]


class DataPlane:
    """The served models and the state every request consults."""

    def __init__(self, models, max_request_bytes=64 << 20, log_requests=False):
        self.models = {m.name: m for m in models}
        if len(self.models) != len(models):
            raise ValueError(f"model names must be unique, given {[m.name for m in models]}")
        self.max_request_bytes = int(max_request_bytes)
        self.log_requests = log_requests
        self.draining = False
        self.metrics = Metrics(self.models)

    @property
    def ready(self):
        """True while the server takes requests (every model is compiled before it listens)."""
        return not self.draining

    def server_metadata(self):
        """The protocol's server metadata object."""
        return {"name": "tilerun", "version": tilerun.__version__, "extensions": EXTENSIONS}

    def model(self, name, version=None):
        """The ``ServedModel`` called ``name``; ``NotFound`` naming the served models otherwise."""
        m = self.models.get(name)
        if m is None:
            raise NotFound(f"unknown model {name!r}; this server serves {sorted(self.models)}")
        m.check_version(version)
        return m

    def admit(self, name, version=None):
        """The model for a new inference request, or ``ShuttingDown`` while the server drains."""
        m = self.model(name, version)
        if self.draining:
            raise ShuttingDown("server is shutting down and takes no new requests")
        return m

    @property
    def pending(self):
        """Requests accepted and not yet answered, over every model."""
        return sum(m.pending for m in self.models.values())

    def answered(self, model, protocol, code, seconds, message=None, request_id=None):
        """Record one answered inference request (metrics; the log for errors or with ``log_requests``)."""
        self.metrics.observe(model, protocol, code, seconds)
        if code >= 500:
            level = logging.ERROR if code != 503 else logging.WARNING
        elif code >= 400:
            level = logging.INFO
        elif self.log_requests:
            level = logging.INFO
        else:
            return
        fields = dict(model=model, protocol=protocol, code=code, ms=round(seconds * 1e3, 3))
        if request_id is not None:
            fields["id"] = request_id
        if message:
            fields["error"] = message
        logs.event("request", level, **fields)
