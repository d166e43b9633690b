"""tilerun.kernels: Numba-compiled tile kernels, one module per family.

Every kernel computes one tile of one op's output and has the same C ABI
(see :mod:`tilerun.kernels.abi`). Kernels know nothing of threads, graphs or
ONNX; they import nothing of tilerun's but this package. Importing the package
keys Numba's disk cache on every kernel and scheduler source (``cache_stamp``).
"""
from . import cache_stamp  # noqa: F401  (before any kernel is compiled)
