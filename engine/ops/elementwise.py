"""Lowerings of elementwise ops: activations (float32) and broadcasting binary arithmetic.

Activations take their ``alpha``/``beta`` as float parameters. Binary ops collapse
the broadcast to at most ``BROADCAST_AXES`` axes at compile time (adjacent axes merge when
both inputs are contiguous or both broadcast across them), so the kernel walks
rows of a 6-D view with per-input strides. ``Sum``, ``Max`` and ``Min`` with
more than two inputs become a chain of binary rows. Arithmetic runs on float32
(one kernel per op) and on every integer dtype (one kernel per dtype, the op a
parameter; Div truncates toward zero as ONNX says). Integer ``Clip`` is a Max
row and a Min row against its constant bounds.
"""
import numpy as np

from tilerun.kernels import elementwise as K
from tilerun.kernels import intarith
from tilerun.kernels import unary_math as M

from ..errors import node_error
from ..ir import INT_DTYPES
from .base import F32, Lowering, const_input, expect_dtype, expect_inputs
from .registry import register

LONG_ROW = 4096  # elements (16 KiB of floats): a broadcast's last axis longer than this is split (``split_long_row``)


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
        emit_unary(node, plan, self.kernel, inputs[0], outputs[0], *self.params(node))


def emit_unary(node, plan, kernel, x, y, alpha=0.0, beta=0.0):
    """One row of a ``UNARY`` kernel over every element of ``x`` into ``y``."""
    tiles, chunk = plan.split(x.size, 1, granule=64)
    plan.add(node, kernel, x=x, y=y, n=x.size, chunk=chunk, alpha=alpha, beta=beta, tiles=tiles, flops=x.size)


def _unary(op_type, kernel, since=1, params=None):
    cls = type(op_type, (Unary,), {"kernel": kernel})
    if params is not None:
        cls.params = lambda self, node: params(node)
    register(op_type, since)(cls)


_unary("Relu", K.f32_relu)
_unary("LeakyRelu", K.f32_leaky_relu, params=lambda n: (n.attrs["alpha"], 0.0))
_unary("Sigmoid", K.f32_sigmoid)
_unary("Tanh", K.f32_tanh)
_unary("HardSigmoid", K.f32_hard_sigmoid, params=lambda n: (n.attrs["alpha"], n.attrs["beta"]))
_unary("HardSwish", K.f32_hard_swish, since=14)
for _op, _code in [("Abs", M.ABS), ("Neg", M.NEG), ("Exp", M.EXP), ("Log", M.LOG), ("Sqrt", M.SQRT),
                   ("Reciprocal", M.RECIPROCAL), ("Floor", M.FLOOR), ("Ceil", M.CEIL), ("Erf", M.ERF),
                   ("Sin", M.SIN), ("Cos", M.COS), ("Softplus", M.SOFTPLUS), ("Sign", M.SIGN), ("Round", M.ROUND)]:
    _unary(_op, M.MATH_KERNELS[_code])
_unary("Elu", M.f32_elu, params=lambda n: (n.attrs["alpha"], 0.0))
_unary("Selu", M.f32_selu, params=lambda n: (n.attrs["alpha"], n.attrs["gamma"]))


@register("Gelu", 20)
class Gelu(Unary):
    """Gelu with the exact (erf) or the ``approximate="tanh"`` form."""

    def infer(self, node, inputs):
        if node.attrs["approximate"] not in ("none", "tanh"):
            raise node_error(node, f"approximate must be 'none' or 'tanh', given {node.attrs.get('approximate')!r}")
        return super().infer(node, inputs)

    def lower(self, node, inputs, outputs, plan):
        kernel = M.f32_gelu_tanh if node.attrs["approximate"] == "tanh" else M.f32_gelu
        emit_unary(node, plan, kernel, inputs[0], outputs[0])


@register("Clip", 1)
class Clip(Unary):
    """Clip: bounds from attributes (opset < 11) or constant inputs (opset >= 11); float32 or integers."""
    kernel = K.f32_clip

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
            emit_unary(node, plan, self.kernel, x, y, -big if lo is None else lo, big if hi is None else hi)
            return
        # Integers: max with the lower bound, then min with the upper one (a copy if neither).
        steps = [(op, b) for op, b in (("Max", lo), ("Min", hi)) if b is not None] or [("Max", None)]
        src = x
        for k, (op, b) in enumerate(steps):
            dst = y if k == len(steps) - 1 else plan.temp(x.shape, x.dtype, "clip")
            other = src if b is None else plan.weight(np.array([b], x.dtype), "bound")
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
            target = y if last else plan.temp(shape, y.dtype, "chain")
            self._emit(node, acc, b, target, plan)
            acc = target

    def _emit(self, node, a, b, y, plan, op=None):
        dims, (sa, sb) = padded_broadcast(node, y.shape, [a.shape, b.shape])
        rows, tiles, per = broadcast_geometry(node, plan, dims)
        dims_w, sa_w, sb_w = (plan.weight(np.array(v, np.int64), "bcast") for v in (dims, sa, sb))
        code = ARITH_CODES[op or self.op]
        geometry = dict(a=a, b=b, dims=dims_w, a_strides=sa_w, b_strides=sb_w, y=y, tiles=tiles,
                        flops=rows * dims[-1])
        if y.dtype == F32:
            plan.add(node, K.FLOAT_ARITH_KERNELS[code], rows_per_tile=per, **geometry)
        else:
            plan.add(node, intarith.INT_ARITH_KERNELS[y.dtype], rows_per_tile=per, op=code, **geometry)


