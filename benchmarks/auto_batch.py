"""Automatic batching: 8 concurrent callers, tilerun multi_stream with and without it, and ONNX Runtime.

    python benchmarks/auto_batch.py

prints items/s and p50/p99 latency per setup on light squeezenet and a
4-layer BERT-style encoder at seq 32 (2 cores, 4 s per setup).
"""
import os
import pathlib
import threading
import time

os.environ.setdefault("NUMBA_CACHE_DIR", str(pathlib.Path(__file__).resolve().parents[1] / ".numba_cache"))

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402

import tilerun  # noqa: E402
from tilerun.bert_like import bert_like  # noqa: E402
from tilerun.models import light_model_path, randomize_weights  # noqa: E402


CALLERS = 8


def drive(fn, inputs, seconds=4.0, callers=CALLERS):
    """``(items/s, p50 ms, p99 ms)`` of ``callers`` threads calling ``fn(inputs)`` for ``seconds``."""
    latencies, stop, lock = [], time.time() + seconds, threading.Lock()

    def loop():
        while time.time() < stop:
            t = time.perf_counter()
            fn(inputs)
            with lock:
                latencies.append(time.perf_counter() - t)

    threads = [threading.Thread(target=loop) for _ in range(callers)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return (len(latencies) / (time.time() - t0), np.percentile(latencies, 50) * 1e3,
            np.percentile(latencies, 99) * 1e3)


def _cases():
    rng = np.random.default_rng(0)
    return {"squeezenet": (randomize_weights(onnx.load(light_model_path("squeezenet")), seed=0),
                           [rng.standard_normal((1, 3, 224, 224)).astype(np.float32)]),
            "bert4x256/32": (bert_like(layers=4, hidden=256, heads=4),
                             [rng.integers(0, 1000, (1, 32)).astype(np.int64), np.ones((1, 32), np.int64)])}


def _ort(model, intra):
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = intra, 1
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def main():
    """Measure every setup and print the table."""
    print(f"{'model':<14}{'setup (8 callers, 2 cores)':<52}{'items/s':>9}{'p50 ms':>9}{'p99 ms':>9}")
    for name, (model, x) in _cases().items():
        rows = []
        for label, kw in [("tilerun multi_stream, 2 streams", dict(scheduler="multi_stream", num_streams=2)),
                          ("tilerun hint=throughput", dict(hint="throughput", num_requests=CALLERS))]:
            with tilerun.compile_model(model, num_cores=2, **kw) as eng:
                eng.run(x)
                rows.append((f"{label} (auto-batch {eng.config.auto_batch})", drive(eng.run, x)))
        for intra in (1, 2):
            sess = _ort(model, intra)
            feeds = {i.name: a for i, a in zip(sess.get_inputs(), x)}
            rows.append((f"onnxruntime intra_op={intra}", drive(lambda _: sess.run(None, feeds), x)))
        for label, (rate, p50, p99) in rows:
            print(f"{name:<14}{label:<52}{rate:>9.1f}{p50:>9.2f}{p99:>9.2f}", flush=True)


if __name__ == "__main__":
    main()
