"""BF16 precision mode: GEMM throughput, model latency and accuracy, side by side in one run (script).

    python benchmarks/bf16.py [--gemm] [--models resnet50,vgg19,...] [--threads 2,1] [--rounds 7]
                              [--accuracy 100] [--openvino] [--no-gemm] [--layers] [--cpu-time]

GEMM: square 512/1024/2048, single thread, as the engine runs a Gemm with
constant weights: ``bf16_gemm`` (B packed to BF16 at compile time, A
converted per tile) against ``f32_gemm`` with B in its FP32 panels and
numpy (OpenBLAS, one thread through threadpoolctl), interleaved; GFLOP/s.

Models (seeded random weights): tilerun FP32, tilerun BF16 and ONNX Runtime
FP32 (and OpenVINO at its default precision with ``--openvino``, when it is
installed) at each thread count, timed in alternating blocks
(``interleave.alternate``); median ms and the ratios. Accuracy: BF16 logits
(before the final Softmax) against ONNX Runtime FP32 over N seeded random
inputs: the largest ``max|bf16 - ort| / max|ort|`` of any input, top-1
agreement (same argmax) and top-5 agreement (same set of five classes).

``--layers``: ResNet-50's conv shapes (with their fused bias, Relu,
residual or max pool) as one-node models, FP32 against BF16 on one core,
alternating; process CPU time per run (the median), which a shared
machine's other load disturbs less than wall time. ``--cpu-time`` times the
models that way too (at 1 thread, where CPU time is the run's own work).
"""
import argparse
import os
import pathlib
import sys
import time

os.environ.setdefault("NUMBA_CACHE_DIR", str(pathlib.Path(__file__).resolve().parents[1] / ".numba_cache"))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import onnx  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

import tilerun  # noqa: E402
from tilerun.kernels import gemm_bf16 as B  # noqa: E402
from tilerun.kernels.gemm import NR, epilogue, f32_gemm, pack_b  # noqa: E402
from tilerun.models import light_model_path, random_inputs, randomize_weights, without_final_softmax  # noqa: E402

from interleave import alternate  # noqa: E402
from test_gemm import _aligned, _run  # noqa: E402

MODELS = ("resnet50", "vgg19", "inception_v1", "squeezenet", "densenet121")


