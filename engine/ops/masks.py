"""Lowerings of the boolean and float-class ops transformer exports use: And, Or, Xor, IsNaN, IsInf, Trilu.

Each is composed (``compose.Composer``) from kernels tilerun already has: And
and Or are a ``Where`` with a constant, Xor a ``Not`` of bool ``Equal``,
IsNaN a ``Not`` of ``x == x``, IsInf an ``Equal`` against a constant
infinity, Trilu a ``Where`` against a constant triangle mask of the last two
axes. Broadcasting is ``Where``'s and ``Equal``'s. Not here: float64 inputs
(tilerun computes in float32) and a run-time Trilu ``k``.
"""
import numpy as np

from ..errors import node_error
from .base import F32, Lowering, _ints, expect_dtype, expect_inputs, expect_rank
from .compose import Composer
from .elementwise import broadcast_shape
from .registry import register

BOOL = np.dtype(np.bool_)


class _BoolBinary(Lowering):
    """A binary op on two bool tensors, broadcasting as numpy does."""

    def infer(self, node, inputs):
        expect_inputs(node, inputs, 2)
        for v in inputs:
            expect_dtype(node, v, [BOOL])
        return [(broadcast_shape(node, [v.shape for v in inputs]), BOOL)]


@register("And", 7)
class And(_BoolBinary):
    """``a and b``: ``Where(a, b, False)``."""

    def lower(self, node, inputs, outputs, plan):
        c = Composer(node, plan)
        c.op("Where", [inputs[0], inputs[1], c.const(np.zeros((), BOOL))], out=outputs[0])


@register("Or", 7)
class Or(_BoolBinary):
    """``a or b``: ``Where(a, True, b)``."""

    def lower(self, node, inputs, outputs, plan):
        c = Composer(node, plan)
        c.op("Where", [inputs[0], c.const(np.ones((), BOOL)), inputs[1]], out=outputs[0])


@register("Xor", 7)
class Xor(_BoolBinary):
    """``a xor b``: ``Not(Equal(a, b))``."""

    def lower(self, node, inputs, outputs, plan):
        c = Composer(node, plan)
        c.op("Not", [c.op("Equal", inputs)], out=outputs[0])


class _FloatClass(Lowering):
    """A float32 -> bool test of every element."""

    def infer(self, node, inputs):
        expect_inputs(node, inputs, 1)
        expect_dtype(node, inputs[0], [F32])
        return [(inputs[0].shape, BOOL)]


@register("IsNaN", 9)
class IsNaN(_FloatClass):
    """``x != x``: ``Not(Equal(x, x))``."""

    def lower(self, node, inputs, outputs, plan):
        c = Composer(node, plan)
        c.op("Not", [c.op("Equal", [inputs[0], inputs[0]])], out=outputs[0])


@register("IsInf", 10)
class IsInf(_FloatClass):
    """``x == +inf`` and/or ``x == -inf`` as ``detect_positive``/``detect_negative`` ask."""

    def lower(self, node, inputs, outputs, plan):
        c, x = Composer(node, plan), inputs[0]
        pos, neg = int(node.attrs.get("detect_positive", 1)), int(node.attrs.get("detect_negative", 1))
        if pos and neg:
            x = c.op("Abs", [x])
        # Neither sign asked for: compare with NaN, which nothing equals.
        target = np.inf if pos else -np.inf if neg else np.nan
        c.op("Equal", [x, c.const(np.array(target, F32))], out=outputs[0])


@register("Trilu", 14)
class Trilu(Lowering):
    """Keep the upper (``upper=1``) or lower triangle of the last two axes from diagonal ``k``; zero the rest."""

    def infer(self, node, inputs):
        expect_inputs(node, inputs, 1, 2)
        expect_rank(node, inputs[0], range(2, 9))
        self._k(node, inputs)
        return [(inputs[0].shape, inputs[0].dtype)]

    def _k(self, node, inputs):
        k = _ints(node, inputs, 1, None, "Trilu k")
        if k is not None and len(k) != 1:
            raise node_error(node, f"k must be a scalar, given {len(k)} values")
        return 0 if k is None else k[0]

    def lower(self, node, inputs, outputs, plan):
        x = inputs[0]
        n, m = x.shape[-2:]
        diag = np.arange(m)[None, :] - np.arange(n)[:, None]
        k = self._k(node, inputs)
        keep = diag >= k if int(node.attrs.get("upper", 1)) else diag <= k
        c = Composer(node, plan)
        c.op("Where", [c.const(keep), x, c.const(np.zeros((), x.dtype))], out=outputs[0])
