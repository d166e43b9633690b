"""The plan: kernel rows in order, packed weights, one arena layout, and binding.

Lowerings fill a ``PlanBuilder`` with rows: a ``TileKernel`` and keyword
arguments naming its declared slots (``kernels.contract``), which the builder
checks and packs into tensors read and written and int64 parameters, plus a
tile count. ``PlanBuilder.finish`` resolves
views to their root buffers, lays the arena out from buffer lifetimes and
builds the executor's tables: kernel addresses, tile counts, dependency counts
and consumer lists (from ``hazards``), and the parameter rows with tensor slots
still unbound.
``Plan.bind(arena)`` writes a stream's absolute addresses into its own copy of
the parameter rows. Weights are arrays of their own (64-byte aligned), never
copied into a plan: every stream and, through the builder's ``weight_cache``,
every plan of one engine (one per input shape) shares them. A row may carry an
``explain`` function: when its kernel fails a request, the engine calls it
(off the hot path) to say which value was at fault.
"""
from dataclasses import dataclass, field

import numpy as np

from tilerun.kernels.contract import ContractError

from .errors import node_error
from .hazards import hazard_producers
from .memory import ALIGN, plan_offsets
from .tiling import split, split_even

ARENA, WEIGHT = 0, 1


@dataclass
class Row:
    """One kernel call over ``n_tiles`` tiles: what runs, on what tensors (None: an omitted slot), with which params."""
    kernel: object  # kernels.contract.TileKernel
    node: str
    op_type: str
    inputs: list
    outputs: list
    params: list
    n_tiles: int
    flops: int = 0
    output: str = ""  # the node's first output value: a name for rows of unnamed nodes
    explain: object = None  # explain(read) -> message or None; read(name) gives a tensor as the failed request saw it

    @property
    def n_params(self):
        """Length of this row's parameter block: tensor addresses, then parameters."""
        return len(self.inputs) + len(self.outputs) + len(self.params)

    def tensors(self):
        """Names of the tensors this row reads or writes (omitted slots left out)."""
        return [n for n in self.inputs + self.outputs if n is not None]


@dataclass(frozen=True)
class TensorRef:
    """A handle on a plan-internal tensor (a packed weight or an arena temporary)."""
    name: str
    shape: tuple
    dtype: np.dtype

    @property
    def size(self):
        """Number of elements."""
        return int(np.prod(self.shape, dtype=np.int64))


@dataclass
class Tensor:
    """Where a tensor lives: the arena or the weights, at a byte offset."""
    name: str
    shape: tuple
    dtype: np.dtype
    kind: int = ARENA
    offset: int = 0   # bytes into the arena, or into the weight array ``root``
    nbytes: int = 0
    root: str = None  # the weight array a WEIGHT tensor (or a view of one) lives in


def aligned(array):
    """``array`` itself when C-contiguous and ``ALIGN``-aligned, else such a copy."""
    array = np.require(array, requirements="C")
    if array.ctypes.data % ALIGN == 0:
        return array
    out = aligned_bytes(array.nbytes).view(array.dtype).reshape(array.shape)
    out[...] = array
    return out


