"""Automatic batching: concurrent requests of the same item shapes run as one request of a larger batch.

``AutoBatcher`` queues requests in arrival order. Each of its dispatcher
threads (one per stream, so several batched runs are in flight on
multi_stream) takes the oldest waiting request, waits at most ``timeout_ms``
for later requests whose inputs match it in everything but the leading
(batch) dim, up to ``max_batch`` items in all, concatenates them along axis
0, runs them through the engine and hands each caller its own slice of every
output. A request that cannot share a run (outputs without the batch as their
leading dim, or a batch that alone fills ``max_batch``) runs by itself. A
failed batched run fails each of its requests with the same error.
Not here: reordering across shapes (requests of other shapes wait their
turn) or padding ragged sequences.
"""
import collections
import concurrent.futures
import threading
import time

import numpy as np

from .errors import RequestError


class _Pending:
    __slots__ = ("arrays", "key", "batch", "future")

    def __init__(self, arrays):
        self.arrays = arrays
        self.key = tuple((a.dtype.str, a.shape[1:]) for a in arrays)
        self.batch = int(arrays[0].shape[0])
        self.future = concurrent.futures.Future()


class AutoBatcher:
    """Gathers requests for ``run(arrays) -> outputs`` into batches of at most ``max_batch`` items."""

    def __init__(self, run, max_batch, timeout_ms, threads):
        self._run, self.max_batch, self.timeout_s = run, int(max_batch), float(timeout_ms) / 1e3
        self._queue = collections.deque()
        self._cv = threading.Condition()
        self.runs = 0  # engine runs made (a batch or a lone request)
        self._closed = False
        self._threads = [threading.Thread(target=self._dispatch, name=f"tilerun-batch-{k}", daemon=True)
                         for k in range(threads)]
        for t in self._threads:
            t.start()

    def submit(self, arrays):
        """Queue checked ``arrays`` (every input with a leading batch dim); returns a Future of the outputs."""
        p = _Pending(arrays)
        with self._cv:
            if self._closed:
                raise RequestError("engine is closed")
            self._queue.append(p)
            self._cv.notify()
        return p.future

    def close(self):
        """Serve what is queued, then stop the dispatchers."""
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        for t in self._threads:
            t.join()

    def _dispatch(self):
        while True:
            group = self._gather()
            if group is None:
                return
            self._serve(group)

    def _gather(self):
        """The oldest request and the later ones that fit its batch (waiting up to the timeout for them)."""
        with self._cv:
            while not self._queue:
                if self._closed:
                    return None
                self._cv.wait()
            first = self._queue.popleft()
            group, items = [first], first.batch
            deadline = time.monotonic() + self.timeout_s
            while items < self.max_batch:
                for p in list(self._queue):
                    if p.key == first.key and items + p.batch <= self.max_batch:
                        self._queue.remove(p)
                        group.append(p)
                        items += p.batch
                left = deadline - time.monotonic()
                if items >= self.max_batch or left <= 0 or self._closed:
                    break
                self._cv.wait(left)
            if self._queue:
                self._cv.notify()  # another dispatcher may take what is left
            return group

    def _serve(self, group):
        self.runs += 1
        if len(group) == 1:
            return _settle(group[0], self._run, group[0].arrays)
        try:
            outputs = self._run([np.concatenate([p.arrays[k] for p in group]) for k in range(len(group[0].arrays))])
        except BaseException as e:  # every caller of the batch gets the error
            for p in group:
                p.future.set_exception(e)
            return
        total = sum(p.batch for p in group)
        if any(o.ndim == 0 or o.shape[0] != total for o in outputs):
            for p in group:  # outputs do not carry the batch: run each request alone
                _settle(p, self._run, p.arrays)
            return
        at = 0
        for p in group:
            p.future.set_result([o[at:at + p.batch] for o in outputs])
            at += p.batch


def _settle(pending, run, arrays):
    try:
        pending.future.set_result(run(arrays))
    except BaseException as e:
        pending.future.set_exception(e)
