"""Timing two engines side by side on a shared, noisy machine."""
import statistics
import time

# Seconds between one engine's timed calls and another's: longer than ONNX Runtime's intra-op threads busy-wait
# after a run, so one engine's threads never hold the cores while the other is timed (benchmarks/README.md,
# fifteenth session, has the measurement).
PAUSE_S = 0.15


def alternate(fns, rounds, block, pause=PAUSE_S):
    """Median seconds per call of each of ``fns``, timed in alternating blocks.

    Each round runs every function for ``block`` timed calls, so all see the
    same machine load. A block starts after a ``pause`` and one untimed call:
    ONNX Runtime's threads busy-wait for a while after a run (``PAUSE_S``), and timing one
    engine while the other's threads still hold the cores would measure them.
    """
    times = [[] for _ in fns]
    for _ in range(rounds):
        for f, acc in zip(fns, times):
            time.sleep(pause)
            f()
            for _ in range(block):
                t = time.perf_counter()
                f()
                acc.append(time.perf_counter() - t)
    return [statistics.median(t) for t in times]
