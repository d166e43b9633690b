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

Shape-valued inputs: a graph input that a node needs as a compile-time
constant (a Reshape's shape, Slice's starts, Pad's pads, a Conv's weights,
... given at run time) is found when a build first needs it; from then on its
value is part of the plan key, as the shapes are, and each plan has it
folded in as a constant. A request with new values builds (and caches) a
plan like a request with new shapes.

Not here: running requests (``api.Engine``) or batching requests together.
"""
import collections
import ctypes
import functools
import logging
import threading
import time
from dataclasses import dataclass

import numba
import numpy as np

from tilerun.scheduler.runtime import Job
from tilerun.scheduler.tiling_choice import TilingChoice

from .errors import ArgumentError, ConstantRequiredError, InputError, ModelError
from .ir import Deferred, deferred_scope
from .lower import lower_graph
from .passes import run_passes
from .passes.batch_generic import batch_generic
from .plan import aligned, aligned_bytes

log = logging.getLogger("tilerun")

DEFER_BYTES = 1 << 20  # imported weights smaller than this stay in memory


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
        if isinstance(given, list) and len(given) == 1:
            given = given[0]  # [size]: how the command line gives one size
        elif isinstance(given, (list, tuple)):
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


def defer_weights(graph, reread):
    """Hold each imported weight of ``DEFER_BYTES`` or more that ``reread`` can read again as a ``Deferred``
    (its array freed now, read from the file when a build reads it)."""
    for name, v in graph.values.items():
        c = None if v.deferred else v.const
        if c is not None and c.nbytes >= DEFER_BYTES and name in reread:
            v.const = Deferred(functools.partial(_reread_checked, reread, name, c.shape, c.dtype))
    release_freed_memory()


def _reread_checked(reread, name, shape, dtype):
    arr = reread(name)
    if arr.shape != shape or arr.dtype != dtype:
        raise ModelError(f"weight {name!r} read again from the model file is {arr.dtype}{list(arr.shape)}, "
                         f"expected {dtype}{list(shape)} (was the file changed?)")
    return aligned(arr)


def release_freed_memory():
    """Hand memory the process freed back to the OS where the C library can (glibc's ``malloc_trim``).

    Large freed weights can sit in malloc's arenas otherwise, counted in the
    process's RSS though nothing uses them. Elsewhere this does nothing.
    """
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (AttributeError, OSError):
        pass


def _input_ancestors(graph, name, inputs):
    """Indices in ``inputs`` of the graph inputs whose values ``name`` is computed from.

    What reaches ``name`` only through Shape or Size (a shape, not a value) does not count.
    """
    producers = graph.producers()
    found, seen, stack = set(), set(), [name]
    while stack:
        v = stack.pop()
        if not v or v in seen:
            continue
        seen.add(v)
        if v in inputs:
            found.add(inputs.index(v))
        node = producers.get(v)
        if node is not None and node.op_type not in ("Shape", "Size"):
            stack.extend(node.inputs)
    return sorted(found)


def _show(dims):
    return "[" + ", ".join(str(d) for d in dims) + "]"


def _fixed_mismatch(name, dims, given, axis):
    msg = f"input {name!r}: expected shape {_show(dims)}, given {list(given)}"
    if axis == 0:
        msg += (f": batch size {given[0]} is larger than the compiled batch size {dims[0]}; compile with "
                f"batch_size={given[0]} to run this batch")
    return msg


@numba.njit(nogil=True, cache=True)
def point_at(params, rows, offsets, a):
    """Write ``a``'s data address plus ``offsets[k]`` into ``params[rows[k]]``: an input bound in place.

    The caller checks that ``a`` is C-contiguous and aligned. Compiled per
    array type (every dtype an engine takes as input), and called instead of
    reading ``a.ctypes.data``: after a request the caller's caches hold the
    request's data, and that Python path costs a cold request tens of
    microseconds.
    """
    addr = a.ctypes.data
    for k in range(rows.size):
        params[rows[k]] = addr + offsets[k]


def compile_point_at(dtype, rank):
    """Compile ``point_at`` for C-contiguous arrays of ``dtype`` and ``rank`` now, not in a request."""
    none = np.zeros(0, np.int64)
    point_at(none, none, none, np.zeros((1,) * rank, dtype))


Binding = collections.namedtuple("Binding", "arena params ins outs job plan in_place direct")
Binding.__doc__ = "One plan bound to one slot's arena: its parameter rows, input/output views and executor job."


class ShapePlan:
    """The plans for one set of input shapes and their per-slot bindings, made on a slot's first request.

    ``plan`` tiles every op for all the workers that may serve a lone request;
    ``loaded`` tiles it for the share of workers a request gets while every
    slot is busy (``policies.request_widths``; single_stream: one worker, run
    while ``choice`` measures it faster), or is ``plan`` itself where that
    share is the same. Both bind onto the slot's one arena (sized for the
    larger): a slot runs one request at a time.
    """

    def __init__(self, graph, plans, n_slots, n_workers, names):
        self.plan, self.loaded = plans[0], plans[-1]
        self.choice = TilingChoice()
        self._plans = plans
        self.constants = {o: graph.values[o].const for o in graph.outputs if graph.values[o].is_const}
        # The request's arrays this plan reads (value inputs are folded into it as constants).
        self.input_index = [names.index(n) for n in graph.inputs]
        self._inputs, self._outputs = list(graph.inputs), list(graph.outputs)
        self._n_workers = n_workers
        self._arenas = [None] * n_slots
        self._bindings = {}  # (slot, index in plans) -> Binding
        self.scratch_bytes = max(p.scratch_bytes for p in plans)  # per worker, for the larger plan
        self.max_tiles = max(int(p.tables["n_tiles"].sum()) for p in plans)  # a trace's capacity
        self._arena_size = max(p.arena_size for p in plans)

    def bound(self, slot, loaded=False):
        """The ``Binding`` of ``plan`` (or of ``loaded``) in ``slot``."""
        key = (slot, len(self._plans) - 1 if loaded else 0)
        b = self._bindings.get(key)
        if b is None:
            plan = self._plans[key[1]]
            if self._arenas[slot] is None:
                self._arenas[slot] = aligned_bytes(self._arena_size)
            arena = self._arenas[slot]
            params = plan.bind(arena)
            ins = [plan.view(arena, n) for n in self._inputs]
            outs = [None if n in self.constants else plan.view(arena, n) for n in self._outputs]
            job = Job(plan.tables, params.ctypes.data + 8 * plan.tables["param_offsets"][:-1], self._n_workers)
            in_place = [plan.in_place_inputs(n) for n in self._inputs]
            direct = [None if n in self.constants else plan.direct_output(n) for n in self._outputs]
            b = self._bindings[key] = Binding(arena, params, ins, outs, job, plan, in_place, direct)
        return b

    def arena_bytes(self):
        """Bytes of the arenas bound so far (one per slot that ran these shapes)."""
        return sum(a.nbytes for a in self._arenas if a is not None)


class PlanCache:
    """``ShapePlan``s by input shapes: built on first use from the imported graph, the ``capacity`` latest kept."""

    def __init__(self, graph, signature, num_workers, n_slots, capacity=8, fuse=True, reimport=None, reread=None,
                 precision="fp32", widths=None):
        self._graph, self.signature = graph, signature
        # A static model's one plan is built on the imported graph itself, releasing each unpacked weight
        # once packed (peak memory); ``reimport`` gives a fresh graph if that build finds value inputs.
        self._reimport = reimport if signature.static else None
        # Other models keep the imported graph for the next shape: its large weights are read from the model
        # file again when a build needs them (packing them once; a packed weight's cache hit reads nothing).
        if reread is not None and self._reimport is None:
            defer_weights(graph, reread)
        self.output_names = list(graph.outputs)
        # As the model declares them (a dynamic dim is its symbol or None); fixed shapes are set once planned.
        self.output_shapes = [None if graph.values[o].shape is None else tuple(graph.values[o].shape)
                              for o in graph.outputs]
        self.output_dtypes = [graph.values[o].dtype for o in graph.outputs]
        self._make_batch_generic(graph)
        self._num_workers, self._n_slots, self._fuse = num_workers, n_slots, fuse
        # Workers a request's ops are tiled for, alone and while every slot is busy.
        self._widths = tuple(dict.fromkeys(widths or (num_workers,)))
        self.precision = precision
        self.capacity = capacity
        self.weight_cache = {}  # packed weights shared by every shape's plan
        self._plans = collections.OrderedDict()
        self._lock = threading.Lock()
        self._build_lock = threading.Lock()
        self.value_inputs = []  # indices of the inputs whose values key the plan, found by the first build

    def key(self, shapes, arrays=None):
        """The cache key of a request: its shapes, and the value inputs' values when the model has any."""
        if not self.value_inputs:
            return shapes
        return shapes, tuple((arrays[i].dtype.str, arrays[i].tobytes()) for i in self.value_inputs)

    def get(self, shapes, arrays=None):
        """The ``ShapePlan`` for concrete input ``shapes`` (a tuple per input), built if not cached.

        ``arrays``: the request's inputs, whose values matter for value inputs;
        without them, a model with value inputs gives None (nothing to build yet).
        """
        if self.value_inputs and arrays is None:
            return None
        key = self.key(shapes, arrays)
        with self._lock:
            sp = self._plans.get(key)
            if sp is not None:
                self._plans.move_to_end(key)
                return sp
        with self._build_lock:  # one build at a time; lookups of cached shapes go on meanwhile
            if self.value_inputs and arrays is None:
                return None  # found meanwhile by another request's build
            key = self.key(shapes, arrays)
            with self._lock:
                sp = self._plans.get(key)
            if sp is None:
                sp = self.build(shapes, arrays)
                if sp is None:
                    return None  # it needs input values, which the next request brings
                key = self.key(shapes, arrays)  # the build may have found value inputs
                if self.signature.static and not self.value_inputs:
                    self._graph = self._reimport = None  # its one plan holds what it needs
                    outs = [sp.plan.tensors[o] if o in sp.plan.tensors else np.asarray(sp.constants[o])
                            for o in self.output_names]
                    self.output_shapes = [tuple(t.shape) for t in outs]
                    self.output_dtypes = [np.dtype(t.dtype) for t in outs]
            with self._lock:
                self._plans[key] = sp
                self._plans.move_to_end(key)
                while len(self._plans) > self.capacity:
                    self._plans.popitem(last=False)  # in-flight requests keep theirs alive
            return sp

    def _make_batch_generic(self, graph):
        if self.signature.export_shapes is not None:
            batch_generic(graph, self.signature.export_shapes, self._infer)

    def _infer(self, graph, shapes, fuse=False):
        run_passes(graph, None, dict(zip(self.signature.names, shapes)), fuse=fuse)

    def build(self, shapes, arrays=None):
        """``_build`` with each deferred weight read from the file at most once (and let go after)."""
        with deferred_scope():
            return self._build(shapes, arrays)

    def _build(self, shapes, arrays=None):
        """Passes and lowering at ``shapes`` (and the value inputs' ``arrays``).

        A static model's first build runs on the imported graph itself (it is
        never needed again); every other build on a copy, the imported graph
        kept as it was for the next shape. A ``ConstantRequiredError`` whose
        tensor is computed from graph inputs makes those inputs value inputs
        and the build starts again with their values (None when ``arrays`` is
        None: the values come with the first request); one computed from no
        graph input is the model's error and is raised.
        """
        while True:
            in_place = self._reimport is not None and not self.value_inputs
            try:
                return self._build_once(shapes, arrays, in_place)
            except ConstantRequiredError as e:
                if in_place:  # the passes rewrote the graph: look for the inputs in a fresh one
                    self._graph = self._reimport()
                    self._make_batch_generic(self._graph)
                needed = [i for i in _input_ancestors(self._graph, e.value, self.signature.names)
                          if i not in self.value_inputs]
                if not needed:
                    raise
                self.value_inputs = sorted(self.value_inputs + needed)
                self._reimport = None
                if arrays is None:
                    return None

    def _build_once(self, shapes, arrays, in_place):
        t0 = time.perf_counter()
        graph = self._graph if in_place else self._graph.copy()
        names = self.signature.names
        for i in self.value_inputs:
            graph.values[names[i]].const = np.array(arrays[i])
            graph.inputs.remove(names[i])
        runtime = {n: s for n, s in zip(names, shapes) if n in graph.inputs}
        run_passes(graph, None, runtime, fuse=self._fuse)
        t1 = time.perf_counter()
        # Packed weights are shared by node and shape; where input values are folded in they may be
        # computed from those values, so such a plan packs its own.
        plans = lower_graph(graph, self._widths, {} if self.value_inputs else self.weight_cache,
                            release_consts=in_place, precision=self.precision)
        plan = plans[0]
        log.debug("shapes %s: passes %.3f s (%d nodes left), lowering %.3f s", [list(s) for s in shapes], t1 - t0,
                  len(graph.nodes), time.perf_counter() - t1)
        log.debug("plan: %d rows, %d tiles, arena %.1f MiB per stream, weights %.1f MiB, scratch %d KiB per worker",
                  len(plan.rows), sum(r.n_tiles for r in plan.rows), plan.arena_size / 2**20,
                  sum(w.nbytes for w in plan.weights.values()) / 2**20, plan.scratch_bytes // 1024)
        return ShapePlan(graph, plans, self._n_slots, self._num_workers, names)

    def after_fork(self):
        """In a fork()ed child: locks another thread of the parent may have held start afresh."""
        self._lock, self._build_lock = threading.Lock(), threading.Lock()

    def cached(self):
        """The cached ``ShapePlan``s by key (see ``key``), least recently used first."""
        with self._lock:
            return list(self._plans.items())
