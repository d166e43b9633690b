"""Winograd F(4x4, 3x3) against the direct conv paths, layer by layer (ResNet-50's and VGG-19's 3x3 convs).

``python benchmarks/winograd_layers.py [--threads 1,2] [--rounds N]`` builds
one Conv (+ Relu) graph per layer shape, compiles it twice, with the Winograd
path and with ``conv_paths.WINOGRAD`` off, and times both against ONNX
Runtime in alternating blocks (``interleave.alternate``). Per layer it prints
the medians, the speed-up of Winograd over the direct path, tilerun / ORT
for each, and the largest error of each against a float64 direct convolution,
relative to the output's largest magnitude. Inputs and weights are seeded
normal data scaled as a trained net's (unit-variance outputs).
"""
import argparse
import os
import pathlib
import sys

os.environ.setdefault("NUMBA_CACHE_DIR", str(pathlib.Path(__file__).resolve().parents[1] / ".numba_cache"))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import tilerun  # noqa: E402
from interleave import alternate  # noqa: E402
from tilerun.commands.common import ort_feeds, ort_session  # noqa: E402
from tilerun.ops import conv_paths  # noqa: E402

# (name, channels in, channels out, plane side): each distinct stride-1 3x3 shape of ResNet-50 and VGG-19 at
# 224x224, and some of DenseNet-121's, SqueezeNet's and Inception's.
LAYERS = [("resnet50 s1", 64, 64, 56), ("resnet50 s2", 128, 128, 28), ("resnet50 s3", 256, 256, 14),
          ("resnet50 s4", 512, 512, 7), ("vgg19 224", 64, 64, 224), ("vgg19 112", 128, 128, 112),
          ("vgg19 56", 256, 256, 56), ("vgg19 28", 512, 512, 28), ("vgg19 14", 512, 512, 14),
          ("densenet 56", 128, 32, 56), ("densenet 28", 128, 32, 28), ("densenet 14", 128, 32, 14),
          ("densenet 7", 128, 32, 7), ("squeezenet 55", 16, 64, 55), ("squeezenet 27", 32, 128, 27),
          ("squeezenet 13", 64, 256, 13), ("inception 28", 64, 96, 28), ("inception 14", 160, 224, 14)]


def conv_relu(c, cout, side, seed=0):
    """A 3x3 pad-1 Conv + bias + Relu on ``[1, c, side, side]``; returns ``(model, x, w, b)``."""
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((cout, c, 3, 3)) / np.sqrt(9 * c)).astype(np.float32)
    b = (0.1 * rng.standard_normal(cout)).astype(np.float32)
    x = rng.standard_normal((1, c, side, side)).astype(np.float32)
    g = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["c"], ["y"])], "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, cout, side, side])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), x, w, b


def direct_f64(x, w, b):
    """Conv + bias + Relu in float64 (the error reference)."""
    side = x.shape[2]
    xp = np.pad(x[0].astype(np.float64), ((0, 0), (1, 1), (1, 1)))
    out = np.zeros((w.shape[0], side, side))
    for i in range(3):
        for j in range(3):
            out += np.einsum("oc,chw->ohw", w[:, :, i, j].astype(np.float64), xp[:, i:i + side, j:j + side])
    return np.maximum(out + b[:, None, None], 0)


def compile_with(model, threads, winograd):
    conv_paths.WINOGRAD = winograd
    try:
        return tilerun.compile_model(model, num_cores=threads)
    finally:
        conv_paths.WINOGRAD = True


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--block", type=int, default=5)
    ap.add_argument("layers", nargs="*", help="layer names (default: all)")
    a = ap.parse_args()
    print(f"{'layer':<13} {'thr':>3} {'winograd ms':>11} {'direct ms':>9} {'ORT ms':>7} {'speed-up':>8} "
          f"{'wino/ORT':>8} {'direct/ORT':>10} {'err wino':>9} {'err direct':>10}")
    for name, c, cout, side in LAYERS:
        if a.layers and name not in a.layers:
            continue
        model, x, w, b = conv_relu(c, cout, side)
        ref = direct_f64(x, w, b)
        scale = float(np.abs(ref).max())
        for t in [int(v) for v in a.threads.split(",")]:
            engs = [compile_with(model, t, True), compile_with(model, t, False)]
            kinds = [e.plan.rows[-1].kernel.name for e in engs]
            errs = [float(np.abs(e.run([x])[0] - ref).max()) / scale for e in engs]
            sess = ort_session(model, t)
            feeds = ort_feeds(sess, [x])
            fns = [lambda e=e: e.run([x]) for e in engs] + [lambda: sess.run(None, feeds)]
            wi, di, ort = alternate(fns, a.rounds, a.block)
            for e in engs:
                e.close()
            note = "" if kinds[0] == "f32_conv_winograd" else f"  (first engine ran {kinds[0]})"
            print(f"{name:<13} {t:>3} {wi * 1e3:>11.3f} {di * 1e3:>9.3f} {ort * 1e3:>7.3f} {di / wi:>8.2f} "
                  f"{wi / ort:>8.3f} {di / ort:>10.3f} {errs[0]:>9.1e} {errs[1]:>10.1e}{note}", flush=True)


if __name__ == "__main__":
    main()
