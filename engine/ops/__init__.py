"""Lowerings of ONNX ops, one module per family, all listed in one registry.

Importing this package imports every family module, which registers its
lowerings with :mod:`tilerun.ops.registry`.
"""
from . import (elementwise, conv, gemm, pool, normalize, views, movement, pad, logical, graphops, affine,  # noqa: F401
               reduce, masks, einsum, modulo, contrib, indexing, attention, excite)
from .registry import resolve, supported_ops  # noqa: F401
