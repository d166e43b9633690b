"""The kernel registry: every family imported once, each tile kernel found by name.

Families declare their kernels with ``contract.tile_kernel``; importing this
module imports them all, so ``kernel(name)`` and ``all_kernels()`` see every
one. Lowerings import the ``TileKernel`` objects from their family directly;
names are for tools, tests and tracing. Imports run one way: this module
imports the families, the families import only ``abi``/``contract``/``simd``
and each other, never this module.
"""
from . import (affine, attention, compare, conv, conv_pack, depthwise, diagnostic, elementwise, excite,  # noqa: F401
               gemm, gemm_bf16, intarith, logical, movement, normalize, pool, pool2d, reduce, softmax, stem,
               unary_math, winograd)
from .contract import declared_kernels


def _by_name():
    # Rebuilt on each call: custom kernels are declared after the families.
    index = {}
    for k in declared_kernels():
        if k.name in index:
            raise ValueError(f"tile kernel {k.name!r} declared twice ({index[k.name].fn.__module__} and "
                             f"{k.fn.__module__})")
        index[k.name] = k
    return index


def kernel(name):
    """The ``TileKernel`` named ``name``; ``KeyError`` listing the known names otherwise."""
    index = _by_name()
    try:
        return index[name]
    except KeyError:
        raise KeyError(f"no tile kernel named {name!r}; known: {', '.join(sorted(index))}") from None


def all_kernels():
    """Every registered tile kernel (families and custom ops), sorted by name."""
    index = _by_name()
    return [index[n] for n in sorted(index)]
