"""Single ops on large tensors at 1 and 2 cores, tilerun beside ONNX Runtime: which ops gain from a second core.

Each case is one op (or a short chain) on a tensor of about a million floats,
compiled for 1 and 2 cores; ONNX Runtime runs the same model at 1 and 2
threads. Timed in alternating blocks (``interleave.alternate``). Prints each
case's tile count at 2 cores (from ``Engine.trace``), the four medians, tilerun's
2-core / 1-core ratio (above 1: the second core made it slower) and tilerun /
ORT at 2 cores. The times include what ``Engine.run`` does around the tiles
(binding the inputs; copying back an output not written into the request's
own array).

    python benchmarks/op_scaling.py [--rounds 5] [--block 10] [--only SUBSTRING]
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
from onnx import helper, numpy_helper  # noqa: E402

import tilerun  # noqa: E402
from interleave import alternate  # noqa: E402

F = onnx.TensorProto.FLOAT
S = [1, 64, 128, 128]


def _i64(*v):
    return np.array(v, np.int64)


def _f32(*v):
    return np.array(v, np.float32)


def n(op, ins, outs, **attrs):
    return helper.make_node(op, ins, outs, **attrs)


# name: (nodes, graph inputs [(name, shape)], initializers [(name, array)])
CASES = {
    "Add same shape": ([n("Add", ["x", "z"], ["y"])], [("x", S), ("z", S)], []),
    "Mul by scalar": ([n("Mul", ["x", "s"], ["y"])], [("x", S)], [("s", _f32(0.5))]),
    "Pow 2": ([n("Pow", ["x", "e"], ["y"])], [("x", S)], [("e", _f32(2))]),
    "Sqrt": ([n("Sqrt", ["x"], ["y"])], [("x", S)], []),
    "Erf": ([n("Erf", ["x"], ["y"])], [("x", S)], []),
    "Clip": ([n("Clip", ["x", "lo", "hi"], ["y"])], [("x", S)], [("lo", _f32(0)), ("hi", _f32(6))]),
    "Greater, Where": ([n("Greater", ["x", "z"], ["c"]), n("Where", ["c", "x", "z"], ["y"])], [("x", S), ("z", S)], []),
    "PRelu": ([n("PRelu", ["x", "s"], ["y"])], [("x", S)], [("s", np.full((64, 1, 1), 0.1, np.float32))]),
    "Transpose NCHW->NHWC": ([n("Transpose", ["x"], ["y"], perm=[0, 2, 3, 1])], [("x", S)], []),
    "Concat channels": ([n("Concat", ["x", "z"], ["y"], axis=1)], [("x", S), ("z", S)], []),
    "Slice rows": ([n("Slice", ["x", "b", "e", "a"], ["y"])], [("x", S)], [("b", _i64(1)), ("e", _i64(100)), ("a", _i64(2))]),
    "Pad": ([n("Pad", ["x", "p"], ["y"])], [("x", S)], [("p", _i64(0, 0, 1, 1, 0, 0, 1, 1))]),
    "Gather channels": ([n("Gather", ["x", "i"], ["y"], axis=1)], [("x", S)], [("i", _i64(*range(0, 64, 2)))]),
    "Expand": ([n("Expand", ["x", "s"], ["y"])], [("x", [1, 64, 1, 128])], [("s", _i64(1, 64, 256, 128))]),
    "Tile": ([n("Tile", ["x", "r"], ["y"])], [("x", [1, 64, 64, 128])], [("r", _i64(1, 2, 2, 1))]),
    "Softmax last axis": ([n("Softmax", ["x"], ["y"], axis=-1)], [("x", [64, 16384])], []),
    "Softmax channels": ([n("Softmax", ["x"], ["y"], axis=1)], [("x", S)], []),
    "ReduceSum channels": ([n("ReduceSum", ["x", "a"], ["y"])], [("x", S)], [("a", _i64(1))]),
    "ReduceMean last axis": ([n("ReduceMean", ["x"], ["y"], axes=[1])], [("x", [64, 16384])], []),
    "LayerNormalization": ([n("LayerNormalization", ["x", "g"], ["y"], axis=-1)], [("x", [1, 1024, 1024])],
                           [("g", np.ones(1024, np.float32))]),
    "InstanceNormalization": ([n("InstanceNormalization", ["x", "g", "b"], ["y"])], [("x", S)],
                              [("g", np.ones(64, np.float32)), ("b", np.zeros(64, np.float32))]),
    "MaxPool 3x3 s2": ([n("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2])], [("x", S)], []),
    "MatMul 1x2048x2048": ([n("MatMul", ["x", "w"], ["y"])], [("x", [1, 2048])], [("w", np.ones((2048, 2048), np.float32))]),
}


def case_model(nodes, ins, inits):
    g = helper.make_graph(nodes, "case", [helper.make_tensor_value_info(k, F, s) for k, s in ins],
                          [helper.make_tensor_value_info(nodes[-1].output[0], F, None)],
                          [numpy_helper.from_array(v, k) for k, v in inits])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def _ort(model, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--block", type=int, default=10)
    ap.add_argument("--only")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    print(f"{'case':24s} tiles  tilerun 1c    2c   ORT 1t    2t (us)   tilerun 2c/1c   tilerun/ORT 2c")
    for name, (nodes, ins, inits) in CASES.items():
        if args.only and args.only not in name:
            continue
        m = case_model(nodes, ins, inits)
        xs = [rng.random(s, np.float32) + 0.1 for _, s in ins]
        feeds = {k: v for (k, _), v in zip(ins, xs)}
        e1, e2 = (tilerun.compile_model(m, num_cores=c) for c in (1, 2))
        o1, o2 = _ort(m, 1), _ort(m, 2)
        tiles = [o["tiles"] for o in e2.trace(xs).per_op()]
        t = alternate([lambda: e1.run(xs), lambda: e2.run(xs), lambda: o1.run(None, feeds),
                       lambda: o2.run(None, feeds)], args.rounds, args.block)
        t = [v * 1e6 for v in t]
        print(f"{name:24s} {'+'.join(map(str, tiles)):>5s} {t[0]:10.0f} {t[1]:5.0f} {t[2]:8.0f} {t[3]:5.0f}"
              f" {t[1] / t[0]:15.2f} {t[1] / t[3]:16.2f}", flush=True)


if __name__ == "__main__":
    main()
