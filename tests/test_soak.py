"""Soak: 20,000 requests on multi_stream from 8 threads; every result correct, memory flat.

Resident memory is read after a 1,000-request warm-up and again at the end;
it may grow by less than 2% (outputs are fresh arrays each request, so a leak
of per-request state would show).
"""
import threading

import numpy as np
import psutil
import pytest

import tilerun
from test_scheduler import small_convnet

pytestmark = pytest.mark.slow

F = np.float32
THREADS, TOTAL, WARMUP = 8, 20_000, 1_000


def test_soak_multi_stream_20k_requests():
    rng = np.random.default_rng(11)
    inputs = [rng.standard_normal((1, 3, 24, 24)).astype(F) for _ in range(32)]
    proc = psutil.Process()
    with tilerun.compile_model(small_convnet(), scheduler="multi_stream") as eng:
        want = [eng.run([x])[0] for x in inputs]
        counter = iter(range(TOTAL))
        lock = threading.Lock()
        wrong, errors, rss = [], [], {}

        def caller():
            while True:
                with lock:
                    k = next(counter, None)
                    if k == WARMUP:
                        rss["warm"] = proc.memory_info().rss
                if k is None:
                    return
                try:
                    out = eng.run_async([inputs[k % 32]]).result(timeout=60) if k % 2 else eng.run([inputs[k % 32]])
                    if not np.array_equal(out[0], want[k % 32]):
                        wrong.append(k)
                except BaseException as e:
                    errors.append(e)
                    return

        threads = [threading.Thread(target=caller) for _ in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(600)
        assert not any(t.is_alive() for t in threads), "soak did not finish"
        end_rss = proc.memory_info().rss
    assert not errors, repr(errors[0])
    assert not wrong, f"{len(wrong)} of {TOTAL} results differ"
    growth = (end_rss - rss["warm"]) / rss["warm"]
    print(f"soak: {TOTAL} requests, 0 errors, RSS {rss['warm'] / 2**20:.1f} MiB at {WARMUP}, "
          f"{end_rss / 2**20:.1f} MiB at {TOTAL} ({growth:+.2%})")
    assert growth < 0.02, f"RSS grew {growth:.2%} from {WARMUP} to {TOTAL} requests"
