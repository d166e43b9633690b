"""One conv with each fused activation: what the epilogue's activation costs on the GEMM and depthwise paths.

``python benchmarks/fused_activation.py [--cores 1]`` times a 1x1 16->96 conv
and a 3x3 depthwise 96-channel conv on 112x112 planes, each with no
activation, Relu, HardSwish, Sigmoid and SiLU (``x * Sigmoid(x)``, fused by
``passes.fuse_silu``), and prints the median ms of 30 runs per case. The
machine may be shared: rerun and compare within one run.
"""
import argparse
import os
import pathlib
import time

os.environ.setdefault("NUMBA_CACHE_DIR", str(pathlib.Path(__file__).resolve().parents[1] / ".numba_cache"))

import numpy as np  # noqa: E402
import onnx  # noqa: E402
from onnx import helper, numpy_helper  # noqa: E402

import tilerun  # noqa: E402

ACTS = (None, "Relu", "HardSwish", "Sigmoid", "Silu")
CASES = {"1x1 16->96": dict(cin=16, cout=96, k=1, group=1), "dw3x3 96": dict(cin=96, cout=96, k=3, group=96)}


def conv_model(act, cin, cout, k, group, hw=112):
    """A ModelProto: one Conv on ``[1, cin, hw, hw]`` followed by ``act`` (None: none)."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array((rng.standard_normal((cout, cin // group, k, k)) * 0.2).astype(np.float32), "w")
    b = numpy_helper.from_array(np.zeros(cout, np.float32), "b")
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c" if act else "y"], pads=[k // 2] * 4, group=group)]
    if act == "Silu":
        nodes += [helper.make_node("Sigmoid", ["c"], ["s"]), helper.make_node("Mul", ["c", "s"], ["y"])]
    elif act:
        nodes.append(helper.make_node(act, ["c"], ["y"]))
    g = helper.make_graph(nodes, "conv_act", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT,
                                                                              [1, cin, hw, hw])],
                          [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)], [w, b])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)])
    m.ir_version = 8
    return m


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cores", type=int, default=1)
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args(argv)
    for case, kw in CASES.items():
        x = [np.random.default_rng(1).standard_normal((1, kw["cin"], 112, 112)).astype(np.float32)]
        for act in ACTS:
            with tilerun.compile_model(conv_model(act, **kw), num_cores=args.cores) as eng:
                eng.run(x)
                ts = []
                for _ in range(args.runs):
                    t = time.perf_counter()
                    eng.run(x)
                    ts.append(time.perf_counter() - t)
                kernels = [r.kernel.name for r in eng.plan.rows]
            print(f"{case:<12s} {str(act):<10s} {np.median(ts) * 1e3:7.3f} ms  {kernels}")


if __name__ == "__main__":
    main()
