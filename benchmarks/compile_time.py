"""Compile time of a light model in fresh processes: empty Numba cache, then warm cache.

``python benchmarks/compile_time.py [MODEL]`` prints, for each case, the
import time, ``compile_model`` time and first-run time, each measured in a
new interpreter (what a user feels at every start).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import onnx, tilerun
from tilerun.models import light_model_path, random_inputs, randomize_weights
t1 = time.perf_counter()
model = randomize_weights(onnx.load(light_model_path(sys.argv[1])), seed=0)
t2 = time.perf_counter()
eng = tilerun.compile_model(model)
t3 = time.perf_counter()
eng.run(random_inputs(eng, 0))
t4 = time.perf_counter()
eng.close()
print(json.dumps({"import_s": t1 - t0, "compile_s": t3 - t2, "first_run_s": t4 - t3}))
"""


def measure(model, cache_dir):
    """Import, compile and first-run seconds of ``model`` in a new process using ``cache_dir``."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    out = subprocess.run([sys.executable, "-c", CHILD, model], env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(model="resnet50"):
    """Print cold (empty cache) and warm (second process, same cache) timings."""
    with tempfile.TemporaryDirectory() as cache:
        for label in ("cold", "warm"):
            r = measure(model, cache)
            print(f"{model} {label}: import {r['import_s']:.2f} s, compile_model {r['compile_s']:.2f} s, "
                  f"first run {r['first_run_s']:.2f} s")


if __name__ == "__main__":
    from tilerun.models import LIGHT_MODELS
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", default="resnet50", choices=LIGHT_MODELS,
                    help="light model of the onnx wheel (default resnet50)")
    main(ap.parse_args().model)
