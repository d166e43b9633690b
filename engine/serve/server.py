"""The model server: REST (uvicorn) and gRPC (grpc.aio) on one event loop, and its graceful shutdown.

``ModelServer(models).run()`` listens on both ports (loopback unless told
otherwise), logs one ``serving`` event with the bound ports, and serves until
SIGTERM/SIGINT or ``stop()``. Shutdown drains: readiness turns false, both
servers stop accepting, every accepted request is answered (REST and gRPC
wait for their in-flight calls, up to ``grace_s``), requests arriving after
the drain began get 503 / UNAVAILABLE, then the engines are closed. The engines are compiled before the server listens, in this
process: the server never forks (an engine's workers live in the process
that compiled it).
"""
import asyncio
import contextlib
import gc
import signal
import threading
import time

import uvicorn

from . import logs
from .dataplane import DataPlane
from .grpc_server import create_server
from .rest import create_app


SETTLE_S = 0.25


class _Uvicorn(uvicorn.Server):
    """uvicorn without its own signal handling: the model server owns SIGTERM/SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield

    def install_signal_handlers(self):  # uvicorn < 0.29
        pass


class ModelServer:
    """Serves ``models`` (``ServedModel`` list) over REST on ``http_port`` and gRPC on ``grpc_port``.

    Port 0 picks a free port (see ``ports`` once serving); ``grpc_port=None``
    serves REST only.
    """

    def __init__(self, models, host="127.0.0.1", http_port=8000, grpc_port=8001, max_request_bytes=64 << 20,
                 grace_s=30.0, log_requests=False):
        self.plane = DataPlane(models, max_request_bytes, log_requests)
        self.host, self.http_port, self.grpc_port, self.grace_s = host, http_port, grpc_port, grace_s
        self.ports = {}
        self._loop = None
        self._stop = None
        self._http = None
        self._grpc = None

    def run(self):
        """Serve until a signal or ``stop()``; returns once every engine is closed."""
        asyncio.run(self.serve())

    def stop(self):
        """Begin the graceful shutdown (from any thread)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)

    async def serve(self):
        """Start both servers, wait for the stop signal, drain, close the engines."""
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        self._install_signals()
        gc.collect()
        gc.freeze()  # the compiled models' objects are permanent: collections skip them
        config = uvicorn.Config(create_app(self.plane), host=self.host, port=self.http_port, log_config=None,
                                access_log=False, lifespan="off", timeout_graceful_shutdown=self.grace_s,
                                timeout_keep_alive=30)
        self._http = _Uvicorn(config)
        http_task = asyncio.create_task(self._serve_http())
        try:
            if self.grpc_port is not None:
                self._grpc, self.ports["grpc"] = create_server(self.plane, f"{self.host}:{self.grpc_port}")
                await self._grpc.start()
            while not self._http.started and not http_task.done():
                await asyncio.sleep(0.01)
            if not self._http.started:  # uvicorn logged why (e.g. the port is in use)
                raise OSError(f"cannot listen on {self.host}:{self.http_port} for REST")
        except BaseException:
            self._http.should_exit = True
            await http_task
            if self._grpc is not None:
                await self._grpc.stop(0)
            await self._close_engines()
            raise
        self.ports["http"] = self._http.servers[0].sockets[0].getsockname()[1]
        logs.event("serving", host=self.host, http_port=self.ports["http"], grpc_port=self.ports.get("grpc"),
                   models={m.name: m.engine.num_streams for m in self.plane.models.values()})
        await self._stop.wait()
        await self._drain(http_task)

    async def _drain(self, http_task):
        t0 = time.perf_counter()
        logs.event("draining", pending=self.plane.pending)
        self.plane.draining = True
        self._http.should_exit = True
        # Calls gRPC has received but not yet handed to us would be CANCELLED by stop(): let them
        # reach the handlers first, which answer UNAVAILABLE ("shutting down"), a retryable error.
        await asyncio.sleep(SETTLE_S)
        if self._grpc is not None:
            await self._grpc.stop(self.grace_s)
        await http_task
        deadline = time.monotonic() + self.grace_s
        while self.plane.pending and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await self._close_engines()
        logs.event("stopped", drain_s=round(time.perf_counter() - t0, 3), unanswered=self.plane.pending)

    async def _close_engines(self):
        loop = asyncio.get_running_loop()
        for m in self.plane.models.values():
            await loop.run_in_executor(None, m.close, self.grace_s)

    async def _serve_http(self):
        try:
            await self._http.serve()
        except SystemExit:  # uvicorn exits when it cannot bind; serve() reports it
            pass

    def _install_signals(self):
        if threading.current_thread() is not threading.main_thread():
            return  # signals reach only the main thread; stop() still works

        def on_signal(sig):
            if self._stop.is_set():  # a second signal: stop waiting for in-flight requests
                logs.event("forced_exit", signal=sig.name)
                self._http.force_exit = True
                if self._grpc is not None:
                    self._loop.create_task(self._grpc.stop(0))
                return
            logs.event("signal", signal=sig.name)
            self._stop.set()
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._loop.add_signal_handler(sig, on_signal, sig)


def serve(models, host="127.0.0.1", port=8000, grpc_port=8001, max_queue=64, max_request_bytes=64 << 20,
          grace_s=30.0, log_requests=False, log_format="json", **compile_kwargs):
    """Compile ``models`` (``NAME=PATH``, paths or light model names) and serve them until SIGTERM/SIGINT.

    ``compile_kwargs`` go to ``tilerun.compile_model``; the scheduler defaults
    to ``multi_stream``, so concurrent requests share the cores.
    """
    from .models import ServedModel, load_models
    logs.setup(fmt=log_format)
    if not compile_kwargs.get("hint"):
        compile_kwargs.setdefault("scheduler", "multi_stream")
    named = [m for m in models if isinstance(m, ServedModel)]
    paths = [m for m in models if not isinstance(m, ServedModel)]
    served = named + load_models(paths, max_queue, log=logs.event, **compile_kwargs)
    ModelServer(served, host, port, grpc_port, max_request_bytes, grace_s, log_requests).run()
