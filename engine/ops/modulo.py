"""Mod (integer and float32, both ``fmod`` forms) and integer Neg, composed from the arithmetic kernels.

``fmod=1`` is C's remainder, with the dividend's sign: on integers ``a - (a / b)
* b`` with Div truncating; on float32 ``a - trunc(a / b) * b``, ``trunc(q)`` as
``Sign(q) * Floor(Abs(q))``. ``fmod=0`` is Python's modulo, with the divisor's
sign: the remainder plus ``b`` where it is non-zero and its sign differs from
``b``'s. An infinite float divisor leaves a finite dividend as it is. A zero integer divisor gives the dividend (ONNX leaves it
undefined); a zero float divisor gives NaN, as numpy does. Float32 results
carry the rounding of the quotient: exact for quotients below 2**24, not
bit-exact with ``fmod`` beyond. Not here: float64.
"""
import numpy as np

from tilerun.kernels import unary_math as M

from ..errors import node_error
from ..ir import INT_DTYPES
from .base import F32, Lowering, expect_dtype, expect_inputs
from .compose import Composer
from .elementwise import Unary, broadcast_shape
from .registry import register

_SIGNED = tuple(np.dtype(t) for t in (np.int64, np.int32, np.int16, np.int8))


@register("Mod", 10)
class Mod(Lowering):
    """``a mod b`` with numpy broadcasting, both inputs of one dtype."""

    def infer(self, node, inputs):
        expect_inputs(node, inputs, 2)
        a, b = inputs
        expect_dtype(node, a, [F32] + list(INT_DTYPES))
        if a.dtype != b.dtype:
            raise node_error(node, f"inputs have dtypes {a.dtype} and {b.dtype}, expected one dtype")
        return [(broadcast_shape(node, [a.shape, b.shape]), a.dtype)]

    def lower(self, node, inputs, outputs, plan):
        (a, b), y = inputs, outputs[0]
        c = Composer(node, plan)
        python_mod = not int(node.attrs.get("fmod", 0)) and (a.dtype == F32 or a.dtype in _SIGNED)
        if a.dtype == F32:
            q = c.op("Div", [a, b])
            q = c.op("Mul", [c.op("Sign", [q]), c.op("Floor", [c.op("Abs", [q])])])
        else:
            q = c.op("Div", [a, b])
        last = None if python_mod else y
        r = c.op("Sub", [a, c.op("Mul", [q, b])], out=None if a.dtype == F32 else last)
        if a.dtype == F32:  # an infinite divisor leaves a finite dividend (``a + (a - a)``: NaN for infinite a)
            inf_b = c.op("Equal", [c.op("Abs", [b]), c.const(np.array(np.inf, F32))])
            r = c.op("Where", [inf_b, c.op("Add", [a, c.op("Sub", [a, a])]), r], out=last)
        if python_mod:
            zero = c.const(np.zeros((), a.dtype))
            same_sign = c.op("Equal", [c.op("Less", [r, zero]), c.op("Less", [b, zero])])
            keep = c.op("Or", [c.op("Equal", [r, zero]), same_sign])
            c.op("Where", [keep, r, c.op("Add", [r, b])], out=y)


@register("Neg", 6)
class Neg(Unary):
    """``-x``: float32 by its kernel, signed integers as ``0 - x`` (wrapping as numpy does)."""

    def infer(self, node, inputs):
        expect_inputs(node, inputs, 1)
        expect_dtype(node, inputs[0], [F32] + list(_SIGNED))
        return [(inputs[0].shape, inputs[0].dtype)]

    kernel = M.MATH_KERNELS[M.NEG]

    def lower(self, node, inputs, outputs, plan):
        x = inputs[0]
        if x.dtype == F32:
            super().lower(node, inputs, outputs, plan)
            return
        c = Composer(node, plan)
        c.op("Sub", [c.const(np.zeros((), x.dtype)), x], out=outputs[0])
