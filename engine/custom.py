"""Custom ops: an ONNX op of a domain of your own, defined by a shape function and a Numba tile kernel.

    from tilerun.custom import custom_op, declare_row, f32, param_f32, U

    SCALE = declare_row("SCALE", inputs=("x",), outputs=("y",), ints=("n", "chunk"), floats=("factor",))

    @custom_op("Scale", domain="com.example", row=SCALE, shape=..., params=...)
    def scale(p, tile, scratch): ...

``custom_op`` declares the decorated function as a tile kernel reading its
row (``kernels.contract``, exactly as a built-in family declares its kernels:
compiled by ``numba.cfunc`` without the GIL, kept in Numba's disk cache) and
registers a lowering for ``(domain, op_type, since)`` in the op registry.
From then on a model's node of that domain and type is handled like a
built-in op:

* shape inference calls ``shape(node, *inputs)``; it returns the
  ``(shape, dtype)`` of the output, or a list of them, one per output, and a
  malformed answer fails the compile naming the op;
* a node whose inputs are all constant folds by running its own kernel once,
  at compile time, on one worker (onnx's reference evaluator does not know
  the op);
* lowering calls ``params(node, inputs, outputs, plan)`` for the row's slot
  values plus ``tiles=`` (and optionally ``flops=``); tensor slots it leaves
  out take the node's inputs and outputs in declared order. The slots are
  checked against the row before the plan is built (a missing or unknown slot
  fails the compile naming kernel and slot), and the scheduler runs the tiles
  like any other row's, in every scheduling mode.

``node`` has ``name``, ``op_type``, ``domain`` and ``attrs`` (the ONNX
attributes as Python values); ``inputs``/``outputs`` are values with
``name``, ``shape``, ``dtype``, ``size`` and ``const`` (the data when known at
compile time), None for an omitted optional one; ``plan`` offers
``split(items, cost_per_item, granule)`` → ``(tiles, items per tile)``,
``weight(array)`` and ``temp(shape, dtype)`` (tensor handles for slots) and
``num_workers``. This module re-exports what a kernel reads its row with
(``f32``, ``i64``, ``i32``, ``i8``, ``u8`` views, ``param_f32``,
``slot_address``, ``U``) and ``declare_row``/``declare_struct``.

It does not add ops to ONNX's default domain or replace a built-in op, fuse
activations into a custom op, emit more than one kernel row per node, or
export custom ops to ONNX (``tilerun convert``). A registration lasts for the
process; registering the same ``(domain, op_type, since)`` twice is an error.
"""
import ctypes
from collections.abc import Mapping

import numpy as np

from tilerun.kernels import registry as kernel_registry
from tilerun.kernels.abi import U, f32, i8, i32, i64, param_f32, slot_address, u8
from tilerun.kernels.contract import RESERVED, ContractError, TileKernel, declare_row, declare_struct, tile_kernel

from .errors import TilerunError, node_error
from .ir import SUPPORTED_DTYPES, Graph, Value
from .ops import registry
from .ops.base import Lowering
from .plan import PlanBuilder, aligned_bytes

__all__ = ["custom_op", "CustomOp", "CustomOpError", "declare_row", "declare_struct",
           "U", "f32", "i64", "i32", "i8", "u8", "param_f32", "slot_address"]


class CustomOpError(TilerunError, ValueError):
    """A custom op cannot be registered: bad arguments, a default domain, taken already, or a kernel name in use."""


def custom_op(op_type, domain, *, shape, row=None, params=None, since=1, reads_in_bounds=False, scratch=None):
    """Decorator: register the decorated tile kernel as op ``op_type`` of ``domain``; returns the ``CustomOp``.

    ``fn(p, tile, scratch) -> int64`` reads ``row`` (a ``declare_row``
    result) by name and returns 0, or a non-zero status that fails the
    request. ``shape(node, *inputs)`` gives the output ``(shape, dtype)``
    (a list of them for several outputs); ``params(node, inputs, outputs,
    plan)`` the row's slot values and ``tiles`` (None: one tile, tensors by
    position, for a row with no scalar slot). ``since`` is the first version
    of ``domain`` the op exists in (a model's ``opset_import`` for the domain
    picks the newest not above it). ``reads_in_bounds`` and ``scratch`` are
    ``tile_kernel``'s. The decorated object may also be the ``kernel`` of a
    ``CustomOp`` registered before, to share it between ops or versions.
    """
    _check_registration(op_type, domain, since, shape, params)

    def deco(fn):
        kernel = _declare_kernel(fn, row, reads_in_bounds, scratch)
        op = CustomOp(op_type, domain, since, kernel, shape, params)
        registry.register_domain_op(domain, op_type, since, op)
        return op
    return deco


