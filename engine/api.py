"""The public API: ``compile_model`` and the ``Engine`` it returns.

``compile_model`` runs the path of a model — load, import, passes, lowering to
a plan — and starts the worker pool. ``Engine.run`` checks every input against
the compiled signature before any kernel runs, copies inputs into a stream's
arena, lets the scheduler run the plan and returns fresh output arrays.
"""
import concurrent.futures
import threading

import numpy as np

from tilerun.scheduler import topology
from tilerun.scheduler.policies import Scheduler, SingleStream, Stream
from tilerun.scheduler.pool import WorkerPool

from .errors import ModelError, RequestError
from .importer import import_model
from .load import load_model
from .lower import lower_graph
from .passes import run_passes
from .plan import aligned_bytes
from .validate import check_inputs


def compile_model(model, batch_size=1, input_shapes=None, num_cores=None, num_streams=None,
                  scheduler="single_stream"):
    """Compile an ONNX model (path, bytes or ModelProto) into a running ``Engine``."""
    try:
        mode = Scheduler(scheduler)
    except ValueError:
        raise ModelError(f"scheduler must be one of {[s.value for s in Scheduler]}, given {scheduler!r}") from None
    if mode is not Scheduler.single_stream:
        raise NotImplementedError(f"scheduler {mode.value!r} is not available yet; use 'single_stream'")
    if num_streams not in (None, 1):
        raise ModelError(f"single_stream serves one request at a time: num_streams must be 1 or None, given {num_streams}")
    topo = topology.detect().limit(num_cores)
    graph = import_model(load_model(model))
    run_passes(graph, batch_size, input_shapes)
    plan = lower_graph(graph, len(topo.cores))
    return Engine(graph, plan, topo, mode)


class Engine:
    """A compiled model bound to a worker pool; call ``run`` (or the engine itself)."""

    def __init__(self, graph, plan, topo, mode):
        self.plan = plan
        self.topology = topo
        self.scheduler = mode
        self.num_streams = 1
        self.input_names = list(graph.inputs)
        self.input_shapes = [tuple(graph.values[n].shape) for n in graph.inputs]
        self.input_dtypes = [graph.values[n].dtype for n in graph.inputs]
        self.output_names = list(graph.outputs)
        self._constant_outputs = {o: graph.values[o].const for o in graph.outputs if graph.values[o].const is not None}
        self._pool = WorkerPool(topo.cores)
        self._scratch = [aligned_bytes(plan.scratch_bytes) for _ in topo.cores]
        scratch_addrs = [s.ctypes.data for s in self._scratch]
        self._policy = SingleStream(self._pool, Stream(plan, aligned_bytes), scratch_addrs)
        self._async = None
        self._closed = False
        self._lock = threading.Lock()

    # -- running ---------------------------------------------------------------
    def run(self, inputs):
        """Run one request: ``inputs`` in graph-input order (or a name → array dict); returns outputs."""
        arrays = self._check_inputs(inputs)
        if self._closed:
            raise RequestError("engine is closed")
        failed, outs = self._policy.submit(lambda arena: self._load(arena, arrays), self._read)
        if failed is not None:
            row = self.plan.rows[failed]
            raise RequestError(f"kernel {row.kernel} of node {row.node!r} ({row.op_type}) reported a fault")
        return outs

    __call__ = run

    def run_async(self, inputs):
        """Submit ``inputs`` and return a ``concurrent.futures.Future`` of the outputs."""
        with self._lock:
            if self._async is None:
                self._async = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="tilerun-async")
        arrays = self._check_inputs(inputs)
        return self._async.submit(self.run, arrays)

    def _load(self, arena, arrays):
        for name, a in zip(self.input_names, arrays):
            np.copyto(self.plan.view(arena, name), a)

    def _read(self, arena):
        out = []
        for name in self.output_names:
            if name in self._constant_outputs:
                out.append(self._constant_outputs[name].copy())
            else:
                out.append(self.plan.view(arena, name).copy())
        return out

    def _check_inputs(self, inputs):
        return check_inputs(self.input_names, self.input_shapes, self.input_dtypes, inputs)

    # -- lifetime --------------------------------------------------------------
    def close(self):
        """Stop the worker pool; later calls to ``run`` raise ``RequestError``."""
        if self._closed:
            return
        self._closed = True
        if self._async is not None:
            self._async.shutdown(wait=True)
        self._pool.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
