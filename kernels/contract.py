"""The declared contract between lowerings and tile kernels: one parameter row per kernel, read by name.

A tile kernel reads one int64 row ``p``: the absolute addresses of its
tensors (inputs, then outputs), then its integer parameters, then its float
parameters (a float32 in the low half of a slot), then any parameter structs
(a fixed group such as the GEMM epilogue, kept contiguous so a kernel can hand
its address to a shared routine). ``declare_row`` turns that declaration into
a namedtuple of slot indices: module-level constants that Numba folds into
the kernel, so ``p[R.n]`` costs what a literal index did and no kernel restates an
index by value. ``tile_kernel(R)`` registers a kernel with its row and its
properties; lowerings hand the returned ``TileKernel`` and keyword arguments
to the plan builder, which checks them against the row (``TileKernel.pack``).

This module does not decide tiles or parameter values (the engine's
lowerings do) and knows no kernel family.
"""
from collections import namedtuple

import numba
import numpy as np

from .abi import TILE_SIGNATURE

OPTIONAL = "?"  # a tensor slot declared ``"bias?"`` may be given None (address 0, never read)
RESERVED = frozenset({"tiles", "flops"})  # the plan builder's own keywords


class ContractError(ValueError):
    """A row given to a kernel does not match the kernel's declaration (a bug in a lowering)."""


def declare_struct(name, ints=(), floats=()):
    """A parameter struct spliced into rows: floats first, then ints, one slot each.

    Returns a namedtuple of field offsets inside the struct (``EP.alpha``);
    its class carries ``_ints``, ``_floats`` and ``_size``.
    """
    fields = tuple(floats) + tuple(ints)
    cls = namedtuple(name, fields)
    cls._ints, cls._floats, cls._size = tuple(ints), tuple(floats), len(fields)
    return cls(*range(len(fields)))


def declare_row(name, inputs=(), outputs=(), ints=(), floats=(), structs=()):
    """Declare a parameter row; returns the namedtuple of its slot indices.

    ``inputs``/``outputs`` name tensor slots (a trailing ``?`` marks one that
    may be omitted); ``ints``/``floats`` name scalar parameters; ``structs``
    maps a prefix to a ``declare_struct`` result: the row gets ``<prefix>``
    (the struct's first slot) and ``<prefix>_<field>`` for each field. The
    class carries the declaration (``_inputs``, ``_outputs``, ``_ints``,
    ``_floats``, ``_structs``, ``_optional``, ``_size``) for the builder.
    """
    ins = [s.rstrip(OPTIONAL) for s in inputs]
    outs = [s.rstrip(OPTIONAL) for s in outputs]
    optional = frozenset(s.rstrip(OPTIONAL) for s in tuple(inputs) + tuple(outputs) if s.endswith(OPTIONAL))
    names = ins + outs + list(ints) + list(floats)
    values = list(range(len(names)))
    start = len(values)
    for prefix, st in dict(structs).items():
        names += [prefix] + [f"{prefix}_{f}" for f in st._fields]
        values += [start] + [start + off for off in st]
        start += st._size
    if len(set(names)) != len(names) or set(names) & RESERVED:
        raise ContractError(f"row {name}: a slot name is declared twice or reserved ({sorted(RESERVED)}): {names}")
    cls = namedtuple(name, names)
    cls._inputs, cls._outputs, cls._ints, cls._floats = tuple(ins), tuple(outs), tuple(ints), tuple(floats)
    cls._structs, cls._optional = dict(structs), optional
    cls._size = len(ins) + len(outs) + len(ints) + len(floats) + sum(st._size for st in dict(structs).values())
    return cls(*values)


def float_bits(value):
    """The int64 slot holding float32 ``value`` in its low half (as kernels read it)."""
    return int(np.array([value], np.float32).view(np.uint32)[0])


