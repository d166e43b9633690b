"""Lowerings of Gemm and MatMul (float32) onto the register-blocked GEMM kernel.

Constant ``B`` is transposed/packed once at compile time into ``[K, N]`` rows;
a run-time ``B`` is read in place (``Gemm`` with ``transB`` on a run-time ``B``
first transposes it into a temporary). ``A`` is read through strides, so
``transA`` costs nothing. MatMul broadcasts batch axes numpy-style through a
per-batch table of ``A``/``B`` offsets. A fused activation
(``node.fused.activation``) and a MatMul's fused column bias
(``node.fused.bias``, input 2) run in the epilogue.
"""
import numpy as np

from tilerun.kernels.elementwise import (CLIP, GELU, GELU_TANH, HARD_SIGMOID, HARD_SWISH, IDENTITY, LEAKY_RELU,
                                         RELU, SIGMOID, SILU, TANH)
from tilerun.kernels.gemm import MR, NR, epilogue, f32_gemm, f32_transpose2d, pack_b

from .. import tiling
from ..errors import node_error
from . import bf16
from .base import F32, Lowering, expect_dtype, expect_inputs, expect_rank
from .registry import register

ACT_CODES = {"Relu": RELU, "LeakyRelu": LEAKY_RELU, "Clip": CLIP, "Sigmoid": SIGMOID, "Tanh": TANH,
             "HardSigmoid": HARD_SIGMOID, "HardSwish": HARD_SWISH,
             # fused forms of patterns (no ONNX op of that name before opset 20's Gelu)
             "Silu": SILU, "Gelu": GELU, "GeluTanh": GELU_TANH}


WEIGHT_COLUMN_TILES = True  # see emit_gemm


def fused_activation(node):
    """``(op code, alpha, beta)`` of the node's fused activation (IDENTITY when none)."""
    act = node.fused.activation
    if not act:
        return IDENTITY, 0.0, 0.0
    if act[0] not in ACT_CODES:
        raise node_error(node, f"fused activation must be one of {sorted(ACT_CODES)}, given {act[0]!r}")
    return ACT_CODES[act[0]], float(act[1]), float(act[2])




def emit_gemm(node, plan, a, sa, b, ldb, y, m, n, k, batch_offs, c=None, sc=(0, 0), alpha=1.0, beta=0.0,
              b_packed=False):
    """Emit one ``f32_gemm`` row: ``y[b] = act(alpha * A[b] @ B[b] + beta * C)`` over ``len(batch_offs)`` batches.

    ``b_packed``: ``B`` is in ``pack_b``'s panels (offsets in ``batch_offs`` count packed floats).
    """
    act, aa, ab = fused_activation(node)
    batch_offs = np.asarray(batch_offs, np.int64).reshape(-1, 2)
    batch = len(batch_offs)
    if WEIGHT_COLUMN_TILES and b_packed and batch == 1 and n > m:
        # Weights that outweigh the activations: tiles of columns stream each part of B once (tiles
        # of rows would each stream all of B) and share the smaller A from cache.
        nmb, mb = 1, m
        nnb, nb = tiling.split(n, m * k, plan.num_workers, granule=NR)
    else:
        nmb, mb, nnb, nb = tiling.gemm_blocks(batch, m, n, k, plan.num_workers, MR, NR)
    offs = plan.weight(batch_offs.reshape(-1), "gemm_offs")
    plan.add(node, f32_gemm, a=a, b=b, c=c, offs=offs, y=y, m=m, n=n, k=k, sai=sa[0], sak=sa[1], ldb=ldb,
             sci=sc[0], scj=sc[1], mb=mb, nb=nb, n_mblk=nmb, n_nblk=nnb, bpk=k * NR if b_packed else 0,
             ep=epilogue(alpha, beta, act, aa, ab, has_c=c is not None), tiles=batch * nmb * nnb,
             flops=2 * batch * m * n * k)


@register("Gemm", 7)
@register("Gemm", 9)
@register("Gemm", 11)
@register("Gemm", 13)
class Gemm(Lowering):
    """``Y = alpha * A' @ B' + beta * C`` with optional transposes and broadcast C."""

    def infer(self, node, inputs):
        expect_inputs(node, inputs, 2, 3)
        for v in inputs[:3]:
            if v is not None:
                expect_dtype(node, v, [F32])
        expect_rank(node, inputs[0], 2, "A")
        expect_rank(node, inputs[1], 2, "B")
        m, k = self._mk(node, inputs)
        k2, n = inputs[1].shape[::-1] if node.attrs.get("transB", 0) else inputs[1].shape
        if k != k2:
            raise node_error(node, f"inner dimensions must agree: A' is [{m}, {k}], B' is [{k2}, {n}]")
        c = inputs[2] if len(inputs) > 2 else None
        if c is not None:
            try:
                np.broadcast_shapes(tuple(c.shape), (m, n))
                if len(c.shape) > 2 or np.broadcast_shapes(tuple(c.shape), (m, n)) != (m, n):
                    raise ValueError
            except ValueError:
                raise node_error(node, f"C of shape {list(c.shape)} does not broadcast to [{m}, {n}]") from None
        return [((m, n), F32)]

    @staticmethod
    def _mk(node, inputs):
        m, k = inputs[0].shape
        return (k, m) if node.attrs.get("transA", 0) else (m, k)

    def lower(self, node, inputs, outputs, plan):
        a, b, y = inputs[0], inputs[1], outputs[0]
        c = inputs[2] if len(inputs) > 2 else None
        m, n = y.shape
        k = a.shape[0] if node.attrs.get("transA", 0) else a.shape[1]
        sa = (1, m) if node.attrs.get("transA", 0) else (k, 1)
        tb = node.attrs.get("transB", 0)
        alpha, beta = float(node.attrs["alpha"]), float(node.attrs["beta"])
        if b.is_const and bf16.gemm_applies(plan, sa):
            cname, sc, beta = _addend(plan, c, beta)
            bf16.emit_gemm(node, plan, a.name, sa[0], lambda: b.const.T if tb else b.const,
                           (node.name, "gemm_b", b.shape), y.name, m, n, k, cname, sc, alpha, beta)
            return
        if b.is_const:
            bname = plan.weight(lambda: pack_b(b.const.T if tb else b.const), "gemm_b",
                                key=(node.name, "gemm_b", b.shape))
        elif tb:
            bname = plan.temp((k, n), np.float32, "gemm_bt")
            tiles, per = plan.split(k, n, granule=16)
            plan.add(node, f32_transpose2d, x=b, y=bname, rows=n, cols=k, cols_per_tile=per, tiles=tiles,
                     flops=n * k)
        else:
            bname = b.name
        cname, sc, beta = _addend(plan, c, beta)
        emit_gemm(node, plan, a.name, sa, bname, n, y.name, m, n, k, [0, 0], cname, sc, alpha, beta,
                  b_packed=b.is_const)


