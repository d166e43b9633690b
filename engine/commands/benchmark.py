"""``tilerun benchmark [MODEL]``: throughput and latency statistics, optionally beside ONNX Runtime.

Sync callers issue requests back to back for ``--time`` seconds after a
``--warmup``: one caller for single_stream, as many as streams for
multi_stream/elastic unless ``--concurrency`` says otherwise. With
``--compare onnxruntime`` the same inputs run on an ORT session with the same
callers and the same cores (intra-op threads = cores / callers), in
alternating phases (tilerun, ORT, ORT, tilerun, ...) so drift on a shared
machine hits both engines alike. Latencies are in ms (JSON keys end in
``_ms``); a speed-up is how many times faster tilerun is (> 1: tilerun
faster). ``--shapes`` serves a mix of input shapes through one engine
compiled with its dims dynamic: each caller cycles through the mix from its
own starting point, so items/s is requests x the mix's mean batch. It does
not sweep configurations: ``tilerun tune`` does.
"""
import itertools
import json
import os

from . import common, flags

STATS = tuple(f"{s}_ms" for s in common.STATS)  # latency keys of a result (and of the JSON file)
PHASE_SECONDS = 1.0
EXAMPLES = ("tilerun benchmark squeezenet --compare onnxruntime --json bench.json",
            "tilerun benchmark model.onnx --scheduler multi_stream --num-streams 2 --time 30",
            "tilerun benchmark model.onnx --input-shapes input_ids:1x128 --inputs in.npz",
            "tilerun benchmark bert.onnx --shapes ids:1x16,mask:1x16 ids:4x128,mask:4x128 --compare onnxruntime")


def add_parser(sub):
    """Register ``benchmark`` on the subparsers ``sub``."""
    b = sub.add_parser("benchmark", help="measure throughput and latency (optionally against ONNX Runtime)")
    b.add_argument("model", nargs="?", help="ONNX file or light model name (default: light resnet50, random weights)")
    b.add_argument("--scheduler", choices=["single_stream", "multi_stream", "elastic"], default=None,
                   help="how requests share the cores (default single_stream, or what --hint picks)")
    b.add_argument("--hint", choices=["latency", "throughput"], default=None,
                   help="let tilerun pick scheduler, streams and auto-batching for this model (with "
                        "--concurrency: the callers expected)")
    b.add_argument("--num-streams", type=flags.positive_int, default=None,
                   help="request slots (multi_stream/elastic)")
    flags.add_precision(b)
    b.add_argument("--num-cores", type=flags.positive_int, default=None, help="cores to use (default: all usable)")
    b.add_argument("--batch-size", type=flags.positive_int, default=1, help="batch dim of the inputs (default 1)")
    b.add_argument("--input-shapes", default=None, help="dynamic dims, e.g. ids:1x128,mask:1x128")
    b.add_argument("--shapes", nargs="+", metavar="NAME:DIMS,...", default=None,
                   help="a mix of request shapes served by one engine, each entry giving every input, e.g. "
                        "ids:1x16,mask:1x16 ids:4x128,mask:4x128")
    b.add_argument("--time", type=flags.positive_float, default=10.0,
                   help="measured seconds per engine (default 10)")
    b.add_argument("--warmup", type=flags.non_negative_float, default=2.0,
                   help="warm-up seconds per engine (default 2)")
    b.add_argument("--concurrency", type=flags.positive_int, default=None,
                   help="concurrent callers (default: streams)")
    b.add_argument("--compare", choices=["onnxruntime"], default=None, help="run the same workload on ONNX Runtime")
    b.add_argument("--inputs", metavar="FILE.npz", default=None, help="input arrays (default: seeded random data)")
    b.add_argument("--json", metavar="PATH", default=None, help="also write the results as JSON")
    b.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    b.add_argument("--quiet", action="store_true", help="no progress display")
    b.set_defaults(func=main)


def engine_cores(eng):
    """Number of worker cores the engine runs on."""
    topo = getattr(eng, "topology", None)
    if topo is not None:
        return len(topo.cores)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def request_batch(inputs):
    """The batch a request carries: the leading dim of its first input with one (1 for scalars)."""
    return next((int(a.shape[0]) for a in inputs if a.ndim), 1)


def default_callers(eng, concurrency=None):
    """Concurrent callers: ``concurrency`` if given, else 1 for single_stream, else the stream count."""
    if concurrency:
        return concurrency
    return 1 if str(eng.scheduler) == "single_stream" else max(1, int(eng.num_streams))


