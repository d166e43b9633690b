"""tilerun as an ``onnx.backend.base.Backend``, so onnx's own test runner can drive it.

``TilerunBackend.prepare`` loads and checks the model and returns a
``TilerunRep``; ``TilerunRep.run`` compiles an ``Engine`` for the shapes of the
inputs it is given (reusing it while they stay the same) and runs it. A model
whose inputs are all static compiles in ``prepare`` already, so a bad model
fails there. Engines own worker threads: the rep closes its engine when it is
closed, used as a context manager, garbage-collected, or when another input
shape replaces it, so running hundreds of cases leaks no threads.

Keyword arguments of ``prepare`` (``num_cores``, ``scheduler``, ...) go to
``tilerun.compile_model``. Only the CPU device is supported.
"""
import weakref

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnx.backend.base import Backend, BackendRep, Device, DeviceType, namedtupledict

from .api import compile_model
from .errors import ArgumentError, ConstantRequiredError, InputError
from .importer import import_model
from .load import load_model


def _static_shapes(proto):
    """``{input name: shape}`` when every graph input has a fully static shape, else None."""
    inits = {t.name for t in proto.graph.initializer}
    shapes = {}
    for vi in proto.graph.input:
        if vi.name in inits:
            continue
        t = vi.type.tensor_type
        if not vi.type.HasField("tensor_type") or not t.HasField("shape"):
            return None
        dims = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
        if any(d is None or d < 0 for d in dims):
            return None
        shapes[vi.name] = dims
    return shapes


def _close_engine(holder):
    eng = holder.pop("engine", None)
    if eng is not None:
        eng.close()


def _input_ancestors(proto, name):
    """Graph inputs whose values ``name`` depends on (what only reaches it through Shape/Size does not count)."""
    producer = {o: n for n in proto.graph.node for o in n.output}
    inputs = {vi.name for vi in proto.graph.input}
    found, seen, stack = [], set(), [name]
    while stack:
        v = stack.pop()
        if v in seen or not v:
            continue
        seen.add(v)
        if v in inputs:
            found.append(v)
        node = producer.get(v)
        if node is not None and node.op_type not in ("Shape", "Size"):
            stack.extend(node.input)
    return found


def _bind(proto, values):
    """A copy of ``proto`` whose graph inputs named in ``values`` are initializers with those values."""
    bound = onnx.ModelProto()
    bound.CopyFrom(proto)
    kept = [vi for vi in bound.graph.input if vi.name not in values]
    del bound.graph.input[:]
    bound.graph.input.extend(kept)
    bound.graph.initializer.extend(numpy_helper.from_array(np.ascontiguousarray(a), name)
                                   for name, a in values.items())
    return bound


