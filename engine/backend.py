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
from onnx import helper
from onnx.backend.base import Backend, BackendRep, Device, DeviceType, namedtupledict

from .api import compile_model
from .errors import ArgumentError, InputError
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


class TilerunRep(BackendRep):
    """A prepared model: compiles an engine for the given input shapes and runs it.

    Inputs that a node needs as constants (a Reshape's shape, Slice's starts,
    a Conv's weights, ...) are the engine's own business: it keys its plans on
    their values (``plans.PlanCache``), so the rep binds nothing itself.
    """

    def __init__(self, proto, compile_kwargs):
        self._proto = proto
        self._kwargs = dict(compile_kwargs)
        graph = import_model(proto)
        self.input_names = list(graph.inputs)
        self.output_names = list(graph.outputs)
        self._engine = {}  # "engine" → Engine, "key" → the input shapes it was compiled for; shared with the finalizer
        self._finalizer = weakref.finalize(self, _close_engine, self._engine)
        shapes = _static_shapes(proto)
        if shapes is not None:
            self._compile([shapes[n] for n in self.input_names])

    def _compile(self, shapes):
        """Compile for ``shapes`` (one per graph input)."""
        _close_engine(self._engine)
        runtime = {n: list(s) for n, s in zip(self.input_names, shapes)}
        eng = compile_model(self._proto, input_shapes=runtime, **self._kwargs, _empty_dims=True)
        self._engine.update(engine=eng, key=tuple(tuple(int(d) for d in s) for s in shapes))
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
        shapes = tuple(tuple(a.shape) for a in inputs)
        eng = self._engine.get("engine")
        if eng is None or self._engine.get("key") != shapes:
            eng = self._compile(shapes)
        outs = eng.run(inputs)
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
