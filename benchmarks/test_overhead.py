"""Per-op scheduling overhead: a chain of cheap unary ops, tilerun against ONNX Runtime.

A chain of ``CHAIN`` alternating Relu / LeakyRelu ops on a small (16 floats)
and a 65k-float tensor, at 1 and 2 cores. On the small tensor the time per op
is almost all scheduling overhead; on the 65k one it shows whether splitting
an op across cores pays. ``python benchmarks/test_overhead.py --summary``
measures both engines interleaved in one run and prints µs per op.
"""
import os
import pathlib
import sys

os.environ.setdefault("NUMBA_CACHE_DIR", str(pathlib.Path(__file__).resolve().parents[1] / ".numba_cache"))

import numpy as np  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402

import tilerun  # noqa: E402
from interleave import alternate  # noqa: E402
from tilerun.commands.common import ort_session  # noqa: E402

CHAIN = 300
SIZES = (16, 65536)
THREADS = (1, 2)


def chain_model(size, n=CHAIN):
    """``n`` alternating Relu / LeakyRelu ops on a float tensor of ``size`` elements."""
    nodes, prev = [], "x"
    for k in range(n):
        out = "y" if k == n - 1 else f"t{k}"
        nodes.append(helper.make_node("Relu", [prev], [out]) if k % 2 == 0 else
                     helper.make_node("LeakyRelu", [prev], [out], alpha=0.5))
        prev = out
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [size])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [size])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def runners(size, threads):
    """(tilerun callable, ORT callable, engine) running the chain once each."""
    model = chain_model(size)
    x = np.random.default_rng(0).standard_normal(size).astype(np.float32)
    eng = tilerun.compile_model(model, num_cores=threads)
    sess = ort_session(model, threads)
    np.testing.assert_allclose(eng.run([x])[0], sess.run(None, {"x": x})[0], rtol=1e-6)
    return (lambda: eng.run([x])), (lambda: sess.run(None, {"x": x})), eng


try:
    import pytest
except ImportError:
    pytest = None

if pytest is not None:
    @pytest.mark.parametrize("threads", THREADS)
    @pytest.mark.parametrize("size", SIZES)
    @pytest.mark.parametrize("engine", ["tilerun", "onnxruntime"])
    def test_chain(benchmark, engine, size, threads):
        """One engine running the op chain at one size and thread count."""
        benchmark.group = f"chain{CHAIN} n={size} x{threads}"
        fn_t, fn_o, eng = runners(size, threads)
        try:
            benchmark(fn_t if engine == "tilerun" else fn_o)
        finally:
            eng.close()


def summary(rounds=10, block=20):
    """Print µs per op for both engines at every size and thread count.

    The engines alternate in blocks of ``block`` runs (``interleave.alternate``).
    """
    print(f"chain of {CHAIN} unary ops, median of {rounds}x{block} runs, µs per op")
    print(f"{'size':>7}{'threads':>8}{'tilerun':>10}{'ORT':>8}{'ratio':>8}")
    for size in SIZES:
        for threads in THREADS:
            fn_t, fn_o, eng = runners(size, threads)
            ta, tb = (t * 1e6 / CHAIN for t in alternate((fn_t, fn_o), rounds, block))
            eng.close()
            print(f"{size:>7}{threads:>8}{ta:>10.2f}{tb:>8.2f}{ta / tb:>8.2f}")


if __name__ == "__main__":
    if "--summary" in sys.argv:
        summary()
    else:
        print("usage: python benchmarks/test_overhead.py --summary")
