"""Elementwise ops whose broadcast collapses to one long row: 2 cores against the same plan unsplit, 1 core, ORT.

A same-shape binary op or one with a scalar operand collapses to a single
row; ``split_long_row`` splits it so its tiles spread over the workers. Each
case is the op followed by a ``ReduceMax`` (so the output copied back is one
float), timed in alternating blocks (``interleave.alternate``): tilerun at 2
cores as compiled, at 2 cores with the row left whole (``split_long_row``
replaced while compiling that engine), at 1 core, and ONNX Runtime at 2
threads.

    python benchmarks/long_rows.py [--rounds 9] [--block 20]
"""
import argparse
import os
import pathlib
import sys

os.environ.setdefault("NUMBA_CACHE_DIR", str(pathlib.Path(__file__).resolve().parents[1] / ".numba_cache"))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
from onnx import helper  # noqa: E402

import tilerun  # noqa: E402
import tilerun.ops.elementwise as elementwise  # noqa: E402
from interleave import alternate  # noqa: E402

CASES = [("Add", (1, 256, 56, 56), (1, 256, 56, 56)), ("Div", (4, 512, 3072), (1,))]


def case_model(op, sa, sb):
    """A ModelProto: ``ReduceMax(a op b)`` to one float."""
    f = onnx.TensorProto.FLOAT
    g = helper.make_graph([helper.make_node(op, ["a", "b"], ["y"]),
                           helper.make_node("ReduceMax", ["y"], ["z"], keepdims=0)], "long_row",
                          [helper.make_tensor_value_info("a", f, sa), helper.make_tensor_value_info("b", f, sb)],
                          [helper.make_tensor_value_info("z", f, None)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    return m


def unsplit_engine(model):
    """``model`` compiled for 2 cores with every long row left whole (the plan before ``split_long_row``)."""
    split = elementwise.split_long_row
    elementwise.split_long_row = lambda dims, strides, longest=0: (dims, strides)
    try:
        return tilerun.compile_model(model, num_cores=2)
    finally:
        elementwise.split_long_row = split


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--block", type=int, default=20)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    for op, sa, sb in CASES:
        m = case_model(op, sa, sb)
        a, b = rng.random(sa, np.float32), rng.random(sb, np.float32) + 1
        so = ort.SessionOptions()
        so.intra_op_num_threads = 2
        sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
        engines = [tilerun.compile_model(m, num_cores=2), unsplit_engine(m), tilerun.compile_model(m, num_cores=1)]
        calls = [lambda e=e: e.run([a, b]) for e in engines] + [lambda: sess.run(None, {"a": a, "b": b})]
        split, whole, one, ref = alternate(calls, args.rounds, args.block)
        print(f"{op} {list(sa)} {list(sb)}: 2 cores {split * 1e6:.0f} us, unsplit {whole * 1e6:.0f} "
              f"({split / whole:.2f}), 1 core {one * 1e6:.0f}, ORT 2 threads {ref * 1e6:.0f} ({split / ref:.2f})")


if __name__ == "__main__":
    main()
