"""Compiled plans by input shape: one engine serves every shape its model allows.

``Signature`` is what an engine accepts: each input's dtype and dims, a dim
either fixed or a named symbol (the model's ``dim_param``; an unnamed dynamic
dim gets a name of its own) with optional bounds. ``PlanCache`` builds the
plan of a request's concrete shapes on first use (shape inference, folding and
lowering of a copy of the imported graph at those shapes, reusing the engine's
packed weights and Numba's compiled kernels) and keeps the ``ShapePlan`` of
the last ``capacity`` shapes; evicting one frees its arenas once no request
uses it. A ``ShapePlan`` binds lazily per slot: that slot's arena, parameter
rows, input/output views and executor job.

Not here: running requests (``api.Engine``), shape-valued inputs (a Reshape's
shape given at run time), or batching requests together.
"""
import collections
import logging
import threading
import time
from dataclasses import dataclass

import numpy as np

from tilerun.scheduler.runtime import Job

from .errors import ArgumentError, InputError
from .lower import lower_graph
from .passes import run_passes
from .passes.batch_generic import batch_generic
from .plan import aligned_bytes

log = logging.getLogger("tilerun")


@dataclass(frozen=True)
class Bounds:
    """Allowed values of one symbolic dim: ``lo <= d <= hi`` (``hi`` None: no upper bound)."""
    lo: int = 1
    hi: int = None

    def allows(self, d):
        return d >= self.lo and (self.hi is None or d <= self.hi)

    def __str__(self):
        return f">= {self.lo}" if self.hi is None else f"in [{self.lo}, {self.hi}]"