def split_long_row(dims, strides, longest=LONG_ROW):
    """``(dims, strides)`` with a last axis over ``longest`` elements split into two axes where one is free.

    Tiles take whole rows of the last axis, and a same-shape or scalar
    broadcast collapses to one row: unsplit it would be one tile however
    large. The last axis becomes ``(d // q, q)`` for the largest divisor ``q``
    of ``d`` in ``[longest // 16, longest]`` (each input's last stride is 1 or
    0, so its strides become ``(q, 1)`` or ``(0, 0)``). Left as it is when no
    axis is free or no such divisor exists.
    """
    if not dims or dims[-1] <= longest or len(dims) >= K.BROADCAST_AXES:
        return dims, strides
    d = dims[-1]
    q = next((q for q in range(longest, longest // 16 - 1, -1) if d % q == 0), 0)
    if not q:
        return dims, strides
    return dims[:-1] + [d // q, q], [st[:-1] + [st[-1] * q, st[-1]] for st in strides]


def padded_broadcast(node, out_shape, in_shapes):
    """``collapse_broadcast`` padded in front to ``BROADCAST_AXES`` axes: ``(dims, [strides per input])``.

    Raises ``ModelError`` when the broadcast needs more axes after merging.
    """
    dims, strides = split_long_row(*collapse_broadcast(out_shape, in_shapes))
    if len(dims) > K.BROADCAST_AXES:
        raise node_error(node, f"broadcast of {[list(s) for s in in_shapes]} needs {len(dims)} axes after "
                               f"merging; tilerun supports at most {K.BROADCAST_AXES}")
    pad = K.BROADCAST_AXES - len(dims)
    return [1] * pad + dims, [[0] * pad + st for st in strides]


def broadcast_geometry(node, plan, dims):
    """``(rows, tiles, rows_per_tile)`` of a padded broadcast: tiles take whole rows of the last axis."""
    rows = int(np.prod(dims[:-1]))
    tiles, per = plan.split(rows, dims[-1])
    return rows, tiles, per


# The op codes of the arithmetic kernels (float: one kernel each; integer: a parameter).
ARITH_CODES = {"Add": K.ADD, "Sub": K.SUB, "Mul": K.MUL, "Div": K.DIV, "Max": K.MAX, "Min": K.MIN, "Pow": K.POW,
               "PRelu": K.PRELU}


def _binary(op_type, op, since=1, variadic=False):
    register(op_type, since)(type(op_type, (Binary,), {"op": op, "variadic": variadic}))


_binary("Add", "Add")
_binary("Sub", "Sub")
_binary("Mul", "Mul")
_binary("Div", "Div")
_binary("Sum", "Add", variadic=True)
_binary("Max", "Max", variadic=True)
_binary("Min", "Min", variadic=True)


@register("PRelu", 7)
class PRelu(Binary):
    """``x < 0 ? x * slope : x`` in one pass, the slope broadcast to ``x`` (ONNX's function body is three ops)."""
    op = "PRelu"

    def infer(self, node, inputs):
        (shape, dtype), = super().infer(node, inputs)
        if shape != tuple(inputs[0].shape):
            raise node_error(node, f"slope shape {list(inputs[1].shape)} must broadcast to X's shape "
                                   f"{list(inputs[0].shape)}, not widen it to {list(shape)}")
        return [(shape, dtype)]


@register("Pow", 7)
class Pow(Binary):
    """``a ** b`` on float32 (integer powers are not supported)."""
    op = "Pow"

    def infer(self, node, inputs):
        expect_inputs(node, inputs, 2)
        for v in inputs:
            expect_dtype(node, v, [F32])
        return [(broadcast_shape(node, [v.shape for v in inputs]), F32)]

    def lower(self, node, inputs, outputs, plan):
        a, b = inputs
        y = outputs[0]
        if y.size and b.is_const and y.shape == a.shape and np.all(b.const == 2):
            # ``a * a``: the square of a float32 is exact in float64, so this is the
            # general kernel's result, without its scalar float64 pow per element.
            self._emit(node, a, a, y, plan, op="Mul")
            return
        super().lower(node, inputs, outputs, plan)
