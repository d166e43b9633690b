"""Lowerings of elementwise ops: activations (float32) and broadcasting binary arithmetic.

Activations take their parameters as a 2-float weight. Binary ops collapse
the broadcast to at most six axes at compile time (adjacent axes merge when
both inputs are contiguous or both broadcast across them), so the kernel walks
rows of a 6-D view with per-input strides. ``Sum``, ``Max`` and ``Min`` with
more than two inputs become a chain of binary rows. Arithmetic runs on float32
(one kernel per op) and on every integer dtype (one kernel per dtype, the op a
parameter; Div truncates toward zero as ONNX says). Integer ``Clip`` is a Max
row and a Min row against its constant bounds.
"""
import numpy as np

from ..errors import node_error
from ..ir import INT_DTYPES
from .base import F32, Lowering, const_input, expect_dtype, expect_inputs
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
for _op, _k in [("Abs", "abs"), ("Neg", "neg"), ("Exp", "exp"), ("Log", "log"), ("Sqrt", "sqrt"),
                ("Reciprocal", "reciprocal"), ("Floor", "floor"), ("Ceil", "ceil"), ("Erf", "erf"), ("Sin", "sin"),
                ("Cos", "cos"), ("Softplus", "softplus"), ("Sign", "sign"), ("Round", "round")]:
    _unary(_op, f"f32_{_k}")
_unary("Elu", "f32_elu", params=lambda n: (n.attrs.get("alpha", 1.0), 0.0))
_unary("Selu", "f32_selu", params=lambda n: (n.attrs.get("alpha", 1.6732632423543772),
                                            n.attrs.get("gamma", 1.0507009873554805)))


@register("Gelu", 20)
class Gelu(Unary):
    """Gelu with the exact (erf) or the ``approximate="tanh"`` form."""

    def infer(self, node, inputs):
        if node.attrs.get("approximate", "none") not in ("none", "tanh"):
            raise node_error(node, f"approximate must be 'none' or 'tanh', given {node.attrs.get('approximate')!r}")
        return super().infer(node, inputs)

    def lower(self, node, inputs, outputs, plan):
        kernel = "f32_gelu_tanh" if node.attrs.get("approximate", "none") == "tanh" else "f32_gelu"
        x, y = inputs[0], outputs[0]
        ab = plan.weight(np.zeros(2, np.float32), "act")
        tiles, chunk = plan.split(x.size, 1, granule=64)
        plan.add(node, kernel, [x.name, ab], [y.name], [x.size, chunk], tiles, flops=x.size)


