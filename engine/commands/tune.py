"""``tilerun tune [MODEL]``: a small timed sweep of scheduler x streams x batch size, and a pick.

Each configuration is compiled, warmed up and measured for ``--time`` seconds
with as many sync callers as streams. The table gives throughput against p90
latency; the recommendation is the highest throughput whose p90 latency is
within ``--max-latency``. ``--plot`` draws the latency-vs-throughput chart
(matplotlib is optional). A configuration that cannot run (e.g. a batch size
the model fixes otherwise) is reported and skipped; an op tilerun does not
support fails the command at once. Latencies are in ms (JSON keys end in
``_ms``). It does not search kernel or tile parameters.
"""
import json

from . import common, flags

SCHEDULERS = ("single_stream", "multi_stream", "elastic")
EXAMPLES = ("tilerun tune squeezenet --max-latency 50",
            "tilerun tune model.onnx --schedulers multi_stream --streams 2,4 --batch-sizes 1,8 --plot tune.png",
            "tilerun tune model.onnx --time 5 --json tune.json")


def add_parser(sub):
    """Register ``tune`` on the subparsers ``sub``."""
    t = sub.add_parser("tune", help="sweep scheduler x streams x batch size and recommend a configuration")
    t.add_argument("model", nargs="?", help="ONNX file or light model name (default: light resnet50, random weights)")
    t.add_argument("--max-latency", type=flags.positive_float, default=None, metavar="MS",
                   help="p90 latency bound in ms")
    t.add_argument("--plot", metavar="PNG", default=None,
                   help="draw latency vs throughput to a .png/.svg/.pdf... file (needs matplotlib)")
    t.add_argument("--schedulers", default=",".join(SCHEDULERS), help="comma list (default: all three)")
    t.add_argument("--streams", default=None, help="stream counts for multi_stream (default: 2,cores)")
    t.add_argument("--batch-sizes", default="1,2,4", help="comma list (default 1,2,4)")
    flags.add_precision(t)
    t.add_argument("--num-cores", type=flags.positive_int, default=None, help="cores to use (default: all usable)")
    t.add_argument("--input-shapes", default=None, help="dynamic dims, e.g. ids:1x128")
    t.add_argument("--time", type=flags.positive_float, default=2.0,
                   help="measured seconds per configuration (default 2)")
    t.add_argument("--warmup", type=flags.non_negative_float, default=0.5,
                   help="warm-up seconds per configuration (default 0.5)")
    t.add_argument("--json", metavar="PATH", default=None, help="also write the table as JSON")
    t.add_argument("--quiet", action="store_true", help="no progress display")
    t.set_defaults(func=main)


def _int_list(text, flag):
    try:
        vals = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise common.CliError(f"{flag}: expected comma-separated integers, given {text!r}") from None
    if not vals or vals[0] < 1:
        raise common.CliError(f"{flag}: expected positive integers, given {text!r}")
    return vals


def sweep_configs(schedulers, streams, batch_sizes):
    """(scheduler, streams, batch) triples in sweep order.

    single_stream has one stream; elastic gets None (its default: one stream
    per NUMA node / L3 domain); multi_stream takes each of ``streams``.
    """
    out = []
    for s in schedulers:
        for b in batch_sizes:
            for n in {"single_stream": [1], "elastic": [None]}.get(s, streams):
                out.append((s, n, b))
    return out


def _check_args(args):
    schedulers = [s.strip() for s in args.schedulers.split(",") if s.strip()]
    bad = [s for s in schedulers if s not in SCHEDULERS]
    if bad or not schedulers:
        raise common.CliError(f"--schedulers: expected names from {list(SCHEDULERS)}, given {args.schedulers!r}")
    if args.plot:  # fail before the sweep, not after it
        flags.check_output_path("--plot", args.plot, plot_formats())
    flags.check_output_path("--json", args.json, {"json"})
    return schedulers, _int_list(args.batch_sizes, "--batch-sizes")