class TilerunRep(BackendRep):
    """A prepared model: compiles an engine for the given input shapes and runs it.

    tilerun plans every shape at compile time, so inputs that a node needs as
    constants (a Reshape's shape, Slice's starts, a Conv's weights, ...) cannot
    stay run-time tensors. When such an input is a graph input, the rep binds
    the value given at the first run into the compiled engine (as shape
    tensors are bound at build time in other static-shape engines) and
    recompiles if a later run gives another value.
    """

    def __init__(self, proto, compile_kwargs):
        self._proto = proto
        self._kwargs = dict(compile_kwargs)
        graph = import_model(proto)
        self.input_names = list(graph.inputs)
        self.output_names = list(graph.outputs)
        self.bound_inputs = []  # graph inputs compiled in as constants, in the order found
        self._engine = {}  # "engine" → Engine, "key" → what it was compiled for; shared with the finalizer
        self._finalizer = weakref.finalize(self, _close_engine, self._engine)
        shapes = _static_shapes(proto)
        if shapes is not None:
            self._compile([shapes[n] for n in self.input_names], None)

    def _key(self, shapes, arrays):
        """What an engine is compiled for: every input's shape and the bound inputs' values."""
        values = tuple((a.dtype.str, a.tobytes()) for n, a in zip(self.input_names, arrays or ())
                       if n in self.bound_inputs)
        return tuple(tuple(int(d) for d in s) for s in shapes), values

    def _compile(self, shapes, arrays):
        """Compile for ``shapes`` (one per graph input); ``arrays`` are the values when known."""
        _close_engine(self._engine)
        while True:
            values = {n: a for n, a in zip(self.input_names, arrays or ()) if n in self.bound_inputs}
            proto = _bind(self._proto, values) if values else self._proto
            runtime = {n: list(s) for n, s in zip(self.input_names, shapes) if n not in self.bound_inputs}
            try:
                eng = compile_model(proto, input_shapes=runtime, **self._kwargs, _empty_dims=True)
            except ConstantRequiredError as e:
                needed = [n for n in _input_ancestors(self._proto, e.value) if n in runtime]
                if not needed:
                    raise
                if arrays is None:
                    return None  # decided at the first run, when the values are known
                self.bound_inputs.extend(needed)
                continue
            self._engine.update(engine=eng, key=self._key(shapes, arrays))
            return eng

    def run(self, inputs, **kwargs):
        """Run on ``inputs`` (arrays in graph-input order, or a name → array dict); returns a named tuple."""
        if isinstance(inputs, dict):
            missing = [n for n in self.input_names if n not in inputs]
            if missing:
                raise InputError(f"expected inputs {self.input_names}, given {sorted(inputs)} (missing {missing})")
            inputs = [inputs[n] for n in self.input_names]
        elif isinstance(inputs, np.ndarray):
            inputs = [inputs]
        inputs = [np.asarray(a) if isinstance(a, (np.generic, int, float, bool)) else a for a in inputs]
        if len(inputs) != len(self.input_names):
            raise InputError(f"expected {len(self.input_names)} inputs {self.input_names}, given {len(inputs)}")
        for name, a in zip(self.input_names, inputs):
            if not isinstance(a, np.ndarray):
                raise InputError(f"input {name!r}: expected a numpy array, given {type(a).__name__}")
        shapes = [a.shape for a in inputs]
        eng = self._engine.get("engine")
        if eng is None or self._engine.get("key") != self._key(shapes, inputs):
            eng = self._compile(shapes, inputs)
        outs = eng.run([a for n, a in zip(self.input_names, inputs) if n not in self.bound_inputs])
        return namedtupledict("Outputs", self.output_names)(*outs)

    def close(self):
        """Stop the engine's worker threads (a later ``run`` compiles a new engine)."""
        _close_engine(self._engine)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class TilerunBackend(Backend):
    """The onnx backend interface over ``tilerun.compile_model`` (CPU only)."""

    @classmethod
    def is_compatible(cls, model, device="CPU", **kwargs):
        """True: whether tilerun runs a model is decided, with a clear error, by ``prepare``."""
        return cls.supports_device(device)

    @classmethod
    def prepare(cls, model, device="CPU", **kwargs):
        """Load and check ``model`` (path, bytes or ModelProto) and return a ``TilerunRep``."""
        if not cls.supports_device(device):
            raise ArgumentError(f"device must be 'CPU' (tilerun runs on the CPU only), given {device!r}")
        return TilerunRep(load_model(model), kwargs)

    @classmethod
    def run_model(cls, model, inputs, device="CPU", **kwargs):
        """Prepare ``model``, run it once on ``inputs`` and release its engine."""
        with cls.prepare(model, device, **kwargs) as rep:
            return rep.run(inputs)

    @classmethod
    def run_node(cls, node, inputs, device="CPU", outputs_info=None, **kwargs):
        """Run one ``NodeProto`` on ``inputs`` (arrays for its non-empty inputs, in order).

        ``outputs_info`` (optional ``(numpy dtype, shape)`` per output) is only
        declared on the graph outputs; tilerun infers them anyway. ``opset``
        in ``kwargs`` picks the opset (default: the newest onnx knows).
        """
        opset = kwargs.pop("opset", onnx.defs.onnx_opset_version())
        names = [n for n in node.input if n]
        if len(inputs) != len(names):
            raise InputError(f"node {node.name!r} ({node.op_type}) has {len(names)} inputs {names}, "
                             f"given {len(inputs)} arrays")
        arrays = [np.asarray(a) for a in inputs]
        ins = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
               for n, a in zip(names, arrays)]
        outs = []
        for k, name in enumerate(o for o in node.output if o):
            dtype, shape = (outputs_info[k] if outputs_info and k < len(outputs_info) else (None, None))
            elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype)) if dtype is not None else 0
            outs.append(helper.make_tensor_value_info(name, elem, shape))
        graph = helper.make_graph([node], f"{node.op_type}_node", ins, outs)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid(node.domain or "", opset)])
        with cls.prepare(model, device, **kwargs) as rep:
            return rep.run(arrays)

    @classmethod
    def supports_device(cls, device):
        """Only the CPU."""
        try:
            return Device(device).type == DeviceType.CPU
        except Exception:
            return False


prepare = TilerunBackend.prepare
run_model = TilerunBackend.run_model
run_node = TilerunBackend.run_node
supports_device = TilerunBackend.supports_device