class CustomOp(Lowering):
    """The lowering of one registered custom op: its kernel, shape function and parameter function."""

    def __init__(self, op_type, domain, since, kernel, shape, params):
        self.op_type, self.domain, self.since = op_type, domain, since
        self.kernel, self.shape, self.params = kernel, shape, params

    @property
    def name(self):
        """``domain.op_type``, as errors name the op."""
        return f"{self.domain}.{self.op_type}"

    def __repr__(self):
        return f"<custom op {self.name} since {self.since}, kernel {self.kernel.name}>"

    def infer(self, node, inputs):
        row = self.kernel.row
        if self.params is None and (len(node.inputs) > len(row._inputs) or len(node.outputs) > len(row._outputs)):
            raise node_error(node, f"custom op {self.name}: {len(node.inputs)} inputs and {len(node.outputs)} "
                                   f"outputs, but row {type(row).__name__} of kernel {self.kernel.name} has "
                                   f"{len(row._inputs)} and {len(row._outputs)} (give a params function to map more)")
        return _output_types(node, self, self.shape(node, *inputs))

    def fold(self, node, arrays, opset):
        return _run_once(self, node, arrays, opset)

    def lower(self, node, inputs, outputs, plan):
        args = self.slot_values(node, inputs, outputs, plan)
        try:
            self.kernel.pack({k: v for k, v in args.items() if k not in RESERVED})
        except ContractError as e:
            raise node_error(node, f"custom op {self.name}: {e}") from None
        try:
            self.kernel.compiled  # compile (or load) now, so a kernel Numba rejects fails naming the node
        except Exception as e:
            raise node_error(node, f"custom op {self.name}: kernel {self.kernel.name} does not compile "
                                   f"({type(e).__name__}: {e})") from None
        plan.add(node, self.kernel, **args)

    def slot_values(self, node, inputs, outputs, plan):
        """The keyword arguments of this node's row: ``params``' answer, tensors by position, ``tiles``."""
        args = {} if self.params is None else self.params(node, list(inputs), list(outputs), plan)
        if not isinstance(args, Mapping):
            raise node_error(node, f"custom op {self.name}: params function returned {type(args).__name__}, "
                                   f"expected a dict of slot values and tiles")
        args = dict(args)
        row = self.kernel.row
        for slots, values in ((row._inputs, inputs), (row._outputs, outputs)):
            for k, slot in enumerate(slots):
                if k < len(values):
                    args.setdefault(slot, values[k])
                elif slot in row._optional:
                    args.setdefault(slot, None)
        args.setdefault("tiles", 1)
        return args


def _check_registration(op_type, domain, since, shape, params):
    if domain in registry.DEFAULT_DOMAINS:
        raise CustomOpError(f"custom op {op_type!r}: domain {domain!r} is ONNX's default domain, whose ops are "
                            f"tilerun's own; give the op a domain of your own (e.g. 'com.example')")
    if domain == registry.INTERNAL_DOMAIN:
        raise CustomOpError(f"custom op {op_type!r}: domain {domain!r} is reserved for the ops tilerun's passes "
                            f"create; give the op a domain of your own (e.g. 'com.example')")
    for what, v in (("op_type", op_type), ("domain", domain)):
        if not isinstance(v, str) or not v:
            raise CustomOpError(f"custom op {what} must be a non-empty string, given {v!r}")
    if isinstance(since, bool) or not isinstance(since, (int, np.integer)) or since < 1:
        raise CustomOpError(f"custom op {domain}.{op_type}: since must be a version >= 1, given {since!r}")
    if not callable(shape) or (params is not None and not callable(params)):
        raise CustomOpError(f"custom op {domain}.{op_type}: shape (and params, when given) must be callable")
    if since in registry.domain_ops().get((domain, op_type), ()):
        raise CustomOpError(f"custom op {domain}.{op_type} since version {since} is already registered")


