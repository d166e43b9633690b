"""Imports every kernel family so that each registers its tile kernels."""
from . import elementwise, conv, gemm, pool, normalize, movement, diagnostic, affine  # noqa: F401
