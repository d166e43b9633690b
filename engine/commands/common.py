"""Helpers the subcommands share: model arguments, inputs and outputs, ORT sessions, statistics, progress.

Everything here turns bad user input into a ``CliError`` whose message is one
line, so ``tilerun`` can print it and exit non-zero without a traceback. It
does not parse arguments (``tilerun.cli`` does, with the types of
``commands.flags``) and does not print results (each command does).
"""
import logging
import os
import sys
import threading
import time
import zipfile

import numpy as np

from tilerun.models import random_array  # noqa: F401  (the random data of every command's inputs)

from tilerun.errors import ArgumentError

from .flags import CliError, one_line  # noqa: F401  (CliError: what every command raises)

log = logging.getLogger("tilerun.cli")


# -- models --------------------------------------------------------------------------------

def describe_model(arg):
    """A short name for the model argument (the default model when ``arg`` is None)."""
    return arg if arg is not None else "light_resnet50 (random weights, default)"


def load_model_arg(arg, progress=None):
    """The ``onnx.ModelProto`` a MODEL argument names: a path, a light model name, or None (default).

    Light model names (``resnet50``, ``squeezenet``, ...) load the model shipped
    in the onnx wheel with seeded random weights; ``mobilenet_v2`` and the
    ``MODERN_CNNS`` names (``efficientnet_b0``, ...) build that graph with
    seeded weights.
    """
    if progress is not None:
        with progress.task("loading the model"):
            return load_model_arg(arg)
    from tilerun.errors import ModelError
    from tilerun.load import load_model
    from tilerun.models import (LIGHT_MODELS, MODERN_CNNS, default_model, light_model_path, mobilenet_v2,
                                randomize_weights)
    if arg is None:
        return default_model()
    if not os.path.exists(arg):
        name = arg[len("light_"):] if arg.startswith("light_") else arg
        if name in LIGHT_MODELS:
            return randomize_weights(light_model_path(name), seed=0)
        built = dict(MODERN_CNNS, mobilenet_v2=mobilenet_v2)
        if arg in built:
            return built[arg](seed=0)
        raise CliError(f"model not found: expected an .onnx file or a light model name "
                       f"({', '.join(LIGHT_MODELS)}), given {arg!r}")
    try:
        return load_model(arg)
    except ModelError as e:  # the API's own words: a directory, an empty or malformed file
        raise CliError(one_line(e), code=1) from None


def first_line(text):
    """The first non-empty line of ``text`` (error messages must stay one line)."""
    for line in str(text).splitlines():
        if line.strip():
            return line.strip()
    return ""


def parse_input_shapes(text):
    """``"ids:1x128,mask:1x128"`` → ``{"ids": [1, 128], "mask": [1, 128]}`` (None when empty).

    A symbolic dim may be named instead of an input: ``seq:128`` fixes it,
    ``seq:1-512`` bounds it (``(1, 512)``).
    """
    if not text:
        return None
    shapes = {}
    for part in text.split(","):
        name, sep, dims = part.rpartition(":")
        try:
            if not sep or not name:
                raise ValueError
            lo, dash, hi = dims.partition("-")
            shapes[name] = (int(lo), int(hi)) if dash else [int(d) for d in dims.lower().split("x")]
            if min(shapes[name]) < 1:
                raise ValueError
        except ValueError:
            raise CliError(f"--input-shapes: expected NAME:D1xD2x... (positive dims), or SYMBOL:SIZE or "
                           f"SYMBOL:LO-HI, separated by commas, given {part!r}") from None
    return shapes


def compile_engine(model, args, progress, what="compiling", dynamic=False):
    """``tilerun.compile_model`` with the common flags of ``args``, showing progress while it runs.

    ``dynamic``: the engine may keep dynamic dims (the caller gives each
    request's shapes); otherwise every dim must be fixed by the flags.
    """
    import tilerun
    hint = getattr(args, "hint", None)
    batch = getattr(args, "batch_size", 1)
    shapes = parse_input_shapes(getattr(args, "input_shapes", None))
    if batch == 1 and (hint or dynamic or _names_batch_symbol(model, shapes)):
        batch = None  # the default batch of 1 gives way to the engine's choice or the named symbol
    kwargs = dict(batch_size=batch, input_shapes=shapes,
                  num_cores=usable_cores(getattr(args, "num_cores", None)))
    if getattr(args, "scheduler", None):
        kwargs["scheduler"] = args.scheduler
    if getattr(args, "hint", None):
        kwargs.update(hint=args.hint, num_requests=getattr(args, "concurrency", None))
    if getattr(args, "num_streams", None) is not None:
        kwargs["num_streams"] = args.num_streams
    if getattr(args, "precision", None):
        kwargs["precision"] = args.precision
    with progress.task(what):
        t0 = time.perf_counter()
        eng = tilerun.compile_model(model, **kwargs)
    log.info("compiled in %.2f s", time.perf_counter() - t0)
    for name, dims in zip(eng.input_names, [] if dynamic else eng.input_shapes):
        dynamic = [axis for axis, d in enumerate(dims) if not isinstance(d, int)]
        if dynamic:  # the commands make inputs of the engine's shapes: every dim must be known
            eng.close()
            raise ArgumentError(f"input {name!r} has dynamic dims {[dims[a] for a in dynamic]} at axes {dynamic}; "
                                f"pass input_shapes={{{name!r}: [...]}} with every dim")
    return eng


