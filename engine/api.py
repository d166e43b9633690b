"""The public API: ``compile_model`` and the ``Engine`` it returns.

``compile_model`` runs the path of a model — load, import, passes, lowering to
a plan — and starts the runtime: one pinned worker per core serving the
engine's request slots in the chosen scheduling mode. ``Engine.run`` checks
every input against the compiled signature before any kernel runs, takes a
free slot (callers are served in arrival order), copies the inputs into that
slot's arena (or binds the caller's array in place, see ``_bind_inputs``),
sleeps until the workers finished the request and returns fresh output
arrays. Every slot has its own arena; the packed weights are shared.
With ``TILERUN_DEBUG=1`` (or ``2``) set at compile time, every request is
served the way ``Engine.trace`` serves it and its trace's report is printed.
An engine survives ``fork()``: in the child it starts workers of its own on
its first request (the parent's worker threads do not exist there).
"""
import asyncio
import atexit
import concurrent.futures
import os
import sys
import threading
import time
import weakref

import numpy as np

from tilerun.scheduler import executor
from tilerun.scheduler import topology as cpu_topology
from tilerun.scheduler.policies import Closed, check_num_streams
from tilerun.scheduler.runtime import Runtime
from tilerun.scheduler.trace import Trace

from .arguments import check_compile_arguments, check_count, check_timeout, debug_level
from .errors import ArgumentError, RequestError
from .importer import import_model
from .load import load_model
from .lower import lower_graph
from .passes import run_passes
from .plan import aligned_bytes
from .validate import check_inputs


def compile_model(model, batch_size=1, input_shapes=None, num_cores=None, num_streams=None,
                  scheduler="single_stream", topology=None, work_stealing=True, *, _empty_dims=False):
    """Compile an ONNX model (path, bytes or ModelProto) into a running ``Engine``.

    ``scheduler`` is ``"single_stream"`` (one request at a time over all
    cores), ``"multi_stream"`` (``num_streams`` concurrent requests, default
    one per core; idle workers help other in-flight requests unless
    ``work_stealing=False``) or ``"elastic"`` (at most one request per NUMA
    node / L3 domain). ``topology`` replaces the detected CPU topology (a
    ``tilerun.scheduler.Topology``, e.g. two one-core domains for testing).
    A bad argument raises ``ArgumentError`` before the model is read.
    (``_empty_dims``: the onnx backend's 0 dims in ``input_shapes``, for onnx's
    conformance cases on empty tensors.)
    """
    mode = check_compile_arguments(batch_size, input_shapes, num_cores, scheduler, topology, work_stealing,
                                   empty_dims=_empty_dims)
    debug = debug_level()
    topo = (topology or cpu_topology.detect()).limit(num_cores)
    try:
        n_streams = check_num_streams(mode, topo, num_streams)
    except ValueError as e:
        raise ArgumentError(str(e)) from None
    graph = import_model(load_model(model))
    run_passes(graph, batch_size, input_shapes)
    plan = lower_graph(graph, len(topo.cores))
    return Engine(graph, plan, topo, mode, n_streams, work_stealing, debug)


