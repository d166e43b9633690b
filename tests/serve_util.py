"""Helpers of the model server tests: a tiny two-input model, v2 request bodies, servers in a thread or a process.

``InProcessServer`` runs ``ModelServer`` on its own event loop in a thread
(the fast tests); ``ServerProcess`` runs ``tilerun serve`` as a subprocess
and reads the ports from its ``serving`` log line (the slow tests). Both
listen on loopback ports the OS picks. ``http`` is a plain ``http.client``
call, so the tests see exactly what went over the wire.
"""
import http.client as httpclient
import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
from onnx import helper

from oracle import make_model

START_TIMEOUT_S = 300  # a cold Numba cache compiles kernels for minutes on 2 cores


def tiny_model():
    """y = Relu(x) and g = Gather(x, idx, axis=1): a FP32 and an INT64 input, two outputs."""
    return make_model([helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Gather", ["x", "idx"], ["g"], axis=1)],
                      [("x", np.float32, (2, 8)), ("idx", np.int64, (3,))],
                      [("y", np.float32, None), ("g", np.float32, None)])


def tiny_inputs(seed=0):
    rng = np.random.default_rng(seed)
    return {"x": rng.standard_normal((2, 8)).astype(np.float32), "idx": rng.integers(0, 8, 3).astype(np.int64)}


DATATYPE = {np.dtype(np.float32): "FP32", np.dtype(np.int64): "INT64"}


def http(port, method, path, body=None, headers=None, timeout=60):
    """``(status, headers with lower-case names, body bytes)`` of one plain HTTP request."""
    conn = httpclient.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body, headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def json_body(arrays, outputs=None):
    """A v2 JSON request body for ``arrays`` (name → array)."""
    req = {"inputs": [{"name": n, "shape": list(a.shape), "datatype": DATATYPE[a.dtype], "data": a.ravel().tolist()}
                      for n, a in arrays.items()]}
    if outputs is not None:
        req["outputs"] = [{"name": o} for o in outputs]
    return json.dumps(req).encode()


def binary_body(arrays, binary_outputs=True):
    """``(body, headers)`` of a v2 request with the binary tensor data extension."""
    head = json.dumps({"inputs": [{"name": n, "shape": list(a.shape), "datatype": DATATYPE[a.dtype],
                                   "parameters": {"binary_data_size": a.nbytes}} for n, a in arrays.items()],
                       "parameters": {"binary_data_output": binary_outputs}}).encode()
    return head + b"".join(a.tobytes() for a in arrays.values()), {
        "Inference-Header-Content-Length": str(len(head)), "Content-Type": "application/octet-stream"}


def outputs_of(headers, body):
    """Output name → array of a v2 answer (JSON or binary extension)."""
    n = int(headers.get("inference-header-content-length", len(body)))
    answer = json.loads(body[:n])
    out, offset = {}, n
    for o in answer["outputs"]:
        dtype = {"FP32": np.float32, "INT64": np.int64}[o["datatype"]]
        size = (o.get("parameters") or {}).get("binary_data_size")
        if size is None:
            out[o["name"]] = np.asarray(o["data"], dtype).reshape(o["shape"])
        else:
            out[o["name"]] = np.frombuffer(body, dtype, size // np.dtype(dtype).itemsize, offset).reshape(o["shape"])
            offset += size
    return out


class InProcessServer:
    """``ModelServer(models, ...)`` serving in a thread; ``http`` and ``grpc`` are its ports."""

    def __init__(self, models, **kw):
        from tilerun.serve import ModelServer
        self.server = ModelServer(models, http_port=0, grpc_port=0, **kw)
        self.errors = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        try:
            self.server.run()
        except BaseException as e:  # reported by __enter__ / __exit__
            self.errors.append(e)

    def __enter__(self):
        self._thread.start()
        deadline = time.monotonic() + 60
        while "http" not in self.server.ports and not self.errors and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not self.errors and "http" in self.server.ports, f"server did not start: {self.errors}"
        self.http, self.grpc = self.server.ports["http"], self.server.ports["grpc"]
        return self

    def __exit__(self, *exc):
        self.server.stop()
        self._thread.join(60)
        assert not self._thread.is_alive() and not self.errors, self.errors


class ServerProcess:
    """``tilerun serve ARGS`` in a subprocess on free loopback ports; its stderr lines in ``lines``."""

    def __init__(self, *args):
        cmd = [sys.executable, "-m", "tilerun.cli", "serve", *args, "--port", "0", "--grpc-port", "0"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=dict(os.environ))
        self.lines = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def events(self, name=None):
        """The JSON log lines (of event ``name``)."""
        out = []
        for line in list(self.lines):
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if name is None or rec.get("event") == name:
                out.append(rec)
        return out

    def __enter__(self):
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.events("serving"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError("server did not start:\n" + "\n".join(self.lines[-20:]))
            time.sleep(0.05)
        ev = self.events("serving")[0]
        self.http, self.grpc = ev["http_port"], ev["grpc_port"]
        return self

    def signal(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)

    def wait(self, timeout=60):
        """The exit code, once the process ended (killed after ``timeout``: a failed graceful stop)."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("server did not stop:\n" + "\n".join(self.lines[-20:]))
        self._reader.join(10)
        return code

    def stop(self):
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
        return self.wait()

    def __exit__(self, *exc):
        self.stop()
