"""The one tile-kernel ABI and typed views of raw memory.

Every kernel is a plain Python function ``kernel(p, tile, scratch) -> int64``
compiled on first use into a ``nogil`` C callable (``numba.cfunc``, cached on
disk). ``p`` points at the op's int64 parameter row, laid out as the kernel's
declared row says (:mod:`.contract`); ``param_f32`` reads a float parameter
and ``slot_address`` gives a slot's address. ``tile`` is the index of the
tile to compute and ``scratch`` the address of the calling worker's scratch
area. A kernel returns 0, or a non-zero status that fails the request.

The scheduler calls kernels through their addresses, so the executor is one
small compiled loop that never changes when a kernel is added. This module
does not decide tiles or parameters (the engine's lowerings do), and does not
register kernels (:mod:`.contract` and :mod:`.registry` do).
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
_i16_ptr, i16 = _view(types.int16)
_u16_ptr, u16 = _view(types.uint16)
_u32_ptr, u32 = _view(types.uint32)
_u64_ptr, u64 = _view(types.uint64)
f32.__doc__ = "1-D float32 array of ``n`` elements at absolute address ``addr`` (no copy)."
i64.__doc__ = "1-D int64 array of ``n`` elements at absolute address ``addr`` (no copy)."
i32.__doc__ = "1-D int32 array of ``n`` elements at absolute address ``addr`` (no copy)."
u8.__doc__ = "1-D uint8 array of ``n`` bytes at absolute address ``addr`` (no copy)."
i8.__doc__ = "1-D int8 array of ``n`` elements at absolute address ``addr`` (no copy)."
i16.__doc__ = "1-D int16 array of ``n`` elements at absolute address ``addr`` (no copy)."
u16.__doc__ = "1-D uint16 array of ``n`` elements at absolute address ``addr`` (no copy)."
u32.__doc__ = "1-D uint32 array of ``n`` elements at absolute address ``addr`` (no copy)."
u64.__doc__ = "1-D uint64 array of ``n`` elements at absolute address ``addr`` (no copy)."


@numba.njit(inline="always")
def i64_2d(addr, rows, cols):
    """2-D int64 array ``rows x cols`` (C order) at absolute address ``addr`` (no copy)."""
    return numba.carray(_i64_ptr(addr), (rows, cols))


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


@intrinsic
def param_f32(typingctx, p, idx):
    """The float32 parameter in slot ``idx`` of row ``p`` (its low four bytes)."""
    def codegen(context, builder, sig, args):
        ptr = builder.gep(args[0], [args[1]])
        return builder.load(builder.bitcast(ptr, ir.FloatType().as_pointer()))
    return types.float32(p, types.int64), codegen


@intrinsic
def slot_address(typingctx, p, idx):
    """Absolute address of slot ``idx`` of row ``p`` (to hand a parameter struct to a shared routine)."""
    def codegen(context, builder, sig, args):
        return builder.ptrtoint(builder.gep(args[0], [args[1]]), ir.IntType(64))
    return types.int64(p, types.int64), codegen
