"""Atomics, CPU yield, futex sleep/wake and a clock for nopython code, emitted as LLVM IR.

``atomic_add``, ``atomic_load``, ``atomic_store`` and ``atomic_cas`` act on
one element of a 1-D int64 array with sequentially consistent ordering (the
scheduler's counters are few and contended rarely, so the strongest ordering
costs nothing measurable). ``cpu_relax`` is the spin-wait hint and
``sched_yield`` gives the core away; both are declared as external symbols
rather than ctypes pointers, so functions that use them stay cacheable.
``futex_wait``/``futex_wake`` let a worker sleep on a counter and be woken
without going back to Python (Linux; elsewhere the wait degrades to a yield),
and ``now_ns`` reads the monotonic clock for tile timelines.
"""
import platform
import sys

from numba import types
from numba.core import cgutils
from numba.extending import intrinsic
from llvmlite import ir

_I64 = ir.IntType(64)


def _element_pointer(context, builder, arrty, arr, idx):
    ary = context.make_array(arrty)(context, builder, arr)
    return cgutils.get_item_pointer(context, builder, arrty, ary, [idx])


def _check(arr):
    if not (isinstance(arr, types.Array) and arr.dtype == types.int64 and arr.ndim == 1):
        raise TypeError(f"atomics act on 1-D int64 arrays, got {arr}")


@intrinsic
def atomic_add(typingctx, arr, idx, val):
    """``old = arr[idx]; arr[idx] += val`` atomically; returns ``old``."""
    _check(arr)

    def codegen(context, builder, sig, args):
        ptr = _element_pointer(context, builder, sig.args[0], args[0], args[1])
        v = context.cast(builder, args[2], sig.args[2], types.int64)
        return builder.atomic_rmw("add", ptr, v, "seq_cst")
    return types.int64(arr, idx, val), codegen


@intrinsic
def atomic_load(typingctx, arr, idx):
    """``arr[idx]`` read atomically."""
    _check(arr)

    def codegen(context, builder, sig, args):
        ptr = _element_pointer(context, builder, sig.args[0], args[0], args[1])
        return builder.load_atomic(ptr, "seq_cst", 8)
    return types.int64(arr, idx), codegen


@intrinsic
def atomic_store(typingctx, arr, idx, val):
    """``arr[idx] = val`` written atomically."""
    _check(arr)

    def codegen(context, builder, sig, args):
        ptr = _element_pointer(context, builder, sig.args[0], args[0], args[1])
        v = context.cast(builder, args[2], sig.args[2], types.int64)
        builder.store_atomic(v, ptr, "seq_cst", 8)
        return context.get_dummy_value()
    return types.none(arr, idx, val), codegen


@intrinsic
def atomic_cas(typingctx, arr, idx, expected, new):
    """If ``arr[idx] == expected`` set it to ``new``; returns the value seen."""
    _check(arr)

    def codegen(context, builder, sig, args):
        ptr = _element_pointer(context, builder, sig.args[0], args[0], args[1])
        e = context.cast(builder, args[2], sig.args[2], types.int64)
        n = context.cast(builder, args[3], sig.args[3], types.int64)
        pair = builder.cmpxchg(ptr, e, n, "seq_cst", "seq_cst")
        return builder.extract_value(pair, 0)
    return types.int64(arr, idx, expected, new), codegen


def _external_call(name, ret, args=()):
    fnty = ir.FunctionType(ret, list(args))

    def codegen(context, builder, sig, call_args):
        mod = builder.module
        fn = cgutils.get_or_insert_function(mod, fnty, name)
        builder.call(fn, [context.cast(builder, a, t, types.int64) for a, t in zip(call_args, sig.args)])
        return context.get_dummy_value()
    return codegen


@intrinsic
def sched_yield(typingctx):
    """Give the core to another runnable thread (libc ``sched_yield``)."""
    return types.none(), _external_call("sched_yield", ir.IntType(32))


@intrinsic
def cpu_relax(typingctx):
    """Spin-wait hint (``pause`` on x86); a no-op elsewhere."""
    def codegen(context, builder, sig, args):
        import platform
        if platform.machine().lower() in ("x86_64", "amd64", "i686"):
            fnty = ir.FunctionType(ir.VoidType(), [])
            fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.sse2.pause")
            builder.call(fn, [])
        return context.get_dummy_value()
    return types.none(), codegen


