"""Concurrent throughput on all cores: tilerun's schedulers against ONNX Runtime's best setups.

Configurations, each driven by as many Python caller threads as it has streams:

* ``single_stream``      one request at a time, split over all cores (callers queue);
* ``multi_stream``       one stream per core, idle workers take tiles of other requests;
* ``multi_stream/fixed`` the same streams as fixed core partitions (work_stealing=False);
* ``... 1 caller``       both multi_stream variants with one caller only: stealing lets
                         a lone request use every core, fixed partitions give it one;
* ``ort 1 session``      one session, intra_op=1, one caller per core;
* ``ort N sessions``     one session per core, intra_op=1, one caller each.

``python benchmarks/test_throughput.py --summary`` runs every configuration in
turn for several short rounds (so drifting machine load hits them all alike)
and prints the median items/s, p50/p99 latency and the ratios.
"""
import os
import pathlib
import statistics
import sys
import threading
import time

os.environ.setdefault("NUMBA_CACHE_DIR", str(pathlib.Path(__file__).resolve().parents[1] / ".numba_cache"))

import numpy as np  # noqa: E402
import onnx  # noqa: E402

import tilerun  # noqa: E402
from tilerun.commands.common import ort_feeds, ort_session  # noqa: E402
from tilerun.models import light_model_path, random_inputs, randomize_weights  # noqa: E402
from tilerun.scheduler import topology  # noqa: E402

MODELS = ("squeezenet", "resnet50")


def _configs(model, cores):
    """name → (list of per-caller request callables, closer)."""
    x = random_inputs(model, seed=0)
    out = {}
    for name, kw in (("single_stream", dict(scheduler="single_stream")),
                     ("multi_stream", dict(scheduler="multi_stream", num_streams=cores)),
                     ("multi_stream/fixed", dict(scheduler="multi_stream", num_streams=cores, work_stealing=False))):
        eng = tilerun.compile_model(model, num_cores=cores, **kw)
        out[name] = ([lambda e=eng: e.run(x)] * cores, eng.close)
        if name != "single_stream":
            out[f"{name} 1 caller"] = ([lambda e=eng: e.run(x)], lambda: None)

    def session():
        s = ort_session(model, 1)
        feeds = ort_feeds(s, x)
        return lambda: s.run(None, feeds)
    shared = session()
    out["ort 1 session"] = ([shared] * cores, lambda: None)
    out[f"ort {cores} sessions"] = ([session() for _ in range(cores)], lambda: None)
    return out


def measure(callers, seconds):
    """Run the callers concurrently for ``seconds``; returns (items/s, list of latencies in s)."""
    lat, stop = [[] for _ in callers], time.perf_counter() + seconds

    def loop(fn, acc):
        while time.perf_counter() < stop:
            t = time.perf_counter()
            fn()
            acc.append(time.perf_counter() - t)
    threads = [threading.Thread(target=loop, args=(fn, acc)) for fn, acc in zip(callers, lat)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flat = [v for acc in lat for v in acc]
    return len(flat) / (time.perf_counter() - t0), flat


def summary(names=MODELS, rounds=5, seconds=2.0):
    """Print items/s and latency per configuration, medians over interleaved rounds."""
    cores = len(topology.detect().cores)
    for name in names:
        model = randomize_weights(onnx.load(light_model_path(name)), seed=0)
        configs = _configs(model, cores)
        for callers, _ in configs.values():
            for fn in set(callers):
                fn()
        rate, lats = {k: [] for k in configs}, {k: [] for k in configs}
        for _ in range(rounds):
            for k, (callers, _) in configs.items():
                r, l = measure(callers, seconds)
                rate[k].append(r)
                lats[k].extend(l)
        for _, close in configs.values():
            close()
        best_ort = max(statistics.median(v) for k, v in rate.items() if k.startswith("ort"))
        print(f"\n{name}: {cores} cores, {rounds} rounds x {seconds} s per configuration")
        print(f"{'configuration':<28}{'items/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'/ best ORT':>12}")
        for k in configs:
            r = statistics.median(rate[k])
            p50, p99 = np.percentile(lats[k], [50, 99]) * 1e3
            print(f"{k:<28}{r:>10.1f}{p50:>9.2f}{p99:>9.2f}{r / best_ort:>12.2f}")


try:
    import pytest
except ImportError:
    pytest = None

if pytest is not None:
    @pytest.mark.parametrize("config", ["single_stream", "multi_stream", "multi_stream/fixed",
                                        "ort 1 session", "ort sessions"])
    @pytest.mark.parametrize("name", MODELS)
    def test_throughput(benchmark, name, config):
        """Seconds per batch of one request per caller (lower is better), all callers concurrent."""
        cores = len(topology.detect().cores)
        model = randomize_weights(onnx.load(light_model_path(name)), seed=0)
        configs = _configs(model, cores)
        key = f"ort {cores} sessions" if config == "ort sessions" else config
        callers, _ = configs[key]
        benchmark.group = f"throughput {name} x{cores}"

        def one_round():
            threads = [threading.Thread(target=fn) for fn in callers]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        try:
            benchmark(one_round)
        finally:
            for _, close in configs.values():
                close()


if __name__ == "__main__":
    if "--summary" in sys.argv:
        summary()
    else:
        print("usage: python benchmarks/test_throughput.py --summary")
