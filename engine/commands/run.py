"""``tilerun run [MODEL]``: compile a model, run seeded random inputs, check against ONNX Runtime.

Prints the compile time, the top-5 of the first output (per batch item), the
median latency and, for every output, the largest difference from ONNX
Runtime (at the shapes it ran: a model ONNX Runtime cannot run at them is
re-exported at them first). ``--inputs`` reads the request from a ``.npz``
file, ``--output`` saves the outputs to one. For timing with statistics use
``tilerun benchmark``.
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
    flags.add_precision(r)
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
        outs = eng.run(inputs)
        names = list(eng.output_names)
        if args.output:
            common.save_outputs(args.output, names, outs)
            print(f"outputs {names} written to {args.output}")
        times = []
        for _ in range(max(args.iterations, 1)):
            t = time.perf_counter()
            eng.run(inputs)
            times.append(time.perf_counter() - t)
    for line in top5_lines(outs[0]):
        print(line)
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
        refs = _ort_outputs(sess, names, inputs)
    except Exception as e:
        try:  # e.g. a batch-1 export run at another batch: re-export at the shapes tilerun ran
            refs = _ort_outputs(common.ort_session(_reexported(model, eng, inputs), args.num_cores or 1,
                                                   why="the check"), names, inputs)
            print("check: onnxruntime runs the model re-exported for these input shapes")
        except Exception:
            print(f"check: skipped (onnxruntime cannot run these inputs: {common.first_line(e)})")
            return 0
    all_ok = True
    # BF16 products (8-bit mantissa) through a model's layers: a few percent of the output's range.
    rel = BF16_TOLERANCE if eng.config is not None and eng.config.precision == "bf16" else 1e-3
    for name, out, ref in zip(names, outs, refs):
        diff, atol, ok = compare(out, np.asarray(ref), rel)
        all_ok &= ok
        which = f" ({name!r})" if len(outs) > 1 else ""
        print(f"max abs diff vs ONNX Runtime{which}: {diff:.3g} (atol {atol:.3g}, rtol {rel:g}): "
              f"{'PASS' if ok else 'FAIL'}")
    if len(refs) != len(outs):
        print(f"check: onnxruntime gave {len(refs)} outputs, tilerun {len(outs)}: FAIL")
        all_ok = False
    return 0 if all_ok else 1


def _reexported(model, eng, inputs):
    """The model at the request's input shapes, or with a dynamic batch where its Reshapes bake batch 1."""
    from tilerun.export import convert_model
    try:
        return convert_model(model, input_shapes={n: list(a.shape) for n, a in zip(eng.input_names, inputs)})
    except Exception:
        return convert_model(model, dynamic_batch=True)


def _ort_outputs(sess, names, inputs):
    ref_names = [o.name for o in sess.get_outputs()]
    return sess.run(names if set(names) <= set(ref_names) else None, common.ort_feeds(sess, inputs))


BF16_TOLERANCE = 3e-2


def top5_lines(out):
    """The top-5 ``(index, value)`` of ``out``: of each batch item (dim 0) when it has 2 or more dims."""
    out = np.asarray(out)
    if out.size == 0:
        return [f"top-5: (empty output, shape {list(out.shape)})"]
    items = out.reshape(out.shape[0], -1) if out.ndim >= 2 else out.reshape(1, -1)
    lines = []
    for k, flat in enumerate(items):
        top = np.argsort(-flat.astype(np.float64), kind="stable")[:5]
        label = f"top-5 [item {k}]" if len(items) > 1 else "top-5"
        lines.append(f"{label}: " + ", ".join(f"({int(i)}, {float(flat[i]):.6g})" for i in top))
    return lines


def compare(out, ref, rel=1e-3):
    """``(max abs diff, atol, ok)`` of one output against ONNX Runtime's; NaN matches NaN.

    ``rel`` is the rtol, and the atol relative to the reference's largest magnitude (at least 1).
    """
    if out.shape != ref.shape:
        return float("inf"), 0.0, False
    a, b = out.astype(np.float64), ref.astype(np.float64)
    finite_ref = np.abs(b[np.isfinite(b)])
    atol = rel * max(1.0, float(finite_ref.max()) if finite_ref.size else 1.0)
    ok = bool(np.allclose(a, b, rtol=rel, atol=atol, equal_nan=True))
    # Equal values (infinities too) and NaN on both sides count as no difference; NaN on one side shows as nan.
    with np.errstate(invalid="ignore"):
        diff = np.abs(a - b)[~((a == b) | (np.isnan(a) & np.isnan(b)))]
    return (float(np.max(diff)) if diff.size else 0.0), atol, ok
