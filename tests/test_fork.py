"""An engine used in a fork()ed child serves with workers of its own, never hangs.

The workers are threads of the process that compiled the engine; a child of
``os.fork()`` (gunicorn ``--preload``, multiprocessing's ``fork`` start
method) has none of them. Each test forks, runs requests in the child, and
reports through the exit code; a child still alive after the deadline is
killed and the test fails as a hang.
"""
import os
import threading
import time

import numpy as np
import pytest

import tilerun
from test_api import relu_model

DEADLINE_S = 60


def _in_child(job):
    """Run ``job()`` in a fork()ed child; its exit code (0: passed), or fail on a hang."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = 0 if job() else 3
        except BaseException as e:
            os.write(2, f"child failed: {type(e).__name__}: {e}\n".encode())
        finally:
            os._exit(code)
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    pytest.fail(f"the fork()ed child hung for {DEADLINE_S} s")


@pytest.mark.parametrize("scheduler", ["single_stream", "multi_stream", "elastic"])
def test_child_runs_the_parents_engine(scheduler):
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 4)).astype(np.float32)
    with tilerun.compile_model(relu_model(), batch_size=2, scheduler=scheduler) as eng:
        expected = eng.run([x])[0]

        def job():
            ok = all(np.array_equal(eng.run([x])[0], expected) for _ in range(3))
            ok &= np.array_equal(eng.run_async([x]).result(timeout=30)[0], expected)
            t0 = time.monotonic()
            ok &= eng.close(timeout=10) and time.monotonic() - t0 < 5
            return ok
        assert _in_child(job) == 0
        np.testing.assert_array_equal(eng.run([x])[0], expected)  # the parent is untouched


def test_fork_while_the_parent_has_requests_in_flight():
    x = np.random.default_rng(1).standard_normal((2, 3, 4, 4)).astype(np.float32)
    with tilerun.compile_model(relu_model(), batch_size=2, scheduler="multi_stream", num_streams=2) as eng:
        expected = eng.run([x])[0]
        stop = threading.Event()
        errors = []

        def hammer():
            while not stop.is_set():
                if not np.array_equal(eng.run([x])[0], expected):
                    errors.append("wrong output")
        threads = [threading.Thread(target=hammer) for _ in range(3)]
        for t in threads:
            t.start()
        try:
            time.sleep(0.05)
            codes = [_in_child(lambda: all(np.array_equal(eng.run([x])[0], expected) for _ in range(5)))
                     for _ in range(3)]
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        assert codes == [0, 0, 0] and not errors


def test_child_of_a_closed_engine_gets_a_clear_error():
    eng = tilerun.compile_model(relu_model(), batch_size=2)
    eng.close()
    x = np.ones((2, 3, 4, 4), np.float32)

    def job():
        try:
            eng.run([x])
        except tilerun.RequestError as e:
            return "closed" in str(e)
        return False
    assert _in_child(job) == 0


def test_child_that_never_runs_exits_promptly():
    with tilerun.compile_model(relu_model(), batch_size=2, scheduler="multi_stream") as eng:
        eng.run([np.ones((2, 3, 4, 4), np.float32)])
        assert _in_child(lambda: eng.close(timeout=5)) == 0
