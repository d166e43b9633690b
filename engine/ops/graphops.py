"""Lowerings of ops that compute nothing at run time: Shape, Size, Constant, Dropout, Range, ConstantOfShape.

Shape, Size and Constant always fold at compile time (the infer pass computes
them from static shapes or their attribute); they are registered so that the
registry lists every op tilerun runs. Inference-mode Dropout is its input (a
view); its optional mask output is all true. Training-mode Dropout with a
non-zero ratio is random and is refused. Range and ConstantOfShape have
output shapes set by their inputs' values, so they compile only as folds.
"""
import numpy as np

from ..errors import node_error
from .base import Lowering, const_input, expect_inputs
from .mapped import _affine, emit_mapped
from .registry import register


@register("Shape", 1)
class Shape(Lowering):
    """The input's shape as int64 (``start``/``end`` from opset 15); always folded."""

    def infer(self, node, inputs):
        expect_inputs(node, inputs, 1)
        n = len(inputs[0].shape)
        return [((len(range(n)[slice(node.attrs.get("start", 0), node.attrs.get("end"))]),), np.int64)]


@register("Size", 1)
class Size(Lowering):
    """The input's element count as an int64 scalar; always folded."""

    def infer(self, node, inputs):
        expect_inputs(node, inputs, 1)
        return [((), np.int64)]


@register("Constant", 1)
class Constant(Lowering):
    """A constant tensor from the node's attribute; the importer turns it into a value."""

    def infer(self, node, inputs):
        raise node_error(node, "Constant nodes are turned into values on import; none should remain")


@register("Dropout", 1)
class Dropout(Lowering):
    """Inference Dropout: ``y = x`` and ``mask`` all true; training mode only with ratio 0."""

    def _check(self, node, inputs):
        expect_inputs(node, inputs, 1, 3)
        training = bool(node.attrs.get("is_test", 1) == 0) if "is_test" in node.attrs else False
        if len(inputs) > 2 and inputs[2] is not None:
            training = bool(np.asarray(const_input(node, inputs[2], "training_mode")).reshape(-1)[0])
        ratio = float(node.attrs.get("ratio", 0.5))
        if len(inputs) > 1 and inputs[1] is not None:
            ratio = float(np.asarray(const_input(node, inputs[1], "ratio")).reshape(-1)[0])
        if training and ratio != 0.0:
            raise node_error(node, f"training-mode Dropout with ratio {ratio} is random; tilerun runs inference "
                                   f"(expected training_mode false or ratio 0)")

    def infer(self, node, inputs):
        self._check(node, inputs)
        x = inputs[0]
        return [(x.shape, x.dtype), (x.shape, np.dtype(np.bool_))][:len(node.outputs)]

    def lower(self, node, inputs, outputs, plan):
        x = inputs[0]
        if outputs[0] is not None:
            plan.alias(outputs[0].name, x.name)
        if len(outputs) > 1 and outputs[1] is not None and outputs[1].size:
            mask = outputs[1]
            one = plan.weight(np.ones(1, np.bool_), "true")
            emit_mapped(node, plan, one, mask, [_affine(d, 0, 0) for d in mask.shape])


class _ShapeFromValues(Lowering):
    """An op whose output shape comes from its inputs' values: it compiles only where they are constants.

    Constant inputs fold it away before lowering; a run-time input raises
    ``ConstantRequiredError`` (a plan has static shapes), which callers that
    can bind the input (``tilerun.backend``) answer by compiling it in.
    """

    def infer(self, node, inputs):
        for k, v in enumerate(inputs):
            const_input(node, v, f"input {k}")
        raise node_error(node, "internal: constant inputs should have folded")

    def lower(self, node, inputs, outputs, plan):
        raise node_error(node, "internal: constant inputs should have folded")


register("Range", 11)(type("Range", (_ShapeFromValues,), {}))
register("ConstantOfShape", 9)(type("ConstantOfShape", (_ShapeFromValues,), {}))