class Signature:
    """The inputs an engine accepts: names, dtypes, dims (int: fixed; str: a symbol), symbol bounds."""

    def __init__(self, graph, batch_size=None, input_shapes=None):
        input_shapes = dict(input_shapes or {})
        self.names = list(graph.inputs)
        self.dtypes = [graph.values[n].dtype for n in self.names]
        symbols = {}
        self.dims = []
        declared = [graph.values[n].shape for n in self.names]
        # A fixed-batch export asked to run other batches: its baked Reshapes need rewriting (``batch_generic``).
        self.export_shapes = None
        self.batch_max = None  # batch_size: requests of any batch up to it run at their own batch
        for name in self.names:
            v = graph.values[name]
            if name in input_shapes:
                dims = self._given(name, v.shape, input_shapes.pop(name))
            elif v.shape is None:
                raise ArgumentError(f"input {name!r} declares no shape; pass input_shapes={{{name!r}: [...]}}")
            else:
                dims = [d if isinstance(d, int) else (d or f"{name}:{axis}") for axis, d in enumerate(v.shape)]
                # The first dim is the batch: batch_size sets it where it is dynamic, and
                # overrides a fixed one when it asks for other than 1 (a batch-1 export).
                if dims and batch_size is not None and (isinstance(dims[0], str) or batch_size != 1):
                    dims[0] = int(batch_size)
                    self.batch_max = int(batch_size)
            for d in dims:
                if isinstance(d, str):
                    symbols.setdefault(d, Bounds())
            self.dims.append(tuple(dims))
        unknown = sorted(set(input_shapes) - set(symbols))  # what is left must name symbols
        if unknown:
            raise ArgumentError(f"input_shapes names {unknown}, which are not graph inputs {self.names} nor "
                                f"symbolic dims {sorted(symbols)}")
        for sym, given in input_shapes.items():
            symbols[sym] = self._bounds(sym, given)
        self.bounds = symbols
        self.dims = [tuple(self._fix(d) for d in dims) for dims in self.dims]
        fixed_export = all(s is not None and all(isinstance(d, int) for d in s) for s in declared)
        if fixed_export and any(dims[:1] != tuple(s[:1]) for dims, s in zip(self.dims, declared)):
            self.export_shapes = [tuple(s) for s in declared]

    @staticmethod
    def _given(name, declared, dims):
        if not isinstance(dims, (list, tuple, np.ndarray)):
            raise ArgumentError(f"input_shapes[{name!r}] must be the full shape of input {name!r} as a list of "
                                f"dims, given {dims!r}")
        dims = [int(d) for d in dims]
        if declared is not None and len(dims) != len(declared):
            raise ArgumentError(f"input_shapes[{name!r}] = {dims} has rank {len(dims)}, but the model declares "
                                f"rank {len(declared)} ({list(declared)})")
        return dims

    @staticmethod
    def _bounds(sym, given):
        if isinstance(given, (list, tuple)) and len(given) == 2:
            lo, hi = int(given[0]), int(given[1])
            if not 1 <= lo <= hi:
                raise ArgumentError(f"input_shapes[{sym!r}] = {list(given)}: expected bounds (lo, hi) with "
                                    f"1 <= lo <= hi")
            return lo if lo == hi else Bounds(lo, hi)
        if isinstance(given, (list, tuple)):
            raise ArgumentError(f"input_shapes[{sym!r}] names a symbolic dim: expected one size or (lo, hi) "
                                f"bounds, given {list(given)}")
        return int(given)

    def _fix(self, d):
        """A symbol fixed to one size by ``input_shapes`` becomes that int."""
        if isinstance(d, str) and isinstance(self.bounds[d], int):
            return self.bounds[d]
        return d

    @property
    def batchable(self):
        """Whether requests can be stacked along axis 0: every input leads with the batch (a symbol they
        share, or a batch_size)."""
        firsts = {dims[0] if dims else None for dims in self.dims}
        if len(firsts) != 1:
            return False
        first = firsts.pop()
        return isinstance(first, str) or (first is not None and first == self.batch_max)

    @property
    def fixed(self):
        """Whether every dim has one size (the batch may still run smaller up to ``batch_max``)."""
        return all(isinstance(d, int) for dims in self.dims for d in dims)

    @property
    def static(self):
        """Whether one plan serves every request: every dim fixed, the batch included."""
        return self.batch_max is None and self.fixed

    def shapes_of(self, arrays):
        """The concrete input shapes of checked ``arrays``, or ``InputError`` naming the input and the dim."""
        seen = {}
        for name, dims, a in zip(self.names, self.dims, arrays):
            given = tuple(a.shape)
            if len(given) != len(dims):
                raise InputError(f"input {name!r}: expected shape {_show(dims)}, given {list(given)} "
                                 f"(rank {len(given)}, expected rank {len(dims)})")
            for axis, (d, g) in enumerate(zip(dims, given)):
                if isinstance(d, int):
                    if axis == 0 and d == self.batch_max and 1 <= g <= d:
                        d = "batch_size"  # any batch up to batch_size, the same in every input
                    elif d != g:
                        raise InputError(_fixed_mismatch(name, dims, given, axis))
                    else:
                        continue
                b = self.bounds.get(d, Bounds())
                if not b.allows(g):
                    raise InputError(f"input {name!r}: dim {axis} ({d!r}) must be {b}, given {g} "
                                     f"(shape {list(given)})")
                if seen.setdefault(d, (g, name))[0] != g:
                    raise InputError(f"input {name!r}: dim {axis} ({d!r}) is {g}, but input {seen[d][1]!r} gives "
                                     f"{d!r} = {seen[d][0]}: inputs sharing a symbolic dim must agree")
        return tuple(tuple(a.shape) for a in arrays)


def _show(dims):
    return "[" + ", ".join(str(d) for d in dims) + "]"


def _fixed_mismatch(name, dims, given, axis):
    msg = f"input {name!r}: expected shape {_show(dims)}, given {list(given)}"
    if axis == 0:
        msg += (f": batch size {given[0]} is larger than the compiled batch size {dims[0]}; compile with "
                f"batch_size={given[0]} to run this batch")
    return msg


class ShapePlan:
    """One plan (for one set of input shapes) and its per-slot bindings, made on a slot's first request."""

    def __init__(self, graph, plan, n_slots, n_workers):
        self.plan = plan
        self.constants = {o: graph.values[o].const for o in graph.outputs if graph.values[o].const is not None}
        self.in_place = [plan.in_place_inputs(n) for n in graph.inputs]
        self._inputs, self._outputs = list(graph.inputs), list(graph.outputs)
        self._n_workers = n_workers
        self._slots = [None] * n_slots

    def bound(self, slot):
        """``(arena, params, in views, out views, job)`` of ``slot`` (a slot serves one request at a time)."""
        b = self._slots[slot]
        if b is None:
            plan = self.plan
            arena = aligned_bytes(plan.arena_size)
            params = plan.bind(arena)
            ins = [plan.view(arena, n) for n in self._inputs]
            outs = [None if n in self.constants else plan.view(arena, n) for n in self._outputs]
            job = Job(plan.tables, params.ctypes.data + 8 * plan.tables["param_offsets"][:-1], self._n_workers)
            b = self._slots[slot] = (arena, params, ins, outs, job)
        return b

    def arena_bytes(self):
        """Bytes of the arenas bound so far (one per slot that ran this shape)."""
        return sum(b[0].nbytes for b in self._slots if b is not None)