def main(args):
    """Run the ``benchmark`` command; returns the exit code."""
    flags.check_output_path("--json", args.json, {"json"})
    if args.compare:
        common.import_onnxruntime("--compare onnxruntime")
    if args.shapes and args.inputs:
        raise common.CliError("--shapes makes seeded random inputs of each shape; it does not take --inputs")
    progress = common.Progress(args.quiet)
    model = common.load_model_arg(args.model, progress)
    with common.compile_engine(model, args, progress, dynamic=bool(args.shapes)) as eng:
        mix = _shape_mix(eng, args.shapes, args.seed) if args.shapes else [common.make_inputs(eng, args.inputs,
                                                                                               args.seed)]
        config = _config(args, eng, mix)
        _print_config(config)
        runners = {"tilerun": _cycling(eng.run, mix)}
        if args.compare:
            runners["onnxruntime"] = _ort_runner(model, eng, mix, config, progress)
        results = measure_interleaved(runners, args.time, args.warmup, config["callers"], progress)
    for r in results.values():  # items: the batch each request really carried
        r["items_per_s"] = r["requests"] * config["batch_size"] / r["seconds"] if r["seconds"] else float("nan")
    print()
    print(format_table(results))
    if args.json:
        _write_json(args.json, config, results)
    return 0


def _shape_mix(eng, specs, seed):
    """Seeded random inputs for each ``--shapes`` entry (every input's full shape, checked by the engine)."""
    import numpy as np
    from tilerun.models import random_array
    rng = np.random.default_rng(seed)
    mix = []
    for spec in specs:
        shapes = common.parse_input_shapes(spec)
        missing = [n for n in eng.input_names if n not in shapes]
        unknown = [n for n in shapes if n not in eng.input_names]
        if missing or unknown:
            raise common.CliError(f"--shapes {spec!r}: expected a shape for each input {eng.input_names}"
                                  + (f", missing {missing}" if missing else "")
                                  + (f", unknown {unknown}" if unknown else ""))
        arrays = [random_array(rng, shapes[n], d) for n, d in zip(eng.input_names, eng.input_dtypes)]
        try:
            eng._check_inputs(arrays)
        except Exception as e:
            raise common.CliError(f"--shapes {spec!r}: {flags.one_line(e)}") from None
        mix.append(arrays)
    return mix


def _cycling(run, mix):
    """A runner sending the mix's requests in turn (one set: always the same request)."""
    if len(mix) == 1:
        return lambda: run(mix[0])
    turn = itertools.count()
    return lambda: run(mix[next(turn) % len(mix)])


def _config(args, eng, mix):
    batches = [request_batch(inputs) for inputs in mix]
    shown = {n: " | ".join(f"{inputs[k].dtype}{list(inputs[k].shape)}" for inputs in mix)
             for k, n in enumerate(eng.input_names)}
    return {"model": common.describe_model(args.model), "scheduler": str(eng.scheduler),
            "streams": int(eng.num_streams), "cores": engine_cores(eng), "batch_size": sum(batches) / len(batches),
            "callers": default_callers(eng, args.concurrency), "time_s": args.time, "warmup_s": args.warmup,
            "inputs": shown, "input_source": args.inputs or f"random (seed {args.seed})",
            "shapes": len(mix), "hint": eng.config.hint, "auto_batch": eng.config.auto_batch,
            "precision": eng.config.precision}


def _print_config(c):
    print("tilerun benchmark")
    print(f"  model        {c['model']}")
    ins = ", ".join(f"{n}: {t}" for n, t in c["inputs"].items())
    print(f"  inputs       {ins}  [{c['input_source']}]")
    batch = f"{c['batch_size']:g}" + (f" (mean of {c['shapes']} shapes)" if c["shapes"] > 1 else "")
    print(f"  scheduler    {c['scheduler']}  streams={c['streams']}  cores={c['cores']}  "
          f"batch={batch}  callers={c['callers']}")
    if c.get("hint"):
        print(f"  hint         {c['hint']}: auto-batch {c['auto_batch'] or 'off'}")
    print(f"  precision    {c['precision']}")
    print(f"  time         {c['time_s']:g} s measured per engine after {c['warmup_s']:g} s warm-up")


