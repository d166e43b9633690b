"""The three scheduling modes as data for the one executor: slots and worker orders.

A mode decides how many request slots (streams) an engine has and, for each
worker, which slots it serves, home slot first (``worker_orders``):

* ``single_stream``: one slot, every worker serves it; concurrent callers
  queue and are served one after the other.
* ``multi_stream``: ``num_streams`` slots; by default work-conserving: each
  worker serves its home slot first and then any other in-flight request, so
  no core idles while a request has a ready tile. ``work_stealing=False``
  gives fixed partitions (each worker serves only its own slots), the way
  DeepSparse and OpenVINO streams work, to compare against.
  ``request_widths``: a request is tiled for every worker when it starts
  alone; when others are in flight, for its share, and then (with no more
  slots than workers) only its own workers serve it.
* ``elastic``: one slot per NUMA node / L3 domain, served only by that
  domain's workers: at most one request per domain, no tile crosses domains.

``SlotQueue`` hands free slots to callers in strict arrival order.
"""
import enum
import threading

import numpy as np


class Scheduler(str, enum.Enum):
    """The scheduling modes; members equal their names as strings."""
    single_stream = "single_stream"
    multi_stream = "multi_stream"
    elastic = "elastic"

    def __str__(self):
        return self.value


def default_num_streams(mode, topo):
    """Slots a mode gets when the user names none.

    single_stream: 1. elastic: one per domain. multi_stream: one per core, so
    every core can hold a request of its own while work stealing keeps the
    cores busy when fewer requests are in flight.
    """
    if mode is Scheduler.single_stream:
        return 1
    if mode is Scheduler.elastic:
        return len(topo.domains)
    return len(topo.cores)


def check_num_streams(mode, topo, num_streams):
    """``num_streams`` resolved for ``mode``; ValueError naming the allowed range otherwise."""
    if num_streams is None:
        return default_num_streams(mode, topo)
    if isinstance(num_streams, bool) or not isinstance(num_streams, (int, np.integer)):
        raise ValueError(f"num_streams must be an integer, given {num_streams!r}")
    hi = {Scheduler.single_stream: 1, Scheduler.elastic: len(topo.domains)}.get(mode, 1024)
    if not 1 <= num_streams <= hi:
        raise ValueError(f"num_streams for {mode.value} must be between 1 and {hi}"
                         f"{' (one per domain)' if mode is Scheduler.elastic else ''}, given {num_streams}")
    return int(num_streams)


def worker_orders(mode, topo, n_slots, work_stealing=True):
    """``(n_workers, n_slots + 1)`` int64: row w lists the slots worker w serves, home first, -1 after."""
    n_workers = len(topo.cores)
    order = np.full((n_workers, n_slots + 1), -1, np.int64)
    for w in range(n_workers):
        if mode is Scheduler.elastic:
            core = topo.cores[w]
            dom = next(d for d, cores in enumerate(topo.domains) if core in cores)
            served = [dom] if dom < n_slots else []
        elif n_workers >= n_slots:
            home = w * n_slots // n_workers
            served = [(home + k) % n_slots for k in range(n_slots)] if work_stealing else [home]
        else:  # more slots than workers: worker w owns slots w, w + n_workers, ...
            own = list(range(w, n_slots, n_workers))
            others = [s for s in range(n_slots) if s not in own]
            served = own + others if work_stealing else own
        order[w, :len(served)] = served
    return order


def request_widths(mode, topo, n_slots, work_stealing=True):
    """``(alone, loaded)``: the workers a request's ops are tiled for when it runs alone and when every slot is busy.

    A request can use every worker that serves its slot; with every slot busy,
    each worker serves its home slot first, so a request has about its share.
    Tiling for more workers than will run the request only adds hand-offs
    and per-tile set-up.

    * ``single_stream``: all workers alone; its one slot is never busy with
      another request, and its second plan is tiled for one worker, which a
      request runs while that measures faster (``tiling_choice``).
    * ``multi_stream``: all workers alone (idle workers steal), ``workers //
      slots`` (at least 1) loaded; without work stealing, that share always.
    * ``elastic``: the largest domain's workers, always (no tile crosses domains).
    """
    n_workers = len(topo.cores)
    if mode is Scheduler.elastic:
        width = max(len(d) for d in topo.domains[:n_slots])
        return width, width
    if mode is Scheduler.single_stream:
        return n_workers, 1
    loaded = max(1, n_workers // n_slots)
    return (n_workers if work_stealing else loaded), loaded


class Closed(RuntimeError):
    """The slot queue was closed while a caller waited for a slot."""


class SlotQueue:
    """Free request slots, handed out in strict arrival order of the callers."""

    def __init__(self, n_slots):
        self.n_slots = n_slots
        self._free = list(range(n_slots))
        self._cv = threading.Condition()
        self._next_ticket = 0
        self._serving = 0
        self._closed = False

    def acquire(self):
        """Block until this caller's turn and a free slot; returns the slot index."""
        with self._cv:
            ticket = self._next_ticket
            self._next_ticket += 1
            while not self._closed and (self._serving != ticket or not self._free):
                self._cv.wait()
            if self._closed:
                raise Closed("engine is closed")
            self._serving += 1
            self._free.sort()  # the lowest slot first keeps home slots busy
            slot = self._free.pop(0)
            self._cv.notify_all()
            return slot

    def in_use(self):
        """Slots held by requests right now (a snapshot: others may come and go meanwhile)."""
        return self.n_slots - len(self._free)

    def release(self, slot):
        """Give ``slot`` back."""
        with self._cv:
            self._free.append(slot)
            self._cv.notify_all()

    def close(self, timeout=None):
        """Fail waiting callers; wait until every in-flight request gave its slot back."""
        with self._cv:
            self._closed = True
            self._cv.notify_all()
            return self._cv.wait_for(lambda: len(self._free) == self.n_slots, timeout)
