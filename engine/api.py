"""The public API: ``compile_model`` and the ``Engine`` it returns.

``compile_model`` runs the path of a model — load, import, passes, lowering to
a plan — and starts the runtime: one pinned worker per core serving the
engine's request slots in the chosen scheduling mode (one core with one slot:
no worker, the caller runs its request). Symbolic dims stay
dynamic: a request of shapes not seen before gets its plan built on first use
(``plans.PlanCache``); a model whose dims are all fixed gets its one plan
here. ``Engine.run`` checks every input against the signature before any
kernel runs, takes a free slot (callers are served in arrival order), copies
the inputs into that slot's arena for the request's plan (or binds the
caller's array in place, see ``_bind_inputs``), sleeps until the workers
finished the request and returns fresh output arrays. A multi_stream request
that starts while another is in flight runs the plan tiled for its share of
the workers (``ShapePlan.loaded``). Every slot has its own arena per shape;
the packed weights are shared by every slot and plan.
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
import logging
import threading
import time
import warnings
import weakref

import numpy as np

from tilerun.scheduler import executor
from tilerun.scheduler import topology as cpu_topology
from tilerun.scheduler.policies import Closed, Scheduler, check_num_streams, request_widths
from tilerun.scheduler.runtime import Runtime
from tilerun.scheduler.tiling_choice import SOLO, SPLIT
from tilerun.scheduler.trace import Trace

from .arguments import check_compile_arguments, check_count, check_scheduler, check_timeout, debug_level
from .batching import AutoBatcher
from .errors import ArgumentError, RequestError
from .hints import BATCH_TIMEOUT_MS, Config, check_hint, choose
from .importer import import_model
from .load import load_for_import
from .memory import ALIGN
from .plan import aligned_bytes, output_buffer
from .plans import PlanCache, Signature, compile_point_at, point_at
from .precision import resolve as resolve_precision
from .validate import check_inputs, fixed_match

log = logging.getLogger("tilerun")


def compile_model(model, batch_size=None, input_shapes=None, num_cores=None, num_streams=None,
                  scheduler=None, topology=None, work_stealing=True, plan_cache_size=8, *, hint=None,
                  num_requests=None, auto_batch=None, batch_timeout_ms=BATCH_TIMEOUT_MS, precision="fp32",
                  _empty_dims=False):
    """Compile an ONNX model into a running ``Engine`` (close it, or use it as a context manager).

    ``model``: a path to an ``.onnx`` file (external data is read from beside
    it), the file's bytes, or an ``onnx.ModelProto``.
    Dims the model leaves symbolic (``dim_param`` or unnamed) stay dynamic: each
    request may have its own sizes there, and a plan for sizes not seen before
    is built on first use (the ``plan_cache_size`` most recent are kept).
    ``batch_size``: the largest batch (the first dim of every input); requests
    of any batch up to it run at their own batch (None keeps the declared dims).
    ``input_shapes``: maps an input name to its full shape, e.g.
    ``{"input_ids": [1, 128]}`` (it wins over ``batch_size`` for the inputs it
    names), or a symbolic dim's name to a size or to ``(lo, hi)`` bounds, e.g.
    ``{"seq": (1, 512)}``.
    ``num_cores``: how many of the usable cores get a pinned worker (None:
    all of them; more than there are uses them all, with a ``UserWarning``).
    One core with one stream starts no worker: each request runs on the
    thread that calls ``run`` (as a one-thread ONNX Runtime session does).
    ``scheduler`` is ``"single_stream"`` (one request at a time over all
    cores, or on one while requests measure faster there:
    ``scheduler.tiling_choice``), ``"multi_stream"`` (``num_streams``
    concurrent requests, default one per core; idle workers help other
    in-flight requests unless ``work_stealing=False``) or ``"elastic"`` (at
    most one request per NUMA node / L3 domain), as a string or a
    ``tilerun.Scheduler``. ``topology`` replaces the detected CPU topology (a
    ``tilerun.Topology``, e.g. two one-core domains for testing). Default:
    ``"single_stream"``, or what ``hint`` picks.
    ``hint``: ``"latency"`` or ``"throughput"`` (with ``num_requests``, the
    concurrent callers expected) picks scheduler, streams and auto-batching
    for this model and machine (``tilerun.hints``); explicit arguments win;
    ``eng.config`` says what was chosen.
    ``auto_batch``: gather concurrent requests of the same item shapes into one
    run of at most that many items, waiting at most ``batch_timeout_ms`` for
    them (needs inputs whose first dim is the batch; ``batch_size`` defaults to it).
    ``precision``: ``"fp32"`` or ``"bf16"`` (convolutions and Gemm/MatMul with
    constant weights multiply in BF16, sum in FP32; tensors between ops stay
    FP32); a CPU without AVX512_BF16 runs FP32, as ``eng.config`` says.

    Raises ``ArgumentError`` for a bad argument, before the model is read;
    ``ModelError`` for a file that cannot be read or a malformed graph;
    ``UnsupportedOpError`` naming the op types (and nodes) tilerun has no
    kernel for (``QuantizedModelError`` for a quantized model). All are
    ``tilerun.TilerunError``; none leaves workers running.
    (``_empty_dims``: the onnx backend's 0 dims in ``input_shapes``, for onnx's
    conformance cases on empty tensors.)
    """
    check_compile_arguments(batch_size, input_shapes, num_cores, scheduler or "single_stream", topology,
                            work_stealing, empty_dims=_empty_dims)
    check_hint(hint, num_requests)
    used_precision, precision_note = resolve_precision(precision)
    check_count("auto_batch", auto_batch, allow_none=True)
    check_count("plan_cache_size", plan_cache_size)
    if not isinstance(batch_timeout_ms, (int, float)) or isinstance(batch_timeout_ms, bool) or batch_timeout_ms < 0:
        raise ArgumentError(f"batch_timeout_ms must be a number >= 0, given {batch_timeout_ms!r}")
    debug = debug_level()
    topo, mode, n_streams = _runtime_shape(topology, num_cores, scheduler, num_streams, hint)
    t0 = time.perf_counter()
    proto, initializers, reread = load_for_import(model)
    graph = import_model(proto, initializers)
    del proto, initializers
    log.debug("load and import %.3f s (%d nodes)", time.perf_counter() - t0, len(graph.nodes))
    if auto_batch is None and scheduler is None:
        auto_batch = choose(hint, len(topo.cores), lambda: _batchable(graph, input_shapes), num_requests)[2]
    if auto_batch is not None and batch_size is None:
        batch_size = auto_batch
    sig = Signature(graph, batch_size, input_shapes)
    if auto_batch is not None and not sig.batchable:
        raise ArgumentError(f"auto_batch needs every input to lead with the batch dim; the inputs are "
                            f"{dict(zip(sig.names, sig.dims))}")
    plans = PlanCache(graph, sig, len(topo.cores), n_streams, plan_cache_size,
                      reimport=lambda: import_model(*load_for_import(model)[:2]), reread=reread,
                      precision=used_precision, widths=request_widths(mode, topo, n_streams, work_stealing))
    log.debug("runtime: %s, %d stream(s), %d worker(s) on cores %s", mode.value, n_streams, len(topo.cores),
              list(topo.cores))
    config = Config(hint, mode.value, n_streams, auto_batch, float(batch_timeout_ms),
                    optimal_batch_size=auto_batch or 1, stream_range=(1, len(topo.cores)), precision=precision_note)
    return Engine(plans, topo, mode, n_streams, work_stealing, debug, config)


class Engine:
    """A compiled model served by pinned workers; call ``run`` (or the engine itself). Made by ``compile_model``.

    Attributes (read them, do not set them):

    - ``input_names``: the graph inputs ``run`` takes, in order.
    - ``input_shapes``: each input's dims (a tuple): an int where fixed, the
      symbol's name (a str) where dynamic.
    - ``input_dtypes``: the numpy dtype of each input.
    - ``output_names``: the outputs ``run`` returns, in order.
    - ``scheduler``: the ``tilerun.Scheduler`` serving requests.
    - ``num_streams``: requests served at once (request slots).
    - ``num_cores``: worker threads, one pinned per core.
    - ``topology``: the ``tilerun.Topology`` of those cores.
    - ``closed``: True once ``close`` was called.
    - ``plan``: the plan of the latest request's shapes (for fixed dims, the one plan).

    An engine is a context manager: ``with compile_model(...) as eng:`` closes it at the end.
    """

    def __init__(self, plans, topo, mode, num_streams=1, work_stealing=True, debug=0, config=None):
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
        self.config = config
        self._async = None
        self._closed = False
        self._lock = threading.Lock()
        # With fixed dims (or the largest batch of batch_size) the plan is built now, so its errors surface here.
        # (A model whose plans need input values, a Reshape's shape given at run time, builds at the first run.)
        sp = plans.get(tuple(sig.dims)) if sig.fixed else None
        self.plan = sp.plan if sp is not None else None
        # Static shapes: every request runs this one plan, and arrays of exactly the signature pass one check.
        self._static = sp if sp is not None and sig.static else None
        self._expected = [(np.dtype(d), tuple(s)) for d, s in zip(sig.dtypes, sig.dims)] if self._static else None
        for d, dims in zip(sig.dtypes, sig.dims):
            compile_point_at(d, len(dims))
        compile_point_at(np.uint8, 1)  # output buffers (``_bind_outputs``)
        self.output_shapes, self.output_dtypes = plans.output_shapes, plans.output_dtypes
        self._scratch = [aligned_bytes(sp.scratch_bytes if sp is not None else ALIGN) for _ in topo.cores]
        self._retired = []  # scratch a worker may still hold while a bigger one replaces it
        self._runtime = Runtime(num_streams, topo, mode, [s.ctypes.data for s in self._scratch], work_stealing)
        self._solo = mode is Scheduler.single_stream and len(topo.cores) > 1  # ``tiling_choice``
        self._batcher = None
        if config is not None and config.auto_batch:
            self._batcher = AutoBatcher(self._request, config.auto_batch, config.batch_timeout_ms, num_streams)
        _LIVE.add(self)

    @property
    def num_cores(self):
        """Worker threads, one pinned per core."""
        return len(self.topology.cores)

    @property
    def closed(self):
        """True once ``close`` was called."""
        return self._closed

    def __repr__(self):
        sig = ", ".join(f"{n}: {np.dtype(d).name}[{', '.join(map(str, s))}]"
                        for n, s, d in zip(self.input_names, self.input_shapes, self.input_dtypes))
        state = "closed" if self._closed else "open"
        return (f"<tilerun.Engine inputs ({sig}) -> outputs {self.output_names}; {self.scheduler.value}, "
                f"{self.num_streams} stream(s), {self.num_cores} core(s), {state}>")

    # -- running ---------------------------------------------------------------
    def run(self, inputs):
        """Run one request: ``inputs`` in graph-input order (or a name → array dict); returns outputs."""
        arrays = self._check_inputs(inputs)
        if self._batcher is not None:
            return self._batcher.submit(arrays).result()
        return self._request(arrays)

    __call__ = run

    def run_async(self, inputs):
        """Submit ``inputs`` and return a ``concurrent.futures.Future`` of the outputs.

        Inputs are checked now (a bad input raises here, not in the future);
        a failure while running fails only this future, and so does a model
        error found while building the plan of shapes not seen before.
        """
        arrays = self._check_inputs(inputs)
        if self._batcher is not None:
            return self._batcher.submit(arrays)
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
        sp = self._shape_plan(arrays)
        t = time.perf_counter_ns()
        outputs, (events, start_ns, rows) = self._serve(arrays, np.zeros((sp.max_tiles, executor.N_EV), np.int64), sp)
        trace = Trace(rows, events, time.perf_counter_ns() - t, outputs, start_ns)
        if self._debug:
            sys.stderr.write(trace.report(self._debug) + "\n")
        return trace

    def _shape_plan(self, arrays):
        """The ``ShapePlan`` of a request's inputs, built on first use; grows the workers' scratch for it."""
        if self._static is not None:
            return self._static  # its scratch was sized when the engine was made
        sp = self._plans.get(_shapes(arrays), arrays)
        need = sp.scratch_bytes
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
        sp = sp or self._shape_plan(arrays)
        try:
            slot = self._runtime.acquire()
        except Closed:
            raise RequestError("engine was closed while the request waited for a free stream") from None
        try:
            # A request that starts beside another runs the plan tiled for its share of the workers,
            # on those workers only: a worker that helped it would keep its own next request waiting.
            # single_stream: the plan tiled for one worker, on one, while that measures faster.
            choice = sp.choice if self._solo and sp.loaded is not sp.plan else None
            solo = choice is not None and choice.pick() == SOLO
            loaded = sp.loaded is not sp.plan and self._runtime.slots.in_use() > 1
            b = sp.bound(slot, loaded or solo)
            self._bind_inputs(b.params, b.ins, b.in_place, [arrays[i] for i in sp.input_index])
            direct = self._bind_outputs(b.params, b.outs, b.direct)
            t = time.perf_counter_ns()
            failed, used, start_ns = self._runtime.execute(slot, b.job, trace, own_only=loaded, solo=solo)
            if choice is not None:
                choice.record(SOLO if solo else SPLIT, time.perf_counter_ns() - t)
            if failed is not None:
                raise RequestError(self._fault(b, b.plan.rows[failed], arrays, direct))
            outputs = [d if d is not None else sp.constants[n].copy() if v is None else v.copy()
                       for n, v, d in zip(self.output_names, b.outs, direct)]
            return outputs, (None if trace is None else (trace[:used], start_ns, b.plan.rows))
        finally:
            self._runtime.release(slot)

    def _fault(self, b, row, arrays, direct):
        """The message of a request (bound as ``b``) failed by ``row``'s kernel; ``explain`` says why, if it can."""
        what = f"kernel {row.kernel.name} reported a fault"
        if row.explain is not None:
            def read(name):  # a graph input read in place, or an output written directly: the request's array
                if name in self.input_names:
                    return arrays[self.input_names.index(name)]
                if name in self.output_names and direct[self.output_names.index(name)] is not None:
                    return direct[self.output_names.index(name)]
                return b.plan.view(b.arena, name)
            try:
                what = row.explain(read) or what
            except Exception:  # the explanation is a courtesy: the fault itself is reported regardless
                pass
        return f"node {row.node!r} ({row.op_type}): {what}"

    @staticmethod
    def _bind_outputs(params, views, direct):
        """The request's own output arrays (None where an output is copied out), bound where the plan writes them.

        Each is a fresh buffer laid out as the arena would hold it, so the
        caller keeps it and no copy runs after the request.
        """
        out = []
        for view, where in zip(views, direct):
            if where is None:
                out.append(None)
                continue
            buf = output_buffer(view.nbytes)
            point_at(params, where[0], where[1], buf)
            out.append(buf[:view.nbytes].view(view.dtype).reshape(view.shape))
        return out

    @staticmethod
    def _bind_inputs(params, views, in_place, arrays):
        # An input that only in-bounds readers touch (a CNN's first padding
        # pass) is read from the caller's array, as ORT reads numpy inputs
        # (no copy into the arena). The array outlives
        # the request (the caller's frame holds it); a strided or misaligned
        # one is copied and the arena address put back.
        for view, a, where in zip(views, arrays, in_place):
            if where is not None and a.flags.c_contiguous and a.flags.aligned:
                point_at(params, where[0], where[1], a)
                continue
            if where is not None:
                point_at(params, where[0], where[1], view)
            np.copyto(view, a)

    def _check_inputs(self, inputs):
        if self._expected is not None:
            arrays = fixed_match(inputs, self._expected)
            if arrays is not None:
                return arrays
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
        if self._batcher is not None:
            self._batcher.close()  # requests still queued for a batch fail as closed
        stopped = self._runtime.close(timeout)
        if self._async is not None:
            self._async.shutdown(wait=True)
        _LIVE.discard(self)
        return stopped

    def __enter__(self):
        if self._closed:
            raise RequestError("engine is closed: compile the model again to use it in a with block")
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


