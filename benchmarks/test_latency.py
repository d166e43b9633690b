"""Single-stream latency of each light model: tilerun vs ONNX Runtime, same thread count.

As pytest-benchmark tests, each (model, threads) pair shares a ``benchmark.group``
so the two engines sit side by side.  ``python benchmarks/test_latency.py --summary``
instead measures both engines interleaved in one run and prints a table.
"""
import os
import pathlib
import sys

os.environ.setdefault("NUMBA_CACHE_DIR", str(pathlib.Path(__file__).resolve().parents[1] / ".numba_cache"))

import onnx  # noqa: E402

import tilerun  # noqa: E402
from interleave import alternate  # noqa: E402
from tilerun.commands.common import ort_feeds, ort_session  # noqa: E402
from tilerun.models import LIGHT_MODELS, light_model_path, mobilenet_v2, random_inputs, randomize_weights  # noqa: E402

THREADS = (1, 2)
MODELS = LIGHT_MODELS + ["mobilenet_v2"]


def _model(name):
    if name == "mobilenet_v2":
        return mobilenet_v2(seed=0)
    return randomize_weights(onnx.load(light_model_path(name)), seed=0)


def _ort_runner(model, threads):
    """A zero-argument callable running the model once in ONNX Runtime."""
    s = ort_session(model, threads)
    feeds = ort_feeds(s, random_inputs(model, seed=0))
    return lambda: s.run(None, feeds)


def _tilerun_runner(model, threads):
    """(callable, engine) running the model once in tilerun."""
    eng = tilerun.compile_model(model, num_cores=threads)
    inputs = random_inputs(eng, seed=0)
    return (lambda: eng.run(inputs)), eng


try:
    import pytest
except ImportError:  # summary mode needs no pytest
    pytest = None

if pytest is not None:
    @pytest.mark.parametrize("threads", THREADS)
    @pytest.mark.parametrize("name", MODELS)
    @pytest.mark.parametrize("engine", ["tilerun", "onnxruntime"])
    def test_latency(benchmark, engine, name, threads):
        """Latency of one engine on one model at one thread count."""
        benchmark.group = f"{name} x{threads}"
        model = _model(name)
        if engine == "tilerun":
            fn, eng = _tilerun_runner(model, threads)
            try:
                fn()
                benchmark(fn)
            finally:
                eng.close()
        else:
            fn = _ort_runner(model, threads)
            fn()
            benchmark(fn)


def summary(threads=1, rounds=20, models=None, block=10):
    """Print model, tilerun median ms, ORT median ms and the speed-up (ORT ms / tilerun ms: > 1, tilerun faster).

    The engines alternate in blocks of ``block`` timed runs (``interleave.alternate``).
    """
    print(f"threads={threads}  rounds={rounds}x{block}")
    print(f"{'model':<14}{'tilerun ms':>12}{'ORT ms':>10}{'speed-up':>10}")
    for name in models or MODELS:
        model = _model(name)
        try:
            fn, eng = _tilerun_runner(model, threads)
        except Exception as e:
            print(f"{name:<14}{'n/a':>12}  ({type(e).__name__})")
            continue
        ort_fn = _ort_runner(model, threads)
        ta, tb = (t * 1e3 for t in alternate((fn, ort_fn), rounds, block))
        eng.close()
        print(f"{name:<14}{ta:>12.2f}{tb:>10.2f}{tb / ta:>9.2f}x")


if __name__ == "__main__":
    if "--summary" in sys.argv:
        # optional: --threads 2, --rounds 30, and model names to measure only those
        args = sys.argv[1:]
        threads = [int(args[args.index("--threads") + 1])] if "--threads" in args else THREADS
        rounds = int(args[args.index("--rounds") + 1]) if "--rounds" in args else 20
        names = [a for a in args if a in MODELS]
        for t in threads:
            summary(t, rounds, names)
    else:
        print("usage: python benchmarks/test_latency.py --summary [--threads N] [--rounds R] [model ...]")
