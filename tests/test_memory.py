"""The arena planner, a pure function of buffer lifetimes, on synthetic schedules."""
import numpy as np
import pytest

from tilerun.memory import ALIGN, plan_offsets


def overlaps(a, b):
    return a[0] <= b[1] and b[0] <= a[1]


@pytest.mark.parametrize("seed", range(20))
def test_live_buffers_never_share_bytes(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60))
    lifetimes = []
    for _ in range(n):
        first = int(rng.integers(-1, 40))
        lifetimes.append((first, first + int(rng.integers(0, 10)), int(rng.integers(1, 100_000))))
    offsets, total = plan_offsets(lifetimes)
    for i, (f, l, size) in enumerate(lifetimes):
        assert offsets[i] % ALIGN == 0
        assert offsets[i] + size <= total
        for j in range(i):
            if overlaps(lifetimes[i][:2], lifetimes[j][:2]):
                a = (offsets[i], offsets[i] + size)
                b = (offsets[j], offsets[j] + lifetimes[j][2])
                assert a[1] <= b[0] or b[1] <= a[0], f"buffers {i} and {j} overlap while both live"


def test_dead_buffers_are_reused():
    # A chain a → b → c → d: each buffer dies when the next is written, so two slots suffice.
    lifetimes = [(0, 1, 1000), (1, 2, 1000), (2, 3, 1000), (3, 4, 1000)]
    offsets, total = plan_offsets(lifetimes)
    assert total == 2 * 1024
    assert offsets[0] == offsets[2] and offsets[1] == offsets[3]


def test_empty_schedule():
    assert plan_offsets([]) == ([], 0)
