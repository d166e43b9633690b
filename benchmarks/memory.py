"""Peak memory of one process compiling and running a model: tilerun against ONNX Runtime, same harness.

    python benchmarks/memory.py [--runs 5]

Each configuration runs in a fresh process that imports only its own engine,
compiles light ResNet-50 (seeded weights, saved to a file first) from the file
and runs it ``--runs`` times (multi_stream: two requests at once each time); it reports RSS after the import, after the runs,
and the peak (``VmHWM``). Then, for a BERT-style encoder compiled with dynamic
dims, what each new shape's plan adds: RSS and the arena bytes it binds.
"""
import argparse
import os
import pathlib
import subprocess
import sys
import tempfile

os.environ.setdefault("NUMBA_CACHE_DIR", str(pathlib.Path(__file__).resolve().parents[1] / ".numba_cache"))

CHILD = r"""
import sys, numpy as np
def rss():
    d = dict(l.split(":", 1) for l in open("/proc/self/status"))
    return int(d["VmRSS"].split()[0]) / 1024, int(d["VmHWM"].split()[0]) / 1024
mode, path, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
if mode == "onnxruntime":
    import onnxruntime as ort
    base = rss()[0]
    s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    run = lambda: s.run(None, {s.get_inputs()[0].name: x})
else:
    import tilerun
    base = rss()[0]
    if mode == "single_stream":
        eng = tilerun.compile_model(path)
        run = lambda: eng.run([x])
    else:  # two requests at once, so both streams bind their arenas
        eng = tilerun.compile_model(path, scheduler="multi_stream", num_streams=2)
        run = lambda: [f.result() for f in [eng.run_async([x]), eng.run_async([x])]]
for _ in range(runs):
    run()
now, peak = rss()
print(f"{mode:<26} {base:8.0f} {now:11.0f} {peak:9.0f}")
"""


def per_shape():
    """RSS and arena added by each new shape's plan of a dynamic BERT-style engine."""
    import numpy as np
    import tilerun
    from tilerun.bert_like import bert_like

    def rss():
        d = dict(line.split(":", 1) for line in open("/proc/self/status"))
        return int(d["VmRSS"].split()[0]) / 1024

    print("\nBERT-style 4 layers x 256, dynamic [batch, seq], single_stream: what each new shape adds")
    print(f"{'shape':<12} {'RSS MiB':>8} {'added':>7} {'arena MiB':>10}")
    with tilerun.compile_model(bert_like()) as eng:
        before = rss()
        for batch, seq in [(1, 16), (1, 128), (4, 128), (8, 384)]:
            ids = np.ones((batch, seq), np.int64)
            eng.run([ids, ids])
            sp = eng._plans.cached()[-1][1]
            now = rss()
            print(f"{batch}x{seq:<10} {now:8.0f} {now - before:7.0f} {sp.arena_bytes() / 2**20:10.1f}")
            before = now


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    import onnx
    from tilerun.models import light_model_path, randomize_weights
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "resnet50.onnx")
        onnx.save(randomize_weights(onnx.load(light_model_path("resnet50"))), path)
        print(f"light ResNet-50, weights {os.path.getsize(path) / 2**20:.0f} MiB on disk; RSS in MiB")
        print(f"{'engine':<26} {'import':>8} {'after runs':>11} {'peak':>9}")
        for mode in ("single_stream", "multi_stream (2 streams)", "onnxruntime"):
            subprocess.run([sys.executable, "-c", CHILD, mode.split()[0], path, str(args.runs)], check=True)
    per_shape()


if __name__ == "__main__":
    main()
