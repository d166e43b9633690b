"""The tile executor: every worker runs one nopython ``nogil`` loop for the engine's lifetime.

An engine has ``n_slots`` request slots (streams). A slot's state is one row
of ``ctl`` (flags and counters) and, for the request in it, one ``(CHUNK +
n_workers, n_ops)`` state matrix (per-op claim/done/dependency counters and
the ready list). A request brings its own plan: ``start`` writes the addresses
of its tables (kernel addresses, tile counts, consumer lists), of its
parameter rows (its arena's addresses) and of its state matrix into the
slot's control row, so requests of different shapes (different plans) run
side by side in different slots.

A caller puts a request into a slot with ``start`` and sleeps in ``wait``;
an engine of one worker and one slot has no worker thread, and its caller
runs the request itself (``run_here``) before ``wait`` returns at once.
Workers scan the slots in their own order (``order[w]``: home slot first, then
the slots the policy lets them help), claim tiles of ready ops with an atomic
fetch-and-add, run them through the kernel's address, and whoever completes an
op's last tile releases its consumers; whoever completes the last op marks the
slot finished and wakes the caller.

Locality: an op's tiles are dealt into one contiguous chunk per worker (chunk
``w`` of every op has the same place in the op's range), and worker ``w``
drains its own chunk first. So consecutive ops keep their data in the same
core's cache, and a chain of single-tile ops stays on one core instead of
bouncing between caches: a single-tile op's one chunk belongs to the worker
that released it (finished its producer's last tile), so a chain of small ops
runs on one core with no hand-off at all. A worker takes tiles of another worker's chunk once
that worker is not serving this slot, or the op has waited ``STEAL_AFTER_NS``:
the schedule stays work-conserving. The exception is a request started with
a worker mask (``WORKER_MASK``): only those workers serve it. A request
tiled for its slot's own workers because every slot was busy gets theirs,
so a worker between two requests of its own does not take a tile of
another's and keep its next request waiting; a request tiled for one worker
gets that one. No Python runs per tile, per op or per request on the
workers.

Idle workers: with a request in flight, a worker with nothing to claim spins
for ``SPIN_NS``, then sleeps on a futex until a release makes more than one
tile ready (a lone single-tile op goes to its releaser, which takes it next)
or the next ``start``; with none in flight it yields for ``YIELD_NS`` first.
It does not yield-loop through a request: on a VM whose vCPUs the host
time-slices, a yielding vCPU still looks busy to the host and takes the time
the vCPU running the tile everyone waits for needs (measured in
``benchmarks/README.md``, sixth session).

Safe reuse of a slot: a worker announces itself in ``RUNNING`` before it
touches a slot and re-checks ``ACTIVE`` after; ``wait`` returns only when the
slot is inactive and no worker is inside it, so the next request can reset it.
"""
import numba
import numpy as np

from tilerun.kernels.abi import call_tile, i64, i64_2d
from tilerun.kernels.atomics import (atomic_add, atomic_cas, atomic_load, atomic_store, cpu_relax,
                                     futex_wait, futex_wake, now_ns, sched_yield)

# Columns of a slot's control row (24 int64 = three cache lines, so slots do not share a line);
# N_OPS .. ST_ADDR describe the request's plan (``JOB_FIELDS`` of them, in ``start``'s ``job`` order).
ACTIVE, RUNNING, TAIL, OPS_DONE, ERROR, GEN, TRACE_ADDR, TRACE_CAP, TRACE_N, T0 = range(10)
N_OPS, FN_ADDR, N_TILES, CONS_PTR, CONS_IDX, PARAMS, ST_ADDR = range(10, 17)
WORKER_MASK = 17  # a bit mask of the workers that may serve the request (0: any; see ``serve``)
JOB_FIELDS = 7
N_CTL = 24
# Rows of a slot's op-state matrix; rows CHUNK + w count the claims in worker w's chunk
# (chunks counted from the op's HOME worker: the releaser of a single-tile op, else worker 0).
DONE, DEPS, READY, READY_OK, TAKEN, READY_NS, HOME, CHUNK = 0, 1, 2, 3, 4, 5, 6, 7
# Columns of the engine-wide control row; column SERVING + w is the slot worker w is in (-1: none).
STOP, SEQ, SLEEPERS, SERVING = 0, 1, 2, 16
# Columns of a trace event.
EV_WORKER, EV_ROW, EV_TILE, EV_START, EV_END, N_EV = 0, 1, 2, 3, 4, 5

