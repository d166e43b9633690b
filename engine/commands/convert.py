"""``tilerun convert SRC -o DST``: the model conversion script, checked on random inputs.

Converts to the target opset, fixes the batch size (or keeps it dynamic),
folds constants and runs the compile-time passes ONNX can express (see
``tilerun.export``), runs the original and the converted model on the same
random inputs in ONNX Runtime (the onnx reference evaluator when ORT is not
installed), reports the max error and writes DST only when the check passes
(``--no-check`` writes it unverified and says so). ``--from-torch
module:factory`` first exports a PyTorch model. It does not tune or quantize.
"""
import collections
import contextlib
import importlib
import logging
import os
import shutil
import sys
import tempfile
import warnings

import numpy as np

from . import common

EXAMPLES = ("tilerun convert model.onnx -o model_b1.onnx",
            "tilerun convert model.onnx -o model_dynamic.onnx --dynamic-batch --tilerun",
            "tilerun convert squeezenet -o squeezenet_b4.onnx --batch-size 4 --opset 13")


def add_parser(sub):
    """Register ``convert`` on the subparsers ``sub``."""
    from tilerun.export import TARGET_OPSET
    c = sub.add_parser("convert", help="convert a model to tilerun's opset with static shapes and folded constants")
    c.add_argument("src", nargs="?", help="ONNX file or light model name (omit with --from-torch)")
    c.add_argument("-o", "--output", required=True, metavar="DST", help="where to write the converted model")
    c.add_argument("--opset", type=int, default=None,
                   help=f"target opset (default {TARGET_OPSET}, or the model's own when newer; "
                        "with --from-torch the exporter's own)")
    batch = c.add_mutually_exclusive_group()
    batch.add_argument("--batch-size", type=int, default=1, help="fix the batch dim to N (default 1)")
    batch.add_argument("--dynamic-batch", action="store_true", help="keep the batch dim dynamic")
    c.add_argument("--input-shapes", default=None, help="other dynamic dims, e.g. ids:1x128")
    c.add_argument("--from-torch", metavar="MODULE:FACTORY", default=None,
                   help="export a PyTorch model first: FACTORY() returns a module or (module, example_inputs)")
    c.add_argument("--seed", type=int, default=0, help="seed of the random check inputs")
    c.add_argument("--no-check", action="store_true", help="skip the check against the original model")
    c.add_argument("--tilerun", action="store_true", help="also run the converted model in tilerun in the check")
    c.add_argument("--quiet", action="store_true", help="no progress display")
    c.set_defaults(func=main)


def main(args):
    """Run the ``convert`` command; returns the exit code (1 when the check fails)."""
    import onnx
    from tilerun.export import convert_model
    if args.batch_size < 1:
        raise common.CliError(f"--batch-size must be at least 1, given {args.batch_size}")
    progress = common.Progress(args.quiet)
    with tempfile.TemporaryDirectory() as tmp:
        src = _source(args, tmp, progress)
        model = common.load_model_arg(src, progress)
        opset = args.opset
        if opset is None and args.from_torch:  # keep the exporter's opset: convert only when --opset asks
            from tilerun.load import model_opset
            opset = model_opset(model)
        with progress.task(f"converting to opset {opset or 'default'}"):
            converted = convert_model(model, opset=opset, batch_size=None if args.dynamic_batch else args.batch_size,
                                      input_shapes=common.parse_input_shapes(args.input_shapes),
                                      dynamic_batch=args.dynamic_batch)
            onnx.checker.check_model(converted)
        # DST appears only once the check passed (or was skipped): a model that fails it is not left behind.
        try:
            staging = tempfile.mkdtemp(prefix=".tilerun-convert-", dir=os.path.dirname(os.path.abspath(args.output)))
        except OSError as e:
            raise common.CliError(f"cannot write {args.output!r}: {e.strerror}") from None
        try:
            staged = os.path.join(staging, os.path.basename(args.output))
            _save(converted, staged, args.output)
            _print_summary(src, model, converted, args, os.path.getsize(staged))
            if args.no_check:
                _publish(staged, args.output)
                print(f"check skipped (--no-check): {args.output} is unverified")
                return 0
            try:
                code = check(model, converted, args, progress)
            except common.CliError as e:
                raise common.CliError(f"{common.first_line(e)}; {args.output} not written (--no-check writes it "
                                      f"unverified)", e.code) from None
            if code:
                print(f"check failed: {args.output} not written (--no-check writes it unverified)")
                return code
            _publish(staged, args.output)
            return 0
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _source(args, tmp, progress):
    if args.from_torch:
        if args.src:
            raise common.CliError("give SRC or --from-torch MODULE:FACTORY, not both")
        return export_torch(args.from_torch, args, os.path.join(tmp, "torch.onnx"), progress)
    if not args.src:
        raise common.CliError("expected SRC (an ONNX file) or --from-torch MODULE:FACTORY")
    return args.src


