"""The models a server serves: one compiled engine per name, shared by every connection.

``ServedModel`` holds a model's engine, its signature as protocol tensors and
its admission control: at most ``num_streams`` requests run on the engine and
at most ``max_queue`` more wait for a stream; a request beyond that is refused
at once with ``Busy`` (503) instead of queueing without bound. Requests go to
the engine through ``Engine.arun``, so the event loop never blocks on a
request. ``parse_model_arg`` and ``load_models`` turn ``NAME=PATH`` arguments
into compiled models. Nothing here knows HTTP or gRPC.
"""
import os
import re
import time

from tilerun.errors import InputError, RequestError

from .errors import BadRequest, Busy, InferenceFailed, NotFound
from .tensors import TensorSpec

VERSION = "1"  # every model is served as one version
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class ServedModel:
    """A compiled ``Engine`` under a protocol name, with its queue limit and request counters."""

    def __init__(self, name, engine, max_queue=64, platform="tilerun_onnx"):
        if not NAME_RE.match(name):
            raise ValueError(f"model name must match {NAME_RE.pattern}, given {name!r}")
        if max_queue < 0:
            raise ValueError(f"max_queue must be >= 0, given {max_queue}")
        self.name = name
        self.engine = engine
        self.max_queue = int(max_queue)
        self.platform = platform
        self.inputs = [TensorSpec.of(n, s, d) for n, s, d in zip(engine.input_names, engine.input_shapes,
                                                                  engine.input_dtypes)]
        self.outputs = [TensorSpec.of(n, s, d) for n, s, d in zip(engine.output_names, engine.output_shapes,
                                                                   engine.output_dtypes)]
        self.pending = 0  # accepted and not yet answered; touched only on the event loop's thread

    @property
    def streams(self):
        """How many requests the engine runs at once."""
        return self.engine.num_streams

    @property
    def running(self):
        """Requests the engine is running now (or about to)."""
        return min(self.pending, self.streams)

    @property
    def queued(self):
        """Requests waiting for a free stream."""
        return max(0, self.pending - self.streams)

    def metadata(self):
        """The protocol's model metadata object."""
        return {"name": self.name, "versions": [VERSION], "platform": self.platform,
                "inputs": [t.metadata() for t in self.inputs], "outputs": [t.metadata() for t in self.outputs]}

    def check_version(self, version):
        """Refuse a version other than the one served (None and "" mean any)."""
        if version not in (None, "", VERSION):
            raise NotFound(f"model {self.name!r} has no version {version!r}; served versions: [{VERSION!r}]")

    async def infer(self, arrays):
        """The engine's outputs for ``arrays`` (input name → array); ``Busy`` when the queue is full."""
        if self.pending >= self.streams + self.max_queue:
            raise Busy(f"model {self.name!r}: queue is full ({self.queued} requests waiting for "
                       f"{self.streams} streams, limit {self.max_queue}); retry later")
        self.pending += 1
        try:
            return await self.engine.arun(arrays)
        except InputError as e:
            raise BadRequest(f"model {self.name!r}: {e}") from None
        except RequestError as e:
            raise InferenceFailed(f"model {self.name!r}: {e}") from None
        finally:
            self.pending -= 1

    def close(self, timeout=None):
        """Stop the engine (its in-flight requests finish first)."""
        return self.engine.close(timeout)


def parse_model_arg(arg):
    """``"NAME=PATH"`` → (NAME, PATH); a bare path is named by its file's stem, a light model by itself."""
    name, sep, path = arg.partition("=")
    if sep and NAME_RE.match(name):
        return name, path
    stem = os.path.splitext(os.path.basename(arg.rstrip("/")))[0]
    return stem, arg


def load_models(args, max_queue=64, log=None, **compile_kwargs):
    """Compile every ``NAME=PATH`` (or PATH, or light model name) in ``args``; a list of ``ServedModel``.

    ``compile_kwargs`` go to ``tilerun.compile_model`` (scheduler, num_streams, ...).
    """
    import tilerun
    from tilerun.commands.common import load_model_arg
    named = [parse_model_arg(a) for a in args]
    names = [n for n, _ in named]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"two models would be served under the same name {dupes}: name them with NAME=PATH")
    served = []
    for name, path in named:
        t0 = time.perf_counter()
        engine = tilerun.compile_model(load_model_arg(path), **compile_kwargs)
        served.append(ServedModel(name, engine, max_queue))
        if log is not None:
            log("model_loaded", model=name, path=path, scheduler=str(engine.scheduler), streams=engine.num_streams,
                compile_s=round(time.perf_counter() - t0, 3))
    return served