# Idle back-off of a worker with nothing to do: spin, then yield, then sleep.
SPIN_NS = 50_000
YIELD_NS = 1_000_000
SLEEP_NS = 100_000_000  # a sleeping worker re-checks this often even without a wake
STEAL_AFTER_NS = 5_000   # a ready tile in a busy worker's chunk waits this long for its owner


def new_state(n_slots, n_workers):
    """Zeroed engine-wide row and slot control rows."""
    g = np.zeros(SERVING + n_workers, np.int64)
    g[SERVING:] = -1
    return g, np.zeros((n_slots, N_CTL), np.int64)


def new_op_state(n_ops, n_workers):
    """A zeroed op-state matrix for a plan of ``n_ops`` ops (one per slot that runs the plan)."""
    return np.zeros((CHUNK + n_workers, max(n_ops, 1)), np.int64)


@numba.njit(nogil=True, cache=True)
def _announce(g):
    """New ops may be ready: move ``SEQ`` on (a worker about to sleep then does not) and wake the sleepers."""
    atomic_add(g, SEQ, 1)
    if atomic_load(g, SLEEPERS) > 0:
        futex_wake(g, SEQ, 1 << 30)


@numba.njit(nogil=True, cache=True)
def start(g, ctl, slot, job, s, deps_init, trace_addr, trace_cap, worker_mask):
    """Load ``job`` into ``slot``, make its root ops ready, activate it and wake workers.

    ``worker_mask``: the workers that may take the job's tiles (bit ``w``:
    worker ``w``), 0 for any.

    ``job`` holds ``[n_ops, fn_addr, n_tiles, cons_ptr, cons_idx, params, state]``:
    the op count and the addresses of the plan's tables, of the op's
    parameter-row addresses in this slot and of the op-state matrix ``s``.
    """
    c = ctl[slot]
    for k in range(JOB_FIELDS):
        c[N_OPS + k] = job[k]
    s[:, :] = 0
    tail = 0
    t0 = now_ns()
    for op in range(deps_init.size):
        s[DEPS, op] = deps_init[op]
        if deps_init[op] == 0:
            s[READY, tail] = op
            s[READY_OK, tail] = 1
            s[READY_NS, op] = t0
            tail += 1
    c[TAIL] = tail
    c[OPS_DONE] = 0
    c[ERROR] = 0
    c[TRACE_ADDR] = trace_addr
    c[TRACE_CAP] = trace_cap
    c[TRACE_N] = 0
    c[T0] = t0
    c[WORKER_MASK] = worker_mask
    atomic_add(c, GEN, 1)
    atomic_store(c, ACTIVE, 1)  # publishes everything above to the workers
    _announce(g)


@numba.njit(nogil=True, cache=True)
def wait(ctl, slot):
    """Sleep until ``slot``'s request finished or failed and no worker is inside it; return ERROR."""
    c = ctl[slot]
    while atomic_load(c, ACTIVE) != 0:
        futex_wait(c, ACTIVE, 1, SLEEP_NS)
    while atomic_load(c, RUNNING) != 0:  # a worker leaving after a failure: at most one tile long
        sched_yield()
    return c[ERROR]


@numba.njit(nogil=True, cache=True)
def execute(g, ctl, slot, job, s, deps_init, trace_addr, trace_cap, worker_mask, inline, scratch, tiles_run):
    """``start`` a request in ``slot``, run it here if ``inline`` (``run_here``), then ``wait``; returns ERROR.

    One call from Python per request instead of three: the caller's Python
    runs with caches the request just filled with its own data, so every
    dispatch it skips is time the request does not pay.
    """
    start(g, ctl, slot, job, s, deps_init, trace_addr, trace_cap, worker_mask)
    if inline:
        tiles_run[0] += run_here(0, slot, g, ctl, scratch)
    return wait(ctl, slot)


