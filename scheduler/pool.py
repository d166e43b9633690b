"""Worker threads, one per core, each pinned to its core.

Each thread makes one call, ``target(worker_index)``: the executor's
nopython serve loop, which releases the GIL and returns only when the
executor is stopped. ``join`` waits for every thread to return.
"""
import os
import threading


class WorkerPool:
    """Pinned threads each running ``target(index)`` once."""

    def __init__(self, cores, target, name="tilerun"):
        self.cores = tuple(cores)
        self.errors = []
        self._threads = [threading.Thread(target=self._run, args=(i, c, target), name=f"{name}-worker-{i}",
                                          daemon=True) for i, c in enumerate(self.cores)]
        for t in self._threads:
            t.start()

    @property
    def size(self):
        """Number of workers."""
        return len(self._threads)

    def _run(self, index, core, target):
        try:
            os.sched_setaffinity(0, {core})
        except (AttributeError, OSError):
            pass  # pinning is an optimisation; the pool works unpinned
        try:
            target(index)
        except BaseException as e:  # kept for the engine to report; never silent
            self.errors.append(e)

    def join(self, timeout=None):
        """Wait for every worker to return; returns True when all did."""
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(timeout)
        return not any(t.is_alive() for t in self._threads)
