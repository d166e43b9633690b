"""What changes in a shared host's slow phases: probes timed in turn for minutes, rounds split by how slow they were.

A round times, in blocks (median of ``--block`` calls each, with
``interleave.PAUSE_S`` before every block):

* the model's 2-core request on tilerun (the probe that classifies the round)
  and its 1-core request;
* ONNX Runtime's 2-thread request;
* a compute-bound 512x512x512 MatMul on tilerun at 1 and 2 cores (its 2-core
  speed-up: how much of a second core a request can get when it shares no data);
* a memory-bound stream (``x * C`` summed along rows, ``C`` a 1024x1024
  constant: 12 MiB through the caches a request, each core on its own rows) at
  1 and 2 cores: the same speed-up for work that lives in the shared L3;
* a chain of 200 tiny Relu ops split over both cores against unsplit
  (``handoff.py``): the cost of one hand-off between the cores.

Right after the model's 2-core block a round traces one more such request (``Engine.trace``): per
kernel, each worker's busy time and the ops' span. The summary splits the
2-core request's time into the kernels' own time (busy / 2) and waiting (span
minus busy / 2), so a slow phase shows as kernels running slower, as workers
waiting for each other, or both.

A round counts as slow when the model's 2-core request took over ``SLOW`` times
its fastest round, as normal at most ``NORMAL`` times it. The medians of each
kind are printed; ``--json`` keeps every round.
"""
import argparse
import json
import os
import pathlib
import statistics
import sys
import time

os.environ.setdefault("NUMBA_CACHE_DIR", str(pathlib.Path(__file__).resolve().parents[1] / ".numba_cache"))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
from onnx import helper, numpy_helper  # noqa: E402

import tilerun  # noqa: E402
from handoff import _engine, relu_chain  # noqa: E402
from interleave import PAUSE_S  # noqa: E402
from tilerun.models import MODERN_CNNS, random_inputs  # noqa: E402
from tilerun.scheduler.executor import EV_END, EV_ROW, EV_START, EV_WORKER  # noqa: E402

NORMAL, SLOW = 1.15, 1.3
CHAIN_OPS = 200
STREAM_ROWS = 1024