def _names_batch_symbol(model, shapes):
    """Whether ``--input-shapes`` names the symbol of an input's first (batch) dim."""
    firsts = {vi.type.tensor_type.shape.dim[0].dim_param for vi in model.graph.input
              if vi.type.HasField("tensor_type") and len(vi.type.tensor_type.shape.dim)}
    return bool(shapes) and bool(set(shapes) & (firsts - {""}))


def usable_cores(num_cores):
    """``--num-cores``, or all usable cores when it asks for more (saying so on stderr); None stays None."""
    from tilerun.scheduler import topology
    if num_cores is None:
        return None
    usable = len(topology.detect().cores)
    if num_cores > usable:
        log.warning("--num-cores %d, but %d cores are usable: using %d", num_cores, usable, usable)
        return usable
    return num_cores


# -- inputs --------------------------------------------------------------------------------

def make_inputs(eng, npz=None, seed=0):
    """The request's inputs: arrays from ``npz`` (by input name, else in order) or seeded random data.

    A ``.npy`` file (one array) serves a model with one input.
    """
    if npz is None:
        from tilerun.models import random_inputs
        arrays = random_inputs(eng, seed)
        if eng.config.auto_batch:  # a request carries one item: the engine gathers them into batches
            arrays = [a[:1] for a in arrays]
        return arrays
    if os.path.isdir(npz):
        raise CliError(f"--inputs: {npz!r} is a directory; expected a .npz file of arrays named by input")
    if not os.path.isfile(npz):
        raise CliError(f"--inputs: no such file: {npz!r}")
    try:
        data = np.load(npz, allow_pickle=False)
    except Exception as e:
        raise CliError(f"--inputs: cannot read {npz!r} as a numpy .npz or .npy file "
                       f"({type(e).__name__}: {first_line(e)})") from None
    if isinstance(data, np.ndarray):  # a .npy file: one array
        if len(eng.input_names) != 1:
            raise CliError(f"--inputs: {npz!r} holds one array (a .npy file), but the model has "
                           f"{len(eng.input_names)} inputs {eng.input_names}; give a .npz with one array per input "
                           f"(np.savez(path, **{{name: array}}))")
        data = {eng.input_names[0]: data}
    keys = list(data.keys())
    if all(n in keys for n in eng.input_names):
        arrays = [data[n] for n in eng.input_names]
    elif len(keys) == len(eng.input_names):
        arrays = [data[k] for k in keys]
    else:
        raise CliError(f"--inputs: expected arrays named {eng.input_names}, given {keys}")
    for name, shape, dtype, a in zip(eng.input_names, eng.input_shapes, eng.input_dtypes, arrays):
        if tuple(a.shape) != tuple(shape) or a.dtype != dtype:
            raise CliError(f"--inputs: input {name!r} expected {dtype}{list(shape)}, given {a.dtype}{list(a.shape)}")
    return arrays


def save_outputs(path, names, outputs):
    """Write ``outputs`` to the ``.npz`` file ``path``, one array per output name."""
    try:  # what np.savez writes, without its keyword arguments in the way of output names such as "file"
        with zipfile.ZipFile(path, "w") as z:
            for name, a in zip(names, outputs):
                with z.open(f"{name}.npy", "w", force_zip64=True) as f:
                    np.lib.format.write_array(f, np.asanyarray(a), allow_pickle=False)
    except OSError as e:
        raise CliError(f"--output: cannot write {path!r}: {e.strerror}", code=1) from None


# -- ONNX Runtime --------------------------------------------------------------------------

def import_onnxruntime(why):
    """The ``onnxruntime`` module, or a ``CliError`` saying ``why`` it was needed."""
    try:
        import onnxruntime
    except ImportError:
        raise CliError(f"{why} needs onnxruntime, which is not installed (pip install onnxruntime)") from None
    return onnxruntime


