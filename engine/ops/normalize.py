"""Lowerings of softmax and normalization ops (float32): Softmax, LogSoftmax, LRN,
BatchNormalization, InstanceNormalization and LayerNormalization.

Softmax before opset 13 flattens the input to 2-D at ``axis`` and normalizes
whole rows; from 13 on it normalizes along one axis (a ``SOFTMAX_ROWS`` row
when it is the last one, a ``SOFTMAX_COLS`` row over column blocks
otherwise). Inference BatchNormalization with constant statistics becomes a
per-channel ``y = x*s + t`` (``SCALE_SHIFT``) computed in float64 at compile
time; run-time statistics are folded per channel by ``BATCHNORM_RT``;
``training_mode`` runs ``BATCHNORM_TRAIN``. LayerNormalization takes constant
or run-time Scale/B and may write its Mean and InvStdDev outputs. Epsilon,
momentum and LRN's alpha/beta/bias travel as float parameters of the row.
"""
import math

import numpy as np

from tilerun.kernels import normalize as K
from tilerun.kernels import softmax as S

from ..errors import node_error
from .base import F32, Lowering, expect_dtype, expect_inputs
from .base import _axis as _checked_axis
from .registry import register, register_internal

COL_BLOCK = 256


def _axis(node, rank, default):
    """The node's ``axis`` attribute (``default`` if absent), checked against ``rank`` and made non-negative."""
    return _checked_axis(node, int(node.attrs.get("axis", default)), rank)