def matmul_model(n=512):
    """A ModelProto: ``[n, n] @ W`` with a constant ``W``."""
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((n, n)).astype(np.float32), "w")
    g = helper.make_graph([helper.make_node("MatMul", ["a", "w"], ["c"])], "matmul",
                          [helper.make_tensor_value_info("a", onnx.TensorProto.FLOAT, [n, n])],
                          [helper.make_tensor_value_info("c", onnx.TensorProto.FLOAT, [n, n])], [w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    return m


def stream_model(n=STREAM_ROWS):
    """A ModelProto: ``ReduceSum(x * C, axis 1)`` over a constant ``n x n`` ``C``, ``x`` of one float."""
    c = numpy_helper.from_array(np.random.default_rng(0).standard_normal((n, n)).astype(np.float32), "c")
    axes = numpy_helper.from_array(np.array([1], np.int64), "axes")
    g = helper.make_graph([helper.make_node("Mul", ["x", "c"], ["p"]),
                           helper.make_node("ReduceSum", ["p", "axes"], ["s"], keepdims=0)], "stream",
                          [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("s", onnx.TensorProto.FLOAT, [n])], [c, axes])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    return m


def probes(name):
    """``{probe: zero-argument call}``, the engines compiled."""
    model = MODERN_CNNS[name](seed=0)
    x = random_inputs(model, seed=0)
    mm, st, chain = matmul_model(), stream_model(), relu_chain(CHAIN_OPS, 128)
    a = [np.random.default_rng(1).standard_normal((512, 512)).astype(np.float32)]
    one = [np.ones(1, np.float32)]
    c = [np.ones((1, 128), np.float32)]
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    feeds = {i.name: v for i, v in zip(sess.get_inputs(), x)}
    engines = {"model 2c": (tilerun.compile_model(model, num_cores=2), x),
               "model 1c": (tilerun.compile_model(model, num_cores=1), x),
               "matmul 1c": (tilerun.compile_model(mm, num_cores=1), a),
               "matmul 2c": (tilerun.compile_model(mm, num_cores=2), a),
               "stream 1c": (tilerun.compile_model(st, num_cores=1), one),
               "stream 2c": (tilerun.compile_model(st, num_cores=2), one),
               "chain whole": (_engine(chain, 2, False), c), "chain split": (_engine(chain, 2, True), c)}
    calls = {k: (lambda e=e, v=v: e.run(v)) for k, (e, v) in engines.items()}
    calls["ort 2c"] = lambda: sess.run(None, feeds)
    return calls, engines["model 2c"]


def kernel_times(engine, x):
    """``{kernel: [span us, busy us worker 0, busy us worker 1]}`` of one traced 2-core request."""
    tr = engine.trace(x)
    ev = tr.events
    out = {}
    for o in tr.per_op():
        e = ev[ev[:, EV_ROW] == o["row"]]
        d = out.setdefault(o["kernel"], [0.0, 0.0, 0.0])
        d[0] += o["span_ms"] * 1e3
        for w in (0, 1):
            ew = e[e[:, EV_WORKER] == w]
            d[1 + w] += float((ew[:, EV_END] - ew[:, EV_START]).sum()) / 1e3
    return out


def block_median(fn, n):
    time.sleep(PAUSE_S)
    fn()
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def summary(rounds, top=6):
    """Lines: per kind of round (normal, slow), the probes' medians, the speed-ups, the hand-off, and the traced
    request's kernels (the ``top`` longest by span, then the total): span, busy per worker, waiting."""
    fastest = min(r["model 2c"] for r in rounds)
    lines = []
    for kind, keep in (("normal", lambda r: r["model 2c"] <= NORMAL * fastest),
                       ("slow", lambda r: r["model 2c"] > SLOW * fastest)):
        rs = [r for r in rounds if keep(r)]
        if not rs:
            continue
        med = {k: statistics.median(r[k] for r in rs) for k in rs[0] if k != "kernels"}
        handoff = (med["chain split"] - med["chain whole"]) / CHAIN_OPS * 1e9
        lines.append(f"{kind:6s} {len(rs):4d} rounds: model 2c {med['model 2c'] * 1e3:.2f} ms, 1c "
                     f"{med['model 1c'] * 1e3:.2f}, ort 2c {med['ort 2c'] * 1e3:.2f}; 2c speed-up matmul "
                     f"{med['matmul 1c'] / med['matmul 2c']:.2f}, stream {med['stream 1c'] / med['stream 2c']:.2f}; "
                     f"hand-off {handoff:.0f} ns a split op")
        kern = {k: [statistics.median(r["kernels"].get(k, (0, 0, 0))[i] for r in rs) for i in range(3)]
                for k in rs[0]["kernels"]}
        total = [sum(v[i] for v in kern.values()) for i in range(3)]
        for k, v in sorted(kern.items(), key=lambda kv: -kv[1][0])[:top] + [("all kernels", total)]:
            lines.append(f"    {k:22s} span {v[0]:7.0f} us  busy {v[1]:7.0f} / {v[2]:7.0f}  "
                         f"waiting {v[0] - (v[1] + v[2]) / 2:6.0f}")
    return lines


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="regnety_400mf", choices=sorted(MODERN_CNNS))
    ap.add_argument("--seconds", type=float, default=360)
    ap.add_argument("--block", type=int, default=20, help="timed calls per probe per round (default 20)")
    ap.add_argument("--json", help="write every round's medians here")
    args = ap.parse_args(argv)
    calls, (traced, x) = probes(args.model)
    rounds, t0 = [], time.time()
    while time.time() - t0 < args.seconds:
        order = list(calls) if len(rounds) % 2 == 0 else list(calls)[::-1]
        r = {}
        for k in order:
            r[k] = block_median(calls[k], args.block)
            if k == "model 2c":
                r["kernels"] = kernel_times(traced, x)
        rounds.append(r)
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(rounds))
    print("\n".join(summary(rounds)))


if __name__ == "__main__":
    main()
