"""A running executor: its state arrays, pinned workers and request slots.

``Runtime`` owns what lives as long as an engine: the control rows of every
slot, the worker pool serving them in the mode's order, each worker's scratch
and the FIFO queue of free slots. A ``Job`` is one plan as one slot runs it
(its tables, that slot's parameter rows, an op-state matrix). A request is
``acquire`` → fill the slot's arena → ``execute(slot, job)`` (start + sleep
until done) → read outputs → ``release``. Requests in different slots may run
different jobs (plans of different shapes). A runtime of one worker and one
slot starts no thread: ``execute`` runs the request on the caller's thread
(``executor.run_here``), as a one-thread ONNX Runtime session does, instead
of waking a worker and then being woken by it.

Fork: the workers are threads of the process that made the runtime, and a
fork()ed child has none of them (and may have inherited a slot queue whose
lock another thread held). So in a child every live runtime gets fresh
control rows and slot queue at fork time, and starts its own workers on its
first request: the child serves with working workers instead of sleeping
forever on a request nobody runs.
"""
import os
import threading
import weakref

import numpy as np

from . import executor
from .policies import SlotQueue, worker_orders
from .pool import WorkerPool


class Job:
    """One plan's executor tables with one slot's parameter-row addresses and its own op state."""

    def __init__(self, tables, param_addrs, n_workers):
        self.tables = tables
        self.n_ops = len(tables["n_tiles"])
        self.params = np.ascontiguousarray(param_addrs, np.int64)
        self.state = executor.new_op_state(self.n_ops, n_workers)
        self.deps = tables["deps"]
        self.fields = np.array([self.n_ops] + [tables[k].ctypes.data for k in ("fn_addr", "n_tiles", "cons_ptr",
                                                                            "cons_idx")]
                               + [self.params.ctypes.data, self.state.ctypes.data], np.int64)


class Runtime:
    """Control rows + workers + slots for one engine; ``close`` stops it cleanly."""

    def __init__(self, n_slots, topo, mode, scratch_addrs, work_stealing=True):
        self.n_slots = n_slots
        self._cores = tuple(topo.cores)
        self.order = worker_orders(mode, topo, n_slots, work_stealing)
        own = worker_orders(mode, topo, n_slots, False)
        # Bit w of ``owners[slot]``: worker w owns the slot. ``own_only`` holds where every worker owns one
        # slot at most: with more slots, a worker's own requests would queue behind each other while another
        # worker idled.
        self.owners = [sum(1 << w for w in range(len(topo.cores)) if slot in own[w]) for slot in range(n_slots)]
        self._own_only_ok = n_slots <= len(topo.cores)
        self.scratch = np.array(scratch_addrs, np.int64)  # workers read their entry per slot visit
        self.tiles_run = np.zeros(len(self._cores), np.int64)
        self._fresh_state()
        self._closed = False
        self.inline = n_slots == 1 and len(self._cores) == 1
        self.pool = None
        self._start_workers()
        _LIVE.add(self)

    def _fresh_state(self):
        self._g, self._ctl = executor.new_state(self.n_slots, len(self._cores))
        self.slots = SlotQueue(self.n_slots)
        self._pool_lock = threading.Lock()

    def _after_fork_in_child(self):
        """This process is a fork()ed child: the workers stayed in the parent; start over on first use."""
        if not self._closed:
            self._fresh_state()
            self.pool = None

    def _serve(self, w):
        self.tiles_run[w] = executor.serve(w, self.order[w], self._g, self._ctl, self.scratch)

    def acquire(self):
        """A free slot, in caller arrival order (raises ``policies.Closed`` after ``close``)."""
        if self.pool is None and not self.inline:  # first request in a fork()ed child
            self._start_workers()
        return self.slots.acquire()

    def _start_workers(self):
        with self._pool_lock:
            if self.pool is None and not self._closed and not self.inline:
                self.pool = WorkerPool(self._cores, self._serve)

    def release(self, slot):
        """Give ``slot`` back for the next request."""
        self.slots.release(slot)

    def execute(self, slot, job, trace=None, own_only=False, solo=False):
        """Run ``job`` in ``slot``; returns ``(failed_row or None, trace events used, start ns)``.

        ``own_only``: only the workers that own ``slot`` serve it (a job tiled for their share),
        where no worker owns several slots. ``solo``: only the first of them (a job tiled for one worker).

        ``trace`` is an optional ``(capacity, executor.N_EV)`` int64 array that
        receives one event per tile run; start ns is the request's start on the
        monotonic clock the event times are relative to.
        """
        if job.n_ops == 0:
            return None, 0, 0
        addr, cap = (0, 0) if trace is None else (trace.ctypes.data, trace.shape[0])
        mask = self.owners[slot] if own_only and self._own_only_ok else 0
        if solo:
            mask = self.owners[slot] & -self.owners[slot]  # the lowest set bit
        err = executor.execute(self._g, self._ctl, slot, job.fields, job.state, job.deps, addr, cap, mask,
                               self.inline, self.scratch, self.tiles_run)
        failed = err - 1 if err else None
        if trace is None:
            return failed, 0, 0
        return failed, min(int(self._ctl[slot, executor.TRACE_N]), cap), int(self._ctl[slot, executor.T0])

    def close(self, timeout=None):
        """Finish in-flight requests, fail waiting ones, stop and join the workers.

        Returns True when every worker stopped within ``timeout``.
        """
        self._closed = True
        drained = self.slots.close(timeout)
        executor.stop(self._g)
        with self._pool_lock:
            pool = self.pool
        return (pool is None or pool.join(timeout)) and drained


_LIVE = weakref.WeakSet()


def _after_fork_in_child():
    for runtime in list(_LIVE):
        runtime._after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)