class _Softmax(Lowering):
    """Softmax / LogSoftmax; ``coerce_2d`` selects the pre-13 semantics."""
    log = False
    coerce_2d = False

    def infer(self, node, inputs):
        expect_inputs(node, inputs, 1)
        expect_dtype(node, inputs[0], [F32])
        if not inputs[0].shape:
            raise node_error(node, "input is a scalar, expected rank ≥ 1")
        _axis(node, len(inputs[0].shape), 1 if self.coerce_2d else -1)
        return [(inputs[0].shape, F32)]

    def lower(self, node, inputs, outputs, plan):
        x, y = inputs[0], outputs[0]
        shape = x.shape
        if x.size == 0:
            return
        axis = _axis(node, len(shape), 1 if self.coerce_2d else -1)
        outer = math.prod(shape[:axis])
        n = math.prod(shape[axis:]) if self.coerce_2d else shape[axis]
        inner = x.size // (outer * n)
        op = S.LOGSOFTMAX if self.log else S.SOFTMAX
        if inner == 1:
            tiles, per = plan.split(outer, 4 * n)
            plan.add(node, S.SOFTMAX_ROWS_KERNELS[op], x=x, y=y, rows=outer, n=n, rows_per_tile=per, tiles=tiles,
                     flops=4 * x.size)
            return
        block = min(inner, COL_BLOCK)
        items = outer * -(-inner // block)
        tiles, per = plan.split(items, 4 * n * block)
        plan.add(node, S.SOFTMAX_COLS_KERNELS[op], x=x, y=y, outer=outer, n=n, inner=inner, block=block,
                 items_per_tile=per, tiles=tiles, flops=4 * x.size)


def _softmax_family(op_type, log):
    old = type(op_type + "1", (_Softmax,), {"log": log, "coerce_2d": True,
                                            "__doc__": f"{op_type} before opset 13: 2-D coercion at axis."})
    new = type(op_type + "13", (_Softmax,), {"log": log, "coerce_2d": False,
                                             "__doc__": f"{op_type} from opset 13: one axis."})
    register(op_type, 1)(old)
    register(op_type, 11)(old)
    register(op_type, 13)(new)


_softmax_family("Softmax", False)
_softmax_family("LogSoftmax", True)


@register("LRN", 1)
class LRN(Lowering):
    """Local response normalization across channels: ``x / (bias + alpha/size * Σx²)^beta``."""

    def infer(self, node, inputs):
        expect_inputs(node, inputs, 1)
        expect_dtype(node, inputs[0], [F32])
        if len(inputs[0].shape) < 3:
            raise node_error(node, f"input shape {list(inputs[0].shape)} must have rank ≥ 3 (N, C, spatial...)")
        size = node.attrs.get("size")
        if size is None or int(size) < 1:
            raise node_error(node, f"attribute size must be a positive integer, given {size}")
        return [(inputs[0].shape, F32)]

    def lower(self, node, inputs, outputs, plan):
        x, y = inputs[0], outputs[0]
        if x.size == 0:
            return
        size = int(node.attrs["size"])
        N, C = x.shape[:2]
        hw = x.size // (N * C)
        tiles, per = plan.split(N * C, hw * (size + 4))
        plan.add(node, K.f32_lrn, x=x, y=y, batch=N, channels=C, hw=hw, size=size, planes_per_tile=per,
                 alpha_over_size=node.attrs.get("alpha", 1e-4) / size, beta=node.attrs.get("beta", 0.75),
                 bias=node.attrs.get("bias", 1.0), tiles=tiles, flops=x.size * (size + 4))


register("LRN", 13)(LRN)


def _planes(x):
    N, C = x.shape[:2]
    return N * C, C, x.size // max(N * C, 1)


@register("BatchNormalization", 7)
class BatchNormalization(Lowering):
    """Inference BatchNormalization: a constant per-channel scale and shift when the statistics
    are constants, else one kernel that derives them per channel at run time."""

    def infer(self, node, inputs):
        expect_inputs(node, inputs, 5)
        expect_dtype(node, inputs[0], [F32])
        shape = inputs[0].shape
        if int(node.attrs.get("training_mode", 0)):
            return self._infer_training(node, inputs)
        extra = [o for o in node.outputs[1:] if o]
        if extra:
            raise node_error(node, f"outputs {extra} exist only in training mode; expected only output Y")
        if len(shape) < 2:
            raise node_error(node, f"input shape {list(shape)} must have rank ≥ 2 (N, C, ...)")
        want = self._param_shape(node, shape)
        runtime = any(not v.is_const for v in inputs[1:5])
        if runtime and len(want) != 1:
            raise node_error(node, "spatial=0 needs constant scale, B, mean and var; given run-time tensors")
        for k, what in enumerate(("scale", "B", "mean", "var"), 1):
            v = inputs[k]
            expect_dtype(node, v, [F32], what)
            if math.prod(v.shape) != math.prod(want) or (runtime and len(v.shape) != 1):
                raise node_error(node, f"{what} has shape {list(v.shape)}, expected {list(want)}")
        return [(shape, F32)]

    def _infer_training(self, node, inputs):
        # Batch statistics over every axis but 1, plus the updated running mean and var.
        shape = inputs[0].shape
        if len(shape) < 2:
            raise node_error(node, f"input shape {list(shape)} must have rank >= 2 (N, C, ...)")
        for k, what in enumerate(("scale", "B", "input_mean", "input_var"), 1):
            expect_dtype(node, inputs[k], [F32], what)
            if tuple(inputs[k].shape) != (shape[1],):
                raise node_error(node, f"{what} has shape {list(inputs[k].shape)}, expected [{shape[1]}]")
        return [(shape, F32), ((shape[1],), F32), ((shape[1],), F32)][:len(node.outputs)]

    def _lower_training(self, node, inputs, outputs, plan):
        x, y = inputs[0], outputs[0]
        N, C = x.shape[0], x.shape[1]
        hw = math.prod(x.shape[2:])
        running_mean, running_var = [o if o is not None else plan.temp((C,), np.float32, "bn_stat")
                                     for o in (list(outputs[1:3]) + [None, None])[:2]]
        tiles, per = plan.split(C, 3 * N * hw)
        plan.add(node, K.f32_batchnorm_train, x=x, scale=inputs[1], bias=inputs[2], mean=inputs[3], var=inputs[4],
                 y=y, running_mean=running_mean, running_var=running_var, batch=N, channels=C, hw=hw,
                 channels_per_tile=per, epsilon=node.attrs.get("epsilon", 1e-5),
                 momentum=node.attrs.get("momentum", 0.9), tiles=tiles, flops=5 * x.size)

    def _param_shape(self, node, shape):
        # spatial=0 (opsets 7-8) keeps one statistic per element of a channel plane.
        return tuple(shape[1:]) if int(node.attrs.get("spatial", 1)) == 0 else (shape[1],)

    def lower(self, node, inputs, outputs, plan):
        x, y = inputs[0], outputs[0]
        if x.size == 0:
            return
        if int(node.attrs.get("training_mode", 0)):
            self._lower_training(node, inputs, outputs, plan)
            return
        planes, C, hw = _planes(x)
        if any(not v.is_const for v in inputs[1:5]):
            tiles, per = plan.split(planes, hw * 2)
            plan.add(node, K.f32_batchnorm_rt, x=x, scale=inputs[1], bias=inputs[2], mean=inputs[3], var=inputs[4],
                     y=y, planes=planes, channels=C, hw=hw, planes_per_tile=per,
                     epsilon=node.attrs.get("epsilon", 1e-5), tiles=tiles, flops=2 * x.size)
            return
        scale, bias, mean, var = (v.const.astype(np.float64).reshape(-1) for v in inputs[1:5])
        s = scale / np.sqrt(var + float(node.attrs.get("epsilon", 1e-5)))
        t = bias - mean * s
        elem = int(s.size != C)
        sw, tw = plan.weight(s.astype(np.float32), "bn_s"), plan.weight(t.astype(np.float32), "bn_t")
        tiles, per = plan.split(planes, hw * 2)
        plan.add(node, K.f32_scale_shift, x=x, s=sw, t=tw, y=y, planes=planes, channels=C, hw=hw, per_element=elem,
                 planes_per_tile=per, tiles=tiles, flops=2 * x.size)


for _v in (9, 14, 15):
    # 9 drops spatial, 14 adds training_mode, 15 widens dtypes.
    register("BatchNormalization", _v)(BatchNormalization)


@register("InstanceNormalization", 6)
class InstanceNormalization(Lowering):
    """Normalize each (n, c) plane, then per-channel scale and bias (constant or run-time)."""

    def infer(self, node, inputs):
        expect_inputs(node, inputs, 3)
        for v in inputs:
            expect_dtype(node, v, [F32])
        shape = inputs[0].shape
        if len(shape) < 3:
            raise node_error(node, f"input shape {list(shape)} must have rank ≥ 3 (N, C, spatial...)")
        for v, what in ((inputs[1], "scale"), (inputs[2], "B")):
            if tuple(v.shape) != (shape[1],):
                raise node_error(node, f"{what} has shape {list(v.shape)}, expected [{shape[1]}]")
        return [(shape, F32)]

    def lower(self, node, inputs, outputs, plan):
        x, y = inputs[0], outputs[0]
        if x.size == 0:
            return
        planes, C, hw = _planes(x)
        tiles, per = plan.split(planes, hw * 4)
        plan.add(node, K.f32_instance_norm, x=x, scale=inputs[1], bias=inputs[2], y=y, planes=planes, channels=C,
                 hw=hw, planes_per_tile=per, epsilon=node.attrs.get("epsilon", 1e-5), tiles=tiles,
                 flops=5 * x.size)


register("InstanceNormalization", 22)(InstanceNormalization)


@register("LayerNormalization", 17)
class LayerNormalization(Lowering):
    """Normalize over axes ``[axis, rank)``; optional Mean and InvStdDev outputs."""

    def infer(self, node, inputs):
        expect_inputs(node, inputs, 2, 3)
        for v in inputs:
            if v is not None:
                expect_dtype(node, v, [F32])
        shape = inputs[0].shape
        axis = _axis(node, len(shape), -1)
        norm = tuple(shape[axis:])
        for v, what in ((inputs[1], "Scale"), (inputs[2] if len(inputs) > 2 else None, "B")):
            if v is None:
                continue
            ok = len(v.shape) <= len(norm) and all(a in (1, b) for a, b in zip(v.shape[::-1], norm[::-1]))
            if not ok or (not v.is_const and math.prod(v.shape) != math.prod(norm)):
                raise node_error(node, f"{what} has shape {list(v.shape)}, expected {list(norm)} "
                                       f"(or broadcastable to it when constant)")
        stat = tuple(shape[:axis]) + (1,) * len(norm)
        return [(shape, F32), (stat, F32), (stat, F32)][:len(node.outputs)]

    def lower(self, node, inputs, outputs, plan):
        x = inputs[0]
        if x.size == 0:
            return
        axis = _axis(node, len(x.shape), -1)
        norm = tuple(x.shape[axis:])
        scale = self._param(inputs[1], norm, plan, 1.0)
        bias = self._param(inputs[2] if len(inputs) > 2 else None, norm, plan, 0.0)
        self._emit(node, plan, x, None, scale, bias, outputs[0], list(outputs[1:3]), None, math.prod(norm))

    @staticmethod
    def _emit(node, plan, x, skip, scale, bias, y, stats, total, n):
        """One ``f32_layer_norm`` row normalising runs of ``n`` elements; ``skip`` adds a residual first."""
        rows = x.size // n
        mean, inv_std_dev = [o if o is not None else plan.temp((rows,), np.float32, "ln_stat")
                             for o in (stats + [None, None])[:2]]
        tiles, per = plan.split(rows, 6 * n)
        plan.add(node, K.f32_layer_norm, x=x, skip=skip, scale=scale, bias=bias, y=y, mean=mean,
                 inv_std_dev=inv_std_dev, sum=total, rows=rows, n=n, rows_per_tile=per,
                 epsilon=node.attrs.get("epsilon", 1e-5), tiles=tiles, flops=(6 if skip is None else 7) * x.size)

    def _param(self, v, norm, plan, fill):
        """Scale or B as ``n`` floats: ``v`` itself, a broadcast copy of a smaller constant, or ``fill``."""
        if v is None:
            return plan.weight(np.full(norm, fill, np.float32), "ln")
        if v.is_const and v.const.size != math.prod(norm):
            return plan.weight(np.broadcast_to(v.const.astype(np.float32), norm).copy(), "ln")
        return v


# The LayerNorm pass (passes/fuse_layernorm.py) creates this op in models of any opset.
register_internal("LayerNormalization")(LayerNormalization)


@register_internal("AddLayerNormalization")
class AddLayerNormalization(LayerNormalization):
    """``LayerNormalization(a + b)`` over the last axis, ``a`` and ``b`` of one shape; output 1, when named, is ``a + b``.

    Created by the residual-LayerNorm pass (``passes/fuse_layernorm.py``):
    inputs ``a, b, scale, bias``, attributes ``epsilon``. Not here: Mean and
    InvStdDev outputs, broadcasting between ``a`` and ``b``.
    """

    def infer(self, node, inputs):
        a, b = inputs[:2]
        if tuple(a.shape) != tuple(b.shape):
            raise node_error(node, f"inputs have shapes {list(a.shape)} and {list(b.shape)}, expected equal shapes")
        y = super().infer(node, [a] + list(inputs[2:]))[0]
        return [y] * len(node.outputs)

    def lower(self, node, inputs, outputs, plan):
        a, b = inputs[:2]
        if a.size == 0:
            return
        norm = (a.shape[-1],)
        scale, bias = self._param(inputs[2], norm, plan, 1.0), self._param(inputs[3], norm, plan, 0.0)
        total = outputs[1] if len(outputs) > 1 else None
        self._emit(node, plan, a, b, scale, bias, outputs[0], [], total, norm[0])
