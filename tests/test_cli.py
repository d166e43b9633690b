"""Every ``tilerun`` subcommand through ``main(argv)`` and the console script in a subprocess.

Small models built with onnx.helper keep the module fast; outputs are checked
for content (and numbers for consistency), exit codes for 0 on success and
non-zero with a one-line message for a missing file, an unknown model path, a
malformed model and bad flags.
"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tilerun.cli import main
from tilerun.commands import common, tune

try:
    import matplotlib  # noqa: F401
    HAVE_MPL = True
except ImportError:
    HAVE_MPL = False
try:
    import torch  # noqa: F401
    HAVE_TORCH = True
except ImportError:
    HAVE_TORCH = False


def _save(model, path):
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return str(path)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A one-Add model written to disk."""
    w = numpy_helper.from_array(np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4), "w")
    g = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "tiny",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 4])], [w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    return _save(m, tmp_path_factory.mktemp("cli") / "tiny.onnx")


def _convnet(batch):
    """Conv(+BatchNorm, Relu) → Flatten → Gemm, a network with flops to count; ``batch`` may be 'N'."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32) * 0.3, "w"),
             numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "b"),
             numpy_helper.from_array((1 + 0.1 * rng.standard_normal(8)).astype(np.float32), "s"),
             numpy_helper.from_array(0.1 * rng.standard_normal(8).astype(np.float32), "bb"),
             numpy_helper.from_array(0.1 * rng.standard_normal(8).astype(np.float32), "m"),
             numpy_helper.from_array((0.5 + rng.random(8)).astype(np.float32), "v"),
             numpy_helper.from_array(rng.standard_normal((8 * 8 * 8, 10)).astype(np.float32) * 0.05, "g")]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "s", "bb", "m", "v"], ["n"]),
             helper.make_node("Relu", ["n"], ["r"]),
             helper.make_node("Flatten", ["r"], ["f"]),
             helper.make_node("Gemm", ["f", "g"], ["y"])]
    g = helper.make_graph(nodes, "convnet", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 10])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


@pytest.fixture(scope="module")
def convnet(tmp_path_factory):
    """The small conv network with a dynamic batch dim, on disk."""
    return _save(_convnet("N"), tmp_path_factory.mktemp("cli") / "convnet.onnx")


@pytest.fixture(scope="module")
def convnet_b1(tmp_path_factory):
    """The small conv network with its batch fixed to 1, on disk."""
    return _save(_convnet(1), tmp_path_factory.mktemp("cli") / "convnet_b1.onnx")


def _script():
    """The installed ``tilerun`` console script beside this interpreter, else ``python -m tilerun.cli``."""
    exe = os.path.join(os.path.dirname(sys.executable), "tilerun")
    exe = exe if os.path.exists(exe) else shutil.which("tilerun")
    return [exe] if exe else [sys.executable, "-m", "tilerun.cli"]


def _tilerun(*argv):
    return subprocess.run(_script() + list(argv), capture_output=True, text=True, env=dict(os.environ), timeout=300)


def _table(out):
    """``{label: [numbers...]}`` from the benchmark's result table lines."""
    rows = {}
    for line in out.splitlines():
        if line.startswith(("items/s", "latency ", "requests")):
            label, _, rest = line.partition("  ")
            rows[label.strip()] = [float(v.rstrip("x")) for v in rest.split()]
    return rows


# -- run -----------------------------------------------------------------------------------

def test_run_main(tiny, capsys):
    assert main(["run", tiny, "--iterations", "3"]) == 0
    out = capsys.readouterr().out
    assert "latency:" in out and "PASS" in out and "top-5" in out


@pytest.mark.slow  # a fresh interpreter imports tilerun and loads Numba's cache: 2-5 s
def test_run_subprocess(tiny):
    r = _tilerun("run", tiny, "--iterations", "2")
    assert r.returncode == 0, r.stderr
    assert "latency:" in r.stdout and "PASS" in r.stdout


# -- benchmark -----------------------------------------------------------------------------

def test_benchmark_counts_items_by_the_real_batch(tiny, tmp_path, capsys):
    # tiny's input is [3, 4]: --batch-size 1 leaves its fixed batch of 3, which is what each request carries
    path = tmp_path / "bench.json"
    assert main(["benchmark", tiny, "--time", "0.2", "--warmup", "0", "--batch-size", "1", "--json", str(path)]) == 0
    doc = json.loads(path.read_text())
    r = doc["results"]["tilerun"]
    assert doc["config"]["batch_size"] == 3 and "batch=3" in capsys.readouterr().out
    assert r["items_per_s"] == pytest.approx(r["requests"] * 3 / r["seconds"])


def test_benchmark_compare_json(convnet, tmp_path, capsys):
    path = tmp_path / "bench.json"
    assert main(["benchmark", convnet, "--time", "0.3", "--warmup", "0", "--compare", "onnxruntime",
                 "--json", str(path), "--batch-size", "2"]) == 0
    out = capsys.readouterr().out
    assert "scheduler    single_stream" in out and "batch=2" in out and "callers=1" in out
    assert "max abs diff tilerun vs onnxruntime" in out and "speed-up" in out
    rows = _table(out)
    for label in ("items/s", "latency mean ms", "latency median ms", "latency p90 ms", "latency p95 ms",
                  "latency p99 ms", "latency min ms", "latency max ms", "requests"):
        assert label in rows and len(rows[label]) >= 2, label
    doc = json.loads(path.read_text())
    assert doc["config"]["batch_size"] == 2
    for engine in ("tilerun", "onnxruntime"):
        r = doc["results"][engine]
        assert r["requests"] > 0 and r["min_ms"] <= r["median_ms"] <= r["p90_ms"] <= r["p95_ms"] <= r["p99_ms"] \
            <= r["max_ms"]
        assert r["items_per_s"] == pytest.approx(r["requests"] * 2 / r["seconds"])
    assert doc["speedup"]["items_per_s"] == pytest.approx(
        doc["results"]["tilerun"]["items_per_s"] / doc["results"]["onnxruntime"]["items_per_s"])
    # the ORT diff line must report a real comparison, not inf (shape mismatch) or nan
    diff = float(out.split("max abs diff tilerun vs onnxruntime:")[1].split()[0])
    assert diff < 1e-3


def test_benchmark_shapes_mix_through_one_engine(convnet, tmp_path, capsys):
    """``--shapes``: requests of batch 1 and 3 through one engine; items/s counts the mix's mean batch."""
    path = tmp_path / "bench.json"
    assert main(["benchmark", convnet, "--shapes", "x:1x3x8x8", "x:3x3x8x8", "--time", "0.4", "--warmup", "0",
                 "--compare", "onnxruntime", "--json", str(path), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "float32[1, 3, 8, 8] | float32[3, 3, 8, 8]" in out and "batch=2 (mean of 2 shapes)" in out
    assert float(out.split("max abs diff tilerun vs onnxruntime:")[1].split()[0]) < 1e-3
    doc = json.loads(path.read_text())
    for engine in ("tilerun", "onnxruntime"):
        r = doc["results"][engine]
        assert r["items_per_s"] == pytest.approx(r["requests"] * 2 / r["seconds"])
    assert main(["benchmark", convnet, "--shapes", "y:1x3x8x8", "--time", "0.1", "--quiet"]) == 2
    assert "--shapes 'y:1x3x8x8': expected a shape for each input ['x'], missing ['x'], unknown ['y']" \
        in capsys.readouterr().err


def test_input_shapes_name_symbols_with_a_size_or_bounds(tmp_path, capsys):
    from tilerun.bert_like import bert_like
    path = _save(bert_like(layers=1, hidden=32, heads=2), tmp_path / "bert.onnx")
    assert main(["benchmark", path, "--input-shapes", "seq:24,batch:2", "--time", "0.1", "--warmup", "0",
                 "--quiet"]) == 0
    assert "input_ids: int64[2, 24]" in capsys.readouterr().out
    assert main(["benchmark", path, "--input-shapes", "seq:1-16", "--shapes", "input_ids:1x8,attention_mask:1x8",
                 "input_ids:1x17,attention_mask:1x17", "--time", "0.1", "--quiet"]) == 2
    assert "dim 1 ('seq') must be in [1, 16], given 17" in capsys.readouterr().err


def test_benchmark_compare_reexports_static_batch(convnet_b1, capsys):
    # The model fixes batch 1; ORT gets the re-exported batch-3 model so both engines run the same work.
    assert main(["benchmark", convnet_b1, "--time", "0.2", "--warmup", "0", "--compare", "onnxruntime",
                 "--batch-size", "3", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "re-exported" in out and "float32[3, 3, 8, 8]" in out
    assert float(out.split("max abs diff tilerun vs onnxruntime:")[1].split()[0]) < 1e-3


def test_benchmark_inputs_npz(convnet, tmp_path, capsys):
    npz = tmp_path / "in.npz"
    np.savez(npz, x=np.ones((1, 3, 8, 8), np.float32))
    assert main(["benchmark", convnet, "--time", "0.1", "--warmup", "0", "--inputs", str(npz)]) == 0
    out = capsys.readouterr().out
    assert str(npz) in out and "items/s" in out and "speed-up" not in out
    np.savez(npz, x=np.ones((2, 3, 8, 8), np.float32))
    assert main(["benchmark", convnet, "--time", "0.1", "--inputs", str(npz)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "expected float32[1, 3, 8, 8]" in err


def test_benchmark_multi_stream_callers(convnet, capsys):
    assert main(["benchmark", convnet, "--scheduler", "multi_stream", "--num-streams", "2", "--time", "0.2",
                 "--warmup", "0", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "multi_stream  streams=2" in out and "callers=2" in out
    assert main(["benchmark", convnet, "--scheduler", "multi_stream", "--num-streams", "2", "--concurrency", "3",
                 "--time", "0.2", "--warmup", "0", "--quiet", "--compare", "onnxruntime"]) == 0
    out = capsys.readouterr().out
    assert "callers=3" in out and _table(out)["requests"][0] > 0


def test_benchmark_elastic(convnet, capsys):
    assert main(["benchmark", convnet, "--scheduler", "elastic", "--time", "0.1", "--warmup", "0"]) == 0
    assert "elastic" in capsys.readouterr().out


@pytest.mark.slow  # a fresh interpreter imports tilerun and loads Numba's cache: 2-5 s
def test_benchmark_subprocess(convnet, tmp_path):
    path = tmp_path / "b.json"
    r = _tilerun("benchmark", convnet, "--time", "0.2", "--warmup", "0", "--json", str(path))
    assert r.returncode == 0, r.stderr
    assert "latency p99 ms" in r.stdout
    assert r.stderr == ""  # not a TTY: no progress display
    assert json.loads(path.read_text())["results"]["tilerun"]["requests"] > 0


# -- profile -------------------------------------------------------------------------------

def test_profile_table_and_trace(convnet, tmp_path, capsys):
    trace = tmp_path / "trace.json"
    assert main(["profile", convnet, "--runs", "3", "--trace", str(trace)]) == 0
    out = capsys.readouterr().out
    assert "ops after fusion" in out and "utilization" in out
    lines = out.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("node "))
    body = []
    for line in lines[head + 1:]:
        if not line.strip():
            break
        body.append(line)
    ops = [line.split()[1] for line in body]
    assert set(ops) == {"Conv", "Gemm"}, body  # BatchNorm folded, Relu fused, Flatten a view
    busy = [float(line.split()[4]) for line in body]
    assert busy == sorted(busy, reverse=True)
    shares = [float(line.split()[5].rstrip("%")) for line in body]
    assert sum(shares) == pytest.approx(100, abs=0.3)
    for line in body:  # conv/gemm rows carry GFLOP/s and the worker→tiles map
        assert float(line.split()[7]) > 0 and " w" in line
    doc = json.loads(trace.read_text())
    tiles = [e for e in doc["traceEvents"] if e.get("ph") == "X"]
    tracks = {e["tid"] for e in doc["traceEvents"] if e.get("name") == "thread_name"}
    assert len({e["name"] for e in tiles}) == 2 and {e["tid"] for e in tiles} <= tracks
    assert all(0 <= e["args"]["tile"] < e["args"]["of_tiles"] for e in tiles)


# -- tune ----------------------------------------------------------------------------------

def test_tune_table_and_recommendation(convnet, tmp_path, capsys):
    path = tmp_path / "tune.json"
    assert main(["tune", convnet, "--schedulers", "single_stream,multi_stream", "--streams", "2",
                 "--batch-sizes", "1,2", "--time", "0.1", "--warmup", "0", "--max-latency", "1000",
                 "--json", str(path)]) == 0
    out = capsys.readouterr().out
    doc = json.loads(path.read_text())
    rows = doc["rows"]
    assert [(r["scheduler"], r["streams"], r["batch_size"]) for r in rows] == [
        ("single_stream", 1, 1), ("single_stream", 1, 2), ("multi_stream", 2, 1), ("multi_stream", 2, 2)]
    best = max(range(len(rows)), key=lambda i: rows[i]["items_per_s"])
    assert doc["recommended"] == best
    assert "recommended with p90 <= 1000 ms: --scheduler " in out
    assert sum(line.startswith("*") for line in out.splitlines()) == 1


def test_tune_bound_nobody_meets(convnet, capsys):
    assert main(["tune", convnet, "--schedulers", "single_stream", "--batch-sizes", "1", "--time", "0.05",
                 "--warmup", "0", "--max-latency", "0.000001"]) == 0
    assert "no configuration meets p90 <= 1e-06 ms" in capsys.readouterr().out


def test_tune_recommend_unit():
    rows = [{"items_per_s": 10, "p90_ms": 5.0}, {"items_per_s": 30, "p90_ms": 20.0}, {"items_per_s": 20, "p90_ms": 9.0}]
    assert tune.recommend(rows, None) == 1
    assert tune.recommend(rows, 10.0) == 2
    assert tune.recommend(rows, 1.0) is None
    assert tune.sweep_configs(["single_stream", "multi_stream", "elastic"], [2, 4], [1]) == [
        ("single_stream", 1, 1), ("multi_stream", 2, 1), ("multi_stream", 4, 1), ("elastic", None, 1)]


@pytest.mark.skipif(HAVE_MPL, reason="checks the message shown when matplotlib is missing")
def test_tune_plot_without_matplotlib(convnet, tmp_path, capsys):
    assert main(["tune", convnet, "--plot", str(tmp_path / "t.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "matplotlib" in err and "pip install" in err


@pytest.mark.skipif(not HAVE_MPL, reason="matplotlib is optional")
def test_tune_plot(convnet, tmp_path):
    png = tmp_path / "t.png"
    assert main(["tune", convnet, "--schedulers", "single_stream", "--batch-sizes", "1", "--time", "0.05",
                 "--warmup", "0", "--plot", str(png), "--quiet"]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"


# -- convert -------------------------------------------------------------------------------

@pytest.mark.parametrize("dynamic", [False, True])
def test_convert_main(convnet, tmp_path, capsys, dynamic):
    dst = tmp_path / "out.onnx"
    argv = ["convert", convnet, "-o", str(dst), "--opset", "15", "--tilerun"] + (["--dynamic-batch"] if dynamic else [])
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "opset        13 -> 15" in out and "removed BatchNormalization x1" in out
    assert out.count("check (onnxruntime") == out.count("check (tilerun") == (2 if dynamic else 1)
    assert out.count("PASS") == (4 if dynamic else 2) and "FAIL" not in out
    m = onnx.load(str(dst))
    onnx.checker.check_model(m)
    dim0 = m.graph.input[0].type.tensor_type.shape.dim[0]
    assert (dim0.dim_param == "N") if dynamic else (dim0.dim_value == 1)


def test_convert_dynamic_batch_refused_when_graph_fixes_batch(tmp_path, capsys):
    shape = numpy_helper.from_array(np.array([3, 16], np.int64), "shape")
    g = helper.make_graph([helper.make_node("Reshape", ["x", "shape"], ["y"])], "fixed",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 16])], [shape])
    src = _save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), tmp_path / "fixed.onnx")
    assert main(["convert", src, "-o", str(tmp_path / "o.onnx"), "--dynamic-batch"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "does not run at batch 2" in err and "--batch-size" in err


@pytest.mark.skipif(HAVE_TORCH, reason="checks the message shown when torch is missing")
def test_convert_from_torch_without_torch(tmp_path, capsys):
    assert main(["convert", "--from-torch", "mymodels:make", "-o", str(tmp_path / "t.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "PyTorch" in err and "pip install torch" in err


# -- info ----------------------------------------------------------------------------------

def test_info_main(capsys):
    import numba
    from tilerun.scheduler import topology
    assert main(["info", "--ops"]) == 0
    out = capsys.readouterr().out
    assert f"cores        {len(topology.detect().cores)} usable" in out
    assert f"numba        {numba.__version__}" in out and ("float32 lanes" in out or "portable" in out)
    assert "numba cache" in out and "L3 domains" in out and "NUMA nodes" in out
    assert any(line.split()[:1] == ["Conv"] for line in out.splitlines())


@pytest.mark.slow  # a fresh interpreter imports tilerun and loads Numba's cache: 2-5 s
def test_info_subprocess():
    r = _tilerun("info")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("tilerun ") and "SIMD" in r.stdout and "llvmlite" in r.stdout


# -- errors --------------------------------------------------------------------------------

COMMANDS = {"run": [], "benchmark": ["--time", "0.1"], "profile": [], "tune": ["--time", "0.1"],
            "convert": ["-o", "OUT"]}


@pytest.mark.parametrize("case", ["missing", "unknown", "malformed", "badflag"])
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_errors_one_line(command, case, tmp_path, capsys):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(np.random.default_rng(0).bytes(200))
    extra = [str(tmp_path / "o.onnx") if a == "OUT" else a for a in COMMANDS[command]]
    model = {"missing": str(tmp_path / "nope.onnx"), "unknown": "not_a_model_name",
             "malformed": str(bad), "badflag": str(bad)}[case]
    argv = [command, model] + extra + (["--no-such-flag"] if case == "badflag" else [])
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert err and len(err.splitlines()) == 1 and "Traceback" not in err, err
    if case in ("missing", "unknown"):
        assert "not found" in err and model in err
    if case == "malformed":
        assert "cannot read ONNX model" in err
    if case == "badflag":
        assert code == 2 and "--no-such-flag" in err


@pytest.mark.parametrize("argv", [["benchmark", "--time", "x"], ["benchmark", "--time", "-1"],
                                  ["benchmark", "--scheduler", "fast"], ["benchmark", "--compare", "tvm"],
                                  ["tune", "--batch-sizes", "1,x"], ["tune", "--schedulers", "fast"],
                                  ["convert", "m.onnx"], ["convert", "-o", "x.onnx"],
                                  ["convert", "a.onnx", "-o", "b.onnx", "--batch-size", "2", "--dynamic-batch"],
                                  ["profile", "--runs", "0"], ["nosuchcommand"]])
def test_bad_flags_one_line(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err and len(err.splitlines()) == 1 and "Traceback" not in err, err


@pytest.mark.slow  # a fresh interpreter imports tilerun and loads Numba's cache: 2-5 s
def test_error_subprocess(tmp_path):
    r = _tilerun("benchmark", str(tmp_path / "nope.onnx"))
    assert r.returncode != 0 and r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1 and "not found" in r.stderr


def test_no_subcommand_prints_help(capsys):
    import tilerun
    assert main([]) == 0
    out = capsys.readouterr().out
    assert all(c in out for c in ("run", "benchmark", "profile", "tune", "convert", "info"))
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"tilerun {tilerun.__version__}"


# -- shared helpers ------------------------------------------------------------------------

def test_latency_stats_and_input_shapes():
    s = common.latency_stats([0.001 * k for k in range(1, 101)])
    assert s["min_ms"] == pytest.approx(1) and s["max_ms"] == pytest.approx(100)
    assert s["median_ms"] == pytest.approx(50.5) and s["p90_ms"] == pytest.approx(90.1)
    assert s["mean_ms"] == pytest.approx(50.5)
    assert common.parse_input_shapes("ids:1x128,mask:1X128") == {"ids": [1, 128], "mask": [1, 128]}
    with pytest.raises(common.CliError, match="NAME:D1xD2"):
        common.parse_input_shapes("1x128")


def test_progress_silent_when_not_a_tty(capsys):
    p = common.Progress()
    with p.task("working"):
        p.update("step 1/2")
    assert capsys.readouterr().err == ""


# -- a new user's first hour: errors to act on, output files checked first, help, inputs and outputs --------------

@pytest.fixture(scope="module")
def unsupported(tmp_path_factory):
    """A model with an op tilerun has no kernel for (Acosh, node 'my_acosh') between two supported ones."""
    nodes = [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Acosh", ["a"], ["b"], name="my_acosh"),
             helper.make_node("Relu", ["b"], ["y"])]
    g = helper.make_graph(nodes, "unsupported", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    return _save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]),
                 tmp_path_factory.mktemp("cli") / "unsupported.onnx")


@pytest.mark.parametrize("argv", [["run"], ["benchmark", "--time", "0.1"], ["profile"], ["tune", "--time", "0.1"]])
def test_unsupported_op_named_by_every_command(unsupported, argv, capsys):
    assert main([argv[0], unsupported] + argv[1:]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"tilerun {argv[0]}: UnsupportedOpError: model uses 1 op type(s) tilerun does not support:")
    assert "  Acosh: nodes 'my_acosh'\n" in err and "`tilerun info --ops` lists the supported ops" in err
    assert "supported op types:" not in err and "Traceback" not in err


def test_quantized_model_named_on_the_command_line(tmp_path, capsys):
    from test_passes import qdq_model
    path = str(tmp_path / "qdq.onnx")
    onnx.save(qdq_model(), path)
    assert main(["run", path]) == 1
    err = capsys.readouterr().err
    assert "QuantizedModelError: quantized models (QDQ or QOperator) are not supported" in err
    assert "DequantizeLinear: nodes 'w_dq', 'x_dq'" in err and "QuantizeLinear: nodes 'x_q'" in err
    assert "info --ops" not in err and "reference evaluator" not in err


def test_empty_file_directory_and_npy_inputs(tiny, tmp_path, capsys):
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    assert main(["run", str(empty)]) == 1
    assert capsys.readouterr().err.strip() == f"tilerun run: cannot read ONNX model {str(empty)!r}: the file is " \
                                              f"empty (0 bytes)"
    assert main(["run", str(tmp_path)]) == 1  # the API's words, not the command line's own
    assert capsys.readouterr().err.strip() == (f"tilerun run: model path is a directory: expected a path to an "
                                               f".onnx file, given {str(tmp_path)!r}")
    npy = tmp_path / "in.npy"
    np.save(npy, np.ones((3, 4), np.float32))
    assert main(["benchmark", tiny, "--time", "0.1", "--warmup", "0", "--inputs", str(npy), "--quiet"]) == 0
    assert str(npy) in capsys.readouterr().out
    two = helper.make_graph([helper.make_node("Add", ["x", "z"], ["y"])], "two",
                            [helper.make_tensor_value_info(n, TensorProto.FLOAT, [3, 4]) for n in "xz"],
                            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 4])])
    path = _save(helper.make_model(two, opset_imports=[helper.make_opsetid("", 13)]), tmp_path / "two.onnx")
    assert main(["benchmark", path, "--time", "0.1", "--inputs", str(npy)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "holds one array (a .npy file), but the model has 2 inputs" in err
    assert "AttributeError" not in err


@pytest.mark.parametrize("argv,message", [
    (["tune", "--plot", "OUT/chart.txt"], "--plot: expected a file ending in"),
    (["tune", "--json", "/nonexistent/t.json"], "--json: directory '/nonexistent' does not exist"),
    (["benchmark", "--json", "/nonexistent/x.json"], "--json: directory '/nonexistent' does not exist"),
    (["benchmark", "--json", "OUT"], "is a directory; expected a file path"),
    (["profile", "--trace", "/nonexistent/t.json"], "--trace: directory '/nonexistent' does not exist"),
    (["run", "--output", "/nonexistent/o.npz"], "--output: directory '/nonexistent' does not exist"),
    (["run", "--output", "OUT/o.txt"], "--output: expected a file ending in .npz"),
])
def test_output_paths_checked_before_any_work(convnet, argv, message, tmp_path, monkeypatch, capsys):
    if argv[-1].endswith(".txt") and argv[0] == "tune" and not HAVE_MPL:
        message = "--plot needs matplotlib"

    def no_work(*a, **k):
        raise AssertionError("the model was loaded before the output path was checked")
    monkeypatch.setattr(common, "load_model_arg", no_work)
    argv = [a.replace("OUT", str(tmp_path)) for a in argv]
    assert main([argv[0], convnet] + argv[1:]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err


@pytest.fixture(scope="module")
def dynamic_ids(tmp_path_factory):
    """A model whose input 'ids' has dims ('N', 'seq'): it needs --input-shapes."""
    g = helper.make_graph([helper.make_node("Relu", ["ids"], ["y"])], "dyn",
                          [helper.make_tensor_value_info("ids", TensorProto.FLOAT, ["N", "seq"])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", "seq"])])
    return _save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]),
                 tmp_path_factory.mktemp("cli") / "dyn.onnx")


@pytest.mark.parametrize("argv,message", [
    (["run", "DYN"], "give --input-shapes ids:D1xD2x... with every dim"),
    (["run", "DYN", "--input-shapes", "ids:1x2x3"], "--input-shapes ids:1x2x3 has rank 3, but the model declares "
                                                    "rank 2"),
    (["run", "DYN", "--input-shapes", "other:1x2"], "--input-shapes names ['other'], which are not graph inputs"),
    (["benchmark", "TINY", "--num-streams", "2"], "--num-streams for single_stream must be between 1 and 1, given 2"),
    (["run", "TINY", "--batch-size", "0"], "argument --batch-size: expected a positive integer, given '0'"),
    (["profile", "TINY", "--num-cores", "-1"], "argument --num-cores: expected a positive integer, given '-1'"),
])
def test_argument_errors_speak_in_flags(dynamic_ids, tiny, argv, message, capsys):
    argv = [{"DYN": dynamic_ids, "TINY": tiny}.get(a, a) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not any(word in err for word in ("input_shapes", "batch_size", "num_streams", "num_cores", "={")), err


def test_every_flag_has_help_and_every_command_examples():
    import shlex

    from tilerun.cli import build_parser
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == {"run", "benchmark", "profile", "tune", "convert", "info", "serve"}
    for name, cmd in sub.choices.items():
        for action in cmd._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, f"tilerun {name} {action.option_strings[0]} has no help text"
        assert cmd.epilog and cmd.epilog.startswith("examples:"), name
        for line in cmd.epilog.splitlines()[1:]:
            words = shlex.split(line.split("#")[0])
            assert words[:2] == ["tilerun", name], line
            parser.parse_args(words[1:])  # every example parses (argparse exits on a bad one)
        assert "examples:" in cmd.format_help()


def test_python_m_tilerun(capsys, monkeypatch):
    import runpy
    monkeypatch.setattr(sys, "argv", ["python -m tilerun", "--version"])
    with pytest.raises(SystemExit) as e:
        runpy.run_module("tilerun", run_name="__main__")
    assert e.value.code == 0
    assert capsys.readouterr().out.startswith("tilerun ")


def test_verbose_twice_adds_compile_details(tiny, caplog):
    import logging
    caplog.set_level(logging.DEBUG)
    assert main(["-v", "run", tiny, "--iterations", "1", "--no-check", "--quiet"]) == 0
    assert not [r for r in caplog.records if r.name.startswith("tilerun") and r.levelno < logging.INFO]
    caplog.clear()
    assert main(["-vv", "run", tiny, "--iterations", "1", "--no-check", "--quiet"]) == 0
    debug = [r.getMessage() for r in caplog.records if r.name.startswith("tilerun") and r.levelno == logging.DEBUG]
    assert any(m.startswith("load and import ") for m in debug), debug
    assert any(m.startswith("shapes ") and "passes" in m and "lowering" in m for m in debug), debug
    assert any(m.startswith("plan: ") and "rows" in m and "arena" in m for m in debug), debug


def test_num_cores_beyond_usable_is_said(tiny, caplog, capsys):
    from tilerun.scheduler import topology
    usable = len(topology.detect().cores)
    assert main(["run", tiny, "--num-cores", str(usable + 6), "--iterations", "1", "--no-check"]) == 0
    assert f"--num-cores {usable + 6}, but {usable} cores are usable: using {usable}" in caplog.text


def test_info_ops_lists_onnx_ops_only(capsys):
    assert main(["info", "--ops"]) == 0
    ops = [line.split()[0] for line in capsys.readouterr().out.split("supported ops")[1].splitlines()[2:]]
    assert "Conv" in ops and "BatchNormalization" in ops and "ChannelAffine" not in ops


def test_profile_shows_each_ops_output_tensor(convnet, capsys):
    # convnet's nodes are unnamed: the output tensor says which op a row is.
    assert main(["profile", convnet, "--runs", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("node "))
    assert "output" in lines[head].split()
    rows = {line.split()[1]: line for line in lines[head + 1:head + 3]}
    assert " r " in rows["Conv"] and " y " in rows["Gemm"]  # Conv+BN+Relu writes 'r', the Gemm 'y'


def test_tune_json_latencies_carry_their_unit(convnet, tmp_path, capsys):
    path = tmp_path / "tune.json"
    assert main(["tune", convnet, "--schedulers", "single_stream", "--batch-sizes", "1", "--time", "0.05",
                 "--warmup", "0", "--json", str(path)]) == 0
    row = json.loads(path.read_text())["rows"][0]
    assert {"median_ms", "p90_ms", "p99_ms", "items_per_s"} <= set(row) and "p90" not in row


@pytest.mark.skipif(not HAVE_MPL, reason="matplotlib is optional")
def test_tune_chart_rings_the_pick_without_hiding_it():
    rows = [{"scheduler": "single_stream", "streams": 1, "batch_size": b, "items_per_s": 10.0 * b,
             "p90_ms": 5.0 * b} for b in (1, 2)]
    fig = tune.chart(rows, 1, None)
    try:
        lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
        pick, points = lines["recommended"], lines["single_stream"]
        assert list(pick.get_xdata()) == [10.0] and list(pick.get_ydata()) == [20.0]
        assert pick.get_markerfacecolor() == "none" and pick.get_zorder() < points.get_zorder()
    finally:
        tune.plot_module().close(fig)


def test_run_inputs_and_output_files(convnet, tmp_path, capsys):
    import tilerun
    x = np.random.default_rng(4).standard_normal((1, 3, 8, 8)).astype(np.float32)
    np.savez(tmp_path / "in.npz", x=x)
    out = tmp_path / "out.npz"
    assert main(["run", convnet, "--inputs", str(tmp_path / "in.npz"), "--output", str(out), "--iterations", "1"]) == 0
    assert f"outputs ['y'] written to {out}" in capsys.readouterr().out
    with tilerun.compile_model(convnet) as eng:
        want = eng.run([x])
    saved = np.load(out)
    assert list(saved.keys()) == ["y"]
    np.testing.assert_array_equal(saved["y"], want[0])


def test_save_outputs_keeps_any_output_name(tmp_path):
    path = tmp_path / "o.npz"
    common.save_outputs(str(path), ["file", "gpu_0/softmax"], [np.ones(2), np.zeros((1, 3), np.int64)])
    saved = np.load(path)
    assert sorted(saved.keys()) == ["file", "gpu_0/softmax"] and saved["gpu_0/softmax"].dtype == np.int64


@pytest.mark.slow  # a fresh interpreter imports tilerun: 2-5 s
def test_compile_time_script_help():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    r = subprocess.run([sys.executable, os.path.join(root, "benchmarks", "compile_time.py"), "--help"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "usage:" in r.stdout and "Traceback" not in r.stderr, r.stderr
