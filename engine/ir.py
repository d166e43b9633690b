"""The engine's graph IR: values with static shapes and dtypes, nodes, the graph.

A ``Value`` is a named tensor with a static shape, a numpy dtype and, when it
is known at compile time, its constant data. A ``Node`` is one ONNX op with
its attributes already parsed into Python values (defaults filled in). The
``Graph`` keeps nodes in topological order. This module holds data only; the
passes and lowerings act on it.
"""
import copy
from dataclasses import dataclass, field

import numpy as np

# What kernels compute on and move; float16 and float64 are read from files (and
# fold at compile time) but no kernel computes in them.
SUPPORTED_DTYPES = tuple(np.dtype(t) for t in (np.float32, np.int64, np.int32, np.int16, np.int8, np.uint64,
                                               np.uint32, np.uint16, np.uint8, np.bool_))
INT_DTYPES = tuple(np.dtype(t) for t in (np.int64, np.int32, np.int16, np.int8, np.uint64, np.uint32, np.uint16,
                                         np.uint8))


@dataclass
class Value:
    """A tensor: name, static shape, dtype, and its data when constant."""
    name: str
    shape: tuple = None
    dtype: np.dtype = None
    const: np.ndarray = None

    @property
    def size(self):
        """Number of elements (shape must be known)."""
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self):
        """Bytes the tensor occupies."""
        return self.size * self.dtype.itemsize


@dataclass
class Fused:
    """What the fuse pass folded into a node's epilogue (``passes/fuse.py``); None where nothing was."""
    activation: tuple = None  # (op_type, alpha, beta) applied to the output
    residual: str = None      # value added before the activation (also the node's input 3)
    pool: "Node" = None       # a MaxPool computed on the node's output (Conv only)
    bias: str = None          # constant added per output column (MatMul only; also the node's input 2)


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
