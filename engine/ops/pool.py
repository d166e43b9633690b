"""Lowerings of pooling ops on float32 N,C,spatial tensors (1 to 3 spatial axes).

MaxPool and AveragePool resolve ``auto_pad``/``pads``/``ceil_mode`` into
explicit begin/end pads and output sizes at compile time (as ONNX Runtime
does: a ceil-mode window must start inside the input or its begin padding),
then emit one ``POOL2D`` row for 2-D windows without dilation (planes of at
most ``POOL_CV_MAX_PIXELS``: ``f32_pool2d_cv``, any stride; larger ones with a
column stride of 1 or 2: ``f32_pool2d``), else one ``POOL`` row (3-D, unit
leading axes) of the pool kind's kernel. AveragePool's divisor counts only taps inside the input
(or, with ``count_include_pad``, inside the padded input, never past it).
MaxPool's optional Indices output is not supported. GlobalAveragePool and
GlobalMaxPool reduce each ``(n, c)`` plane (a ``GLOBAL_POOL`` row).
``pool_geometry`` is shared with the conv lowering's fused max pool.
"""
import math

from tilerun.kernels import pool as K
from tilerun.kernels import pool2d
from tilerun.kernels.simd import VW

from ..errors import node_error
from .base import F32, Lowering, expect_dtype, expect_inputs
from .registry import register
from .window import window_geometry

MAX_SPATIAL = 3
# Largest input plane pooled with channels along the vectors (f32_pool2d_cv): rows of a small plane fill
# vectors badly. On 55x55 and 56x56 planes the rows were as fast or faster (benchmarks/README.md).
POOL_CV_MAX_PIXELS = 28 * 28


def pool_geometry(node, shape):
    """Resolve a pool's window: ``(out_spatial, kernel, strides, pad_begin, pad_end, dilations)``."""
    spatial = list(shape[2:])
    n = len(spatial)
    kernel = node.attrs.get("kernel_shape")
    if not kernel or len(kernel) != n:
        raise node_error(node, f"kernel_shape {kernel} must have {n} values for input shape {list(shape)}")
    kernel = [int(k) for k in kernel]
    out, strides, dil, begin, end = window_geometry(node, spatial, kernel, ceil=int(node.attrs.get("ceil_mode", 0)))
    ext = [(k - 1) * d + 1 for k, d in zip(kernel, dil)]
    if any(p >= e for p, e in zip(begin, ext)) or any(p >= e for p, e in zip(end, ext)):
        raise node_error(node, f"pads {begin + end} must be smaller than the window extent {ext}")
    return out, kernel, strides, begin, end, dil


def _check_input(node, inputs, min_spatial=1):
    expect_dtype(node, inputs[0], [F32])
    shape = inputs[0].shape
    if not 2 + min_spatial <= len(shape) <= 2 + MAX_SPATIAL:
        raise node_error(node, f"input {inputs[0].name!r} has shape {list(shape)}, expected rank "
                               f"{2 + min_spatial} to {2 + MAX_SPATIAL} (N, C, spatial...)")
    return shape