def _declare_kernel(fn, row, reads_in_bounds, scratch):
    """The ``TileKernel`` of ``fn``: declared now reading ``row``, or ``fn`` itself if it is one already."""
    if isinstance(fn, TileKernel):
        if fn.row is None or (row is not None and row is not fn.row):
            raise CustomOpError(f"kernel {fn.name}: a shared kernel keeps its own declared row")
        return fn
    if not callable(fn):
        raise CustomOpError(f"custom_op decorates a tile kernel function, given {type(fn).__name__}")
    if not hasattr(type(row), "_inputs"):
        raise CustomOpError(f"kernel {fn.__name__}: row must be a declare_row(...) result, given {row!r}")
    taken = {k.name: k for k in kernel_registry.all_kernels()}
    if fn.__name__ in taken:
        raise CustomOpError(f"kernel {fn.__name__}: a tile kernel of that name is declared already "
                            f"(in {taken[fn.__name__].fn.__module__}); kernel names are unique, rename the function")
    kernel = tile_kernel(row, reads_in_bounds=reads_in_bounds, scratch=scratch)(fn)
    kernel.cache = _numba_can_cache(fn)
    return kernel


def _numba_can_cache(fn):
    """Numba caches a function it can locate a source file for (not one made by ``exec``)."""
    from numba.core.caching import FunctionCache
    try:
        FunctionCache(fn)
    except Exception:
        return False
    return True


def _is_type_pair(x):
    return isinstance(x, (tuple, list)) and len(x) == 2 and isinstance(x[0], (tuple, list)) \
        and not isinstance(x[1], (tuple, list))


def _output_types(node, op, result):
    """``[(shape, dtype)]`` from a shape function's answer; ``ModelError`` naming the op when malformed."""
    said = f"custom op {op.name}: shape function returned {result!r}"
    pairs = [result] if _is_type_pair(result) else result
    if not isinstance(pairs, (tuple, list)) or not all(_is_type_pair(p) for p in pairs):
        raise node_error(node, f"{said}, expected (shape, dtype) or a list of them, one per output")
    if len(pairs) < len(node.outputs):
        raise node_error(node, f"{said}: {len(pairs)} output type(s) for the node's {len(node.outputs)} outputs")
    out = []
    for shape, dtype in pairs:
        if not all(isinstance(d, (int, np.integer)) and not isinstance(d, (bool, np.bool_)) and d >= 0
                   for d in shape):
            raise node_error(node, f"{said}: shape {shape!r} is not a sequence of non-negative ints")
        try:
            dt = None if dtype is None else np.dtype(dtype)
        except TypeError:
            dt = None
        if dt not in SUPPORTED_DTYPES:
            raise node_error(node, f"{said}: dtype {dtype!r} is not one tilerun's kernels carry (expected one of "
                                   f"{', '.join(str(d) for d in SUPPORTED_DTYPES)})")
        out.append((tuple(int(d) for d in shape), dt))
    return out


_TILE_FN = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64)


def _run_once(op, node, arrays, opset):
    """``node``'s outputs from constant ``arrays``: a one-node plan for one worker, its tiles run in order."""
    values, ins = {}, []
    for name, a in zip(node.inputs, arrays):
        if not name:
            ins.append(None)
            continue
        a = np.require(a, requirements="C")
        ins.append(values.setdefault(name, Value(name, tuple(a.shape), a.dtype, a)))
    outs = []
    for name, (shape, dtype) in zip(node.outputs, op.infer(node, ins)):
        outs.append(values.setdefault(name, Value(name, shape, dtype)) if name else None)
    graph = Graph([node], values, [], [o for o in node.outputs if o], opset)
    b = PlanBuilder(graph, 1)
    op.lower(node, ins, outs, b)  # the inputs are constants: the plan packs them as weights
    plan = b.finish(graph.inputs, graph.outputs)
    arena, scratch = aligned_bytes(plan.arena_size), aligned_bytes(plan.scratch_bytes)
    params = plan.bind(arena)
    offsets = plan.tables["param_offsets"]
    for k, row in enumerate(plan.rows):
        fn = _TILE_FN(row.kernel.address)
        at = params.ctypes.data + 8 * int(offsets[k])
        for tile in range(row.n_tiles):
            status = fn(at, tile, scratch.ctypes.data)
            if status:
                raise node_error(node, f"custom op {op.name}: kernel {row.kernel.name} returned status {status} "
                                       f"on tile {tile} while computing constant inputs at compile time")
    return [plan.view(arena, o).copy() if o else None for o in node.outputs]