@numba.njit(nogil=True, cache=True)
def stop(g):
    """Tell every worker to leave ``serve`` (after its current tile) and wake the sleepers."""
    atomic_store(g, STOP, 1)
    atomic_add(g, SEQ, 1)
    futex_wake(g, SEQ, 1 << 30)


@numba.njit(nogil=True, cache=True)
def _finish(c):
    if atomic_cas(c, ACTIVE, 1, 0) == 1:
        futex_wake(c, ACTIVE, 1 << 30)


@numba.njit(nogil=True, cache=True)
def _claim(w, slot, g, s, op, n, now):
    """A tile of ``op`` for worker ``w``: its own chunk first, then others' (see module doc); -1 if none.

    Chunks are numbered from the op's ``HOME`` worker: chunk ``v`` belongs to
    worker ``(v + home) % n_workers``.
    """
    n_workers = g.size - SERVING
    home = s[HOME, op] if n == 1 else 0
    mine = (w - home + n_workers) % n_workers
    t = atomic_add(s[CHUNK + mine], op, 1) + (mine * n + n_workers - 1) // n_workers
    if t < ((mine + 1) * n + n_workers - 1) // n_workers:
        return t
    waited = now - s[READY_NS, op] >= STEAL_AFTER_NS
    for k in range(1, n_workers):
        v = (mine + k) % n_workers
        lo = (v * n + n_workers - 1) // n_workers
        hi = ((v + 1) * n + n_workers - 1) // n_workers
        if lo == hi or atomic_load(s[CHUNK + v], op) >= hi - lo:
            continue
        if not waited and atomic_load(g, SERVING + (v + home) % n_workers) == slot:
            continue  # its owner is here and will take it soon
        t = atomic_add(s[CHUNK + v], op, 1) + lo
        if t < hi:
            return t
    return -1


@numba.njit(nogil=True, cache=True)
def _run_slot(w, slot, g, c, s, params, fn_addr, n_tiles, cons_ptr, cons_idx, scratch, pos):
    """Run ready tiles of one slot until none is claimable; returns (tiles run, new scan position)."""
    n_ops = n_tiles.size
    done, deps, ready, ready_ok, taken = s[DONE], s[DEPS], s[READY], s[READY_OK], s[TAKEN]
    trace_addr = c[TRACE_ADDR]
    ran = 0
    while atomic_load(c, ERROR) == 0 and atomic_load(c, OPS_DONE) < n_ops:
        tail = atomic_load(c, TAIL)
        op = -1
        t = -1
        q = pos
        now = now_ns()
        while q < tail:
            if atomic_load(ready_ok, q) == 0:
                break  # slot reserved but not yet published
            cand = ready[q]
            if atomic_load(taken, cand) < n_tiles[cand]:
                t = _claim(w, slot, g, s, cand, n_tiles[cand], now)
                if t >= 0:
                    atomic_add(taken, cand, 1)
                    op = cand
                    break
            elif q == pos:
                pos += 1  # fully claimed: no worker needs to look at it again
            q += 1
        if op < 0:
            return ran, pos
        t_start = now_ns() if trace_addr != 0 else 0
        status = call_tile(fn_addr[op], params[op], t, scratch)
        ran += 1
        if trace_addr != 0:
            k = atomic_add(c, TRACE_N, 1)
            if k < c[TRACE_CAP]:
                ev = i64(trace_addr + 8 * N_EV * k, N_EV)
                ev[EV_WORKER] = w
                ev[EV_ROW] = op
                ev[EV_TILE] = t
                ev[EV_START] = t_start - c[T0]
                ev[EV_END] = now_ns() - c[T0]
        if status != 0:
            atomic_cas(c, ERROR, 0, op + 1)
            _finish(c)
            return ran, pos
        if atomic_add(done, op, 1) + 1 == n_tiles[op]:
            released = now_ns()
            work = 0  # tiles made ready beyond the one this worker takes next
            for k in range(cons_ptr[op], cons_ptr[op + 1]):
                cons = cons_idx[k]
                if atomic_add(deps, cons, -1) == 1:
                    s[READY_NS, cons] = released
                    s[HOME, cons] = w
                    slot_q = atomic_add(c, TAIL, 1)
                    ready[slot_q] = cons
                    atomic_store(ready_ok, slot_q, 1)
                    work += n_tiles[cons]
            if atomic_add(c, OPS_DONE, 1) + 1 == n_ops:
                _finish(c)
            elif work > 1:
                _announce(g)
    return ran, pos


