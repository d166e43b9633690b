"""Peak memory of one process compiling and running a model: tilerun against ONNX Runtime, same harness.

    python benchmarks/memory.py [--runs 5]

Each configuration runs in a fresh process that imports only its own engine,
compiles the model from a file (light ResNet-50 with seeded weights; a
BERT-base-shaped encoder, 12 layers x 768, at batch 1 x seq 128, compiled
with its dims dynamic and at static shapes) and runs it ``--runs`` times
(multi_stream: two requests at once each time); it reports RSS after the import, after the runs,
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
engine, mode, path, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
if "bert" in path:
    ids = np.ones((1, 128), np.int64)
    feeds = {"input_ids": ids, "attention_mask": ids}
else:
    feeds = {"gpu_0/data_0": np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)}
if engine == "onnxruntime":
    import onnxruntime as ort
    base = rss()[0]
    s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    run = lambda: s.run(None, feeds)
else:
    import tilerun
    base = rss()[0]
    shapes = {n: list(a.shape) for n, a in feeds.items()} if mode == "static" else None
    if mode == "multi_stream":  # two requests at once, so both streams bind their arenas
        eng = tilerun.compile_model(path, scheduler="multi_stream", num_streams=2, input_shapes=shapes)
        run = lambda: [f.result() for f in [eng.run_async(list(feeds.values())) for _ in range(2)]]
    else:
        eng = tilerun.compile_model(path, input_shapes=shapes)
        run = lambda: eng.run(list(feeds.values()))
for _ in range(runs):
    run()
now, peak = rss()
print(f"{engine + ' ' + mode:<32} {base:8.0f} {now:11.0f} {peak:9.0f}")
"""

# (engine, how it is compiled) per model: tilerun single_stream / multi_stream as the model declares its
# dims (light ResNet-50: fixed; BERT-style: dynamic batch and sequence), BERT also compiled at its static
# shapes, and ONNX Runtime.
RUNS = {"resnet50": [("tilerun", "single_stream"), ("tilerun", "multi_stream"), ("onnxruntime", "")],
        "bert": [("tilerun", "dynamic"), ("tilerun", "static"), ("onnxruntime", "")]}


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
    from tilerun.bert_like import BERT_BASE, bert_like
    with tempfile.TemporaryDirectory() as d:
        paths = {"resnet50": os.path.join(d, "resnet50.onnx"), "bert": os.path.join(d, "bert_base.onnx")}
        onnx.save(randomize_weights(onnx.load(light_model_path("resnet50"))), paths["resnet50"])
        onnx.save(bert_like(**BERT_BASE), paths["bert"])
        for model, path in paths.items():
            print(f"\n{model}: weights {os.path.getsize(path) / 2**20:.0f} MiB on disk; RSS in MiB")
            print(f"{'engine':<32} {'import':>8} {'after runs':>11} {'peak':>9}")
            for engine, mode in RUNS[model]:
                subprocess.run([sys.executable, "-c", CHILD, engine, mode, path, str(args.runs)], check=True)
    per_shape()


if __name__ == "__main__":
    main()
