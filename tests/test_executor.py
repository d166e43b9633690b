"""The tile executor on synthetic plans of diagnostic kernels, on 1 and on every worker.

Each plan is a random DAG of rows; the diagnostic kernel counts every tile and
logs its row in run order. The executor must run every tile exactly once, in
bounds, and never start a row before all of its producers finished.
"""
import numpy as np
import pytest

from tilerun.kernels.abi import kernel_address
from tilerun.plan import aligned_bytes
from tilerun.scheduler import topology
from tilerun.scheduler.policies import SingleStream, Stream
from tilerun.scheduler.pool import WorkerPool


class SyntheticPlan:
    """Executor tables for rows of ``i64_count_tiles`` (or ``any_fail``) over a given DAG."""

    def __init__(self, n_tiles, edges, fail_row=None, fail_tile=0):
        n = len(n_tiles)
        self.order = np.zeros(1 + int(sum(n_tiles)) * 2, np.int64)
        self.counts = [np.zeros(t, np.int64) for t in n_tiles]
        consumers = [sorted({k for j, k in edges if j == i}) for i in range(n)]
        deps = np.zeros(n, np.int64)
        for j, k in set(edges):
            deps[k] += 1
        cons_ptr = np.cumsum([0] + [len(c) for c in consumers]).astype(np.int64)
        kernels = ["any_fail" if r == fail_row else "i64_count_tiles" for r in range(n)]
        self.rows = []
        for r in range(n):
            self.rows.append([fail_tile] if r == fail_row else
                             [self.order.ctypes.data, self.counts[r].ctypes.data, n_tiles[r], r])
        self.arena_size = 64
        self.tables = dict(
            fn_addr=np.array([kernel_address(k) for k in kernels], np.int64),
            n_tiles=np.array(n_tiles, np.int64), deps=deps, cons_ptr=cons_ptr,
            cons_idx=np.array([c for cs in consumers for c in cs], np.int64),
            param_offsets=np.cumsum([0] + [len(r) for r in self.rows]).astype(np.int64))

    def bind(self, arena):
        return np.array([v for r in self.rows for v in r], np.int64)

    def log(self):
        return self.order[1:1 + self.order[0]]


def random_dag(rng, n):
    n_tiles = rng.integers(1, 12, n).tolist()
    edges = [(j, k) for k in range(n) for j in range(k) if rng.random() < 3.0 / (k + 1)]
    return n_tiles, edges


@pytest.fixture(params=[1, None], ids=["1-worker", "all-workers"])
def pool(request):
    topo = topology.detect().limit(request.param)
    p = WorkerPool(topo.cores)
    yield p
    p.close()


def run_once(pool, plan):
    scratch = [aligned_bytes(64) for _ in range(pool.size)]
    policy = SingleStream(pool, Stream(plan, aligned_bytes), [s.ctypes.data for s in scratch])
    def load(arena):
        plan.order[0] = 0  # the run-order log restarts with each request
    return policy.submit(load, lambda arena: "ok")


@pytest.mark.parametrize("seed", range(6))
def test_every_tile_once_and_in_dependency_order(pool, seed):
    rng = np.random.default_rng(seed)
    n_tiles, edges = random_dag(rng, 40)
    plan = SyntheticPlan(n_tiles, edges)
    failed, out = run_once(pool, plan)
    assert failed is None and out == "ok"
    for r, c in enumerate(plan.counts):
        np.testing.assert_array_equal(c, 1, err_msg=f"row {r}: tiles ran {c.tolist()} times")
    log = plan.log().tolist()
    assert len(log) == sum(n_tiles)
    first = {r: log.index(r) for r in range(len(n_tiles))}
    last = {r: len(log) - 1 - log[::-1].index(r) for r in range(len(n_tiles))}
    for j, k in edges:
        assert last[j] < first[k], f"row {k} started before its producer {j} finished"


def test_repeated_requests_reset_state(pool):
    plan = SyntheticPlan([3, 5, 2], [(0, 1), (1, 2)])
    for _ in range(50):
        assert run_once(pool, plan)[0] is None
    for c in plan.counts:
        np.testing.assert_array_equal(c, 50)


def test_failing_kernel_fails_request_and_pool_keeps_serving(pool):
    bad = SyntheticPlan([4, 6, 4], [(0, 1), (1, 2)], fail_row=1, fail_tile=2)
    failed, out = run_once(pool, bad)
    assert failed == 1 and out is None
    assert plan_counts_of_row(bad, 2) == 0, "a row after the failed one must not run"
    good = SyntheticPlan([4, 6], [(0, 1)])
    assert run_once(pool, good)[0] is None
    for c in good.counts:
        np.testing.assert_array_equal(c, 1)


def plan_counts_of_row(plan, r):
    return int(plan.counts[r].sum())


def test_independent_rows_have_no_false_dependencies(pool):
    # 30 roots, no edges: all are ready at once and every tile still runs once.
    plan = SyntheticPlan([7] * 30, [])
    assert run_once(pool, plan)[0] is None
    assert all((c == 1).all() for c in plan.counts)