class _OneTile:
    """One tile of a GEMM kernel on one thread: ``Y = A @ B`` with B packed as the engine packs weights."""

    def __init__(self, kernel, a, bpacked, n, **ints):
        m, k = a.shape
        self.a, self.b = _aligned(a), _aligned(bpacked)
        self.y = _aligned(np.zeros((m, n), np.float32))
        self.offs = np.zeros(2, np.int64)
        args = dict(a=self.a.ctypes.data, b=self.b.ctypes.data, c=None, y=self.y.ctypes.data, m=m, n=n, k=k,
                    sci=0, scj=0, mb=m, nb=n, n_mblk=1, n_nblk=1, ep=epilogue(), **ints)
        if kernel is f32_gemm:
            args["offs"] = self.offs.ctypes.data
        ins, outs, params = kernel.pack(args)
        self.params = np.array([t or 0 for t in ins + outs] + params, np.int64)
        self.scratch = _aligned(np.zeros(kernel.scratch(args) // 4 + 16, np.float32))
        self.fn = kernel.address

    def __call__(self):
        _run(self.fn, self.params.ctypes.data, self.scratch.ctypes.data)
        return self.y


def gemm_summary(rounds):
    """Print BF16 / FP32 / numpy GFLOP/s (single thread, interleaved medians) at 512, 1024, 2048."""
    print(f"GEMM, single thread, median of {rounds} interleaved rounds (GFLOP/s)")
    print(f"{'M=N=K':<8}{'bf16':>8}{'fp32':>8}{'numpy':>8}{'bf16/fp32':>11}{'bf16/numpy':>12}")
    rng = np.random.default_rng(0)
    with threadpool_limits(1):
        for s in (512, 1024, 2048):
            a = rng.standard_normal((s, s)).astype(np.float32)
            b = rng.standard_normal((s, s)).astype(np.float32)
            bf = _OneTile(B.bf16_gemm, a, B.pack_b_bf16(b), s, kp=s // 2, sai=s)
            fp = _OneTile(f32_gemm, a, pack_b(b), s, sai=s, sak=1, ldb=s, bpk=s * NR)
            ref = a.astype(np.float64) @ b
            assert np.abs(fp() - ref).max() < 1e-3 * np.sqrt(s) and np.abs(bf() - ref).max() < 0.05 * np.sqrt(s)
            reps = max(1, int(2e9 / (2 * s ** 3)))
            t = alternate([lambda f=f: [f() for _ in range(reps)] for f in (bf, fp, lambda: a @ b)], rounds, 1)
            gf = [2 * s ** 3 * reps / x / 1e9 for x in t]
            print(f"{s:<8}{gf[0]:>8.1f}{gf[1]:>8.1f}{gf[2]:>8.1f}{gf[0] / gf[1]:>10.2f}x{gf[0] / gf[2]:>11.2f}x",
                  flush=True)


def _ort(model, threads):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def _openvino(model, threads):
    """An OpenVINO compiled model at its default precision on ``threads`` threads, or None when not installed."""
    try:
        import openvino as ov
    except ImportError:
        return None
    core = ov.Core()
    m = core.read_model(model.SerializeToString(), b"")
    return core.compile_model(m, "CPU", {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"})


def accuracy(name, n_inputs):
    """``(max relative error, top-1 agreement, top-5 agreement)`` of BF16 logits against ORT FP32."""
    model = without_final_softmax(randomize_weights(onnx.load(light_model_path(name)), seed=0))
    sess = _ort(model, 2)
    worst, top1, top5 = 0.0, 0, 0
    with tilerun.compile_model(model, num_cores=2, precision="bf16") as eng:
        for seed in range(n_inputs):
            x = random_inputs(eng, seed=seed)
            got = eng.run(x)[0].reshape(-1)
            ref = sess.run(None, dict(zip(eng.input_names, x)))[0].reshape(-1)
            worst = max(worst, float(np.abs(got - ref).max() / np.abs(ref).max()))
            top1 += int(got.argmax() == ref.argmax())
            top5 += int(set(np.argsort(got)[-5:]) == set(np.argsort(ref)[-5:]))
    return worst, top1 / n_inputs, top5 / n_inputs


def model_summary(names, threads, rounds, n_acc, with_ov, cpu_time=False):
    """Print per model and thread count the median latencies and ratios, then the accuracy."""
    for name in names:
        model = randomize_weights(onnx.load(light_model_path(name)), seed=0)
        for t in threads:
            e32 = tilerun.compile_model(model, num_cores=t)
            e16 = tilerun.compile_model(model, num_cores=t, precision="bf16")
            x = random_inputs(e32, seed=0)
            sess = _ort(model, t)
            feeds = dict(zip(e32.input_names, x))
            fns = [lambda: e32.run(x), lambda: e16.run(x), lambda: sess.run(None, feeds)]
            labels = ["fp32", "bf16", "ort"]
            ov = _openvino(model, t) if with_ov else None
            if ov is not None:
                req = ov.create_infer_request()
                ovx = {ov.inputs[0]: x[0]}
                fns.append(lambda: req.infer(ovx))
                labels.append("openvino")
            block = 5 if name in ("squeezenet",) else 3
            ms = [v * 1e3 for v in (_cpu_alternate if cpu_time else alternate)(fns, rounds, block)]
            e32.close()
            e16.close()
            line = "  ".join(f"{lab} {v:7.2f}" for lab, v in zip(labels, ms))
            extra = f"  bf16/openvino {ms[1] / ms[3]:.2f}" if ov is not None else ""
            print(f"{name:<13} x{t}  {line}  ms | fp32/bf16 {ms[0] / ms[1]:.2f}x  ort/bf16 {ms[2] / ms[1]:.2f}x"
                  f"{extra}  (precision {e16.config.precision})", flush=True)
        if n_acc:
            t0 = time.perf_counter()
            worst, top1, top5 = accuracy(name, n_acc)
            print(f"{name:<13} accuracy over {n_acc} inputs vs ORT FP32: max rel err {worst:.4f}, "
                  f"top-1 {top1:.0%}, top-5 set {top5:.0%} ({time.perf_counter() - t0:.0f} s)", flush=True)


# name: (input [C, H, W], output channels, kernel, stride, pad, residual, max pool) of ResNet-50 convs
LAYERS = {"stem 7x7/2 + max pool": ((3, 224, 224), 64, 7, 2, 3, False, True),
          "3x3 64 @56": ((64, 56, 56), 64, 3, 1, 1, False, False),
          "1x1 64->256 @56 + residual": ((64, 56, 56), 256, 1, 1, 0, True, False),
          "1x1 256->64 @56": ((256, 56, 56), 64, 1, 1, 0, False, False),
          "1x1/2 256->512 @56": ((256, 56, 56), 512, 1, 2, 0, False, False),
          "3x3 128 @28": ((128, 28, 28), 128, 3, 1, 1, False, False),
          "3x3 256 @14": ((256, 14, 14), 256, 3, 1, 1, False, False),
          "1x1 1024->256 @14": ((1024, 14, 14), 256, 1, 1, 0, False, False),
          "3x3 512 @7": ((512, 7, 7), 512, 3, 1, 1, False, False)}


def _conv_model(xs, cout, k, stride, pad, residual, pool):
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((cout, xs[0], k, k)) / np.sqrt(xs[0] * k * k)).astype(np.float32)
    o = (xs[1] + 2 * pad - k) // stride + 1
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], strides=[stride] * 2, pads=[pad] * 4)]
    ins = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, *xs])]
    last = "c"
    if residual:
        ins.append(helper.make_tensor_value_info("r", TensorProto.FLOAT, [1, cout, o, o]))
        nodes.append(helper.make_node("Add", ["c", "r"], ["a"]))
        last = "a"
    nodes.append(helper.make_node("Relu", [last], ["z"]))
    if pool:
        nodes.append(helper.make_node("MaxPool", ["z"], ["p"], kernel_shape=[3, 3], strides=[2, 2], pads=[1] * 4))
        o = (o - 1) // 2 + 1
    nodes[-1].output[0] = "y"
    g = helper.make_graph(nodes, "conv", ins, [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, cout, o, o])],
                          [numpy_helper.from_array(w, "w"), numpy_helper.from_array(rng.standard_normal(cout)
                                                                                   .astype(np.float32), "b")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    oc = (xs[1] + 2 * pad - k) // stride + 1
    shapes = [(1, *xs)] + ([(1, cout, oc, oc)] if residual else [])
    return m, [rng.standard_normal(sh).astype(np.float32) for sh in shapes], 2 * cout * xs[0] * k * k * oc * oc


def _cpu_alternate(fns, rounds, block):
    times = [[] for _ in fns]
    for _ in range(rounds):
        for f, acc in zip(fns, times):
            f()
            for _ in range(block):
                t = time.process_time()
                f()
                acc.append(time.process_time() - t)
    return [float(np.median(t)) for t in times]


def layer_summary(rounds):
    """Print FP32 and BF16 CPU ms, GFLOP/s and the ratio of each ResNet-50 conv shape on one core."""
    print(f"ResNet-50 conv shapes, 1 core, CPU time per run, median of {rounds} alternating rounds of 10")
    for name, cfg in LAYERS.items():
        model, x, flops = _conv_model(*cfg)
        e32 = tilerun.compile_model(model, num_cores=1)
        e16 = tilerun.compile_model(model, num_cores=1, precision="bf16")
        t32, t16 = _cpu_alternate([lambda: e32.run(x), lambda: e16.run(x)], rounds, 10)
        e32.close()
        e16.close()
        print(f"{name:<28} fp32 {t32 * 1e3:6.3f} ms ({flops / t32 / 1e9:5.1f} GFLOP/s)  bf16 {t16 * 1e3:6.3f} ms "
              f"({flops / t16 / 1e9:5.1f} GFLOP/s)  fp32/bf16 {t32 / t16:.2f}x", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gemm", action="store_true", help="only the GEMM table")
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--threads", default="2,1")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--accuracy", type=int, default=100, help="seeded inputs of the accuracy check (0: none)")
    p.add_argument("--openvino", action="store_true", help="also time OpenVINO (if installed)")
    p.add_argument("--no-gemm", action="store_true")
    p.add_argument("--layers", action="store_true", help="only the ResNet-50 conv shapes, CPU time on one core")
    p.add_argument("--cpu-time", action="store_true", help="time models by process CPU time (meaningful at 1 thread)")
    args = p.parse_args()
    if not B.cpu_supports_bf16():
        sys.exit("this CPU lacks avx512_bf16: nothing to measure")
    if args.layers:
        layer_summary(args.rounds)
        return
    if not args.no_gemm:
        gemm_summary(args.rounds)
    if not args.gemm:
        model_summary([m for m in args.models.split(",") if m], [int(t) for t in args.threads.split(",")],
                      args.rounds, args.accuracy, args.openvino, args.cpu_time)


if __name__ == "__main__":
    main()
