"""The ``tilerun`` command line: ``tilerun run [MODEL]`` compiles, runs and checks a model.

Subcommands live in ``_COMMANDS`` (argparse subparsers), so more (benchmark,
profile, info, convert) can be added.  Errors print one line on stderr and
return a non-zero exit code; no traceback.
"""
import argparse
import statistics
import sys
import time

import numpy as np


def _load(path):
    import onnx
    from .models import default_model
    if path is None:
        return default_model()
    try:
        return onnx.load(path)
    except FileNotFoundError:
        raise SystemExit(f"tilerun: no such file: {path}")
    except Exception as e:
        raise SystemExit(f"tilerun: cannot read {path} as an ONNX model: {type(e).__name__}")


def _ort_outputs(model, inputs, threads):
    """First output from ONNX Runtime, or None when onnxruntime is not importable."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {i.name: x for i, x in zip(sess.get_inputs(), inputs)})[0]


def cmd_run(args):
    """Compile MODEL, run seeded random inputs, print top-5, median latency and the ORT check."""
    import tilerun
    from .models import random_inputs
    model = _load(args.model)
    t0 = time.perf_counter()
    with tilerun.compile_model(model, batch_size=args.batch_size, num_cores=args.num_cores) as eng:
        print(f"compile: {time.perf_counter() - t0:.2f} s")
        inputs = random_inputs(eng, args.seed)
        out = eng.run(inputs)[0]
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
    ref = _ort_outputs(model, inputs, args.num_cores or 1)
    if ref is None:
        print("check: skipped (onnxruntime not installed)")
        return 0
    diff = float(np.max(np.abs(out.astype(np.float64) - ref))) if out.size else 0.0
    atol = 1e-3 * max(1.0, float(np.max(np.abs(ref))) if ref.size else 1.0)
    ok = out.shape == ref.shape and np.allclose(out, ref, rtol=1e-3, atol=atol)
    print(f"max abs diff vs ONNX Runtime: {diff:.3g} (atol {atol:.3g}, rtol 1e-3): {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose usage errors are one line on stderr."""

    def error(self, message):
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def _parser():
    p = _Parser(prog="tilerun", description="CPU inference engine for ONNX models")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)
    r = sub.add_parser("run", help="compile a model, run random inputs, check against ONNX Runtime")
    r.add_argument("model", nargs="?", help="ONNX file (default: light resnet50 with random weights)")
    r.add_argument("--batch-size", type=int, default=1)
    r.add_argument("--num-cores", type=int, default=None)
    r.add_argument("--iterations", type=int, default=10)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--no-check", action="store_true", help="skip the ONNX Runtime comparison")
    r.set_defaults(func=cmd_run)
    return p


def main(argv=None):
    """Entry point of the ``tilerun`` console script; returns the exit code."""
    p = _parser()
    try:
        args = p.parse_args(argv)
    except SystemExit as e:  # argparse already printed its one-line usage error
        return int(e.code or 0)
    if args.command is None:
        p.print_help()
        return 0
    try:
        return args.func(args)
    except SystemExit as e:
        if isinstance(e.code, str):
            print(e.code, file=sys.stderr)
            return 2
        return int(e.code or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as e:
        print(f"tilerun: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