class PlanBuilder:
    """Collects rows, weights, temporaries and views while lowerings run.

    ``weight_cache`` (a dict shared by every plan of one engine) keeps packed
    weights by the key a lowering gives, so a plan for a new input shape
    reuses them instead of packing again.
    """

    def __init__(self, graph, num_workers, scratch_bytes=0, weight_cache=None, precision="fp32"):
        self.graph = graph
        self.num_workers = num_workers
        self.precision = precision  # "bf16": lowerings may pick BF16 kernels (the CPU has them)
        self.rows = []
        self.tensors = {}
        self.weights = {}
        self.weight_cache = {} if weight_cache is None else weight_cache
        self.aliases = {}  # view name → (source name, byte offset)
        self.scratch_bytes = scratch_bytes
        self._temp = 0

    # -- used by lowerings -------------------------------------------------
    def add(self, node, kernel, /, *, tiles, flops=0, explain=None, **args):
        """Append a row of ``kernel`` over ``tiles`` tiles; ``args`` name every slot of its declared row.

        Tensor slots take names or handles (graph values, ``TensorRef``);
        parameters take ints and floats; a struct slot takes a mapping of its
        fields. A missing, unknown or ill-typed slot raises ``ModelError``
        naming the node, the kernel and the slot, before any kernel runs.
        ``explain(read)``, for a kernel that can fail a request, returns what
        was wrong (e.g. which index was out of range) from the tensors
        ``read(value name)`` gives back; the engine calls it only after a fault.
        """
        if int(tiles) < 1:
            # A row with no tile would never complete and would hang the request.
            raise node_error(node, f"internal: kernel {kernel.name} emitted with {tiles} tiles, expected >= 1")
        try:
            inputs, outputs, params = kernel.pack(args)
        except ContractError as e:
            raise node_error(node, f"internal: {e}") from None
        for name in inputs + outputs:
            if name is not None:
                self._declare(name)
        if kernel.scratch is not None:
            self.need_scratch(kernel.scratch(args))
        output = next((o for o in node.outputs if o), "")
        self.rows.append(Row(kernel, node.name, node.op_type, inputs, outputs, params, int(tiles), int(flops),
                             output, explain))

    def weight(self, array, hint="w", key=None):
        """Register a packed constant (laid out as the kernel reads it); returns its ``TensorRef``.

        ``array`` may be a callable making it: with a ``key`` the array is made
        once per engine and shared by its plans (the key must name everything
        the packing depends on, e.g. ``(node name, hint)`` for weights packed
        from the node's constants alone).
        """
        if key is not None and key in self.weight_cache:
            array = self.weight_cache[key]
        else:
            array = aligned(array() if callable(array) else array)
            if key is not None:
                self.weight_cache[key] = array
        name = f"#{hint}:{len(self.weights)}"
        self.weights[name] = array
        self.tensors[name] = Tensor(name, array.shape, array.dtype, WEIGHT, 0, array.nbytes)
        return TensorRef(name, array.shape, array.dtype)

    def temp(self, shape, dtype, hint="tmp"):
        """A plan-internal arena tensor (e.g. a staging buffer between two rows); returns its ``TensorRef``."""
        self._temp += 1
        name = f"#{hint}:{self._temp}"
        self.tensors[name] = Tensor(name, tuple(shape), np.dtype(dtype))
        return TensorRef(name, tuple(shape), np.dtype(dtype))

    def alias(self, view, source, byte_offset=0):
        """Declare ``view`` as bytes of ``source`` starting at ``byte_offset`` (no kernel runs)."""
        view, source = getattr(view, "name", view), getattr(source, "name", source)
        self._declare(source)
        self._declare(view)
        self.aliases[view] = (source, byte_offset)

    def need_scratch(self, nbytes):
        """Ask for at least ``nbytes`` of per-worker scratch for some kernel of this plan."""
        self.scratch_bytes = max(self.scratch_bytes, int(nbytes))

    def split(self, items, cost_per_item, granule=1):
        """Tiles for ``items`` independent items of ``cost_per_item`` each: ``(n_tiles, per_tile)``."""
        return split(items, cost_per_item, self.num_workers, granule)

    def split_even(self, items, cost_per_item, granule):
        """Tiles for ``items`` dealt in near-equal runs of whole granules (``tiling.split_even``): ``n_tiles``."""
        return split_even(items, cost_per_item, self.num_workers, granule)

    def _declare(self, name):
        if name not in self.tensors:
            v = self.graph.values[name]
            if v.deferred:  # one array however many plans read it: the file is read once
                key = ("deferred", id(v._const))
                if key not in self.weight_cache:
                    self.weight_cache[key] = (v._const, aligned(v.const))  # the Deferred keeps its id
                self.weights[name] = self.weight_cache[key][1]
                self.tensors[name] = Tensor(name, v.shape, v.dtype, WEIGHT, 0, self.weights[name].nbytes)
            elif v.is_const:
                self.weights[name] = aligned(v.const)
                self.tensors[name] = Tensor(name, v.shape, v.dtype, WEIGHT, 0, v.const.nbytes)
            else:
                self.tensors[name] = Tensor(name, v.shape, v.dtype)

    # -- after every lowering ran --------------------------------------------
    def finish(self, inputs, outputs):
        """Lay out weights and arena and build the executor tables; returns a ``Plan``."""
        for name in list(inputs) + list(outputs):
            self._declare(name)
        for t in self.tensors.values():
            t.nbytes = int(np.prod(t.shape, dtype=np.int64)) * t.dtype.itemsize
        weights = self.weights
        arena_size = self._lay_out_arena(inputs, outputs)
        readers = {name: self._in_bounds_readers(name, outputs) for name in inputs}
        writes = {name: self._output_references(name, inputs, outputs) for name in outputs}
        return Plan(self.rows, self.tensors, weights, arena_size, list(inputs), list(outputs),
                    max(self.scratch_bytes, ALIGN), self.num_workers,
                    {name: r for name, r in readers.items() if r}, {name: r for name, r in writes.items() if r})

    def _in_bounds_readers(self, name, outputs):
        """``(row, tensor slot, byte offset)`` of every read of input ``name`` and its views; [] unless all stay in bounds.

        Nothing may write it, and no graph output may be it or a view of it
        (such an output is copied out of the arena).
        """
        names, refs = self._references(name)
        if names & set(outputs):
            return []
        for k, pos, _ in refs:
            row = self.rows[k]
            if pos >= len(row.inputs) or not row.kernel.reads_in_bounds:
                return []
        return refs

    def _output_references(self, name, inputs, outputs):
        """``(row, tensor slot, byte offset)`` of every reference to output ``name`` and its views; [] to copy it.

        An output that is an arena tensor of its own (not a view of another,
        not a graph input, not the root of another graph output) can live in an
        array of the request's own: every row that writes or reads it, or a
        view of it, gets that array's address, and nothing copies it out.
        """
        t = self.tensors[name]
        if t.kind != ARENA or not t.nbytes or name in inputs or self._root(name)[0] != name:
            return []
        names, refs = self._references(name)
        return refs if sum(1 for o in outputs if o in names) == 1 else []

    def _references(self, name):
        """``(names, refs)``: tensor ``name`` and its views, and ``(row, tensor slot, byte offset)`` of every
        slot (input or output) of a row that names one of them."""
        names = {n for n in self.tensors if self._root(n)[0] == name}
        return names, [(k, pos, self._root(n)[1]) for k, row in enumerate(self.rows)
                       for pos, n in enumerate(row.inputs + row.outputs) if n in names]

    def _root(self, name):
        offset = 0
        while name in self.aliases:
            name, extra = self.aliases[name]
            offset += extra
        return name, offset

    def _lay_out_arena(self, inputs, outputs):
        n = len(self.rows)
        life = {}

        def touch(name, step):
            root, _ = self._root(name)
            if self.tensors[root].kind != ARENA:
                return
            lo, hi = life.get(root, (step, step))
            life[root] = (min(lo, step), max(hi, step))

        for name in inputs:
            touch(name, -1)
        for step, row in enumerate(self.rows):
            for name in row.tensors():
                touch(name, step)
        for name in outputs:
            touch(name, n)
        roots = sorted(life)
        offsets, total = plan_offsets([(life[r][0], life[r][1], self.tensors[r].nbytes) for r in roots])
        for r, off in zip(roots, offsets):
            self.tensors[r].offset = off
        for name in self.weights:
            self.tensors[name].root = name
        for view in self.aliases:
            root, extra = self._root(view)
            t, r = self.tensors[view], self.tensors[root]
            t.kind, t.offset, t.root = r.kind, r.offset + extra, r.root
        return total


