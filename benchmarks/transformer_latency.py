"""Transformer latency: tilerun against ONNX Runtime on the BERT-style encoder, side by side.

    python benchmarks/transformer_latency.py [--cases base128,small128,base384] [--threads 1,2]
                                             [--rounds 8] [--streams]

For each case and thread count, compiles tilerun (single_stream, ``num_cores``
= threads) and an ONNX Runtime session (default graph optimisations,
``intra_op_num_threads`` = threads, one inter-op thread), checks that their
outputs agree, then times them in alternating half-second windows for ``rounds``
rounds and prints the medians and their ratio (tilerun / ORT; below 1 is
faster). ``--ort-no-spin`` stops ORT's idle threads spinning, which
otherwise take cores from the tilerun run that follows. ``--streams`` adds throughput of tilerun multi_stream with 2 streams
(2 callers) against ORT's better of intra_op 1 x 2 callers and intra_op 2 x 1
caller. Cases: ``base128`` (12 layers x 768, seq 128, batch 1), ``small128``
(4 x 256, seq 128), ``base384`` (12 x 768, seq 384).
"""
import argparse
import os
import pathlib
import threading
import time

os.environ.setdefault("NUMBA_CACHE_DIR", str(pathlib.Path(__file__).resolve().parents[1] / ".numba_cache"))

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402

import tilerun  # noqa: E402
from tilerun.bert_like import bert_like  # noqa: E402

CASES = {"base128": (dict(layers=12, hidden=768, heads=12), 128),
         "small128": (dict(layers=4, hidden=256, heads=4), 128),
         "base384": (dict(layers=12, hidden=768, heads=12), 384)}


def inputs(seq, batch=1, seed=0):
    """``[input_ids, attention_mask]`` with the last eighth of each row masked out."""
    rng = np.random.default_rng(seed)
    mask = np.ones((batch, seq), np.int64)
    mask[:, seq - seq // 8:] = 0
    return [rng.integers(0, 1000, (batch, seq)).astype(np.int64), mask]


ORT_SPIN = ["1"]  # "0": ORT's idle intra-op threads do not spin (its spinning takes cores from the next run)


def ort_session(model, intra):
    """An ONNX Runtime CPU session with default graph optimisations and ``intra`` intra-op threads."""
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = intra, 1
    so.add_session_config_entry("session.intra_op.allow_spinning", ORT_SPIN[0])
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def alternate(fns, rounds, window=0.5):
    """Median seconds per request of each callable, in windows of ``window`` s taken in turn ``rounds`` times.

    The first request of each window is not counted: it runs while the other
    engine's idle threads may still spin (ORT's do, by default, for a while
    after each of its requests), which would charge one engine for the other.
    """
    times = [[] for _ in fns]
    for _ in range(rounds):
        for t, fn in zip(times, fns):
            fn()
            end = time.perf_counter() + window
            while True:
                s = time.perf_counter()
                fn()
                t.append(time.perf_counter() - s)
                if s > end:
                    break
    return [float(np.median(t)) for t in times]


def throughput(fn, callers, seconds=4.0):
    """Requests per second of ``callers`` threads calling ``fn`` for ``seconds``."""
    count, stop = [0] * callers, time.time() + seconds

    def loop(i):
        while time.time() < stop:
            fn()
            count[i] += 1

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(callers)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(count) / (time.time() - t0)


def latency_case(name, threads, rounds):
    """Print tilerun and ORT medians and the ratio for one case at one thread count."""
    kw, seq = CASES[name]
    model, x = bert_like(**kw), inputs(seq)
    sess = ort_session(model, threads)
    feeds = {i.name: a for i, a in zip(sess.get_inputs(), x)}
    with tilerun.compile_model(model, num_cores=threads, input_shapes={"input_ids": [1, seq],
                                                                       "attention_mask": [1, seq]}) as eng:
        ref, got = sess.run(None, feeds)[0], eng.run(x)[0]
        err = float(np.max(np.abs(ref - got)))
        for _ in range(2):
            eng.run(x), sess.run(None, feeds)
        t_tr, t_ort = alternate([lambda: eng.run(x), lambda: sess.run(None, feeds)], rounds)
    print(f"{name:<9} threads={threads}  tilerun {t_tr * 1e3:8.2f} ms  ort {t_ort * 1e3:8.2f} ms  "
          f"ratio {t_tr / t_ort:5.3f}  max|diff| {err:.2e}", flush=True)


def streams_case(name):
    """Print tilerun multi_stream (2 streams, 2 callers) against ORT's best 2-core setup, requests/s."""
    kw, seq = CASES[name]
    model, x = bert_like(**kw), inputs(seq)
    rows = []
    with tilerun.compile_model(model, num_cores=2, scheduler="multi_stream", num_streams=2,
                               input_shapes={"input_ids": [1, seq], "attention_mask": [1, seq]}) as eng:
        eng.run(x)
        rows.append(("tilerun multi_stream 2 streams, 2 callers", throughput(lambda: eng.run(x), 2)))
    for intra, callers in ((1, 2), (2, 1)):
        sess = ort_session(model, intra)
        feeds = {i.name: a for i, a in zip(sess.get_inputs(), x)}
        sess.run(None, feeds)
        rows.append((f"ort intra_op={intra}, {callers} caller(s)",
                     throughput(lambda: sess.run(None, feeds), callers)))
    best = max(r for _, r in rows[1:])
    for label, rate in rows:
        print(f"{name:<9} {label:<44} {rate:8.2f} req/s", flush=True)
    print(f"{name:<9} tilerun / ORT best = {rows[0][1] / best:5.3f}", flush=True)


def main():
    """Parse the flags and run every requested case."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="base128,small128,base384")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--streams", action="store_true")
    ap.add_argument("--no-latency", action="store_true", help="only the --streams throughput")
    ap.add_argument("--ort-no-spin", action="store_true", help="ORT's idle intra-op threads sleep instead of spin")
    args = ap.parse_args()
    ORT_SPIN[0] = "0" if args.ort_no_spin else "1"
    for name in args.cases.split(","):
        for threads in () if args.no_latency else (int(t) for t in args.threads.split(",")):
            latency_case(name, threads, args.rounds)
        if args.streams:
            streams_case(name)


if __name__ == "__main__":
    main()
