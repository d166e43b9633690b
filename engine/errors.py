"""The one hierarchy of errors tilerun raises, each naming what was expected and given.

Errors are raised at the boundary (load, import, compile, input checking),
before any kernel runs. ``ModelError`` means a malformed model,
``ArgumentError`` a bad argument to the API, ``InputError`` a request's arrays
that do not fit; all three are also ``ValueError`` so that callers who catch
the builtin keep working.
"""


class TilerunError(Exception):
    """Base class of every error tilerun raises on purpose."""


class ModelError(TilerunError, ValueError):
    """The model file or graph is malformed, or a node's inputs break its op's rules."""


class ArgumentError(TilerunError, ValueError):
    """An argument of ``compile_model``, ``Engine`` or ``convert_model`` is out of its range or of the wrong type.

    Raised before any work (the model is not even read), naming the argument,
    what it must be and what was given.
    """


class ConstantRequiredError(ModelError):
    """A node needs a compile-time constant (shape, axes, pads, weights) but is given a run-time tensor.

    ``value`` names that tensor, so a caller that knows its value (the onnx
    backend, when it is a graph input) can bind it and compile again.
    """

    def __init__(self, message, value):
        super().__init__(message)
        self.value = value


class UnsupportedOpError(TilerunError, NotImplementedError):
    """The model uses op types (or op versions) tilerun has no lowering for.

    ``missing`` maps each unsupported op type to the names of the nodes using it;
    ``summary`` is the message without the list of supported op types (what
    the command line prints, pointing to ``tilerun info --ops`` instead).
    """

    def __init__(self, missing, known, headline=None):
        self.missing = dict(missing)
        self.known = sorted(map(str, known))
        lines = [f"  {op}: nodes {', '.join(repr(n) for n in names[:5])}"
                 + (f" and {len(names) - 5} more" if len(names) > 5 else "")
                 for op, names in sorted(self.missing.items(), key=lambda kv: str(kv[0]))]
        headline = headline or f"model uses {len(self.missing)} op type(s) tilerun does not support:"
        self.summary = headline + "\n" + "\n".join(lines)
        super().__init__(self.summary + (f"\nsupported op types: {', '.join(self.known)}" if self.known else ""))


class QuantizedModelError(UnsupportedOpError):
    """The model is quantized (QDQ: QuantizeLinear/DequantizeLinear pairs; QOperator: QLinear*, ConvInteger...).

    tilerun computes in float32 and runs no INT8 kernel yet; ``missing`` maps
    each quantization op type to the nodes that make the model a quantized one.
    """

    def __init__(self, missing):
        super().__init__(missing, (), headline=(
            "quantized models (QDQ or QOperator) are not supported: tilerun computes in float32 and has no "
            "INT8 kernels yet; run the float model the quantized one was made from. Quantization nodes:"))


class InputError(TilerunError, ValueError):
    """The arrays given to ``Engine.run`` do not match the compiled inputs."""


class RequestError(TilerunError, RuntimeError):
    """A request failed while running (a kernel reported a fault, or the engine closed)."""


def node_error(node, message):
    """A ``ModelError`` that names ``node`` (its name and op type) before ``message``."""
    return ModelError(f"node {node.name!r} ({node.op_type}): {message}")
