"""``tilerun run [MODEL]``: compile a model, run seeded random inputs, check against ONNX Runtime.

Prints the compile time, the top-5 of the first output, the median latency and
the largest difference from ONNX Runtime. ``--inputs`` reads the request from
a ``.npz`` file, ``--output`` saves the outputs to one. For timing with
statistics use ``tilerun benchmark``.
"""
import statistics
import time

import numpy as np

from . import common, flags

EXAMPLES = ("tilerun run                      # light ResNet-50 with random weights, checked against ONNX Runtime",
            "tilerun run squeezenet --batch-size 2 --iterations 20",
            "tilerun run model.onnx --input-shapes input_ids:1x128,attention_mask:1x128",
            "tilerun run model.onnx --inputs in.npz --output out.npz")


def add_parser(sub):
    """Register ``run`` on the subparsers ``sub``."""
    r = sub.add_parser("run", help="compile a model, run random inputs, check against ONNX Runtime")
    r.add_argument("model", nargs="?", help="ONNX file or light model name (default: light resnet50, random weights)")
    r.add_argument("--batch-size", type=flags.positive_int, default=1,
                   help="batch dim of the inputs (default 1)")
    r.add_argument("--num-cores", type=flags.positive_int, default=None,
                   help="cores to use (default: all usable)")
    r.add_argument("--input-shapes", default=None, help="dynamic dims, e.g. ids:1x128,mask:1x128")
    r.add_argument("--inputs", metavar="FILE.npz", default=None,
                   help="input arrays by input name (.npy for a one-input model; default: seeded random data)")
    r.add_argument("--output", metavar="OUT.npz", default=None, help="save the outputs, one array per output name")
    r.add_argument("--iterations", type=flags.positive_int, default=10,
                   help="timed runs after the first; the median is printed (default 10)")
    r.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")
    r.add_argument("--no-check", action="store_true", help="skip the ONNX Runtime comparison")
    r.add_argument("--quiet", action="store_true", help="no progress display")
    r.set_defaults(func=main)


def main(args):
    """Run the ``run`` command; returns the exit code."""
    flags.check_output_path("--output", args.output, {"npz"})
    progress = common.Progress(args.quiet)
    model = common.load_model_arg(args.model, progress)
    t0 = time.perf_counter()
    with common.compile_engine(model, args, progress) as eng:
        print(f"compile: {time.perf_counter() - t0:.2f} s")
        inputs = common.make_inputs(eng, args.inputs, seed=args.seed)
        outputs = eng.run(inputs)
        out = outputs[0]
        if args.output:
            common.save_outputs(args.output, eng.output_names, outputs)
            print(f"outputs {eng.output_names} written to {args.output}")
        times = []
        for _ in range(max(args.iterations, 1)):
            t = time.perf_counter()
            eng.run(inputs)
            times.append(time.perf_counter() - t)
    flat = out.reshape(-1)
    top = np.argsort(-flat, kind="stable")[:5]
    print("top-5: " + ", ".join(f"({int(i)}, {float(flat[i]):.6g})" for i in top))
    print(f"latency: {statistics.median(times) * 1e3:.3f} ms (median of {len(times)})")
    if args.no_check:
        return 0
    try:
        sess = common.ort_session(model, args.num_cores or 1, why="the check")
    except common.CliError as e:
        if "not installed" not in str(e):
            raise
        print("check: skipped (onnxruntime not installed)")
        return 0
    try:
        ref = sess.run(None, common.ort_feeds(sess, inputs))[0]
    except Exception as e:
        print(f"check: skipped (onnxruntime cannot run these inputs: {common.first_line(e)})")
        return 0
    diff = common.max_abs_diff([out], [ref])
    atol = 1e-3 * max(1.0, float(np.max(np.abs(ref))) if ref.size else 1.0)
    ok = out.shape == ref.shape and np.allclose(out, ref, rtol=1e-3, atol=atol)
    print(f"max abs diff vs ONNX Runtime: {diff:.3g} (atol {atol:.3g}, rtol 1e-3): {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1
