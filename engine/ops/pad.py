"""Lowerings of Pad, Expand and Tile: mapped copies whose output pads or repeats the input.

Pad (constant, reflect, edge and wrap modes; negative pads crop) gives each
padded axis a table of source offsets, -1 for the fill value; Expand
broadcasts (numpy rules, both ways) with stride-0 axes; Tile views its output
as ``(r0, d0, r1, d1, ...)`` with stride-0 repeat axes. Each runs one mapped
copy (``tilerun.ops.mapped``). Pads, the constant value, shapes and repeats
must be compile-time constants: run-time ones are rejected with an error
naming the node.
"""
import numpy as np

from ..errors import node_error
from .base import Lowering, _axis, _ints, const_input, expect_inputs
from .elementwise import broadcast_shape
from .mapped import _affine, _in_axes, _strides, emit_mapped
from .registry import register


@register("Pad", 2)
class Pad(Lowering):
    """Pad with constant/reflect/edge (and wrap) modes; negative pads crop."""
    from_inputs = False

    def params(self, node, inputs):
        """``(pads_begin, pads_end, mode, value)`` over every axis."""
        x = inputs[0]
        rank = len(x.shape)
        mode = node.attrs.get("mode", "constant")
        mode = mode.decode() if isinstance(mode, bytes) else mode  # schema defaults come as bytes
        if self.from_inputs:
            expect_inputs(node, inputs, 2, 4)
            pads, value = _ints(node, inputs, 1, None, "pads"), 0
            if len(inputs) > 2 and inputs[2] is not None:
                value = np.asarray(const_input(node, inputs[2], "constant_value")).reshape(-1)[0]
            axes = _ints(node, inputs, 3, None, "axes")
        else:
            pads, value, axes = list(node.attrs.get("pads", [])), node.attrs.get("value", 0.0), None
        axes = list(range(rank)) if axes is None else [_axis(node, a, rank, "Pad axis") for a in axes]
        if len(pads) != 2 * len(axes):
            raise node_error(node, f"pads {pads} must hold 2 x {len(axes)} values")
        if mode not in ("constant", "reflect", "edge", "wrap"):
            raise node_error(node, f"mode {mode!r} is not one of constant, reflect, edge, wrap")
        b, e = [0] * rank, [0] * rank
        for k, a in enumerate(axes):
            b[a], e[a] = pads[k], pads[k + len(axes)]
        for a in range(rank):
            if x.shape[a] + b[a] + e[a] < 0 or (mode != "constant" and x.shape[a] == 0 and b[a] + e[a] > 0):
                raise node_error(node, f"pads {b[a]}, {e[a]} do not fit axis {a} of shape {list(x.shape)}")
        return b, e, mode, value

    def infer(self, node, inputs):
        x = inputs[0]
        b, e, _, _ = self.params(node, inputs)
        return [(tuple(d + p + q for d, p, q in zip(x.shape, b, e)), x.dtype)]

    def lower(self, node, inputs, outputs, plan):
        x = inputs[0]
        b, e, mode, value = self.params(node, inputs)
        axes = []
        for d, p, q, s in zip(x.shape, b, e, _strides(x.shape)):
            j = np.arange(d + p + q, dtype=np.int64) - p
            if p <= 0 and q <= 0:
                axes.append(_affine(d + p + q, -p * s, s))
                continue
            if mode == "constant":
                t = np.where((j >= 0) & (j < d), j, -1)
            elif mode == "edge":
                t = np.clip(j, 0, d - 1)
            elif mode == "wrap":
                t = j % d
            elif d == 1:
                t = np.zeros_like(j)
            else:
                t = j % (2 * (d - 1))
                t = np.where(t >= d, 2 * (d - 1) - t, t)
            axes.append((len(t), np.where(t >= 0, t * s, -1).astype(np.int64)))
        emit_mapped(node, plan, x, outputs[0], axes, fill=value)


@register("Pad", 11)
class Pad11(Pad):
    """Pad with pads, constant value and axes as inputs."""
    from_inputs = True


@register("Expand", 8)
class Expand(Lowering):
    """Broadcast to a constant shape (numpy rules, both ways)."""

    def infer(self, node, inputs):
        expect_inputs(node, inputs, 2)
        shape = _ints(node, inputs, 1, None, "Expand shape")
        return [(broadcast_shape(node, [inputs[0].shape, shape]), inputs[0].dtype)]

    def lower(self, node, inputs, outputs, plan):
        x, y = inputs[0], outputs[0]
        pad = len(y.shape) - len(x.shape)
        xs = (1,) * pad + tuple(x.shape)
        st = _strides(xs)
        axes = [_affine(n, 0, 0 if d == 1 else s) for n, d, s in zip(y.shape, xs, st)]
        emit_mapped(node, plan, x, y, axes)


@register("Tile", 6)
class Tile(Lowering):
    """Repeat the input ``repeats[k]`` times along each axis (constant repeats)."""

    def _reps(self, node, inputs):
        expect_inputs(node, inputs, 2)
        reps = _ints(node, inputs, 1, None, "Tile repeats")
        if len(reps) != len(inputs[0].shape) or min(reps, default=0) < 0:
            raise node_error(node, f"repeats {reps}: expected {len(inputs[0].shape)} non-negative values")
        return reps

    def infer(self, node, inputs):
        reps = self._reps(node, inputs)
        return [(tuple(d * r for d, r in zip(inputs[0].shape, reps)), inputs[0].dtype)]

    def lower(self, node, inputs, outputs, plan):
        x = inputs[0]
        axes = []
        for r, (d, _, s) in zip(self._reps(node, inputs), _in_axes(x.shape)):
            axes += [_affine(r, 0, 0), _affine(d, 0, s)]  # output viewed as (r0, d0, r1, d1, ...)
        emit_mapped(node, plan, x, outputs[0], axes)
