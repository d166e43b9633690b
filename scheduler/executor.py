"""The tile executor: one nopython ``nogil`` loop per worker per request.

A request's state is a few int64 arrays. Ops (plan rows) become ready when
their dependency counter reaches zero and are appended to a ready list; a
worker claims the next tile of the earliest ready op with an atomic
fetch-and-add, runs it through the kernel's address, and the worker that
completes an op's last tile releases its consumers. No Python runs per tile
or per op, and no global barrier separates ops, so independent branches run
side by side. A kernel's non-zero status stops the request and is reported.
"""
import numba
import numpy as np

from tilerun.kernels.abi import call_tile
from tilerun.kernels.atomics import atomic_add, atomic_load, atomic_store, atomic_cas, cpu_relax, sched_yield

# Slots of the per-request control array.
TAIL, OPS_DONE, ERROR, N_CTL = 0, 1, 2, 8
# Rows of the per-request op-state matrix.
CLAIMED, DONE, DEPS, READY, READY_OK, N_STATE = 0, 1, 2, 3, 4, 5

SPINS_BEFORE_YIELD = 64


def new_request_state(n_ops):
    """Zeroed control array and op-state matrix for a plan of ``n_ops`` rows."""
    return np.zeros(N_CTL, np.int64), np.zeros((N_STATE, max(n_ops, 1)), np.int64)


@numba.njit(nogil=True, cache=True)
def reset_request(ctl, st, deps_init):
    """Prepare a request: counters to zero, dependency counts copied, roots made ready."""
    n = deps_init.size
    ctl[:] = 0
    st[:, :] = 0
    tail = 0
    for op in range(n):
        st[DEPS, op] = deps_init[op]
        if deps_init[op] == 0:
            st[READY, tail] = op
            st[READY_OK, tail] = 1
            tail += 1
    ctl[TAIL] = tail


@numba.njit(nogil=True, cache=True)
def _release_consumers(op, ctl, deps, ready, ready_ok, cons_ptr, cons_idx):
    for k in range(cons_ptr[op], cons_ptr[op + 1]):
        c = cons_idx[k]
        if atomic_add(deps, c, -1) == 1:
            slot = atomic_add(ctl, TAIL, 1)
            ready[slot] = c
            atomic_store(ready_ok, slot, 1)
    atomic_add(ctl, OPS_DONE, 1)


@numba.njit(nogil=True, cache=True)
def work(fn_addr, param_addr, n_tiles, cons_ptr, cons_idx, ctl, st, scratch):
    """Claim and run tiles of one request until every op is done or one failed.

    Returns the number of tiles this worker ran.
    """
    n_ops = n_tiles.size
    claimed, done, deps, ready, ready_ok = st[CLAIMED], st[DONE], st[DEPS], st[READY], st[READY_OK]
    pos = 0
    ran = 0
    idle = 0
    while atomic_load(ctl, OPS_DONE) < n_ops and atomic_load(ctl, ERROR) == 0:
        tail = atomic_load(ctl, TAIL)
        found = False
        q = pos
        while q < tail:
            if atomic_load(ready_ok, q) == 0:
                break  # slot reserved but not yet published
            op = ready[q]
            t = atomic_add(claimed, op, 1)
            if t < n_tiles[op]:
                status = call_tile(fn_addr[op], param_addr[op], t, scratch)
                ran += 1
                if status != 0:
                    atomic_cas(ctl, ERROR, 0, op + 1)
                    return ran
                if atomic_add(done, op, 1) + 1 == n_tiles[op]:
                    _release_consumers(op, ctl, deps, ready, ready_ok, cons_ptr, cons_idx)
                found = True
                break
            if q == pos:
                pos += 1  # fully claimed: no worker needs to look at it again
            q += 1
        if found:
            idle = 0
        else:
            idle += 1
            if idle < SPINS_BEFORE_YIELD:
                cpu_relax()
            else:
                sched_yield()
    return ran
