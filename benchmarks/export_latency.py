"""Single-stream latency of one ONNX transformer export, tilerun against ONNX Runtime, side by side.

    python benchmarks/export_latency.py MODEL.onnx [--seq 128] [--batch 1] [--threads 1 2]

Feeds ``input_ids`` (and ``attention_mask`` / ``token_type_ids`` where the
model has them) of the given shape; both engines run at the same thread
count, timed in alternating blocks (``interleave.alternate``). Prints the
medians and tilerun / ONNX Runtime. Also checks the two outputs agree.
"""
import argparse
import os
import sys

import numpy as np
import onnx

sys.path.insert(0, os.path.dirname(__file__))
from interleave import alternate  # noqa: E402

import tilerun  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--block", type=int, default=5)
    args = ap.parse_args()
    import onnxruntime as ort
    model = onnx.load(args.model)
    names = [i.name for i in model.graph.input]
    rng = np.random.default_rng(0)
    feeds = {"input_ids": rng.integers(0, 100, (args.batch, args.seq)),
             "attention_mask": np.ones((args.batch, args.seq), np.int64),
             "token_type_ids": np.zeros((args.batch, args.seq), np.int64)}
    feeds = {n: feeds[n] for n in names}
    arrays = [feeds[n] for n in names]
    for threads in args.threads:
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        sess = ort.InferenceSession(args.model, so, providers=["CPUExecutionProvider"])
        with tilerun.compile_model(model, num_cores=threads,
                                   input_shapes={n: list(a.shape) for n, a in feeds.items()}) as eng:
            ours, ref = eng.run(arrays)[0], sess.run(None, feeds)[0]
            err = float(np.abs(ours - ref).max())
            t_ours, t_ort = alternate([lambda: eng.run(arrays), lambda: sess.run(None, feeds)], args.rounds, args.block)
        print(f"{os.path.basename(args.model)} batch {args.batch} seq {args.seq} threads {threads}: "
              f"tilerun {t_ours * 1e3:.2f} ms, ONNX Runtime {t_ort * 1e3:.2f} ms, ratio {t_ours / t_ort:.2f} "
              f"(max |diff| {err:.2g})")


if __name__ == "__main__":
    main()
