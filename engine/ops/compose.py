"""Lowerings built from other lowerings: a composite op emits the kernel rows of a few existing ops.

``Composer`` lets a lowering call ``op("Equal", [x, x])`` inside its own
``lower``: the named op's lowering checks and shapes the step with its own
``infer``, a plan temp holds the step's output (or the composite's own
output, when given), and the op's ``lower`` emits its rows under the
composite node's name. Constants become packed plan weights. It does not
fold, fuse or reorder the steps: each is the rows its op would emit alone.
"""
import numpy as np

from ..errors import node_error
from ..ir import Node, Value
from . import registry

# The default-domain opset whose lowerings (and attribute conventions) the steps use.
STEP_OPSET = 23


class Composer:
    """Emits the steps of one composite ``node`` on ``plan``."""

    def __init__(self, node, plan):
        self.node, self.plan = node, plan

    def const(self, array, hint="k"):
        """A constant step input: ``array`` packed as a plan weight, carrying its data for the steps' checks."""
        array = np.require(np.asarray(array), requirements="C")
        ref = self.plan.weight(array, hint)
        return Value(ref.name, tuple(array.shape), array.dtype, array)

    def op(self, op_type, inputs, out=None, **attrs):
        """Emit ``op_type`` on ``inputs`` (``Value``s; None for an omitted one); return its output ``Value``.

        ``out`` (a ``Value`` of the right shape and dtype) receives the result;
        without it a plan temp does. ``attrs`` are the step's attributes, all
        that its lowering reads (no schema defaults are filled in).
        """
        lowering = registry.resolve(op_type, STEP_OPSET)
        if lowering is None:
            raise node_error(self.node, f"internal: step op {op_type} has no lowering")
        step = Node(op_type, self.node.name, [v.name if v is not None else "" for v in inputs], [""], dict(attrs))
        shape, dtype = lowering.infer(step, inputs)[0]
        shape, dtype = tuple(int(d) for d in shape), np.dtype(dtype)
        if out is None:
            ref = self.plan.temp(shape, dtype, op_type.lower())
            out = Value(ref.name, shape, dtype)
        elif (tuple(out.shape), out.dtype) != (shape, dtype):
            raise node_error(self.node, f"internal: step {op_type} gives {list(shape)} {dtype}, expected "
                                        f"{list(out.shape)} {out.dtype}")
        step.outputs = [out.name]
        if out.size:
            lowering.lower(step, inputs, [out], self.plan)
        return out
