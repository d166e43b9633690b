"""Lowerings of dtype conversions and masks: Cast, CastLike, the comparisons, Where and Not.

All are elementwise over any dtype tilerun carries; comparisons and Where
broadcast as numpy does, over at most ``BROADCAST_AXES`` axes after adjacent
axes merge (``padded_broadcast``, shared with the arithmetic ops). A
same-dtype Cast is a zero-copy alias. Kernels and cast codes come from
``tilerun.kernels.logical``, comparison kernels and codes from
``tilerun.kernels.compare``.
"""
import numpy as np

from tilerun.kernels import compare as C
from tilerun.kernels import logical as K

from ..errors import node_error
from .base import Lowering, expect_inputs
from .elementwise import broadcast_geometry, broadcast_shape, padded_broadcast
from .registry import register


@register("Cast", 6)
class Cast(Lowering):
    """Convert among float32/int64/int32/bool/uint8/int8 as numpy's ``astype`` (float→int truncates)."""

    def infer(self, node, inputs):
        expect_inputs(node, inputs, 1)
        from ..importer import numpy_dtype
        to = numpy_dtype(int(node.attrs["to"]), f"node {node.name!r} (Cast) attribute to")
        if inputs[0].dtype not in K.CAST_KERNELS:
            raise node_error(node, f"input dtype {inputs[0].dtype} is not castable, expected one of "
                                   f"{sorted(str(d) for d in K.CAST_KERNELS)}")
        if to not in K.CAST_CODES:
            raise node_error(node, f"target dtype {to} is not supported, expected one of "
                                   f"{sorted(str(d) for d in K.CAST_CODES)}")
        return [(inputs[0].shape, to)]

    def lower(self, node, inputs, outputs, plan):
        x, y = inputs[0], outputs[0]
        if x.dtype == y.dtype:
            plan.alias(y.name, x.name)
            return
        if y.size == 0:
            return
        tiles, chunk = plan.split(x.size, 1, granule=64)
        plan.add(node, K.CAST_KERNELS[x.dtype], x=x, y=y, n=x.size, chunk=chunk, to=K.CAST_CODES[y.dtype], tiles=tiles)


@register("CastLike", 15)
class CastLike(Cast):
    """Cast input 0 to the dtype of input 1 (whose data is not read)."""

    def infer(self, node, inputs):
        expect_inputs(node, inputs, 2)
        if inputs[0].dtype not in K.CAST_KERNELS or inputs[1].dtype not in K.CAST_CODES:
            raise node_error(node, f"cannot cast {inputs[0].dtype} to {inputs[1].dtype}, expected dtypes among "
                                   f"{sorted(str(d) for d in K.CAST_CODES)}")
        return [(inputs[0].shape, inputs[1].dtype)]


def _broadcast_weights(node, plan, out_shape, in_shapes):
    """``(dims, [strides per input], rows_per_tile, tiles)``: int64 weights of a padded broadcast and its tiles."""
    dims, strides = padded_broadcast(node, tuple(out_shape), [tuple(s) for s in in_shapes])
    _, tiles, per = broadcast_geometry(node, plan, dims)
    dims_w, *strides_w = (plan.weight(np.array(v, np.int64), "bcast") for v in [dims] + strides)
    return dims_w, strides_w, per, tiles


class Compare(Lowering):
    """``a <op> b`` with numpy broadcasting, giving bool (1-byte dtypes compare as bytes for Equal)."""
    code = None  # the comparison code (kernels.compare EQ..GE)

    def infer(self, node, inputs):
        expect_inputs(node, inputs, 2)
        a, b = inputs
        if a.dtype != b.dtype or (a.dtype, self.code) not in C.COMPARE_KERNELS:
            raise node_error(node, f"inputs have dtypes {a.dtype} and {b.dtype}, expected one same dtype among "
                                   f"float32 and the integer dtypes (and bool for Equal)")
        return [(broadcast_shape(node, [a.shape, b.shape]), np.dtype(np.bool_))]

    def lower(self, node, inputs, outputs, plan):
        (a, b), y = inputs, outputs[0]
        if y.size == 0:
            return
        dims, (sa, sb), per, tiles = _broadcast_weights(node, plan, y.shape, [a.shape, b.shape])
        plan.add(node, C.COMPARE_KERNELS[(a.dtype, self.code)], a=a, b=b, dims=dims, a_strides=sa, b_strides=sb, y=y,
                 rows_per_tile=per, op=self.code, tiles=tiles)


for _op, _code, _since in [("Equal", C.EQ, 7), ("Less", C.LT, 7), ("Greater", C.GT, 7),
                           ("LessOrEqual", C.LE, 12), ("GreaterOrEqual", C.GE, 12)]:
    register(_op, _since)(type(_op, (Compare,), {"code": _code}))


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
        c, x, y = inputs
        dims, (sc, sx, sy), per, tiles = _broadcast_weights(node, plan, out.shape, [v.shape for v in inputs])
        plan.add(node, K.WHERE_KERNELS[out.dtype.itemsize], cond=c, x=x, y=y, dims=dims, cond_strides=sc, x_strides=sx,
                 y_strides=sy, out=out, rows_per_tile=per, tiles=tiles)


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
        plan.add(node, K.u8_not, x=x, y=y, n=x.size, chunk=chunk, tiles=tiles)