def _ort_runner(model, eng, mix, config, progress):
    """A callable running the requests on ORT (same threads and inputs); prints ORT's config and the diff."""
    # The same core budget: concurrent callers share the cores instead of each asking for all of them.
    threads = max(1, config["cores"] // config["callers"])
    sess, note = _ort_for(model, eng, threads, progress, mixed=len(mix) > 1)
    feeds = [common.ort_feeds(sess, inputs) for inputs in mix]
    config["onnxruntime"] = {"intra_op_num_threads": threads, "callers": config["callers"], "note": note}
    print(f"  onnxruntime  intra_op_num_threads={threads}  callers={config['callers']}"
          + (f"  ({note})" if note else ""))
    diff, scale = 0.0, 0.0
    for inputs, feed in zip(mix, feeds):
        ref = sess.run(None, feed)
        diff = max(diff, common.max_abs_diff(eng.run(inputs), ref))
        scale = max([scale] + [float(abs(r).max()) for r in ref if r.size])
    print(f"  outputs      max abs diff tilerun vs onnxruntime: {diff:.3g} (max |output| {scale:.3g})")
    return _cycling(lambda feed: sess.run(None, feed), feeds)


def _ort_for(model, eng, threads, progress, mixed=False):
    """An ORT session for the engine's input shapes, and a note when the model had to be re-exported."""
    if mixed or _declared_shapes_accept(model, eng):  # a mix runs on the model's own dynamic dims
        return common.ort_session(model, threads), ""
    from tilerun.export import convert_model
    with progress.task("re-exporting the model with the benchmark's static shapes for onnxruntime"):
        shapes = dict(zip(eng.input_names, [list(s) for s in eng.input_shapes]))
        fixed = convert_model(model, input_shapes=shapes)
    return common.ort_session(fixed, threads), "onnxruntime runs the model re-exported with static input shapes"


def _declared_shapes_accept(model, eng):
    inits = {t.name for t in model.graph.initializer}
    declared = {i.name: i for i in model.graph.input if i.name not in inits}
    for name, shape in zip(eng.input_names, eng.input_shapes):
        vi = declared.get(name)
        if vi is None:
            return False
        dims = vi.type.tensor_type.shape.dim
        if len(dims) != len(shape):
            return False
        if any(d.HasField("dim_value") and d.dim_value > 0 and d.dim_value != s for d, s in zip(dims, shape)):
            return False
    return True


def measure_interleaved(runners, seconds, warmup, callers, progress):
    """Measure each runner for ``seconds`` in alternating phases; dict name → stats and counts."""
    names = list(runners)
    for name in names:
        with progress.task(f"warming up {name}"):
            runners[name]()  # at least one request: first-call costs stay out of the numbers
            if warmup > 0:
                common.measure(runners[name], warmup, callers)
    n_phases = max(1, round(seconds / PHASE_SECONDS)) if len(names) > 1 else 1
    lat = {n: [] for n in names}
    spent = {n: 0.0 for n in names}
    for k in range(n_phases):
        order = names if k % 2 == 0 else names[::-1]
        for name in order:
            progress.update(f"measuring {name}: phase {k + 1}/{n_phases}")
            times, elapsed = common.measure(runners[name], seconds / n_phases, callers)
            lat[name].extend(times)
            spent[name] += elapsed
    progress.clear()
    out = {}
    for name in names:
        r = common.latency_stats(lat[name])
        r["requests"], r["seconds"] = len(lat[name]), spent[name]
        out[name] = r
    return out


def format_table(results):
    """The results as a text table; with two engines a third column gives tilerun's speed-up."""
    names = list(results)
    two = len(names) == 2
    head = f"{'':<18}" + "".join(f"{n:>14}" for n in names) + (f"{'speed-up':>11}" if two else "")
    lines = [head]

    def row(label, key, fmt, higher_better):
        vals = [results[n][key] for n in names]
        line = f"{label:<18}" + "".join(f"{fmt(v):>14}" for v in vals)
        if two:
            a, b = vals
            ratio = (a / b if higher_better else b / a) if a and b else float("nan")
            line += f"{ratio:>10.2f}x"
        lines.append(line)

    row("items/s", "items_per_s", lambda v: f"{v:.2f}", True)
    for key in STATS:
        row(f"latency {key[:-3]} ms", key, common.fmt_ms, False)
    lines.append(f"{'requests':<18}" + "".join(f"{results[n]['requests']:>14}" for n in names))
    if two:
        lines.append("speed-up = how many times faster tilerun is (>1: tilerun faster)")
    return "\n".join(lines)


def _write_json(path, config, results):
    import tilerun
    doc = {"tilerun_version": tilerun.__version__, "config": config, "results": results}
    if len(results) == 2:
        t, o = results["tilerun"], results["onnxruntime"]
        # Speed-ups are ratios (no unit): tilerun's throughput over ORT's, ORT's latency over tilerun's.
        doc["speedup"] = {"items_per_s": t["items_per_s"] / o["items_per_s"],
                          **{f"latency_{k[:-3]}": o[k] / t[k] for k in STATS if t[k]}}
    try:
        with open(path, "w") as f:
            json.dump(doc, f, indent=2)
    except OSError as e:
        raise common.CliError(f"--json: cannot write {path!r}: {e.strerror}", code=1) from None
    print(f"results written to {path}")
