"""The engine's graph IR: values with static shapes and dtypes, nodes, the graph.

A ``Value`` is a named tensor with a static shape, a numpy dtype and, when it
is known at compile time, its constant data. A ``Node`` is one ONNX op with
its attributes already parsed into Python values (defaults filled in). The
``Graph`` keeps nodes in topological order. This module holds data only; the
passes and lowerings act on it.
"""
import contextlib
import copy
from dataclasses import dataclass, field

import numpy as np

# What kernels compute on and move; float16 and float64 are read from files (and
# fold at compile time) but no kernel computes in them.
SUPPORTED_DTYPES = tuple(np.dtype(t) for t in (np.float32, np.int64, np.int32, np.int16, np.int8, np.uint64,
                                               np.uint32, np.uint16, np.uint8, np.bool_))
INT_DTYPES = tuple(np.dtype(t) for t in (np.int64, np.int32, np.int16, np.int8, np.uint64, np.uint32, np.uint16,
                                         np.uint8))


class Value:
    """A tensor: name, static shape, dtype, and its data when constant.

    ``const`` may be held as a ``Deferred`` (a large weight that a dynamic
    engine keeps out of memory between plan builds); reading ``const`` then
    loads it, once per ``deferred_scope``.
    """

    def __init__(self, name, shape=None, dtype=None, const=None):
        self.name, self.shape, self.dtype = name, shape, dtype
        self.const = const

    @property
    def const(self):
        c = self._const
        return c.load() if isinstance(c, Deferred) else c

    @const.setter
    def const(self, value):
        self._const = value

    @property
    def is_const(self):
        """Whether the value is a compile-time constant (without loading a deferred one)."""
        return self._const is not None

    @property
    def deferred(self):
        """Whether the constant is held as a ``Deferred`` (not in memory until read)."""
        return isinstance(self._const, Deferred)

    @property
    def size(self):
        """Number of elements (shape must be known)."""
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self):
        """Bytes the tensor occupies."""
        return self.size * self.dtype.itemsize

    def __repr__(self):
        held = " (deferred)" if self.deferred else ""
        return f"Value({self.name!r}, shape={self.shape}, dtype={self.dtype}, const={self._const is not None}{held})"


class Deferred:
    """A constant's data kept out of memory: ``load()`` makes it again (e.g. reads it from the model file).

    Inside ``deferred_scope`` the latest ``SCOPE_KEEPS`` loads are kept, so
    the reads of one weight that follow each other in a build load it once.
    """

    def __init__(self, load):
        self._load = load

    def load(self):
        """The array (a fresh load unless the scope still keeps it)."""
        if _SCOPE is None:
            return self._load()
        arr = _SCOPE.pop(id(self), None)
        if arr is None:
            arr = self._load()
        _SCOPE[id(self)] = arr
        while len(_SCOPE) > SCOPE_KEEPS:
            del _SCOPE[next(iter(_SCOPE))]
        return arr


SCOPE_KEEPS = 4
_SCOPE = None


@contextlib.contextmanager
def deferred_scope():
    """Keep the latest deferred loads inside the block (one plan build) and drop them after."""
    global _SCOPE
    outer, _SCOPE = _SCOPE, {} if _SCOPE is None else _SCOPE
    try:
        yield
    finally:
        _SCOPE = outer


@dataclass
class Fused:
    """What the fuse pass folded into a node's epilogue (``passes/fuse.py``); None where nothing was."""
    activation: tuple = None  # (op_type, alpha, beta) applied to the output
    residual: str = None      # value added before the activation (also the node's input 3)
    pool: "Node" = None       # a MaxPool computed on the node's output (Conv only)
    bias: str = None          # constant added per output column (MatMul only; also the node's input 2)
    gate: bool = False        # input 4: a per-input-channel scale of X (a folded squeeze-excitation; Conv only)


@dataclass
class Node:
    """One op: type, name, input and output value names, parsed attributes, fused epilogue."""
    op_type: str
    name: str
    inputs: list
    outputs: list
    attrs: dict = field(default_factory=dict)
    domain: str = ""
    proto: object = None  # the onnx NodeProto, kept for constant folding by the reference evaluator
    fused: Fused = field(default_factory=Fused)


@dataclass
class Graph:
    """Nodes in topological order, the values they connect, graph inputs and outputs."""
    nodes: list
    values: dict
    inputs: list
    outputs: list
    opset: int

    def copy(self):
        """A copy that passes may rewrite: new values and nodes, constant arrays and node protos shared."""
        values = {k: copy.copy(v) for k, v in self.values.items()}
        nodes = []
        for n in self.nodes:
            c = copy.copy(n)
            c.inputs, c.outputs, c.attrs, c.fused = list(n.inputs), list(n.outputs), dict(n.attrs), copy.copy(n.fused)
            nodes.append(c)
        return Graph(nodes, values, list(self.inputs), list(self.outputs), self.opset)

    def value(self, name):
        """The ``Value`` called ``name``; '' (an omitted optional input) gives None."""
        return self.values[name] if name else None

    def consumers(self):
        """Map value name → list of nodes that read it."""
        out = {}
        for n in self.nodes:
            for i in n.inputs:
                if i:
                    out.setdefault(i, []).append(n)
        return out

    def producers(self):
        """Map value name → the node that writes it."""
        return {o: n for n in self.nodes for o in n.outputs if o}