@numba.njit(nogil=True, cache=True)
def _visit(w, slot, g, c, scratch, pos):
    """Worker ``w`` in ``slot`` (control row ``c``) from ready-list position ``pos``: ``_run_slot`` on the
    request's tables, marked in ``SERVING`` meanwhile; returns (tiles run, new position)."""
    n_ops = c[N_OPS]
    atomic_store(g, SERVING + w, slot)
    out = _run_slot(w, slot, g, c, i64_2d(c[ST_ADDR], CHUNK + g.size - SERVING, max(n_ops, 1)),
                    i64(c[PARAMS], n_ops), i64(c[FN_ADDR], n_ops), i64(c[N_TILES], n_ops),
                    i64(c[CONS_PTR], n_ops + 1), i64(c[CONS_IDX], 1 << 40), scratch, pos)
    atomic_store(g, SERVING + w, -1)
    return out


@numba.njit(nogil=True, cache=True)
def run_here(w, slot, g, ctl, scratch):
    """Run the request ``start`` put in ``slot`` on the calling thread, as worker ``w``; returns the tiles run.

    For an engine whose only worker is the caller: with no other thread
    claiming tiles, every op is done (or one failed) when this returns. A
    caller that slept instead had to be woken when its request ended, which on
    a VM waits for the host to run a halted vCPU (``benchmarks/README.md``,
    eighth session); ONNX Runtime runs a one-thread session on the caller too.
    """
    c = ctl[slot]
    atomic_add(c, RUNNING, 1)
    ran, _ = _visit(w, slot, g, c, scratch[w], 0)
    atomic_add(c, RUNNING, -1)
    return ran


@numba.njit(nogil=True, cache=True)
def serve(w, order, g, ctl, scratch):
    """Worker ``w``'s loop: run tiles of the slots in ``order`` (-1 ends it) until ``stop``.

    A request started with a worker mask (``WORKER_MASK``) it serves only if
    its bit is set.

    Each slot's control row says which plan its request runs (see ``start``);
    ``scratch[w]`` is the address of this worker's scratch, read per slot visit
    so the engine can grow it between requests. Returns the tiles it ran.
    """
    n_slots = ctl.shape[0]
    pos = np.zeros(n_slots, np.int64)
    gen = np.full(n_slots, -1, np.int64)
    total = 0
    idle_since = 0
    while atomic_load(g, STOP) == 0:
        seq = atomic_load(g, SEQ)
        ran = 0
        any_active = False
        for k in range(order.size):
            slot = order[k]
            if slot < 0:
                break
            c = ctl[slot]
            if atomic_load(c, ACTIVE) == 0 or c[WORKER_MASK] != 0 and (c[WORKER_MASK] >> w) & 1 == 0:
                continue
            atomic_add(c, RUNNING, 1)
            if atomic_load(c, ACTIVE) != 0:
                any_active = True
                g_now = atomic_load(c, GEN)
                if gen[slot] != g_now:
                    gen[slot] = g_now
                    pos[slot] = 0
                ran, pos[slot] = _visit(w, slot, g, c, scratch[w], pos[slot])
            atomic_add(c, RUNNING, -1)
            if ran:
                break  # back to the home slot first
        if ran:
            total += ran
            idle_since = 0
            continue
        now = now_ns()
        if idle_since == 0:
            idle_since = now
        if any_active and now - idle_since < SPIN_NS:
            cpu_relax()  # a request is in flight: more of its ops will become ready soon
        elif not any_active and now - idle_since < YIELD_NS:
            sched_yield()
        else:
            atomic_add(g, SLEEPERS, 1)
            futex_wait(g, SEQ, seq, SLEEP_NS)
            atomic_add(g, SLEEPERS, -1)
    return total
