"""Single-stream latency of two tilerun checkouts side by side: is a change speed-neutral?

Each checkout runs in its own process with its own Python (its virtual
environment) and Numba cache; the two serve the same seeded model and input
and are timed in alternating blocks, so both see the same machine load.

    python benchmarks/compare_checkouts.py BEFORE_DIR AFTER_DIR [--threads 2] [--rounds 10] [model ...]

prints per model the median ms of each and after / before. Each DIR must
hold ``.venv/bin/python`` with that checkout installed (``pip install -e .``).
"""
import json
import pathlib
import statistics
import subprocess
import sys

WORKER = r"""
import json, os, sys, time
import onnx, tilerun
from tilerun.models import light_model_path, mobilenet_v2, random_inputs, randomize_weights
threads = int(sys.argv[1])
eng = inputs = None
for line in sys.stdin:
    cmd = json.loads(line)
    if cmd["op"] == "load":
        if eng is not None:
            eng.close()
        name = cmd["model"]
        model = mobilenet_v2(seed=0) if name == "mobilenet_v2" else randomize_weights(onnx.load(light_model_path(name)), seed=0)
        eng = tilerun.compile_model(model, num_cores=threads)
        inputs = random_inputs(eng, seed=0)
        eng.run(inputs)
        print(json.dumps([]), flush=True)
    else:
        time.sleep(0.05)
        eng.run(inputs)
        out = []
        for _ in range(cmd["n"]):
            t = time.perf_counter()
            eng.run(inputs)
            out.append(time.perf_counter() - t)
        print(json.dumps(out), flush=True)
"""


def _worker(checkout, threads):
    d = pathlib.Path(checkout).resolve()
    env = {"NUMBA_CACHE_DIR": str(d / ".numba_cache"), "PATH": "/usr/bin:/bin"}
    return subprocess.Popen([str(d / ".venv/bin/python"), "-c", WORKER, str(threads)], cwd=d, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def _ask(proc, **cmd):
    proc.stdin.write(json.dumps(cmd) + "\n")
    proc.stdin.flush()
    return json.loads(proc.stdout.readline())


def compare(before, after, models, threads=2, rounds=10, block=10):
    """Print median ms of each checkout per model and the ratio after / before."""
    procs = [_worker(before, threads), _worker(after, threads)]
    print(f"threads={threads}  rounds={rounds}x{block}")
    print(f"{'model':<14}{'before ms':>11}{'after ms':>10}{'ratio':>8}")
    try:
        for name in models:
            for p in procs:
                _ask(p, op="load", model=name)
            times = [[], []]
            for _ in range(rounds):
                for p, acc in zip(procs, times):
                    acc += _ask(p, op="run", n=block)
            a, b = (statistics.median(t) * 1e3 for t in times)
            print(f"{name:<14}{a:>11.2f}{b:>10.2f}{b / a:>8.3f}", flush=True)
    finally:
        for p in procs:
            p.stdin.close()
            p.wait()


if __name__ == "__main__":
    args = sys.argv[1:]
    if len(args) < 2 or "--help" in args:
        print(__doc__)
        sys.exit(0 if "--help" in args else 2)
    threads = int(args[args.index("--threads") + 1]) if "--threads" in args else 2
    rounds = int(args[args.index("--rounds") + 1]) if "--rounds" in args else 10
    opts = {"--threads", "--rounds"}
    rest = [a for i, a in enumerate(args[2:], 2) if a not in opts and args[i - 1] not in opts]
    from tilerun.models import LIGHT_MODELS
    compare(args[0], args[1], rest or LIGHT_MODELS + ["mobilenet_v2"], threads, rounds)