def export_torch(spec, args, path, progress):
    """Export the module ``FACTORY()`` of ``spec`` (``module:factory``) to ONNX at ``path``.

    The exporter writes its own opset (``main`` converts only when ``--opset``
    asks). With ``--quiet`` its progress lines, warnings and log records below
    ERROR are silenced.
    """
    try:
        import torch
    except ImportError:
        raise common.CliError("--from-torch needs PyTorch, which is not installed "
                              "(pip install torch onnxscript, or pip install 'tilerun[torch]')") from None
    dynamo = _exports_with_dynamo(torch)
    if dynamo:
        try:
            import onnxscript  # noqa: F401
        except ImportError:
            raise common.CliError(f"--from-torch: PyTorch {torch.__version__} exports through onnxscript, which is not "
                                  "installed (pip install onnxscript, or pip install 'tilerun[torch]')") from None
    mod_name, sep, factory_name = spec.partition(":")
    if not sep or not mod_name or not factory_name:
        raise common.CliError(f"--from-torch: expected MODULE:FACTORY, given {spec!r}")
    sys.path.insert(0, os.getcwd())
    try:
        factory = getattr(importlib.import_module(mod_name), factory_name)
    except (ImportError, AttributeError) as e:
        raise common.CliError(f"--from-torch: cannot load {spec!r}: {common.first_line(e)}") from None
    made = factory()
    module, example = made if isinstance(made, tuple) else (made, None)
    if example is None:
        shapes = common.parse_input_shapes(args.input_shapes)
        if not shapes:
            raise common.CliError("--from-torch: FACTORY returned no example inputs; give --input-shapes NAME:1x3x224x224")
        example = tuple(torch.randn(*s) for s in shapes.values())
    example = example if isinstance(example, tuple) else (example,)
    module.eval()
    names = ["input"] if len(example) == 1 else [f"input{k}" for k in range(len(example))]
    kwargs = dict(input_names=names)
    if args.dynamic_batch:
        dim = getattr(getattr(torch.export, "Dim", None), "DYNAMIC", None) if dynamo else None
        if dim is not None:
            kwargs["dynamic_shapes"] = tuple({0: dim} for _ in example)
        else:
            kwargs["dynamic_axes"] = {n: {0: "N"} for n in names}
    if args.quiet:
        kwargs["verbose"] = False
    with progress.task("exporting the PyTorch model"), _quiet_exporter(args.quiet):
        try:
            torch.onnx.export(module, example, path, **kwargs)
        except Exception as e:
            raise common.CliError(f"--from-torch: the PyTorch export failed: {type(e).__name__}: "
                                  f"{common.first_line(e)}", code=1) from None
    return path


def _exports_with_dynamo(torch):
    """Whether ``torch.onnx.export`` defaults to the dynamo exporter (PyTorch 2.9 on), which needs onnxscript."""
    import inspect
    try:
        param = inspect.signature(torch.onnx.export).parameters.get("dynamo")
    except (TypeError, ValueError):
        return False
    return param is not None and param.default is True