class Engine:
    """A compiled model served by pinned workers; call ``run`` (or the engine itself)."""

    def __init__(self, graph, plan, topo, mode, num_streams=1, work_stealing=True, debug=0):
        self.plan = plan
        self._debug = debug  # TILERUN_DEBUG, read once by compile_model: every request is traced and printed
        self.topology = topo
        self.scheduler = mode
        self.num_streams = num_streams
        self.input_names = list(graph.inputs)
        self.input_shapes = [tuple(graph.values[n].shape) for n in graph.inputs]
        self.input_dtypes = [graph.values[n].dtype for n in graph.inputs]
        self.output_names = list(graph.outputs)
        self.output_shapes = [tuple(graph.values[n].shape) for n in graph.outputs]
        self.output_dtypes = [graph.values[n].dtype for n in graph.outputs]
        self._constant_outputs = {o: graph.values[o].const for o in graph.outputs if graph.values[o].const is not None}
        self._arenas = [aligned_bytes(plan.arena_size) for _ in range(num_streams)]
        self._params = [plan.bind(a) for a in self._arenas]  # kept alive: the workers read them
        # Views into each slot's arena, made once: a request only copies through them.
        self._in_views = [[plan.view(a, n) for n in self.input_names] for a in self._arenas]
        self._in_place = [plan.in_place_inputs(n) for n in self.input_names]
        self._out_views = [[None if n in self._constant_outputs else plan.view(a, n) for n in self.output_names]
                           for a in self._arenas]
        offsets = plan.tables["param_offsets"][:-1]
        slot_params = [p.ctypes.data + 8 * offsets for p in self._params]
        self._scratch = [aligned_bytes(plan.scratch_bytes) for _ in topo.cores]
        self._runtime = Runtime(plan.tables, slot_params, topo, mode, [s.ctypes.data for s in self._scratch],
                                work_stealing)
        self._async = None
        self._closed = False
        self._lock = threading.Lock()
        _LIVE.add(self)

    # -- running ---------------------------------------------------------------
    def run(self, inputs):
        """Run one request: ``inputs`` in graph-input order (or a name → array dict); returns outputs."""
        return self._request(self._check_inputs(inputs))

    __call__ = run

    def run_async(self, inputs):
        """Submit ``inputs`` and return a ``concurrent.futures.Future`` of the outputs.

        Inputs are checked now (a bad input raises here, not in the future);
        a failure while running fails only this future.
        """
        arrays = self._check_inputs(inputs)
        with self._lock:
            if self._closed:
                raise RequestError("engine is closed")
            if self._async is None:
                # One waiting thread per slot: requests beyond the slots queue in FIFO order.
                self._async = concurrent.futures.ThreadPoolExecutor(
                    max_workers=self.num_streams, thread_name_prefix="tilerun-async")
            return self._async.submit(self._request, arrays)

    async def arun(self, inputs):
        """``await engine.arun(inputs)``: ``run_async`` for asyncio code, without blocking the loop."""
        return await asyncio.wrap_future(self.run_async(inputs))

    def trace(self, inputs, repeat=1):
        """Run ``inputs`` ``repeat`` times and return the ``Trace`` of the last run (earlier ones warm up)."""
        check_count("repeat", repeat)
        arrays = self._check_inputs(inputs)
        for _ in range(int(repeat) - 1):
            self._request(arrays)
        return self._traced(arrays)

    def _request(self, arrays):
        """One request's outputs; under ``TILERUN_DEBUG`` it is traced and its times printed."""
        if not self._debug:
            return self._serve(arrays)[0]
        return self._traced(arrays).outputs

    def _traced(self, arrays):
        """Serve ``arrays`` recording every tile (the executor's own clock); the request's ``Trace``.

        Under ``TILERUN_DEBUG`` the trace's report (per op, or per tile at 2) goes to stderr.
        """
        cap = int(self.plan.tables["n_tiles"].sum())
        t = time.perf_counter_ns()
        outputs, (events, start_ns) = self._serve(arrays, np.zeros((cap, executor.N_EV), np.int64))
        trace = Trace(self.plan.rows, events, time.perf_counter_ns() - t, outputs, start_ns)
        if self._debug:
            sys.stderr.write(trace.report(self._debug) + "\n")
        return trace

    def _serve(self, arrays, trace=None):
        if self._closed:
            raise RequestError("engine is closed")
        try:
            slot = self._runtime.acquire()
        except Closed:
            raise RequestError("engine was closed while the request waited for a free stream") from None
        try:
            self._bind_inputs(slot, arrays)
            failed, used, start_ns = self._runtime.execute(slot, trace)
            if failed is not None:
                row = self.plan.rows[failed]
                raise RequestError(f"kernel {row.kernel.name} of node {row.node!r} ({row.op_type}) reported a fault")
            outputs = [self._constant_outputs[n].copy() if v is None else v.copy()
                       for n, v in zip(self.output_names, self._out_views[slot])]
            return outputs, (None if trace is None else (trace[:used], start_ns))
        finally:
            self._runtime.release(slot)

    def _bind_inputs(self, slot, arrays):
        # An input that only in-bounds readers touch (a CNN's first padding
        # pass) is read from the caller's array, as ORT reads numpy inputs
        # (no copy into the arena). The array outlives
        # the request (the caller's frame holds it); a strided or misaligned
        # one is copied and the arena address put back.
        params = self._params[slot]
        for view, a, where in zip(self._in_views[slot], arrays, self._in_place):
            if where is not None and a.flags.c_contiguous and a.flags.aligned:
                params[where[0]] = a.ctypes.data + where[1]
                continue
            if where is not None:
                params[where[0]] = view.ctypes.data + where[1]
            np.copyto(view, a)

    def _check_inputs(self, inputs):
        return check_inputs(self.input_names, self.input_shapes, self.input_dtypes, inputs)

    # -- lifetime --------------------------------------------------------------
    def close(self, timeout=None):
        """Finish the requests in flight, fail those still waiting for a stream, stop the workers.

        Later calls to ``run`` raise ``RequestError``. Returns True when every
        worker stopped within ``timeout`` seconds (None: wait as long as it takes).
        """
        check_timeout(timeout)
        with self._lock:
            if self._closed:
                return True
            self._closed = True
        stopped = self._runtime.close(timeout)
        if self._async is not None:
            self._async.shutdown(wait=True)
        _LIVE.discard(self)
        return stopped

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


_LIVE = weakref.WeakSet()


def _after_fork_in_child():
    # The parent's request threads and locks did not come along; the runtime restarts its own workers.
    for eng in list(_LIVE):
        eng._lock = threading.Lock()
        eng._async = None


os.register_at_fork(after_in_child=_after_fork_in_child)


@atexit.register
def _close_live_engines():
    # Workers sit in nopython loops; stop them before the interpreter tears down threads.
    for eng in list(_LIVE):
        eng.close(timeout=10)