class PlanCache:
    """``ShapePlan``s by input shapes: built on first use from the imported graph, the ``capacity`` latest kept."""

    def __init__(self, graph, signature, num_workers, n_slots, capacity=8, fuse=True, precision="fp32"):
        self._graph, self.signature = graph, signature
        self.output_names = list(graph.outputs)
        # As the model declares them (a dynamic dim is its symbol or None); fixed shapes are set once planned.
        self.output_shapes = [None if graph.values[o].shape is None else tuple(graph.values[o].shape)
                              for o in graph.outputs]
        self.output_dtypes = [graph.values[o].dtype for o in graph.outputs]
        if signature.export_shapes is not None:
            batch_generic(graph, signature.export_shapes, self._infer)
        self._num_workers, self._n_slots, self._fuse = num_workers, n_slots, fuse
        self.precision = precision
        self.capacity = capacity
        self.weight_cache = {}  # packed weights shared by every shape's plan
        self._plans = collections.OrderedDict()
        self._lock = threading.Lock()
        self._build_lock = threading.Lock()

    def get(self, shapes):
        """The ``ShapePlan`` for concrete input ``shapes`` (a tuple per input), built if not cached."""
        with self._lock:
            sp = self._plans.get(shapes)
            if sp is not None:
                self._plans.move_to_end(shapes)
                return sp
        with self._build_lock:  # one build at a time; lookups of cached shapes go on meanwhile
            with self._lock:
                sp = self._plans.get(shapes)
            if sp is None:
                sp = self.build(shapes)
                if self.signature.static:
                    self._graph = None  # its one plan holds what it needs: drop the unpacked weights
                    outs = [sp.plan.tensors[o] if o in sp.plan.tensors else np.asarray(sp.constants[o])
                            for o in self.output_names]
                    self.output_shapes = [tuple(t.shape) for t in outs]
                    self.output_dtypes = [np.dtype(t.dtype) for t in outs]
            with self._lock:
                self._plans[shapes] = sp
                self._plans.move_to_end(shapes)
                while len(self._plans) > self.capacity:
                    self._plans.popitem(last=False)  # in-flight requests keep theirs alive
            return sp

    def _infer(self, graph, shapes, fuse=False):
        run_passes(graph, None, dict(zip(self.signature.names, shapes)), fuse=fuse)

    def build(self, shapes):
        """Passes and lowering at ``shapes`` on a copy of the graph (the original is left as imported)."""
        t0 = time.perf_counter()
        graph = self._graph if self.signature.static else self._graph.copy()
        self._infer(graph, shapes, self._fuse)
        t1 = time.perf_counter()
        plan = lower_graph(graph, self._num_workers, self.weight_cache, self.precision)
        log.debug("shapes %s: passes %.3f s (%d nodes left), lowering %.3f s", [list(s) for s in shapes], t1 - t0,
                  len(graph.nodes), time.perf_counter() - t1)
        log.debug("plan: %d rows, %d tiles, arena %.1f MiB per stream, weights %.1f MiB, scratch %d KiB per worker",
                  len(plan.rows), sum(r.n_tiles for r in plan.rows), plan.arena_size / 2**20,
                  sum(w.nbytes for w in plan.weights.values()) / 2**20, plan.scratch_bytes // 1024)
        return ShapePlan(graph, plan, self._n_slots, self._num_workers)

    def after_fork(self):
        """In a fork()ed child: locks another thread of the parent may have held start afresh."""
        self._lock, self._build_lock = threading.Lock(), threading.Lock()

    def cached(self):
        """The cached ``ShapePlan``s by shapes, least recently used first."""
        with self._lock:
            return list(self._plans.items())