@contextlib.contextmanager
def _quiet_exporter(quiet):
    """With ``quiet``: no Python warnings and no log records below ERROR from torch, onnxscript or onnx_ir."""
    if not quiet:
        yield
        return
    loggers = [logging.getLogger(n) for n in ("torch", "onnxscript", "onnx_ir")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _save(model, path, shown):
    """Write ``model`` to ``path`` (named ``shown`` in errors); weights past protobuf's 2 GB go to ``path.data``."""
    import onnx
    try:
        if model.ByteSize() >= 2 ** 31 - 1024:  # protobuf's 2 GB limit: weights go beside the file
            onnx.save(model, path, save_as_external_data=True, location=os.path.basename(path) + ".data")
        else:
            onnx.save(model, path)
    except (OSError, ValueError) as e:
        raise common.CliError(f"cannot write {shown!r}: {getattr(e, 'strerror', None) or common.first_line(e)}") from None


def _publish(staged, dst):
    """Move the staged model (and its ``.data`` file, if any) to ``dst``."""
    try:
        if os.path.exists(staged + ".data"):
            os.replace(staged + ".data", dst + ".data")
        os.replace(staged, dst)
    except OSError as e:
        raise common.CliError(f"cannot write {dst!r}: {e.strerror}") from None


def _print_summary(src, model, converted, args, nbytes):
    from tilerun.load import model_opset
    before = collections.Counter(n.op_type for n in model.graph.node)
    after = collections.Counter(n.op_type for n in converted.graph.node)
    removed = {op: before[op] - after.get(op, 0) for op in before if before[op] > after.get(op, 0)}
    print(f"converted {common.describe_model(src)} -> {args.output}")
    print(f"  opset        {model_opset(model)} -> {model_opset(converted)}")
    print(f"  nodes        {len(model.graph.node)} -> {len(converted.graph.node)}"
          + ("  (removed " + ", ".join(f"{op} x{k}" for op, k in sorted(removed.items())) + ")" if removed else ""))
    shapes = ", ".join(f"{i.name}: {_dims(i)}" for i in converted.graph.input)
    print(f"  inputs       {shapes}")
    print(f"  size         {nbytes / 1e6:.2f} MB")


def _dims(vi):
    return "[" + ", ".join(str(d.dim_value) if d.HasField("dim_value") else (d.dim_param or "?")
                           for d in vi.type.tensor_type.shape.dim) + "]"


def check(model, converted, args, progress):
    """Compare converted against original on random inputs; print the max error; 0 when within tolerance."""
    engine = _evaluator_kind()
    batches = (1, 2) if args.dynamic_batch else (None,)
    worst_ok = True
    for batch in batches:
        inputs = _check_inputs(converted, batch, args.seed)
        with progress.task(f"checking with {engine}"):
            try:
                got = run_model(converted, inputs, engine)
            except common.CliError as e:
                if batch in (None, 1):
                    raise
                raise common.CliError(f"--dynamic-batch: {args.output} does not run at batch {batch} ({e}); "
                                      f"its graph fixes the batch somewhere: use --batch-size N", 1) from None
            ref = run_model(model, inputs, engine, split_batch=True)
        diff = common.max_abs_diff(got, ref)
        scale = max([1.0] + [float(np.max(np.abs(r))) for r in ref if np.asarray(r).size])
        ok = bool(np.isfinite(diff)) and diff <= 1e-4 * scale
        worst_ok &= ok
        where = f" at batch {batch}" if batch else ""
        print(f"check ({engine}, random inputs{where}): max abs error {diff:.3g} "
              f"(tolerance {1e-4 * scale:.3g}): {'PASS' if ok else 'FAIL'}")
        if args.tilerun:
            worst_ok &= _check_tilerun(converted, inputs, ref, scale, where, progress)
    return 0 if worst_ok else 1


def _check_tilerun(converted, inputs, ref, scale, where, progress):
    """Run the converted model in tilerun on ``inputs``; print its max error against ``ref``."""
    import tilerun
    with progress.task("checking with tilerun"):
        batch = inputs[0].shape[0] if inputs and inputs[0].ndim else 1
        with tilerun.compile_model(converted, batch_size=batch) as eng:
            got = eng.run(inputs)
    diff = common.max_abs_diff(got, ref)
    ok = bool(np.isfinite(diff)) and diff <= 1e-3 * scale  # tilerun's own kernels: the model tests' tolerance
    print(f"check (tilerun, random inputs{where}): max abs error {diff:.3g} "
          f"(tolerance {1e-3 * scale:.3g}): {'PASS' if ok else 'FAIL'}")
    return ok


def _evaluator_kind():
    try:
        import onnxruntime  # noqa: F401
        return "onnxruntime"
    except ImportError:
        return "reference evaluator"


def _check_inputs(model, batch, seed):
    rng = np.random.default_rng(seed)
    from tilerun.importer import numpy_dtype
    inits = {t.name for t in model.graph.initializer}
    out = []
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        dims = [d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim]
        if dims and dims[0] is None and batch:
            dims[0] = batch
        if any(d is None for d in dims):
            raise common.CliError(f"input {vi.name!r} has dynamic dims {_dims(vi)}; give --input-shapes")
        out.append(common.random_array(rng, dims, numpy_dtype(vi.type.tensor_type.elem_type, vi.name)))
    return out


def run_model(model, inputs, engine, split_batch=False):
    """Outputs of ``model`` on ``inputs`` (graph-input order) in ORT or the reference evaluator.

    With ``split_batch``, a model whose static batch is smaller than the
    inputs' runs sample by sample and the outputs are concatenated.
    """
    try:
        return _run_once(model, inputs, engine)
    except Exception as e:
        n = inputs[0].shape[0] if inputs and inputs[0].ndim else 1
        if not split_batch or n <= 1:
            raise common.CliError(f"{engine} cannot run the model: {common.first_line(e)}", code=1) from None
    parts = [_run_once(model, [x[i:i + 1] for x in inputs], engine) for i in range(n)]
    return [np.concatenate(outs, axis=0) for outs in zip(*parts)]


def _run_once(model, inputs, engine):
    if engine == "onnxruntime":
        sess = common.ort_session(model, 0, why="the check")
        return sess.run(None, common.ort_feeds(sess, inputs))
    from onnx.reference import ReferenceEvaluator
    ref = ReferenceEvaluator(model)
    inits = {t.name for t in model.graph.initializer}
    names = [i.name for i in model.graph.input if i.name not in inits]
    return ref.run(None, dict(zip(names, inputs)))
