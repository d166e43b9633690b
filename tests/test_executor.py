"""The tile executor on synthetic plans of diagnostic kernels, on 1 and on every worker.

Each plan is a random DAG of rows; the diagnostic kernel counts every tile and
logs its row in run order. The executor must run every tile exactly once, in
bounds, and never start a row before all of its producers finished.
"""
import threading
import time

import numpy as np
import pytest

from tilerun.kernels.diagnostic import COUNT_TILES, FAIL, any_fail, i64_count_tiles
from tilerun.plan import aligned_bytes
from tilerun.scheduler import Topology, topology
from tilerun.scheduler.policies import Closed, Scheduler, SlotQueue, worker_orders
from tilerun.scheduler.runtime import Job, Runtime


class SyntheticPlan:
    """Executor tables for rows of ``i64_count_tiles`` (or ``any_fail``) over a given DAG.

    Each of ``n_slots`` slots logs into its own arrays, so concurrent requests can be told apart.
    """

    def __init__(self, n_tiles, edges, fail_row=None, fail_tile=0, n_slots=1):
        n = len(n_tiles)
        self.orders = [np.zeros(1 + int(sum(n_tiles)) * 2, np.int64) for _ in range(n_slots)]
        self.slot_counts = [[np.zeros(t, np.int64) for t in n_tiles] for _ in range(n_slots)]
        consumers = [sorted({k for j, k in edges if j == i}) for i in range(n)]
        deps = np.zeros(n, np.int64)
        for j, k in set(edges):
            deps[k] += 1
        cons_ptr = np.cumsum([0] + [len(c) for c in consumers]).astype(np.int64)
        kernels = [any_fail if r == fail_row else i64_count_tiles for r in range(n)]
        self.params = []
        for order, counts in zip(self.orders, self.slot_counts):
            rows = [_row(FAIL, fail_tile=fail_tile) if r == fail_row else
                    _row(COUNT_TILES, order=order.ctypes.data, counts=counts[r].ctypes.data, n_tiles=n_tiles[r],
                         row_id=r)
                    for r in range(n)]
            flat = np.array([v for row in rows for v in row], np.int64)
            offsets = np.cumsum([0] + [len(row) for row in rows[:-1]]).astype(np.int64)
            self.params.append((flat, flat.ctypes.data + 8 * offsets))
        self.tables = dict(
            fn_addr=np.array([k.address for k in kernels], np.int64),
            n_tiles=np.array(n_tiles, np.int64), deps=deps, cons_ptr=cons_ptr,
            cons_idx=np.array([c for cs in consumers for c in cs], np.int64))
        self.counts = self.slot_counts[0]

    def runtime(self, topo, mode=Scheduler.single_stream, work_stealing=True):
        """A running ``Runtime`` over this plan's slots (caller closes it)."""
        self._scratch = [aligned_bytes(64) for _ in topo.cores]
        self.jobs = [Job(self.tables, addrs, len(topo.cores)) for _, addrs in self.params]
        return Runtime(len(self.params), topo, mode, [s.ctypes.data for s in self._scratch], work_stealing)

    def log(self, slot=0):
        return self.orders[slot][1:1 + self.orders[slot][0]]


def _row(layout, **slots):
    """A parameter row of ``layout`` with each named slot set (addresses and ints alike)."""
    row = [0] * type(layout)._size
    for name, value in slots.items():
        row[getattr(layout, name)] = value
    return row


def random_dag(rng, n):
    n_tiles = rng.integers(1, 12, n).tolist()
    edges = [(j, k) for k in range(n) for j in range(k) if rng.random() < 3.0 / (k + 1)]
    return n_tiles, edges


@pytest.fixture(params=[1, None], ids=["1-worker", "all-workers"])
def topo(request):
    return topology.detect().limit(request.param)


def run_once(topo, plan, repeat=1):
    """Run ``repeat`` requests on a fresh runtime; returns the last failed row (or None)."""
    rt = plan.runtime(topo)
    try:
        for _ in range(repeat):
            slot = rt.acquire()
            plan.orders[slot][0] = 0  # the run-order log restarts with each request
            failed = rt.execute(slot, plan.jobs[slot])[0]
            rt.release(slot)
        return failed
    finally:
        assert rt.close(timeout=10)


@pytest.mark.parametrize("seed", range(6))
def test_every_tile_once_and_in_dependency_order(topo, seed):
    rng = np.random.default_rng(seed)
    n_tiles, edges = random_dag(rng, 40)
    plan = SyntheticPlan(n_tiles, edges)
    assert run_once(topo, plan) is None
    for r, c in enumerate(plan.counts):
        np.testing.assert_array_equal(c, 1, err_msg=f"row {r}: tiles ran {c.tolist()} times")
    check_dependency_order(plan.log().tolist(), n_tiles, edges)


def test_repeated_requests_reset_state(topo):
    plan = SyntheticPlan([3, 5, 2], [(0, 1), (1, 2)])
    assert run_once(topo, plan, repeat=50) is None
    for c in plan.counts:
        np.testing.assert_array_equal(c, 50)


