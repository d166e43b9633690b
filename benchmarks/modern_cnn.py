"""Modern CNN graphs (MobileNetV3-small, EfficientNet-B0, RegNetY-400MF) and the light models: tilerun vs ORT.

``python benchmarks/modern_cnn.py [names...] [--rounds N] [--windows N]`` prints,
per model (default: the modern graphs; any of ``tilerun.models.LIGHT_MODELS``
may be named too, run with seeded random weights), from one process:

* latency at 1 and 2 threads, tilerun and ORT alternating in blocks
  (``interleave.alternate``): medians and tilerun / ORT ratios, and tilerun's
  2-core / 1-core ratio; OpenVINO FP32 joins the alternation when the
  ``openvino`` package is installed (``pip install openvino``: a benchmark
  peer, never a tilerun dependency; ``--no-openvino`` leaves it out);
* stability at 2 threads: ``--windows`` 0.5 s windows of each engine (a
  tilerun window, then an ORT window, in turn, so a slow phase of the host
  hits both, each after ``interleave.PAUSE_S``), the median latency of each
  window, and the spread (max / min) of those medians;
* throughput with 2 callers: tilerun ``multi_stream`` (2 streams) against
  ORT's best 2-core setup (one session at 2 threads with 1 caller, one
  session at 1 thread with 2 callers, two 1-thread sessions).

The machine may be shared: numbers are noisy; rerun before trusting a ratio.
"""
import argparse
import os
import pathlib
import statistics
import sys
import tempfile
import time

os.environ.setdefault("NUMBA_CACHE_DIR", str(pathlib.Path(__file__).resolve().parents[1] / ".numba_cache"))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import onnx  # noqa: E402

import tilerun  # noqa: E402
from interleave import PAUSE_S, alternate  # noqa: E402
from test_throughput import measure  # noqa: E402
from tilerun.commands.common import ort_feeds, ort_session  # noqa: E402
from tilerun.models import (LIGHT_MODELS, MODERN_CNNS, light_model_path, random_inputs,  # noqa: E402
                            randomize_weights)

WINDOW_S = 0.5


def _ort(model, threads, x):
    s = ort_session(model, threads)
    feeds = ort_feeds(s, x)
    return lambda: s.run(None, feeds)