class _Pool(Lowering):
    """Windowed pool: one row of the 3-D pool kernel."""
    kind = "max"

    def infer(self, node, inputs):
        expect_inputs(node, inputs, 1)
        shape = _check_input(node, inputs)
        if self.kind == "max" and len(node.outputs) > 1 and node.outputs[1]:
            raise node_error(node, "the Indices output of MaxPool is not supported by tilerun; "
                                   "expected only output Y to be used")
        out = pool_geometry(node, shape)[0]
        return [(tuple(shape[:2]) + tuple(out), F32)]

    def lower(self, node, inputs, outputs, plan):
        x, y = inputs[0], outputs[0]
        if y.size == 0 or x.size == 0:
            return
        out, kernel, strides, begin, end, dil = pool_geometry(node, x.shape)
        pad3 = 3 - len(out)

        def three(v, fill):
            return [fill] * pad3 + list(v)

        planes = x.shape[0] * x.shape[1]
        od, oh, ow = three(out, 1)
        taps = math.prod(kernel)
        if self.kind == "max":
            op = K.MAX
        else:
            op = K.AVG_INCL if int(node.attrs.get("count_include_pad", 0)) else K.AVG_EXCL
        small = len(out) == 2 and x.shape[2] * x.shape[3] <= POOL_CV_MAX_PIXELS
        if len(out) == 2 and dil == [1, 1] and (small or strides[1] in (1, 2)):
            # The common CNN window, vectors in registers. Small planes: VW channels at a time along the
            # vectors (f32_pool2d_cv). Others along the rows: max pools read the planes in place, averages
            # through a zero-bordered copy in scratch.
            H, W = x.shape[2:]
            kernel_fn = pool2d.f32_pool2d_cv if small else pool2d.f32_pool2d
            tiles, per = plan.split(planes, oh * ow * taps, granule=VW if small else 1)
            plan.add(node, kernel_fn, x=x, y=y, planes=planes, h=H, w=W, oh=oh, ow=ow, kh=kernel[0],
                     kw=kernel[1], sh=strides[0], sw=strides[1], bh=begin[0], bw=begin[1], eh=end[0], ew=end[1],
                     op=op, planes_per_tile=per, tiles=tiles, flops=y.size * taps)
            return
        # POOL's geometry slots: d/h/w of the input, then od/oh/ow, kd/kh/kw, ... dd/dh/dw.
        geometry = {}
        for prefix, values, fill in (("", x.shape[2:], 1), ("o", out, 1), ("k", kernel, 1), ("s", strides, 1),
                                     ("b", begin, 0), ("e", end, 0), ("d", dil, 1)):
            geometry.update(zip((prefix + axis for axis in "dhw"), three(values, fill)))
        tiles, per = plan.split(planes * od * oh, ow * taps)
        plan.add(node, K.POOL_KERNELS[op], x=x, y=y, planes=planes, **geometry, rows_per_tile=per, tiles=tiles,
                 flops=y.size * taps)


@register("MaxPool", 1)
class MaxPool(_Pool):
    """MaxPool (opset 1): kernel_shape, strides, pads, auto_pad."""
    kind = "max"


for _v in (8, 10, 11, 12, 22):
    # 8 adds storage_order and Indices, 10 ceil_mode and dilations, 11 changes auto_pad
    # rules in the spec text, 12/22 only add dtypes: one lowering reads them all.
    register("MaxPool", _v)(MaxPool)


@register("AveragePool", 1)
class AveragePool(_Pool):
    """AveragePool (opset 1): 7 adds count_include_pad, 10 ceil_mode, 19 dilations."""
    kind = "avg"


for _v in (7, 10, 11, 19, 22):
    register("AveragePool", _v)(AveragePool)


class _GlobalPool(Lowering):
    """Reduce each (n, c) plane to one value."""
    op = None  # a key of ``GLOBAL_POOL_KERNELS``

    def infer(self, node, inputs):
        expect_inputs(node, inputs, 1)
        shape = inputs[0].shape
        expect_dtype(node, inputs[0], [F32])
        if len(shape) < 2:
            raise node_error(node, f"input {inputs[0].name!r} has shape {list(shape)}, expected rank ≥ 2")
        return [(tuple(shape[:2]) + (1,) * (len(shape) - 2), F32)]

    def lower(self, node, inputs, outputs, plan):
        x, y = inputs[0], outputs[0]
        if x.size == 0:
            return
        planes = x.shape[0] * x.shape[1]
        size = x.size // planes
        tiles, per = plan.split(planes, size)
        plan.add(node, K.GLOBAL_POOL_KERNELS[self.op], x=x, y=y, planes=planes, size=size, planes_per_tile=per,
                 tiles=tiles, flops=x.size)


@register("GlobalAveragePool", 1)
class GlobalAveragePool(_GlobalPool):
    """Mean over every spatial axis."""
    op = K.AVG_EXCL


@register("GlobalMaxPool", 1)
class GlobalMaxPool(_GlobalPool):
    """Max over every spatial axis."""
    op = K.MAX


for _v in (22,):
    register("GlobalAveragePool", _v)(GlobalAveragePool)
    register("GlobalMaxPool", _v)(GlobalMaxPool)
