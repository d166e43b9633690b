"""Lowerings of elementwise ops: activations and broadcasting binary arithmetic (float32).

Activations take their parameters as a 2-float weight. Binary ops collapse
the broadcast to at most four axes at compile time (adjacent axes merge when
both inputs are contiguous or both broadcast across them), so the kernel walks
rows of a 4-D view with per-input strides. ``Sum``, ``Max`` and ``Min`` with
more than two inputs become a chain of binary rows.
"""
import numpy as np

from ..errors import node_error
from .base import F32, Lowering, expect_dtype, expect_inputs
from .registry import register

MAX_AXES = 6


class Unary(Lowering):
    """An activation ``y = f(x; alpha, beta)`` over every element."""
    kernel = None

    def params(self, node):
        """The activation's ``(alpha, beta)``."""
        return 0.0, 0.0

    def infer(self, node, inputs):
        expect_inputs(node, inputs, 1)
        expect_dtype(node, inputs[0], [F32])
        return [(inputs[0].shape, F32)]

    def lower(self, node, inputs, outputs, plan):
        x, y = inputs[0], outputs[0]
        ab = plan.weight(np.array(self.params(node), np.float32), "act")
        n = x.size
        tiles, chunk = plan.split(n, 1, granule=64)
        plan.add(node, self.kernel, [x.name, ab], [y.name], [n, chunk], tiles, flops=n)


def _unary(op_type, kernel, since=1, params=None):
    cls = type(op_type, (Unary,), {"kernel": kernel})
    if params is not None:
        cls.params = lambda self, node: params(node)
    register(op_type, since)(cls)


_unary("Relu", "f32_relu")
_unary("LeakyRelu", "f32_leaky_relu", params=lambda n: (n.attrs.get("alpha", 0.01), 0.0))
_unary("Sigmoid", "f32_sigmoid")
_unary("Tanh", "f32_tanh")
_unary("HardSigmoid", "f32_hard_sigmoid", params=lambda n: (n.attrs.get("alpha", 0.2), n.attrs.get("beta", 0.5)))
_unary("HardSwish", "f32_hard_swish", since=14)


@register("Clip", 1)
class Clip(Unary):
    """Clip: bounds from attributes (opset < 11) or constant inputs (opset ≥ 11)."""
    kernel = "f32_clip"

    def infer(self, node, inputs):
        for k, v in enumerate(inputs[1:3], 1):
            if v is not None and v.const is None:
                raise node_error(node, f"Clip bound input {k} must be a compile-time constant, given run-time {v.name!r}")
        expect_dtype(node, inputs[0], [F32])
        return [(inputs[0].shape, F32)]

    def params(self, node):
        lo, hi = node.attrs.get("min", -3.4028234663852886e38), node.attrs.get("max", 3.4028234663852886e38)
        return lo, hi

    def lower(self, node, inputs, outputs, plan):
        lo, hi = self.params(node)
        if len(inputs) > 1 and inputs[1] is not None:
            lo = float(inputs[1].const.reshape(-1)[0])
        if len(inputs) > 2 and inputs[2] is not None:
            hi = float(inputs[2].const.reshape(-1)[0])
        x, y = inputs[0], outputs[0]
        ab = plan.weight(np.array([lo, hi], np.float32), "clip")
        tiles, chunk = plan.split(x.size, 1, granule=64)
        plan.add(node, self.kernel, [x.name, ab], [y.name], [x.size, chunk], tiles, flops=x.size)


def broadcast_shape(node, shapes):
    """The numpy broadcast of ``shapes``, or a ``ModelError`` naming them."""
    try:
        return tuple(np.broadcast_shapes(*[tuple(s) for s in shapes]))
    except ValueError:
        raise node_error(node, f"input shapes {[list(s) for s in shapes]} do not broadcast") from None


def collapse_broadcast(out_shape, in_shapes):
    """Merge axes of a broadcast into at most a few: returns ``(dims, [strides per input])``.

    ``dims`` is the collapsed output shape; each input's strides (in elements)
    are 0 on axes it is broadcast along.
    """
    rank = len(out_shape)
    strides = []
    for s in in_shapes:
        s = (1,) * (rank - len(s)) + tuple(s)
        st, acc = [0] * rank, 1
        for i in range(rank - 1, -1, -1):
            st[i] = acc if s[i] != 1 or out_shape[i] == 1 else 0
            acc *= s[i]
        strides.append(st)
    dims = [d for d in out_shape]
    keep = [i for i in range(rank) if dims[i] != 1]
    dims = [dims[i] for i in keep]
    strides = [[st[i] for i in keep] for st in strides]
    i = len(dims) - 2
    while i >= 0:
        if all(st[i] == st[i + 1] * dims[i + 1] for st in strides):
            dims[i] *= dims[i + 1]
            del dims[i + 1]
            for st in strides:
                del st[i]
        i -= 1
    return dims, strides


class Binary(Lowering):
    """``y = a op b`` with numpy broadcasting; n-ary variadic forms chain binaries."""
    kernel = None
    variadic = False

    def infer(self, node, inputs):
        expect_inputs(node, inputs, 1 if self.variadic else 2, len(inputs) if self.variadic else 2)
        for v in inputs:
            expect_dtype(node, v, [F32])
        return [(broadcast_shape(node, [v.shape for v in inputs]), F32)]

    def lower(self, node, inputs, outputs, plan):
        y = outputs[0]
        if len(inputs) == 1:
            self._emit(node, inputs[0], inputs[0], y, plan, kernel="f32_max")  # max(a, a) copies a
            return
        acc = inputs[0]
        for k, b in enumerate(inputs[1:], 1):
            last = k == len(inputs) - 1
            shape = y.shape if last else broadcast_shape(node, [acc.shape, b.shape])
            target = y if last else _Temp(plan.temp(shape, np.float32, "chain"), shape)
            self._emit(node, acc, b, target, plan)
            acc = target

    def _emit(self, node, a, b, y, plan, kernel=None):
        dims, (sa, sb) = collapse_broadcast(y.shape, [a.shape, b.shape])
        if len(dims) > MAX_AXES:
            raise node_error(node, f"broadcast of {list(a.shape)} with {list(b.shape)} needs {len(dims)} axes "
                                   f"after merging; tilerun supports at most {MAX_AXES}")
        pad = MAX_AXES - len(dims)
        dims = [1] * pad + dims
        sa, sb = [0] * pad + sa, [0] * pad + sb
        rows = int(np.prod(dims[:-1]))
        tiles, per = plan.split(rows, dims[-1])
        geometry = [plan.weight(np.array(v, np.int64), "bcast") for v in (dims, sa, sb)]
        plan.add(node, kernel or self.kernel, [a.name, b.name] + geometry, [y.name], [per], tiles,
                 flops=rows * dims[-1])


class _Temp:
    """A plan temporary seen as a value (name and shape) by the chain above."""

    def __init__(self, name, shape):
        self.name, self.shape = name, tuple(shape)


def _binary(op_type, kernel, since=1, variadic=False):
    register(op_type, since)(type(op_type, (Binary,), {"kernel": kernel, "variadic": variadic}))


_binary("Add", "f32_add")
_binary("Sub", "f32_sub")
_binary("Mul", "f32_mul")
_binary("Div", "f32_div")
_binary("Sum", "f32_add", variadic=True)
_binary("Max", "f32_max", variadic=True)
_binary("Min", "f32_min", variadic=True)