@register("Clip", 1)
class Clip(Unary):
    """Clip: bounds from attributes (opset < 11) or constant inputs (opset >= 11); float32 or integers."""
    kernel = "f32_clip"

    def infer(self, node, inputs):
        expect_inputs(node, inputs, 1, 3)
        expect_dtype(node, inputs[0], [F32] + list(INT_DTYPES))
        self.bounds(node, inputs)
        return [(inputs[0].shape, inputs[0].dtype)]

    def bounds(self, node, inputs):
        """``(lo, hi)``, None where a bound is absent."""
        lo, hi = node.attrs.get("min"), node.attrs.get("max")
        for k in (1, 2):
            if len(inputs) > k and inputs[k] is not None:
                v = np.asarray(const_input(node, inputs[k], f"Clip bound input {k}"))
                if v.size != 1 or v.dtype != inputs[0].dtype:
                    raise node_error(node, f"bound {inputs[k].name!r} has shape {list(v.shape)} and dtype "
                                           f"{v.dtype}, expected a scalar of {inputs[0].dtype}")
                if k == 1:
                    lo = v.reshape(-1)[0]
                else:
                    hi = v.reshape(-1)[0]
        return lo, hi

    def lower(self, node, inputs, outputs, plan):
        x, y = inputs[0], outputs[0]
        if y.size == 0:
            return
        lo, hi = self.bounds(node, inputs)
        if x.dtype == F32:
            big = 3.4028234663852886e38
            ab = plan.weight(np.array([-big if lo is None else lo, big if hi is None else hi], np.float32), "clip")
            tiles, chunk = plan.split(x.size, 1, granule=64)
            plan.add(node, self.kernel, [x.name, ab], [y.name], [x.size, chunk], tiles, flops=x.size)
            return
        # Integers: max with the lower bound, then min with the upper one (a copy if neither).
        steps = [(op, b) for op, b in (("Max", lo), ("Min", hi)) if b is not None] or [("Max", None)]
        src = x
        for k, (op, b) in enumerate(steps):
            dst = y if k == len(steps) - 1 else _Temp(plan.temp(x.shape, x.dtype, "clip"), x.shape, x.dtype)
            other = src if b is None else _Temp(plan.weight(np.array([b], x.dtype), "bound"), (1,), x.dtype)
            Binary._emit(self, node, src, other, dst, plan, op=op)
            src = dst


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
    op = None
    variadic = False

    def infer(self, node, inputs):
        expect_inputs(node, inputs, 1 if self.variadic else 2, len(inputs) if self.variadic else 2)
        dtype = inputs[0].dtype
        for v in inputs:
            expect_dtype(node, v, [F32] + list(INT_DTYPES))
            if v.dtype != dtype:
                raise node_error(node, f"inputs {[v.name for v in inputs]} have dtypes "
                                       f"{[str(v.dtype) for v in inputs]}, expected one dtype")
        return [(broadcast_shape(node, [v.shape for v in inputs]), dtype)]

    def lower(self, node, inputs, outputs, plan):
        y = outputs[0]
        if y.size == 0:
            return
        if len(inputs) == 1:
            self._emit(node, inputs[0], inputs[0], y, plan, op="Max")  # max(a, a) copies a
            return
        acc = inputs[0]
        for k, b in enumerate(inputs[1:], 1):
            last = k == len(inputs) - 1
            shape = y.shape if last else broadcast_shape(node, [acc.shape, b.shape])
            target = y if last else _Temp(plan.temp(shape, y.dtype, "chain"), shape, y.dtype)
            self._emit(node, acc, b, target, plan)
            acc = target

    def _emit(self, node, a, b, y, plan, op=None):
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
        op = op or self.op
        if y.dtype == F32:
            kernel, ints = FLOAT_KERNELS[op], [per]
        else:
            kernel, ints = f"{INT_PREFIX[y.dtype]}_arith", [per, INT_OPS.index(op)]
        plan.add(node, kernel, [a.name, b.name] + geometry, [y.name], ints, tiles, flops=rows * dims[-1])


class _Temp:
    """A plan temporary seen as a value (name, shape, dtype) by the chain above."""

    def __init__(self, name, shape, dtype=F32):
        self.name, self.shape, self.dtype = name, tuple(shape), np.dtype(dtype)


# Float ops have a kernel each; integer ops one kernel per dtype with the op's
# index in INT_OPS as a parameter (the order of the kernels' op codes).
FLOAT_KERNELS = {"Add": "f32_add", "Sub": "f32_sub", "Mul": "f32_mul", "Div": "f32_div", "Max": "f32_max",
                 "Min": "f32_min", "Pow": "f32_pow"}
INT_OPS = ["Add", "Sub", "Mul", "Div", "Max", "Min"]
INT_PREFIX = {np.dtype(t): p for t, p in [(np.int64, "i64"), (np.int32, "i32"), (np.int16, "i16"), (np.int8, "i8"),
                                          (np.uint64, "u64"), (np.uint32, "u32"), (np.uint16, "u16"),
                                          (np.uint8, "u8")]}


def _binary(op_type, op, since=1, variadic=False):
    register(op_type, since)(type(op_type, (Binary,), {"op": op, "variadic": variadic}))


_binary("Add", "Add")
_binary("Sub", "Sub")
_binary("Mul", "Mul")
_binary("Div", "Div")
_binary("Sum", "Add", variadic=True)
_binary("Max", "Max", variadic=True)
_binary("Min", "Min", variadic=True)


@register("Pow", 7)
class Pow(Binary):
    """``a ** b`` on float32 (integer powers are not supported)."""
    op = "Pow"

    def infer(self, node, inputs):
        expect_inputs(node, inputs, 2)
        for v in inputs:
            expect_dtype(node, v, [F32])
        return [(broadcast_shape(node, [v.shape for v in inputs]), F32)]
