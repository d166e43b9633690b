"""Lowerings of dtype conversions and masks: Cast, the comparisons, Where and Not.

All are elementwise over any dtype tilerun carries; comparisons and Where
broadcast as numpy does, over at most ``NAX`` axes after adjacent axes merge.
A same-dtype Cast is a zero-copy alias.
"""
import numpy as np

from ..errors import node_error
from .base import Lowering, expect_inputs
from .elementwise import broadcast_shape, collapse_broadcast
from .registry import register

NAX = 6  # axes of a collapsed broadcast


_CAST_CODE = {np.dtype(t): c for c, t in enumerate([np.float32, np.int64, np.int32, np.bool_, np.uint8, np.int8])}
_CAST_KERNEL = {np.dtype(np.float32): "f32_cast", np.dtype(np.int64): "i64_cast", np.dtype(np.int32): "i32_cast",
                np.dtype(np.bool_): "u8_cast", np.dtype(np.uint8): "u8_cast", np.dtype(np.int8): "i8_cast"}


@register("Cast", 6)
class Cast(Lowering):
    """Convert among float32/int64/int32/bool/uint8/int8 as numpy's ``astype`` (float→int truncates)."""

    def infer(self, node, inputs):
        expect_inputs(node, inputs, 1)
        from ..importer import numpy_dtype
        to = numpy_dtype(int(node.attrs["to"]), f"node {node.name!r} (Cast) attribute to")
        if inputs[0].dtype not in _CAST_KERNEL:
            raise node_error(node, f"input dtype {inputs[0].dtype} is not castable, expected one of "
                                   f"{sorted(str(d) for d in _CAST_KERNEL)}")
        if to not in _CAST_CODE:
            raise node_error(node, f"target dtype {to} is not supported, expected one of "
                                   f"{sorted(str(d) for d in _CAST_CODE)}")
        return [(inputs[0].shape, to)]

    def lower(self, node, inputs, outputs, plan):
        x, y = inputs[0], outputs[0]
        if x.dtype == y.dtype:
            plan.alias(y.name, x.name)
            return
        if y.size == 0:
            return
        tiles, chunk = plan.split(x.size, 1, granule=64)
        plan.add(node, _CAST_KERNEL[x.dtype], [x.name], [y.name], [x.size, chunk, _CAST_CODE[y.dtype]], tiles)


def _broadcast_geometry(node, plan, out_shape, in_shapes):
    """Weights ``[dims, strides per input]`` of a broadcast padded to 6 axes, and the row count."""
    dims, strides = collapse_broadcast(tuple(out_shape), [tuple(s) for s in in_shapes])
    if len(dims) > NAX:
        raise node_error(node, f"broadcast of {[list(s) for s in in_shapes]} needs {len(dims)} axes after "
                               f"merging; tilerun supports at most {NAX}")
    pad = NAX - len(dims)
    dims = [1] * pad + list(dims)
    strides = [[0] * pad + list(st) for st in strides]
    rows = int(np.prod(dims[:-1], dtype=np.int64))
    return [plan.weight(np.array(v, np.int64), "bcast") for v in [dims] + strides], rows, dims[-1]


_CMP_PREFIX = {np.dtype(np.float32): "f32", np.dtype(np.int64): "i64", np.dtype(np.int32): "i32",
               np.dtype(np.bool_): "u8", np.dtype(np.uint8): "u8", np.dtype(np.int8): "i8"}


# The wider integer dtypes share one kernel per dtype, with the op as a code (EQ, LT, GT, LE, GE).
_CMP_WIDE = {np.dtype(np.int16): "i16", np.dtype(np.uint16): "u16", np.dtype(np.uint32): "u32",
             np.dtype(np.uint64): "u64"}
_CMP_CODES = ["equal", "less", "greater", "less_equal", "greater_equal"]


class Compare(Lowering):
    """``a <op> b`` with numpy broadcasting, giving bool (1-byte dtypes compare as bytes for Equal)."""
    suffix = None

    def infer(self, node, inputs):
        expect_inputs(node, inputs, 2)
        a, b = inputs
        known = set(_CMP_PREFIX) | set(_CMP_WIDE)
        if a.dtype != b.dtype or a.dtype not in known or (a.dtype == np.bool_ and self.suffix != "equal"):
            raise node_error(node, f"inputs have dtypes {a.dtype} and {b.dtype}, expected one same dtype among "
                                   f"float32 and the integer dtypes (and bool for Equal)")
        return [(broadcast_shape(node, [a.shape, b.shape]), np.dtype(np.bool_))]

    def lower(self, node, inputs, outputs, plan):
        (a, b), y = inputs, outputs[0]
        if y.size == 0:
            return
        geom, rows, inner = _broadcast_geometry(node, plan, y.shape, [a.shape, b.shape])
        tiles, per = plan.split(rows, inner)
        if a.dtype in _CMP_WIDE:
            plan.add(node, f"{_CMP_WIDE[a.dtype]}_compare", [a.name, b.name] + geom, [y.name],
                     [per, _CMP_CODES.index(self.suffix)], tiles)
            return
        prefix = "u8" if self.suffix == "equal" and a.dtype.itemsize == 1 else _CMP_PREFIX[a.dtype]
        plan.add(node, f"{prefix}_{self.suffix}", [a.name, b.name] + geom, [y.name], [per], tiles)


for _op, _suffix, _since in [("Equal", "equal", 7), ("Less", "less", 7), ("Greater", "greater", 7),
                             ("LessOrEqual", "less_equal", 12), ("GreaterOrEqual", "greater_equal", 12)]:
    register(_op, _since)(type(_op, (Compare,), {"suffix": _suffix}))


@register("Where", 9)
class Where(Lowering):
    """``cond ? x : y`` with three-way broadcasting, any dtype."""

    def infer(self, node, inputs):
        expect_inputs(node, inputs, 3)
        c, x, y = inputs
        if c.dtype != np.bool_ or x.dtype != y.dtype:
            raise node_error(node, f"expected bool condition and equal x/y dtypes, given {c.dtype}, {x.dtype}, "
                                   f"{y.dtype}")
        return [(broadcast_shape(node, [c.shape, x.shape, y.shape]), x.dtype)]

    def lower(self, node, inputs, outputs, plan):
        out = outputs[0]
        if out.size == 0:
            return
        geom, rows, inner = _broadcast_geometry(node, plan, out.shape, [v.shape for v in inputs])
        tiles, per = plan.split(rows, inner)
        plan.add(node, f"b{out.dtype.itemsize}_where", [v.name for v in inputs] + geom, [out.name], [per], tiles)


@register("Not", 1)
class Not(Lowering):
    """Logical not of a bool tensor."""

    def infer(self, node, inputs):
        expect_inputs(node, inputs, 1)
        if inputs[0].dtype != np.bool_:
            raise node_error(node, f"input has dtype {inputs[0].dtype}, expected bool")
        return [(inputs[0].shape, inputs[0].dtype)]

    def lower(self, node, inputs, outputs, plan):
        x, y = inputs[0], outputs[0]
        if y.size == 0:
            return
        tiles, chunk = plan.split(x.size, 1, granule=64)
        plan.add(node, "u8_not", [x.name], [y.name], [x.size, chunk], tiles)
