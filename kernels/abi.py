"""The one tile-kernel ABI, the kernel registry and typed views of raw memory.

Every kernel is a plain Python function ``kernel(p, tile, scratch) -> int64``
compiled on first use into a ``nogil`` C callable (``numba.cfunc``, cached on
disk). ``p`` points at the op's int64 parameter row: the absolute addresses of
its tensors followed by its integer parameters, laid out as the kernel's
docstring says. ``tile`` is the index of the tile to compute and ``scratch``
the address of the calling worker's scratch area. A kernel returns 0, or a
non-zero status that fails the request.

The scheduler calls kernels through their addresses, so the executor is one
small compiled loop that never changes when a kernel is added. This module
does not decide tiles or parameters: the engine's lowerings do.
"""
import numba
import numpy as np
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic
from llvmlite import ir

# Unsigned loop indices: Numba skips its negative-index wraparound for them,
# which otherwise keeps LLVM from vectorizing a kernel's inner loops.
U = np.uint64

TILE_SIGNATURE = types.int64(types.CPointer(types.int64), types.int64, types.int64)

_KERNELS = {}
_COMPILED = {}


def tile_kernel(fn):
    """Register ``fn`` as a tile kernel under its own name and return it unchanged."""
    if fn.__name__ in _KERNELS:
        raise ValueError(f"tile kernel {fn.__name__!r} registered twice")
    _KERNELS[fn.__name__] = fn
    return fn


def kernel_names():
    """Names of every registered tile kernel."""
    _import_families()
    return sorted(_KERNELS)


def compiled_kernel(name):
    """The compiled C callable of kernel ``name`` (compiled or loaded from cache once)."""
    cf = _COMPILED.get(name)
    if cf is None:
        _import_families()
        try:
            fn = _KERNELS[name]
        except KeyError:
            raise KeyError(f"no tile kernel named {name!r}; known: {', '.join(sorted(_KERNELS))}") from None
        # error_model="numpy": a float division needs no zero check (IEEE gives inf/nan), and
        # the check would keep LLVM from vectorizing the loop around it.
        cf = numba.cfunc(TILE_SIGNATURE, nopython=True, cache=True, error_model="numpy")(fn)
        _COMPILED[name] = cf
    return cf


def kernel_address(name):
    """Address of kernel ``name``'s C entry point, for the executor's dispatch table."""
    return compiled_kernel(name).address


def _import_families():
    # The families register themselves on import; importing them here keeps
    # the registry complete whichever module asked first.
    from . import families  # noqa: F401


def _view(dtype):
    ptr_type = types.CPointer(dtype)

    @intrinsic
    def as_pointer(typingctx, addr):
        def codegen(context, builder, sig, args):
            return builder.inttoptr(args[0], context.get_value_type(ptr_type))
        return ptr_type(types.int64), codegen

    @numba.njit(inline="always")
    def view(addr, n):
        return numba.carray(as_pointer(addr), (n,))

    return as_pointer, view


_f32_ptr, f32 = _view(types.float32)
_i64_ptr, i64 = _view(types.int64)
_i32_ptr, i32 = _view(types.int32)
_u8_ptr, u8 = _view(types.uint8)
_i8_ptr, i8 = _view(types.int8)
f32.__doc__ = "1-D float32 array of ``n`` elements at absolute address ``addr`` (no copy)."
i64.__doc__ = "1-D int64 array of ``n`` elements at absolute address ``addr`` (no copy)."
i32.__doc__ = "1-D int32 array of ``n`` elements at absolute address ``addr`` (no copy)."
u8.__doc__ = "1-D uint8 array of ``n`` bytes at absolute address ``addr`` (no copy)."
i8.__doc__ = "1-D int8 array of ``n`` elements at absolute address ``addr`` (no copy)."


@intrinsic
def call_tile(typingctx, fn_addr, params_addr, tile, scratch):
    """Call the tile kernel at ``fn_addr`` with the ABI above; returns its status."""
    sig = types.int64(types.int64, types.int64, types.int64, types.int64)

    def codegen(context, builder, sig, args):
        i64t = ir.IntType(64)
        fnty = ir.FunctionType(i64t, [i64t.as_pointer(), i64t, i64t])
        fn = builder.inttoptr(args[0], fnty.as_pointer())
        params = builder.inttoptr(args[1], i64t.as_pointer())
        return builder.call(fn, [params, args[2], args[3]])

    return sig, codegen


@intrinsic
def address_of(typingctx, arr, index):
    """Absolute address of ``arr[index]`` (a 1-D contiguous array)."""
    def codegen(context, builder, sig, args):
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, sig.args[0], ary, [args[1]])
        return builder.ptrtoint(ptr, ir.IntType(64))
    return types.int64(arr, types.intp), codegen