def _openvino(model, threads, x):
    """A call of ``model`` compiled by OpenVINO for its CPU at ``threads`` threads in FP32 (latency hint,
    one stream), or None when ``openvino`` is not installed."""
    try:
        import openvino as ov
    except ImportError:
        return None
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "model.onnx")
        onnx.save(model, path)
        compiled = ov.Core().compile_model(path, "CPU", {"INFERENCE_NUM_THREADS": threads,
                                                         "INFERENCE_PRECISION_HINT": "f32",
                                                         "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1})
    req = compiled.create_infer_request()
    feeds = dict(enumerate(x))
    return lambda: req.infer(feeds)


def _windows(fn, n, seconds=WINDOW_S):
    """Median latency (s) of each of ``n`` consecutive ``seconds``-long windows of back-to-back calls."""
    out = []
    for _ in range(n):
        lat, stop = [], time.perf_counter() + seconds
        while time.perf_counter() < stop:
            t = time.perf_counter()
            fn()
            lat.append(time.perf_counter() - t)
        out.append(statistics.median(lat))
    return out


def latency(model, x, rounds, block, openvino=True):
    """``{threads: (tilerun s, ort s, openvino s or None)}`` medians at 1 and 2 threads, all alternating."""
    engs = {t: tilerun.compile_model(model, num_cores=t) for t in (1, 2)}
    fns = []
    for t in (1, 2):
        fns += [lambda e=engs[t]: e.run(x), _ort(model, t, x)]
        ov = _openvino(model, t, x) if openvino else None
        if ov is not None:
            fns.append(ov)
    med = alternate(fns, rounds, block)
    for e in engs.values():
        e.close()
    per = len(fns) // 2
    return {t: tuple(med[i * per:(i + 1) * per]) + (None,) * (3 - per) for i, t in enumerate((1, 2))}


def stability(model, x, n_windows):
    """(tilerun window medians, ORT window medians) at 2 threads, ``n_windows`` each, one window of each in turn.

    This host slows both engines at once for seconds at a time (2-core requests at about 1-core speed): in
    halves of 10 windows such a phase fell on one engine's half and decided the spreads; window by window it
    falls on both (``benchmarks/README.md``, fourteenth session).
    """
    eng = tilerun.compile_model(model, num_cores=2)
    fns = [lambda: eng.run(x), _ort(model, 2, x)]
    for f in fns:
        f()
    out = [[], []]
    for _ in range(n_windows):
        for f, acc in zip(fns, out):
            time.sleep(PAUSE_S)  # the other engine's threads settle first (``interleave.PAUSE_S``)
            acc += _windows(f, 1)
    eng.close()
    return out


def throughput(model, x, seconds, rounds):
    """Items/s (medians over rounds): tilerun multi_stream with 2 callers and each ORT 2-core setup."""
    eng = tilerun.compile_model(model, num_cores=2, scheduler="multi_stream", num_streams=2)
    shared = _ort(model, 1, x)
    configs = {"tilerun multi_stream": [lambda: eng.run(x)] * 2,
               "ort 1 session x2 threads": [_ort(model, 2, x)],
               "ort 1 session, 2 callers": [shared] * 2,
               "ort 2 sessions": [_ort(model, 1, x), _ort(model, 1, x)]}
    for callers in configs.values():
        for f in set(callers):
            f()
    rates = {k: [] for k in configs}
    for _ in range(rounds):
        for k, callers in configs.items():
            time.sleep(PAUSE_S)
            rates[k].append(measure(callers, seconds)[0])
    eng.close()
    return {k: statistics.median(v) for k, v in rates.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", default=sorted(MODERN_CNNS))
    ap.add_argument("--rounds", type=int, default=7, help="alternating latency rounds (default 7)")
    ap.add_argument("--block", type=int, default=10, help="timed calls per engine per round (default 10)")
    ap.add_argument("--windows", type=int, default=20, help="0.5 s stability windows per engine (default 20)")
    ap.add_argument("--tput-seconds", type=float, default=1.0, help="seconds per throughput round (default 1)")
    ap.add_argument("--tput-rounds", type=int, default=3, help="throughput rounds (default 3)")
    ap.add_argument("--no-openvino", action="store_true", help="leave OpenVINO out of the latency rounds")
    args = ap.parse_args(argv)
    for name in args.names:
        if name in MODERN_CNNS:
            model = MODERN_CNNS[name](seed=0)
        elif name in LIGHT_MODELS:
            model = randomize_weights(onnx.load(light_model_path(name)), seed=0)
        else:
            ap.error(f"unknown model {name!r}: expected one of {sorted(MODERN_CNNS) + LIGHT_MODELS}")
        x = random_inputs(model, seed=0)
        print(f"\n== {name}", flush=True)
        lat = latency(model, x, args.rounds, args.block, not args.no_openvino)
        for t, (tr, ort, ov) in lat.items():
            peer = f"  openvino {ov * 1e3:.2f} ms  tilerun/openvino {tr / ov:.2f}" if ov else ""
            print(f"latency x{t}: tilerun {tr * 1e3:.2f} ms  ort {ort * 1e3:.2f} ms  tilerun/ort {tr / ort:.2f}{peer}")
        print(f"tilerun 2 cores / 1 core: {lat[2][0] / lat[1][0]:.2f}   ort: {lat[2][1] / lat[1][1]:.2f}", flush=True)
        if args.windows:
            tw, ow = stability(model, x, args.windows)
            for label, w in (("tilerun", tw), ("ort", ow)):
                print(f"windows x2 {label:8s} " + " ".join(f"{v * 1e3:.2f}" for v in w))
                print(f"  median {statistics.median(w) * 1e3:.2f} ms  spread max/min {max(w) / min(w):.2f}")
        if args.tput_rounds:
            rates = throughput(model, x, args.tput_seconds, args.tput_rounds)
            best = max(v for k, v in rates.items() if k.startswith("ort"))
            for k, v in rates.items():
                print(f"throughput {k:<26s} {v:8.1f}/s  / ORT best {v / best:.2f}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
