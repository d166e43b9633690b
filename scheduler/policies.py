"""Scheduling policies and the request stream they drive on the executor.

A ``Stream`` is one request slot: its own activation arena, its own bound
parameter rows and its own executor state; the weights stay shared in the
plan. ``SingleStream`` serves one request at a time with every worker of the
pool on it; concurrent callers queue on a lock, in arrival order.
"""
import enum
import threading

import numpy as np

from .executor import ERROR, new_request_state, reset_request, work


class Scheduler(str, enum.Enum):
    """The scheduling modes; members equal their names as strings."""
    single_stream = "single_stream"
    multi_stream = "multi_stream"
    elastic = "elastic"

    def __str__(self):
        return self.value


class Stream:
    """One request slot bound to a plan-like object (``arena_size``, ``bind``, ``tables``)."""

    def __init__(self, plan, new_arena):
        self.arena = new_arena(plan.arena_size)
        self.params = plan.bind(self.arena)
        t = plan.tables
        self.param_addr = (self.params.ctypes.data + 8 * t["param_offsets"][:-1]).astype(np.int64)
        self.fn_addr, self.n_tiles = t["fn_addr"], t["n_tiles"]
        self.deps, self.cons_ptr, self.cons_idx = t["deps"], t["cons_ptr"], t["cons_idx"]
        self.ctl, self.st = new_request_state(len(self.n_tiles))

    def reset(self):
        """Prepare the executor state for a new request."""
        reset_request(self.ctl, self.st, self.deps)

    def work(self, scratch_addr):
        """Run this request's tiles on the calling thread (one worker's share)."""
        return work(self.fn_addr, self.param_addr, self.n_tiles, self.cons_ptr, self.cons_idx,
                    self.ctl, self.st, scratch_addr)

    @property
    def failed_row(self):
        """Index of the row whose kernel failed, or None."""
        e = int(self.ctl[ERROR])
        return e - 1 if e else None


class SingleStream:
    """One request in flight at a time, split across every worker."""

    def __init__(self, pool, stream, scratch_addrs):
        self.pool = pool
        self.stream = stream
        self.scratch_addrs = scratch_addrs
        self._lock = threading.Lock()

    def submit(self, load_inputs, read_outputs):
        """Serve one request: ``load_inputs(arena)``, run every tile, ``read_outputs(arena)``."""
        s = self.stream
        with self._lock:
            load_inputs(s.arena)
            if len(s.n_tiles):
                s.reset()
                self.pool.run_on_all(lambda w: s.work(self.scratch_addrs[w]))
            failed = s.failed_row
            if failed is not None:
                return failed, None
            return None, read_outputs(s.arena)
