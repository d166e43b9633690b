"""``tilerun profile [MODEL]``: where a request's time goes, per op after fusion.

Traces a few requests (``Engine.trace``: every tile's worker and start/end
time), takes each plan row's median over the runs and prints the rows sorted
by busy time with their share of the total, GFLOP/s for rows that count
flops (Conv, Gemm, MatMul, Attention), and how many tiles each worker ran. A summary by
op type follows. ``--trace out.json`` writes the Chrome/Perfetto timeline of
the median run. It reads the numbers the executor records; nothing is timed
from Python per op.
"""
import collections
import statistics

from . import common, flags
from .benchmark import engine_cores

EXAMPLES = ("tilerun profile squeezenet --top 10",
            "tilerun profile model.onnx --runs 10 --trace trace.json   # open trace.json in ui.perfetto.dev")


def add_parser(sub):
    """Register ``profile`` on the subparsers ``sub``."""
    p = sub.add_parser("profile", help="per-op time table (after fusion), GFLOP/s, tiles per worker, Chrome trace")
    p.add_argument("model", nargs="?", help="ONNX file or light model name (default: light resnet50, random weights)")
    flags.add_precision(p)
    p.add_argument("--num-cores", type=flags.positive_int, default=None, help="cores to use (default: all usable)")
    p.add_argument("--batch-size", type=flags.positive_int, default=1, help="batch dim of the inputs (default 1)")
    p.add_argument("--input-shapes", default=None, help="dynamic dims, e.g. ids:1x128")
    p.add_argument("--inputs", metavar="FILE.npz", default=None, help="input arrays (default: seeded random data)")
    p.add_argument("--runs", type=flags.positive_int, default=5,
                   help="traced requests; each op's median is shown (default 5)")
    p.add_argument("--top", type=flags.non_negative_int, default=30, help="rows to show (0: all; default 30)")
    p.add_argument("--trace", metavar="OUT.json", default=None, help="write the Chrome/Perfetto trace of the median run")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.set_defaults(func=main)


def main(args):
    """Run the ``profile`` command; returns the exit code."""
    flags.check_output_path("--trace", args.trace)
    progress = common.Progress(args.quiet)
    model = common.load_model_arg(args.model, progress)
    with common.compile_engine(model, args, progress) as eng:
        if not hasattr(eng, "trace"):
            raise common.CliError("this engine build has no tracing (Engine.trace)", code=1)
        inputs = common.make_inputs(eng, args.inputs)
        with progress.task(f"tracing {args.runs} requests"):
            eng.run(inputs)  # first-call costs stay out of the trace
            traces = [eng.trace(inputs) for _ in range(args.runs)]
        workers = engine_cores(eng)
    rows, wall_ms, median_trace = summarize(traces)
    print(f"tilerun profile: {common.describe_model(args.model)}  cores={workers}  batch={args.batch_size}  "
          f"runs={len(traces)} (median per op)")
    busy = sum(r["busy_ms"] for r in rows)
    print(f"request wall {wall_ms:.3f} ms; op busy time {busy:.3f} ms over {workers} worker(s) "
          f"= {100 * busy / max(wall_ms * workers, 1e-12):.1f}% utilization; {len(rows)} ops after fusion")
    print()
    print(format_rows(rows, busy, args.top))
    print()
    print(format_by_type(rows, busy))
    if args.trace:
        try:
            median_trace.to_chrome(args.trace)
        except OSError as e:
            raise common.CliError(f"--trace: cannot write {args.trace!r}: {e.strerror}") from None
        print(f"\nChrome trace written to {args.trace} (open in chrome://tracing or ui.perfetto.dev)")
    return 0


def summarize(traces):
    """Per-row medians over ``traces``, sorted by busy time; plus median wall ms and the median trace."""
    walls = [t.wall_ns / 1e6 for t in traces]
    mid = sorted(range(len(traces)), key=lambda i: walls[i])[len(traces) // 2]
    per_run = [{d["row"]: d for d in t.per_op()} for t in traces]
    rows = []
    for row, d in per_run[mid].items():
        same = [p[row] for p in per_run if row in p]
        r = dict(d)
        r["busy_ms"] = statistics.median(x["busy_ms"] for x in same)
        r["span_ms"] = statistics.median(x["span_ms"] for x in same)
        r["tiles_per_worker"] = tiles_per_worker(traces[mid], row)
        rows.append(r)
    rows.sort(key=lambda r: -r["busy_ms"])
    return rows, statistics.median(walls), traces[mid]


def tiles_per_worker(trace, row):
    """``{worker: tiles}`` of one plan row in ``trace``."""
    ev = trace.events
    counts = collections.Counter(int(w) for w in ev[ev[:, 1] == row][:, 0])
    return dict(sorted(counts.items()))


FLOP_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul", "Attention"}


def _gflops(flops, ms, op_type):
    """GFLOP/s of a Conv/Gemm/MatMul row ('' for other ops, whose flops are not comparable)."""
    return f"{flops / (ms * 1e6):.1f}" if op_type in FLOP_OPS and flops and ms > 0 else ""


def format_rows(rows, busy_total, top):
    """The per-op table: busy and span ms, share, GFLOP/s (over span, and per busy core), tiles per worker."""
    shown = rows if not top else rows[:top]
    lines = [f"{'node':<30} {'op':<18} {'kernel':<26} {'tiles':>5} {'busy ms':>8} {'share':>6} "
             f"{'span ms':>8} {'GFLOP/s':>8} {'/core':>6}  {'output':<24}  tiles per worker"]
    for r in shown:
        op = r["op_type"]
        share = 100 * r["busy_ms"] / busy_total if busy_total else 0.0
        where = " ".join(f"w{w}:{n}" for w, n in r["tiles_per_worker"].items())
        lines.append(f"{_cut(r['node'], 30):<30} {_cut(op, 18):<18} {_cut(r['kernel'], 26):<26} {r['tiles']:>5} "
                     f"{r['busy_ms']:>8.3f} {share:>5.1f}% {r['span_ms']:>8.3f} "
                     f"{_gflops(r['flops'], r['span_ms'], op):>8} {_gflops(r['flops'], r['busy_ms'], op):>6}  "
                     f"{_cut(r.get('output') or '-', 24):<24}  {where}")
    if len(shown) < len(rows):
        rest = rows[len(shown):]
        rest_ms = sum(r["busy_ms"] for r in rest)
        lines.append(f"... {len(rest)} more ops, {rest_ms:.3f} ms busy "
                     f"({100 * rest_ms / busy_total if busy_total else 0:.1f}%); --top 0 shows all")
    return "\n".join(lines)


def format_by_type(rows, busy_total):
    """Busy time per op type, largest first."""
    acc = collections.defaultdict(lambda: [0, 0.0, 0])
    for r in rows:
        a = acc[r["op_type"]]
        a[0] += 1
        a[1] += r["busy_ms"]
        a[2] += r["flops"]
    lines = [f"{'op type':<22} {'ops':>4} {'busy ms':>9} {'share':>6} {'GFLOP/core-s':>13}"]
    for op, (n, ms, flops) in sorted(acc.items(), key=lambda kv: -kv[1][1]):
        share = 100 * ms / busy_total if busy_total else 0.0
        lines.append(f"{_cut(op, 22):<22} {n:>4} {ms:>9.3f} {share:>5.1f}% {_gflops(flops, ms, op):>13}")
    return "\n".join(lines)


def _cut(text, n):
    text = str(text)
    return text if len(text) <= n else text[: n - 1] + "~"