def main(args):
    """Run the ``tune`` command; returns the exit code."""
    from tilerun.scheduler import topology
    schedulers, batch_sizes = _check_args(args)
    args.num_cores = common.usable_cores(args.num_cores)  # said once, not once per configuration
    cores = args.num_cores or len(topology.detect().cores)
    streams = _int_list(args.streams, "--streams") if args.streams else sorted({2, max(2, cores)})
    progress = common.Progress(args.quiet)
    model = common.load_model_arg(args.model, progress)
    rows, skipped = sweep(model, args, sweep_configs(schedulers, streams, batch_sizes), progress)
    if not rows:
        raise common.CliError("no configuration could run: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()), 1)
    best = recommend(rows, args.max_latency)
    print(f"tilerun tune: {common.describe_model(args.model)}  cores={cores}  {args.time:g} s per configuration, "
          f"callers = streams; latency per request of batch items")
    print(format_table(rows, best))
    for what, why in skipped.items():
        print(f"skipped {what}: {why}")
    print(recommendation_text(rows, best, args.max_latency))
    if args.json:
        try:
            with open(args.json, "w") as f:
                json.dump({"rows": rows, "recommended": best, "skipped": skipped}, f, indent=2)
        except OSError as e:
            raise common.CliError(f"--json: cannot write {args.json!r}: {e.strerror}", code=1) from None
    if args.plot:
        plot(rows, best, args.max_latency, args.plot)
        print(f"chart written to {args.plot}")
    return 0


def sweep(model, args, configs, progress):
    """Measure each configuration: ``(rows, {what was skipped: why})``; an unsupported op ends the sweep."""
    from tilerun.errors import TilerunError, UnsupportedOpError
    rows, skipped = [], {}
    for i, (sched, n, batch) in enumerate(configs):
        if sched in skipped:
            continue
        label = f"[{i + 1}/{len(configs)}] {sched} streams={n or 'default'} batch={batch}"
        try:
            rows.append(measure_config(model, args, sched, n, batch, progress, label))
        except UnsupportedOpError:
            raise  # no configuration can run it
        except NotImplementedError as e:
            skipped[sched] = flags.one_line(flags.error_text(e))
        except TilerunError as e:  # this configuration only (e.g. a batch size the model cannot take)
            skipped[f"{sched} streams={n or 'default'} batch={batch}"] = flags.one_line(flags.error_text(e))
    progress.clear()
    return rows, skipped


def measure_config(model, args, sched, streams, batch, progress, label):
    """Compile and measure one configuration; a result dict (items/s and latency stats in ms)."""
    cfg = _Args(batch_size=batch, input_shapes=args.input_shapes, num_cores=args.num_cores, scheduler=sched,
                precision=args.precision,
                num_streams=streams if sched == "multi_stream" else None)
    with common.compile_engine(model, cfg, progress, what=f"{label}: compiling") as eng:
        inputs = common.make_inputs(eng)
        callers = 1 if sched == "single_stream" else max(1, int(eng.num_streams))
        with progress.task(f"{label}: measuring"):
            eng.run(inputs)
            if args.warmup:
                common.measure(lambda: eng.run(inputs), args.warmup, callers)
            lat, elapsed = common.measure(lambda: eng.run(inputs), args.time, callers)
    stats = common.latency_stats(lat)
    return {"scheduler": sched, "streams": int(eng.num_streams), "batch_size": batch,
            "callers": callers, "items_per_s": len(lat) * batch / elapsed, "requests": len(lat), **stats}


class _Args:
    """The few attributes ``common.compile_engine`` reads, for one swept configuration."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


def recommend(rows, max_latency):
    """Index of the highest-throughput row with p90 within ``max_latency`` (None when none is)."""
    ok = [i for i, r in enumerate(rows) if max_latency is None or r["p90_ms"] <= max_latency]
    return max(ok, key=lambda i: rows[i]["items_per_s"]) if ok else None


def format_table(rows, best):
    """The sweep as a text table; the recommended row is marked with ``*``."""
    head = f"  {'scheduler':<14}{'streams':>8}{'batch':>6}{'items/s':>10}{'median ms':>11}{'p90 ms':>9}{'p99 ms':>9}"
    lines = [head]
    for i, r in enumerate(rows):
        mark = "*" if i == best else " "
        lines.append(f"{mark} {r['scheduler']:<14}{r['streams']:>8}{r['batch_size']:>6}{r['items_per_s']:>10.2f}"
                     f"{common.fmt_ms(r['median_ms']):>11}{common.fmt_ms(r['p90_ms']):>9}"
                     f"{common.fmt_ms(r['p99_ms']):>9}")
    return "\n".join(lines)


def recommendation_text(rows, best, max_latency):
    """One line saying which configuration to use and why."""
    bound = f" with p90 <= {max_latency:g} ms" if max_latency is not None else ""
    if best is None:
        fastest = min(rows, key=lambda r: r["p90_ms"])
        return (f"no configuration meets p90 <= {max_latency:g} ms; the lowest p90 is {fastest['p90_ms']:.2f} ms "
                f"({_flags(fastest)})")
    r = rows[best]
    return f"recommended{bound}: {_flags(r)}  ({r['items_per_s']:.2f} items/s, p90 {r['p90_ms']:.2f} ms)"


def _flags(r):
    s = f"--scheduler {r['scheduler']}"
    if r["scheduler"] != "single_stream":
        s += f" --num-streams {r['streams']}"
    return s + f" --batch-size {r['batch_size']}"


def plot_module():
    """``matplotlib.pyplot`` (Agg backend), or a ``CliError`` saying how to install it."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise common.CliError("--plot needs matplotlib, which is not installed (pip install matplotlib)") from None
    return plt


def plot_formats():
    """File suffixes ``--plot`` can write (those of matplotlib's Agg canvas)."""
    plot_module()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    return set(FigureCanvasAgg.get_supported_filetypes())


def chart(rows, best, max_latency):
    """The p90-latency-vs-throughput figure, one series per scheduler; the pick is ringed, its point left visible."""
    plt = plot_module()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    if best is not None:  # a hollow ring under the point, not a marker over it
        ax.plot([rows[best]["p90_ms"]], [rows[best]["items_per_s"]], "o", markersize=16, markerfacecolor="none",
                markeredgecolor="black", markeredgewidth=1.5, zorder=1, label="recommended")
    for sched in SCHEDULERS:
        pts = [r for r in rows if r["scheduler"] == sched]
        if pts:
            ax.plot([r["p90_ms"] for r in pts], [r["items_per_s"] for r in pts], "o", label=sched, zorder=2)
            for r in pts:
                ax.annotate(f"s{r['streams']} b{r['batch_size']}", (r["p90_ms"], r["items_per_s"]), fontsize=7,
                            xytext=(5, 5), textcoords="offset points")
    if max_latency is not None:
        ax.axvline(max_latency, color="grey", linestyle="--", label=f"max latency {max_latency:g} ms")
    ax.set_xlabel("p90 latency per request (ms)")
    ax.set_ylabel("throughput (items/s)")
    ax.set_title("tilerun tune: latency vs throughput")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot(rows, best, max_latency, path):
    """Draw ``chart`` to ``path``."""
    plt = plot_module()
    fig = chart(rows, best, max_latency)
    try:
        fig.savefig(path, dpi=120)
    except OSError as e:
        raise common.CliError(f"--plot: cannot write {path!r}: {e.strerror}", code=1) from None
    finally:
        plt.close(fig)
