"""Dynamic shapes: time to build the plan of a new shape, and later requests against a fixed-shape engine.

    python benchmarks/plan_build.py [--threads 2] [--rounds 10]

For light ResNet-50 (compiled with ``batch_size=4``: any batch up to 4) and a
4-layer BERT-style encoder (symbolic batch and sequence): the first request at
a shape not seen before, split into plan building and running (kernels
already compiled), then the median latency of later requests at that shape
beside an engine compiled for that shape alone, alternating in one run.
"""
import os
import pathlib
import statistics
import sys
import time

os.environ.setdefault("NUMBA_CACHE_DIR", str(pathlib.Path(__file__).resolve().parents[1] / ".numba_cache"))

import numpy as np  # noqa: E402

import tilerun  # noqa: E402
from interleave import alternate  # noqa: E402
from tilerun.bert_like import bert_like  # noqa: E402
from tilerun.models import default_model  # noqa: E402


def _bert_inputs(batch, seq):
    rng = np.random.default_rng(0)
    return [rng.integers(0, 1000, (batch, seq)).astype(np.int64), np.ones((batch, seq), np.int64)]


CASES = [
    ("resnet50", default_model, dict(batch_size=4),
     lambda: [np.random.default_rng(0).standard_normal((2, 3, 224, 224)).astype(np.float32)],
     lambda x: {"input_shapes": {"gpu_0/data_0": list(x[0].shape)}}),
    ("bert4x256 seq128", lambda: bert_like(layers=4, hidden=256, heads=4), {}, lambda: _bert_inputs(1, 128),
     lambda x: {"input_shapes": {"input_ids": [1, 128], "attention_mask": [1, 128]}}),
]


def measure(threads, rounds):
    """Print, per case, plan-build ms of a new shape, first-run ms, and dynamic/fixed latency."""
    print(f"threads={threads}  rounds={rounds}x10")
    print(f"{'model':<18}{'build ms':>10}{'1st run ms':>12}{'dynamic ms':>12}{'fixed ms':>10}{'ratio':>8}")
    for name, make, kwargs, inputs, fixed_kwargs in CASES:
        model, x = make(), inputs()
        with tilerun.compile_model(model, num_cores=threads, **kwargs) as dyn, \
                tilerun.compile_model(model, num_cores=threads, **fixed_kwargs(x)) as fixed:
            fixed.run(x)  # compiles (or loads) every kernel both engines use
            shapes = tuple(tuple(a.shape) for a in x)
            t = time.perf_counter()
            dyn._plans.get(shapes)
            build = time.perf_counter() - t
            t = time.perf_counter()
            dyn.run(x)
            first = time.perf_counter() - t
            a, b = alternate((lambda: dyn.run(x), lambda: fixed.run(x)), rounds, 10)
        print(f"{name:<18}{build * 1e3:>10.0f}{first * 1e3:>12.1f}{a * 1e3:>12.2f}{b * 1e3:>10.2f}{a / b:>8.3f}",
              flush=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    if "--help" in args:
        print(__doc__)
        sys.exit(0)
    measure(int(args[args.index("--threads") + 1]) if "--threads" in args else 2,
            int(args[args.index("--rounds") + 1]) if "--rounds" in args else 10)