def output_buffer(nbytes):
    """An uninitialized uint8 buffer of ``nbytes`` rounded up to ``ALIGN``, starting on an ``ALIGN`` boundary.

    A request's output lives here with the footprint it would have in the
    arena: aligned, its size rounded up to ``ALIGN``.
    """
    size = -(-max(int(nbytes), 1) // ALIGN) * ALIGN
    raw = np.empty(size + ALIGN, dtype=np.uint8)
    start = (-raw.ctypes.data) % ALIGN
    return raw[start:start + size]


def aligned_bytes(nbytes):
    """A zeroed uint8 buffer of ``nbytes`` whose data starts on an ``ALIGN`` boundary."""
    raw = np.zeros(nbytes + ALIGN, dtype=np.uint8)
    start = (-raw.ctypes.data) % ALIGN
    return raw[start:start + nbytes]


@dataclass
class Plan:
    """A compiled model: rows, tensor placement, packed weights and executor tables."""
    rows: list
    tensors: dict
    weights: dict  # name → array
    arena_size: int
    inputs: list
    outputs: list
    scratch_bytes: int
    num_workers: int
    in_bounds_reads: dict = field(default_factory=dict)  # input → its (row, slot, byte offset) reads
    output_refs: dict = field(default_factory=dict)  # output → its (row, slot, byte offset) references
    tables: dict = field(default=None)

    def __post_init__(self):
        self.tables = self._executor_tables()

    def _executor_tables(self):
        rows = self.rows
        producers = hazard_producers([self._intervals(r.inputs) for r in rows],
                                     [self._intervals(r.outputs) for r in rows])
        deps = np.array([len(p) for p in producers], np.int64)
        consumers = [[] for _ in rows]
        for k, prods in enumerate(producers):
            for j in prods:
                consumers[j].append(k)
        cons_ptr = np.zeros(len(rows) + 1, np.int64)
        cons_ptr[1:] = np.cumsum([len(c) for c in consumers])
        offsets = np.zeros(len(rows) + 1, np.int64)
        for k, row in enumerate(rows):
            offsets[k + 1] = offsets[k] + row.n_params
        return dict(
            fn_addr=np.array([r.kernel.address for r in rows], np.int64),
            n_tiles=np.array([r.n_tiles for r in rows], np.int64),
            deps=deps, cons_ptr=cons_ptr, cons_idx=np.array([k for c in consumers for k in c], np.int64),
            param_offsets=offsets)

    def _intervals(self, names):
        out = []
        for name in names:
            if name is None:
                continue
            t = self.tensors[name]
            if t.kind == ARENA and t.nbytes:
                out.append((t.offset, t.offset + t.nbytes))
        return out

    def in_place_inputs(self, name):
        """``(param indices, byte offsets)`` where input ``name``'s address goes, or None if it must be copied in.

        Set only for an input read by ``reads_in_bounds`` kernels alone:
        writing a caller's array address there (plus the offset) lets the
        request read that array in place of the arena copy.
        """
        return self._param_slots(self.in_bounds_reads.get(name))

    def direct_output(self, name):
        """``(param indices, byte offsets)`` where output ``name``'s address goes, or None if it is copied out.

        A request writes such an output straight into an array of its own
        (``output_buffer``) whose address it puts there, instead of into the
        arena and then a copy.
        """
        return self._param_slots(self.output_refs.get(name))

    def _param_slots(self, refs):
        """``(param indices, byte offsets)`` of ``(row, tensor slot, byte offset)`` references; None for none."""
        if not refs:
            return None
        at = self.tables["param_offsets"]
        return (np.array([at[k] + pos for k, pos, _ in refs], np.int64),
                np.array([off for _, _, off in refs], np.int64))

    def bind(self, arena):
        """Parameter rows with absolute addresses for ``arena`` (one stream's buffer)."""
        params = np.zeros(int(self.tables["param_offsets"][-1]), np.int64)
        for k, row in enumerate(self.rows):
            at = int(self.tables["param_offsets"][k])
            for name in row.inputs + row.outputs:
                if name is not None:
                    params[at] = self.address(arena, name)
                at += 1
            params[at:at + len(row.params)] = row.params
        return params

    def address(self, arena, name):
        """Absolute address of tensor ``name`` for a stream whose arena is ``arena``."""
        t = self.tensors[name]
        return (arena if t.kind == ARENA else self.weights[t.root]).ctypes.data + t.offset

    def view(self, arena, name):
        """A numpy view of tensor ``name`` inside ``arena`` (or the weights)."""
        name = getattr(name, "name", name)
        t = self.tensors[name]
        buf = arena if t.kind == ARENA else self.weights[t.root].reshape(-1).view(np.uint8)
        return buf[t.offset:t.offset + t.nbytes].view(t.dtype).reshape(t.shape)