def _runtime_shape(topology, num_cores, scheduler, num_streams, hint):
    """``(topology, mode, streams)``: the cores used, and the scheduler and streams given or picked by ``hint``."""
    detected = topology or cpu_topology.detect()
    if num_cores is not None and num_cores > len(detected.cores):
        warnings.warn(f"num_cores={num_cores}, but only {len(detected.cores)} cores are usable: "
                      f"using {len(detected.cores)}", UserWarning, stacklevel=3)
    # Engines on fewer cores than the machine's take the cores the live engines use least: two 1-core
    # engines serving side by side (ORT's "two sessions of one thread") then run on two cores, not one.
    busy = {}
    for eng in list(_LIVE):
        for core in eng.topology.cores:
            busy[core] = busy.get(core, 0) + 1
    topo = detected.limit(num_cores, busy)
    h_scheduler, h_streams, _ = choose(hint, len(topo.cores), batchable=lambda: False)
    mode = check_scheduler(scheduler or h_scheduler or "single_stream")
    if num_streams is None and scheduler is None:
        num_streams = h_streams
    try:
        return topo, mode, check_num_streams(mode, topo, num_streams)
    except ValueError as e:
        raise ArgumentError(str(e)) from None


def _batchable(graph, input_shapes):
    """Whether every input leads with a batch dim that ``batch_size`` could set."""
    try:
        return Signature(graph, 2, input_shapes).batchable
    except ArgumentError:  # input_shapes fixes the batch (or names it as a symbol)
        return False


def _shapes(arrays):
    return tuple(tuple(a.shape) for a in arrays)


_LIVE = weakref.WeakSet()


def _after_fork_in_child():
    # The parent's request threads and locks did not come along; the runtime restarts its own workers.
    for eng in list(_LIVE):
        eng._lock = threading.Lock()
        eng._async = None
        eng._plans.after_fork()
        if eng._batcher is not None:
            c = eng.config
            eng._batcher = AutoBatcher(eng._request, c.auto_batch, c.batch_timeout_ms, eng.num_streams)


os.register_at_fork(after_in_child=_after_fork_in_child)


@atexit.register
def _close_live_engines():
    # Workers sit in nopython loops; stop them before the interpreter tears down threads.
    for eng in list(_LIVE):
        eng.close(timeout=10)