# Linux futex on the low 32 bits of an int64 counter (little-endian hosts).
_SYS_FUTEX = {"x86_64": 202, "amd64": 202, "aarch64": 98, "arm64": 98}.get(platform.machine().lower())
_HAS_FUTEX = sys.platform.startswith("linux") and _SYS_FUTEX is not None
_FUTEX_WAIT_PRIVATE, _FUTEX_WAKE_PRIVATE = 128, 129
_TIMESPEC = ir.LiteralStructType([_I64, _I64])


def _syscall(builder, args):
    fnty = ir.FunctionType(_I64, [_I64], var_arg=True)
    fn = cgutils.get_or_insert_function(builder.module, fnty, "syscall")
    return builder.call(fn, args)


@intrinsic
def futex_wait(typingctx, arr, idx, expected, timeout_ns):
    """Sleep while ``arr[idx]`` still equals ``expected``, at most ``timeout_ns``; spurious wakes allowed."""
    _check(arr)

    def codegen(context, builder, sig, args):
        if not _HAS_FUTEX:
            builder.call(cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.IntType(32), []),
                                                        "sched_yield"), [])
            return context.get_dummy_value()
        ptr = _element_pointer(context, builder, sig.args[0], args[0], args[1])
        expected = context.cast(builder, args[2], sig.args[2], types.int64)
        timeout = context.cast(builder, args[3], sig.args[3], types.int64)
        ts = cgutils.alloca_once(builder, _TIMESPEC)
        billion = ir.Constant(_I64, 1_000_000_000)
        builder.store(builder.sdiv(timeout, billion), builder.gep(ts, [ir.Constant(ir.IntType(32), 0)] * 2))
        builder.store(builder.srem(timeout, billion),
                      builder.gep(ts, [ir.Constant(ir.IntType(32), 0), ir.Constant(ir.IntType(32), 1)]))
        low32 = builder.and_(expected, ir.Constant(_I64, 0xFFFFFFFF))
        _syscall(builder, [ir.Constant(_I64, _SYS_FUTEX), builder.ptrtoint(ptr, _I64),
                           ir.Constant(_I64, _FUTEX_WAIT_PRIVATE), low32, builder.ptrtoint(ts, _I64),
                           ir.Constant(_I64, 0), ir.Constant(_I64, 0)])
        return context.get_dummy_value()
    return types.none(arr, idx, expected, timeout_ns), codegen


@intrinsic
def futex_wake(typingctx, arr, idx, count):
    """Wake up to ``count`` threads sleeping in ``futex_wait`` on ``arr[idx]``."""
    _check(arr)

    def codegen(context, builder, sig, args):
        if _HAS_FUTEX:
            ptr = _element_pointer(context, builder, sig.args[0], args[0], args[1])
            n = context.cast(builder, args[2], sig.args[2], types.int64)
            _syscall(builder, [ir.Constant(_I64, _SYS_FUTEX), builder.ptrtoint(ptr, _I64),
                               ir.Constant(_I64, _FUTEX_WAKE_PRIVATE), n, ir.Constant(_I64, 0),
                               ir.Constant(_I64, 0), ir.Constant(_I64, 0)])
        return context.get_dummy_value()
    return types.none(arr, idx, count), codegen


@intrinsic
def now_ns(typingctx):
    """Monotonic clock in nanoseconds (``clock_gettime(CLOCK_MONOTONIC)``)."""
    def codegen(context, builder, sig, args):
        fnty = ir.FunctionType(ir.IntType(32), [ir.IntType(32), _TIMESPEC.as_pointer()])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "clock_gettime")
        ts = cgutils.alloca_once(builder, _TIMESPEC)
        builder.call(fn, [ir.Constant(ir.IntType(32), 1), ts])
        zero = ir.Constant(ir.IntType(32), 0)
        sec = builder.load(builder.gep(ts, [zero, zero]))
        nsec = builder.load(builder.gep(ts, [zero, ir.Constant(ir.IntType(32), 1)]))
        return builder.add(builder.mul(sec, ir.Constant(_I64, 1_000_000_000)), nsec)
    return types.int64(), codegen