def ort_session(model, threads, why="--compare onnxruntime"):
    """An ORT CPU session on ``model`` (ModelProto or bytes) with ``threads`` intra-op threads."""
    ort = import_onnxruntime(why)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(threads)
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 4  # errors come back as exceptions, shown once
    data = model if isinstance(model, bytes) else model.SerializeToString()
    try:
        return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise CliError(f"onnxruntime cannot load the model: {first_line(e)}", code=1) from None


def ort_feeds(sess, inputs):
    """Feed dict for ``sess`` from arrays in graph-input order."""
    return {i.name: x for i, x in zip(sess.get_inputs(), inputs)}


def max_abs_diff(got, ref):
    """Largest absolute difference over lists of output arrays (inf when shapes differ)."""
    worst = 0.0
    for a, b in zip(got, ref):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape:
            return float("inf")
        if a.size:
            worst = max(worst, float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))))
    return worst


# -- statistics ----------------------------------------------------------------------------

PERCENTILES = (90, 95, 99)
STATS = ("mean", "median", "p90", "p95", "p99", "min", "max")


def latency_stats(seconds):
    """Latency summary of a list of per-request times in seconds: ``{"mean_ms": ..., "p90_ms": ...}``."""
    ms = np.asarray(seconds, dtype=np.float64) * 1e3
    if ms.size == 0:
        return {f"{k}_ms": float("nan") for k in STATS}
    values = {"mean": ms.mean(), "median": np.median(ms), "min": ms.min(), "max": ms.max(),
              **{f"p{p}": np.percentile(ms, p) for p in PERCENTILES}}
    return {f"{k}_ms": float(values[k]) for k in STATS}


def measure(call, seconds, callers=1, min_requests=1):
    """Call ``call()`` from ``callers`` threads until ``seconds`` pass; ``(latencies_s, elapsed_s)``.

    Each thread issues requests back to back; the run ends when the deadline
    passes and at least ``min_requests`` requests have completed.
    """
    lat = [[] for _ in range(callers)]
    errors = []
    start = time.perf_counter()
    deadline = start + max(seconds, 0.0)

    def loop(k):
        try:
            while True:
                t = time.perf_counter()
                if t >= deadline and sum(len(x) for x in lat) >= min_requests:
                    return
                call()
                lat[k].append(time.perf_counter() - t)
        except Exception as e:  # reported once, after every caller stopped
            errors.append(e)

    if callers == 1:
        loop(0)
    else:
        threads = [threading.Thread(target=loop, args=(k,), daemon=True) for k in range(callers)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return [x for per in lat for x in per], elapsed


def fmt_ms(v):
    """A latency in ms with 3 significant decimals for small values."""
    return f"{v:.3f}" if v < 100 else f"{v:.1f}"


# -- progress ------------------------------------------------------------------------------

class Progress:
    """A one-line status on stderr for long work; silent when stderr is not a TTY or when quiet.

    Every step is also logged (``logging`` at INFO), so ``-v`` shows it in logs.
    """

    def __init__(self, quiet=False, stream=None):
        self.stream = stream or sys.stderr
        self.enabled = not quiet and hasattr(self.stream, "isatty") and self.stream.isatty()
        self._text = ""
        self._lock = threading.Lock()

    def update(self, text):
        """Replace the status line with ``text``."""
        log.info("%s", text)
        with self._lock:
            self._text = text
            self._draw(text)

    def _draw(self, text):
        if self.enabled:
            self.stream.write("\r\033[K" + text)
            self.stream.flush()

    def clear(self):
        """Erase the status line (call before printing results)."""
        with self._lock:
            self._draw("")

    def task(self, text):
        """Context manager showing ``text`` with the elapsed seconds until the block ends."""
        return _Task(self, text)


class _Task:
    def __init__(self, progress, text):
        self.p, self.text = progress, text
        self._stop = threading.Event()

    def __enter__(self):
        self.p.update(self.text + " ...")
        if self.p.enabled:
            self._t0 = time.perf_counter()
            self._thread = threading.Thread(target=self._tick, daemon=True)
            self._thread.start()
        return self

    def _tick(self):
        while not self._stop.wait(0.25):
            with self.p._lock:
                self.p._draw(f"{self.text} ... {time.perf_counter() - self._t0:.1f} s")

    def __exit__(self, *exc):
        self._stop.set()
        if self.p.enabled:
            self._thread.join()
        self.p.clear()
