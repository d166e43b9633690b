"""The ``tilerun run`` command through ``main(argv)`` and through a subprocess."""
import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tilerun.cli import main


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A one-Add model written to disk."""
    w = numpy_helper.from_array(np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4), "w")
    g = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "tiny",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 4])], [w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    path = tmp_path_factory.mktemp("cli") / "tiny.onnx"
    onnx.save(m, str(path))
    return str(path)


def test_run_main(tiny, capsys):
    assert main(["run", tiny, "--iterations", "3"]) == 0
    out = capsys.readouterr().out
    assert "latency:" in out and "PASS" in out and "top-5" in out


def test_run_subprocess(tiny):
    env = dict(os.environ)
    r = subprocess.run([sys.executable, "-m", "tilerun.cli", "run", tiny, "--iterations", "2"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "latency:" in r.stdout and "PASS" in r.stdout


@pytest.mark.parametrize("case", ["missing", "malformed", "badflag"])
def test_errors_one_line(case, tmp_path, capsys):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(np.random.default_rng(0).bytes(200))
    argv = {"missing": ["run", str(tmp_path / "nope.onnx")], "malformed": ["run", str(bad)],
            "badflag": ["run", "--batch-size", "x"]}[case]
    assert main(argv) != 0
    err = capsys.readouterr().err.strip()
    assert err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_no_subcommand_prints_help(capsys):
    assert main([]) == 0
    assert "run" in capsys.readouterr().out
