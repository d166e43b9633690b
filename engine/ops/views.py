"""Lowerings of zero-copy views: Reshape, Flatten, Squeeze, Unsqueeze and Identity.

Each output is its first input's bytes under a new shape: the lowering
declares an alias (``plan.alias``) and no kernel runs. Shape-like inputs
(Reshape's shape, the axes from opset 13) must be compile-time constants:
run-time ones are rejected with an error naming the node. Copies that move
elements are ``tilerun.ops.movement`` and ``tilerun.ops.pad``.
"""
import numpy as np

from ..errors import node_error
from .base import Lowering, _axis, _ints, expect_inputs
from .registry import register


class View(Lowering):
    """An op whose output is its first input's bytes under a new shape."""

    def shape(self, node, inputs):
        """The output shape."""
        raise NotImplementedError

    def infer(self, node, inputs):
        x = inputs[0]
        shape = tuple(int(d) for d in self.shape(node, inputs))
        if int(np.prod(shape, dtype=np.int64)) != x.size:
            raise node_error(node, f"output shape {list(shape)} has {int(np.prod(shape))} elements, "
                                   f"input {x.name!r} of shape {list(x.shape)} has {x.size}")
        return [(shape, x.dtype)]

    def lower(self, node, inputs, outputs, plan):
        plan.alias(outputs[0].name, inputs[0].name)


@register("Reshape", 5)
class Reshape(View):
    """Reshape to a constant shape: 0 copies a dim (unless ``allowzero``), one -1 is inferred."""

    def shape(self, node, inputs):
        expect_inputs(node, inputs, 2)
        want = _ints(node, inputs, 1, None, "Reshape shape")
        src = inputs[0].shape
        allowzero = int(node.attrs.get("allowzero", 0))
        out = []
        for k, d in enumerate(want):
            if d == 0 and not allowzero:
                if k >= len(src):
                    raise node_error(node, f"shape {want} copies dim {k}, but the input has rank {len(src)}")
                d = src[k]
            out.append(d)
        if out.count(-1) > 1 or any(d < -1 for d in out):
            raise node_error(node, f"shape {want} must hold at most one -1 and no other negative dim")
        if -1 in out:
            known = int(np.prod([d for d in out if d != -1], dtype=np.int64))
            size = int(np.prod(src, dtype=np.int64))
            if known == 0 or size % known:
                raise node_error(node, f"cannot infer -1 in shape {want} for input shape {list(src)}")
            out[out.index(-1)] = size // known
        return out


@register("Flatten", 1)
class Flatten(View):
    """Flatten to 2-D at ``axis`` (negative axes from opset 11)."""

    def shape(self, node, inputs):
        s = inputs[0].shape
        a = int(node.attrs.get("axis", 1))
        a = a + len(s) if a < 0 else a
        if not 0 <= a <= len(s):
            raise node_error(node, f"axis {node.attrs.get('axis')} out of range for rank {len(s)}")
        return [int(np.prod(s[:a], dtype=np.int64)), int(np.prod(s[a:], dtype=np.int64))]


@register("Squeeze", 1)
class Squeeze(View):
    """Drop size-1 axes: those named (attribute before opset 13, input from 13) or all."""
    from_input = False

    def shape(self, node, inputs):
        s = inputs[0].shape
        axes = _ints(node, inputs, 1 if self.from_input else None, "axes", "Squeeze axes")
        if axes is None:
            return [d for d in s if d != 1]
        axes = {_axis(node, a, len(s), "Squeeze axis") for a in axes}
        bad = [a for a in axes if s[a] != 1]
        if bad:
            raise node_error(node, f"cannot squeeze axes {bad} of shape {list(s)}: expected size 1")
        return [d for k, d in enumerate(s) if k not in axes]


@register("Squeeze", 13)
class Squeeze13(Squeeze):
    """Squeeze with axes as an input."""
    from_input = True


@register("Unsqueeze", 1)
class Unsqueeze(View):
    """Insert size-1 axes at ``axes`` (attribute before opset 13, input from 13)."""
    from_input = False

    def shape(self, node, inputs):
        s = list(inputs[0].shape)
        axes = _ints(node, inputs, 1 if self.from_input else None, "axes", "Unsqueeze axes")
        if not axes:
            raise node_error(node, "expected axes, given none")
        rank = len(s) + len(axes)
        axes = sorted(_axis(node, a, rank, "Unsqueeze axis") for a in axes)
        if len(set(axes)) != len(axes):
            raise node_error(node, f"axes {axes} repeat an axis")
        for a in axes:
            s.insert(a, 1)
        return s


@register("Unsqueeze", 13)
class Unsqueeze13(Unsqueeze):
    """Unsqueeze with axes as an input."""
    from_input = True


@register("Identity", 1)
class Identity(View):
    """The input itself (a graph input passed straight to a graph output is aliased too)."""

    def shape(self, node, inputs):
        return inputs[0].shape
