"""single_stream's choice of tiling against a 1-core engine and a 2-core engine that always splits.

``python benchmarks/tiling_choice.py [MODEL] [--windows N]`` (default
``mobilenet_v3_small``, 80 windows; any of ``tilerun.models.MODERN_CNNS``
or ``LIGHT_MODELS``) runs, in turn, 0.5 s windows of three engines in one
process: 1 core; 2 cores with every request split over both workers; 2
cores choosing per request (``tilerun.scheduler.tiling_choice``). It prints
each window's median latency, then medians over the windows where the split
engine ran slower than the 1-core one and over the others, each engine's
window spread (max / min) and how many of its windows were slower than the
1-core engine's.
"""
import argparse
import os
import pathlib
import statistics
import sys
import time

os.environ.setdefault("NUMBA_CACHE_DIR", str(pathlib.Path(__file__).resolve().parents[1] / ".numba_cache"))

import onnx  # noqa: E402

import tilerun  # noqa: E402
from tilerun.models import LIGHT_MODELS, MODERN_CNNS, light_model_path, random_inputs, randomize_weights  # noqa: E402
from tilerun.scheduler.tiling_choice import SPLIT  # noqa: E402

LABELS = ("1 core", "2 cores split", "2 cores choosing")


def _window(engine, x, seconds=0.5):
    times = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        engine.run(x)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", default="mobilenet_v3_small")
    ap.add_argument("--windows", type=int, default=80, help="0.5 s windows per engine (default 80)")
    args = ap.parse_args(argv)
    if args.model in MODERN_CNNS:
        model = MODERN_CNNS[args.model](seed=0)
    elif args.model in LIGHT_MODELS:
        model = randomize_weights(onnx.load(light_model_path(args.model)), seed=0)
    else:
        ap.error(f"unknown model {args.model!r}: expected one of {sorted(MODERN_CNNS) + LIGHT_MODELS}")
    x = random_inputs(model, seed=0)
    engines = [tilerun.compile_model(model, num_cores=1), tilerun.compile_model(model, num_cores=2),
               tilerun.compile_model(model, num_cores=2)]
    engines[1]._static.choice.pick = lambda: SPLIT  # this one never leaves the split plan
    for e in engines:
        for _ in range(5):
            e.run(x)
    rows = []
    for i in range(args.windows):
        row = []
        for e in engines:
            time.sleep(0.05)
            row.append(_window(e, x))
        rows.append(row)
        print(f"{i:3d}  " + "  ".join(f"{label} {v:.2f}" for label, v in zip(LABELS, row)), flush=True)
    for title, keep in (("split slower than 1 core", lambda r: r[1] > r[0]), ("the others", lambda r: r[1] <= r[0])):
        sel = [r for r in rows if keep(r)]
        if sel:
            print(f"{title}: {len(sel)} windows, medians " +
                  ", ".join(f"{label} {statistics.median(r[k] for r in sel):.2f} ms" for k, label in enumerate(LABELS)))
    for k in (1, 2):
        w = [r[k] for r in rows]
        print(f"{LABELS[k]}: window spread {max(w) / min(w):.2f}, windows slower than 1 core: "
              f"{sum(r[k] > r[0] for r in rows)} of {len(rows)}")
    for e in engines:
        e.close()


if __name__ == "__main__":
    sys.exit(main())