class TileKernel:
    """A registered tile kernel: its name, Python function, declared row and properties.

    ``reads_in_bounds``: the kernel reads its inputs strictly inside them
    (masked vector loads, nothing past the last element), so a graph input
    read by such kernels alone may be the caller's array itself.
    ``scratch``: ``fn(args) -> bytes`` of per-worker scratch a row with these
    keyword arguments needs (None: none). ``cache``: keep the compiled code in
    Numba's disk cache (False for a function Numba cannot cache, one with no
    source file).
    """
    cache = True

    def __init__(self, fn, row, reads_in_bounds=False, scratch=None):
        self.name, self.fn, self.row = fn.__name__, fn, row
        self.reads_in_bounds, self.scratch = reads_in_bounds, scratch
        self.__doc__ = fn.__doc__
        self._cfunc = None

    def __repr__(self):
        return f"<tile kernel {self.name} row {type(self.row).__name__}>"

    @property
    def compiled(self):
        """The C callable (compiled, or loaded from Numba's disk cache, on first use)."""
        if self._cfunc is None:
            # error_model="numpy": a float division needs no zero check (IEEE gives inf/nan), and
            # the check would keep LLVM from vectorizing the loop around it.
            self._cfunc = numba.cfunc(TILE_SIGNATURE, nopython=True, cache=self.cache, error_model="numpy")(self.fn)
        return self._cfunc

    @property
    def address(self):
        """Address of the C entry point, for the executor's dispatch table."""
        return self.compiled.address

    def pack(self, args):
        """``(inputs, outputs, params)`` from keyword ``args``: tensor names (None where omitted) and int64s.

        Raises ``ContractError`` naming this kernel and the slot when a slot is
        missing, unknown, or None where it is not optional.
        """
        r = self.row
        structs = r._structs
        known = r._inputs + r._outputs + r._ints + r._floats + tuple(structs)
        extra = sorted(set(args) - set(known))
        missing = [s for s in known if s not in args]
        if extra or missing:
            raise ContractError(f"kernel {self.name}: row {type(r).__name__} "
                                + (f"has no slot {', '.join(extra)}" if extra else "")
                                + ("; " if extra and missing else "")
                                + (f"slot {', '.join(missing)} not given" if missing else "")
                                + f" (declared: {', '.join(known)})")
        tensors = []
        for s in r._inputs + r._outputs:
            v = args[s]
            if v is None and s not in r._optional:
                raise ContractError(f"kernel {self.name}: tensor slot {s} is required, given None")
            tensors.append(None if v is None else getattr(v, "name", v))
        params = [_int(self.name, s, args[s]) for s in r._ints] + [float_bits(args[s]) for s in r._floats]
        for prefix, st in structs.items():
            params += _struct_params(self.name, prefix, st, args[prefix])
        return tensors[:len(r._inputs)], tensors[len(r._inputs):], params


def _int(kernel, slot, v):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise ContractError(f"kernel {kernel}: int slot {slot} must be an integer, given {v!r}")
    return int(v)


def _struct_params(kernel, prefix, st, value):
    fields = type(st)._floats + type(st)._ints
    value = value._asdict() if hasattr(value, "_asdict") else dict(value)
    if set(value) != set(fields):
        raise ContractError(f"kernel {kernel}: struct {prefix} needs fields {', '.join(fields)}, "
                            f"given {', '.join(sorted(value))}")
    return ([float_bits(value[f]) for f in type(st)._floats]
            + [_int(kernel, f"{prefix}_{f}", value[f]) for f in type(st)._ints])


_DECLARED = []


def tile_kernel(row, reads_in_bounds=False, scratch=None):
    """Decorator: register ``fn`` as a tile kernel reading ``row``; returns its ``TileKernel``."""
    def deco(fn):
        k = TileKernel(fn, row, reads_in_bounds, scratch)
        _DECLARED.append(k)
        return k
    return deco


def declared_kernels():
    """Every ``TileKernel`` declared by the modules imported so far (the registry imports them all)."""
    return list(_DECLARED)