def _addend(plan, c, beta):
    """``(name, (row, column) strides, beta)`` of Gemm's ``C``; a constant is pre-scaled by ``beta``.

    The name is None when ``C`` is absent or ``beta`` is 0.
    """
    if c is None or beta == 0.0:
        return None, (0, 0), beta
    cs = (1,) * (2 - len(c.shape)) + tuple(c.shape)
    sc = (cs[1] if cs[0] != 1 else 0, 1 if cs[1] != 1 else 0)
    if c.is_const:
        return plan.weight(np.asarray(c.const, np.float32).reshape(cs) * np.float32(beta), "gemm_c"), sc, 1.0
    return c.name, sc, beta


@register("MatMul", 1)
@register("MatMul", 13)
class MatMul(Lowering):
    """numpy ``matmul``: 1-D operands promoted and squeezed, batch axes broadcast."""

    def infer(self, node, inputs):
        expect_inputs(node, inputs, 2)
        for v in inputs:
            expect_dtype(node, v, [F32])
            if len(v.shape) == 0:
                raise node_error(node, f"input {v.name!r} is a scalar; MatMul needs rank >= 1")
        sa, sb = self._shapes(inputs)
        if sa[-1] != sb[-2]:
            raise node_error(node, f"inner dimensions must agree: A is {list(inputs[0].shape)}, "
                                   f"B is {list(inputs[1].shape)}")
        try:
            batch = np.broadcast_shapes(sa[:-2], sb[:-2])
        except ValueError:
            raise node_error(node, f"batch axes of {list(inputs[0].shape)} and {list(inputs[1].shape)} "
                                   f"do not broadcast") from None
        out = tuple(batch) + ((sa[-2],) if len(inputs[0].shape) > 1 else ()) \
            + ((sb[-1],) if len(inputs[1].shape) > 1 else ())
        return [(out, F32)]

    @staticmethod
    def _shapes(inputs):
        sa, sb = tuple(inputs[0].shape), tuple(inputs[1].shape)
        return ((1,) + sa if len(sa) == 1 else sa), (sb + (1,) if len(sb) == 1 else sb)

    def lower(self, node, inputs, outputs, plan):
        a, b, y = inputs[0], inputs[1], outputs[0]
        sa, sb = self._shapes(inputs)
        m, k, n = sa[-2], sa[-1], sb[-1]
        batch = tuple(np.broadcast_shapes(sa[:-2], sb[:-2]))
        nb_a, nb_b = int(np.prod(sa[:-2], dtype=np.int64)), int(np.prod(sb[:-2], dtype=np.int64))
        ia = np.broadcast_to(np.arange(nb_a).reshape(sa[:-2]), batch).reshape(-1) * (m * k)
        ib = np.broadcast_to(np.arange(nb_b).reshape(sb[:-2]), batch).reshape(-1) * (k * n)
        offs = np.stack([ia, ib], axis=1)
        if nb_b == 1 and nb_a > 1:  # one B for every batch: A's rows of all batches are one taller A
            m, offs = nb_a * m, offs[:1]
        cname = None
        if node.fused.bias:  # a constant per column (passes/fuse_bias.py): the epilogue adds it
            cname = plan.weight(np.asarray(inputs[2].const, np.float32).reshape(-1), "matmul_bias")
        if b.is_const and len(b.shape) <= 2 and bf16.gemm_applies(plan, (k, 1)):
            bf16.emit_gemm(node, plan, a.name, k, lambda: np.asarray(b.const, np.float32).reshape(sb),
                           (node.name, "matmul_b", sb), y.name, m, n, k, cname, (0, 1), beta=1.0)
            return
        if b.is_const:
            # Constant B: packed once into the core's panels; batch offsets count packed floats.
            bname = plan.weight(lambda: pack_b(np.asarray(b.const, np.float32).reshape(sb)), "matmul_b",
                                key=(node.name, "matmul_b", sb))
            offs[:, 1] = offs[:, 1] // max(k * n, 1) * (k * -(-n // NR) * NR)
        else:
            bname = b.name
        emit_gemm(node, plan, a.name, (k, 1), bname, n, y.name, m, n, k, offs, cname, (0, 1), beta=1.0,
                  b_packed=b.is_const)