def test_failing_kernel_fails_request_and_runtime_keeps_serving(topo):
    bad = SyntheticPlan([4, 6, 4], [(0, 1), (1, 2)], fail_row=1, fail_tile=2)
    assert run_once(topo, bad, repeat=3) == 1
    assert int(bad.counts[0].sum()) == 3 * 4, "each request must run the rows before the failure once"
    assert int(bad.counts[2].sum()) == 0, "a row after the failed one must not run"
    good = SyntheticPlan([4, 6], [(0, 1)])
    assert run_once(topo, good) is None
    for c in good.counts:
        np.testing.assert_array_equal(c, 1)


def test_independent_rows_have_no_false_dependencies(topo):
    # 30 roots, no edges: all are ready at once and every tile still runs once.
    plan = SyntheticPlan([7] * 30, [])
    assert run_once(topo, plan) is None
    assert all((c == 1).all() for c in plan.counts)


def check_dependency_order(log, n_tiles, edges):
    assert len(log) == sum(n_tiles)
    first = {r: log.index(r) for r in range(len(n_tiles))}
    last = {r: len(log) - 1 - log[::-1].index(r) for r in range(len(n_tiles))}
    for j, k in edges:
        assert last[j] < first[k], f"row {k} started before its producer {j} finished"


@pytest.mark.parametrize("mode,stealing", [(Scheduler.multi_stream, True), (Scheduler.multi_stream, False),
                                           (Scheduler.single_stream, True)])
def test_concurrent_requests_on_slots(mode, stealing):
    """8 threads x 25 requests over 3 slots (1 for single_stream): every tile once per request, in order."""
    n_slots = 1 if mode is Scheduler.single_stream else 3
    rng = np.random.default_rng(7)
    n_tiles, edges = random_dag(rng, 25)
    plan = SyntheticPlan(n_tiles, edges, n_slots=n_slots)
    rt = plan.runtime(topology.detect(), mode, stealing)
    errors = []
    served = np.zeros(n_slots, np.int64)

    def caller():
        try:
            for _ in range(25):
                slot = rt.acquire()
                try:
                    plan.orders[slot][0] = 0
                    assert rt.execute(slot, plan.jobs[slot])[0] is None
                    check_dependency_order(plan.log(slot).tolist(), n_tiles, edges)
                    served[slot] += 1
                finally:
                    rt.release(slot)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=caller) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert rt.close(timeout=10)
    assert not any(t.is_alive() for t in threads), "callers hung"
    assert not errors, errors[0]
    assert served.sum() == 200
    for slot in range(n_slots):
        for r, c in enumerate(plan.slot_counts[slot]):
            np.testing.assert_array_equal(c, served[slot], err_msg=f"slot {slot} row {r}")


def test_worker_orders():
    two = Topology((0, 1, 2, 3), ((0, 1), (2, 3)))
    np.testing.assert_array_equal(worker_orders(Scheduler.single_stream, two, 1), [[0, -1]] * 4)
    np.testing.assert_array_equal(worker_orders(Scheduler.multi_stream, two, 2),
                                  [[0, 1, -1], [0, 1, -1], [1, 0, -1], [1, 0, -1]])
    np.testing.assert_array_equal(worker_orders(Scheduler.multi_stream, two, 2, work_stealing=False),
                                  [[0, -1, -1], [0, -1, -1], [1, -1, -1], [1, -1, -1]])
    np.testing.assert_array_equal(worker_orders(Scheduler.elastic, two, 2),
                                  [[0, -1, -1], [0, -1, -1], [1, -1, -1], [1, -1, -1]])
    # more slots than workers: each worker owns every n-th slot, then helps the rest
    np.testing.assert_array_equal(worker_orders(Scheduler.multi_stream, Topology((0, 1), ((0, 1),)), 3),
                                  [[0, 2, 1, -1], [1, 0, 2, -1]])


def test_slot_queue_is_fifo_and_close_fails_waiters():
    q = SlotQueue(1)
    held = q.acquire()
    got, errors = [], []

    def waiter(i):
        try:
            slot = q.acquire()
            got.append(i)
            q.release(slot)
        except Closed:
            errors.append(i)

    threads = []
    for i in range(5):
        threads.append(threading.Thread(target=waiter, args=(i,)))
        threads[-1].start()
        while q._next_ticket != i + 2:  # wait until thread i holds its ticket
            time.sleep(0.001)
    q.release(held)
    for t in threads:
        t.join(10)
    assert got == [0, 1, 2, 3, 4]
    held = q.acquire()
    late = threading.Thread(target=waiter, args=(9,))
    late.start()
    while q._next_ticket != 8:
        time.sleep(0.001)
    assert not q.close(timeout=0.05), "close must wait for the held slot"
    late.join(10)
    assert errors == [9]
    q.release(held)
    assert q.close(timeout=1)
