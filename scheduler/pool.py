"""A pool of worker threads, one per core, each pinned to its core.

``run_on_all(job)`` hands one job (a callable taking the worker index) to
every worker and returns when all of them finished it; the job itself is the
executor's nopython loop, which releases the GIL. Idle workers sleep on a
condition variable, so an idle pool uses no CPU. ``close`` stops the threads.
"""
import os
import threading


class WorkerPool:
    """Pinned worker threads that run one job at a time on all of them."""

    def __init__(self, cores, name="tilerun"):
        self.cores = tuple(cores)
        self._cv = threading.Condition()
        self._job = None
        self._generation = 0
        self._pending = 0
        self._errors = []
        self._closed = False
        self._done = threading.Condition(threading.Lock())
        self._threads = [threading.Thread(target=self._loop, args=(i, c), name=f"{name}-worker-{i}", daemon=True)
                         for i, c in enumerate(self.cores)]
        for t in self._threads:
            t.start()

    @property
    def size(self):
        """Number of workers."""
        return len(self._threads)

    def run_on_all(self, job):
        """Run ``job(worker_index)`` on every worker; re-raise the first exception any raised."""
        with self._cv:
            if self._closed:
                raise RuntimeError("worker pool is closed")
            self._job = job
            self._errors = []
            self._pending = len(self._threads)
            self._generation += 1
            self._cv.notify_all()
            while self._pending:
                self._cv.wait()
            errors, self._job = self._errors, None
        if errors:
            raise errors[0]

    def _loop(self, index, core):
        try:
            os.sched_setaffinity(0, {core})
        except (AttributeError, OSError):
            pass  # pinning is an optimisation; the pool works unpinned
        seen = 0
        while True:
            with self._cv:
                while self._generation == seen and not self._closed:
                    self._cv.wait()
                if self._closed:
                    return
                seen, job = self._generation, self._job
            try:
                job(index)
            except BaseException as e:  # reported to the caller, never kills the worker
                with self._cv:
                    self._errors.append(e)
            with self._cv:
                self._pending -= 1
                if self._pending == 0:
                    self._cv.notify_all()

    def close(self):
        """Stop the workers after the job in flight, if any."""
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        for t in self._threads:
            if t is not threading.current_thread():
                t.join()
