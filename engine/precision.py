"""Arithmetic precision of an engine: ``"fp32"`` (default) or ``"bf16"`` (BF16 products, FP32 sums).

``resolve`` turns the requested precision into the one the plans use and a
line for ``eng.config``: BF16 needs AVX512_BF16 (``cpu_supports_bf16``); on
a CPU without it the engine runs FP32 and says so. Which ops run in BF16 is
the lowerings' business (``ops/bf16.py``), not this module's.
"""
from tilerun.kernels.gemm_bf16 import cpu_supports_bf16

from .errors import ArgumentError

PRECISIONS = ("fp32", "bf16")


def check_precision(precision):
    """Raise ``ArgumentError`` unless ``precision`` is one of ``PRECISIONS``."""
    if precision not in PRECISIONS:
        raise ArgumentError(f"precision must be one of {list(PRECISIONS)}, given {precision!r}")


def resolve(precision):
    """``(precision the plans use, description)`` for a requested ``precision`` on this CPU."""
    check_precision(precision)
    if precision == "bf16" and not cpu_supports_bf16():
        return "fp32", "fp32 (bf16 requested; CPU lacks avx512_bf16)"
    return precision, precision


def cpu_features():
    """``{"bf16": ..., "amx": ..., "vnni": ...}``: which of these matrix extensions this CPU has (booleans)."""
    import llvmlite.binding as llvm
    feats = llvm.get_host_cpu_features()
    return {"bf16": bool(feats.get("avx512bf16", False)),
            "amx": bool(feats.get("amx-tile", False) and feats.get("amx-bf16", False)),
            "vnni": bool(feats.get("avx512vnni", False) or feats.get("avxvnni", False))}
