"""The public API: ``compile_model`` and the ``Engine`` it returns.

``compile_model`` runs the path of a model — load, import, passes, lowering to
a plan — and starts the runtime: one pinned worker per core serving the
engine's request slots in the chosen scheduling mode. Symbolic dims stay
dynamic: a request of shapes not seen before gets its plan built on first use
(``plans.PlanCache``); a model whose dims are all fixed gets its one plan
here. ``Engine.run`` checks every input against the signature before any
kernel runs, takes a free slot (callers are served in arrival order), copies
the inputs into that slot's arena for the request's plan (or binds the
caller's array in place, see ``_bind_inputs``), sleeps until the workers
finished the request and returns fresh output arrays. Every slot has its own
arena per plan; the packed weights are shared by every slot and plan.
With ``TILERUN_DEBUG=1`` (or ``2``) set at compile time, every request is
served the way ``Engine.trace`` serves it and its trace's report is printed.
"""
import asyncio
import atexit
import concurrent.futures
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
from .memory import ALIGN
from .plan import aligned_bytes
from .plans import PlanCache, Signature
from .validate import check_inputs


def compile_model(model, batch_size=None, input_shapes=None, num_cores=None, num_streams=None,
                  scheduler="single_stream", topology=None, work_stealing=True, plan_cache_size=8, *,
                  _empty_dims=False):
    """Compile an ONNX model (path, bytes or ModelProto) into a running ``Engine``.

    Dims the model leaves symbolic (``dim_param`` or unnamed) stay dynamic: each
    request may have its own sizes there, and a plan for sizes not seen before
    is built on first use (the ``plan_cache_size`` most recent are kept).
    ``batch_size`` fixes the first dim of every input (None: as the model says).
    ``input_shapes`` maps an input name to its full shape, e.g.
    ``{"input_ids": [1, 128]}``, or a symbolic dim's name to a size or to
    ``(lo, hi)`` bounds, e.g. ``{"seq": (1, 512)}``.

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
    if not isinstance(plan_cache_size, int) or isinstance(plan_cache_size, bool) or plan_cache_size < 1:
        raise ArgumentError(f"plan_cache_size must be a positive integer, given {plan_cache_size!r}")
    graph = import_model(load_model(model))
    plans = PlanCache(graph, Signature(graph, batch_size, input_shapes), len(topo.cores), n_streams,
                      plan_cache_size)
    return Engine(plans, topo, mode, n_streams, work_stealing, debug)


class Engine:
    """A compiled model served by pinned workers; call ``run`` (or the engine itself).

    ``input_shapes`` holds each input's dims: an int where fixed, the symbol's
    name where dynamic. ``plan`` is the plan of the latest request's shapes
    (for a model with fixed dims, its one plan).
    """

    def __init__(self, plans, topo, mode, num_streams=1, work_stealing=True, debug=0):
        sig = plans.signature
        self._plans = plans
        self._debug = debug  # TILERUN_DEBUG, read once by compile_model: every request is traced and printed
        self.topology = topo
        self.scheduler = mode
        self.num_streams = num_streams
        self.input_names = list(sig.names)
        self.input_shapes = list(sig.dims)
        self.input_dtypes = list(sig.dtypes)
        self.output_names = list(plans.output_names)
        self._async = None
        self._closed = False
        self._lock = threading.Lock()
        # With fixed dims (or the largest batch of batch_size) the plan is built now, so its errors surface here.
        self.plan = plans.get(tuple(sig.dims)).plan if sig.fixed else None
        self._scratch = [aligned_bytes(self.plan.scratch_bytes if self.plan else ALIGN) for _ in topo.cores]
        self._retired = []  # scratch a worker may still hold while a bigger one replaces it
        self._runtime = Runtime(num_streams, topo, mode, [s.ctypes.data for s in self._scratch], work_stealing)
        _LIVE.add(self)

    # -- running ---------------------------------------------------------------
    def run(self, inputs):
        """Run one request: ``inputs`` in graph-input order (or a name → array dict); returns outputs."""
        return self._request(self._check_inputs(inputs))

    __call__ = run

    def run_async(self, inputs):
        """Submit ``inputs`` and return a ``concurrent.futures.Future`` of the outputs.

        Inputs are checked now (a bad input raises here, not in the future);
        a failure while running fails only this future, and so does a model
        error found while building the plan of shapes not seen before.
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
        sp = self._shape_plan(_shapes(arrays))
        cap = int(sp.plan.tables["n_tiles"].sum())
        t = time.perf_counter_ns()
        outputs, (events, start_ns) = self._serve(arrays, np.zeros((cap, executor.N_EV), np.int64), sp)
        trace = Trace(sp.plan.rows, events, time.perf_counter_ns() - t, outputs, start_ns)
        if self._debug:
            sys.stderr.write(trace.report(self._debug) + "\n")
        return trace

    def _shape_plan(self, shapes):
        """The ``ShapePlan`` of input ``shapes``, built on first use; grows the workers' scratch for it."""
        sp = self._plans.get(shapes)
        need = sp.plan.scratch_bytes
        with self._lock:
            if need > self._scratch[0].nbytes:
                # Workers read their scratch address per slot visit: a request started after
                # this sees the new buffers; one already running keeps the old (kept alive).
                self._retired.append(self._scratch)
                self._scratch = [aligned_bytes(need) for _ in self._scratch]
                self._runtime.scratch[:] = [s.ctypes.data for s in self._scratch]
            self.plan = sp.plan
        return sp

    def _serve(self, arrays, trace=None, sp=None):
        if self._closed:
            raise RequestError("engine is closed")
        sp = sp or self._shape_plan(_shapes(arrays))
        try:
            slot = self._runtime.acquire()
        except Closed:
            raise RequestError("engine was closed while the request waited for a free stream") from None
        try:
            _, params, ins, outs, job = sp.bound(slot)
            self._bind_inputs(params, ins, sp.in_place, arrays)
            failed, used, start_ns = self._runtime.execute(slot, job, trace)
            if failed is not None:
                row = sp.plan.rows[failed]
                raise RequestError(f"kernel {row.kernel.name} of node {row.node!r} ({row.op_type}) reported a fault")
            outputs = [sp.constants[n].copy() if v is None else v.copy() for n, v in zip(self.output_names, outs)]
            return outputs, (None if trace is None else (trace[:used], start_ns))
        finally:
            self._runtime.release(slot)

    @staticmethod
    def _bind_inputs(params, views, in_place, arrays):
        # An input that only in-bounds readers touch (a CNN's first padding
        # pass) is read from the caller's array, as ORT reads numpy inputs
        # (no copy into the arena). The array outlives
        # the request (the caller's frame holds it); a strided or misaligned
        # one is copied and the arena address put back.
        for view, a, where in zip(views, arrays, in_place):
            if where is not None and a.flags.c_contiguous and a.flags.aligned:
                params[where[0]] = a.ctypes.data + where[1]
                continue
            if where is not None:
                params[where[0]] = view.ctypes.data + where[1]
            np.copyto(view, a)

    def _check_inputs(self, inputs):
        arrays = check_inputs(self.input_names, self.input_dtypes, inputs)
        self._plans.signature.shapes_of(arrays)
        return arrays

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


def _shapes(arrays):
    return tuple(tuple(a.shape) for a in arrays)


_LIVE = weakref.WeakSet()


@atexit.register
def _close_live_engines():
    # Workers sit in nopython loops; stop them before the interpreter tears down threads.
    for eng in list(_LIVE):
        eng.close(timeout=10)
