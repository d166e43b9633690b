"""``tilerun convert --from-torch``: exporter's own opset, the ``torch`` extra, a quiet export, log prefixes.

Most tests stand a small fake ``torch`` (and ``onnxscript``) in ``sys.modules``:
its ``torch.onnx.export`` records how it was called and writes a real opset-18
model with a ``Split(num_outputs=...)`` the way PyTorch 2.9+ does, printing
progress, a warning and an onnxscript log line as the real exporter does. It
stamps a lower ``opset_version`` onto that model the way the real exporter's
fallback conversion leaves it, so a forced opset breaks the model as it did
with PyTorch. The last test exports a real module when PyTorch is installed.
"""
import importlib.util
import logging
import pathlib
import sys
import types
import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from tilerun import cli
from tilerun.cli import main
from tilerun.load import model_opset

ROOT = pathlib.Path(__file__).resolve().parents[1]
CALLS = []


def _split_model(name):
    """``relu(a + b)`` of the two halves of input ``name`` [1, 4]: Split-18 with ``num_outputs``."""
    nodes = [helper.make_node("Split", [name], ["a", "b"], axis=1, num_outputs=2),
             helper.make_node("Add", ["a", "b"], ["s"]), helper.make_node("Relu", ["s"], ["y"])]
    g = helper.make_graph(nodes, "split", [helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    m.ir_version = 8
    return m


def _fake_export(model, args, f=None, *, kwargs=None, verbose=None, input_names=None, opset_version=None,
                 dynamo=True, dynamic_shapes=None, dynamic_axes=None, **rest):
    import onnxscript  # noqa: F401  (PyTorch 2.9+ exports through it)
    CALLS.append(dict(opset_version=opset_version, verbose=verbose, input_names=input_names,
                      dynamic_shapes=dynamic_shapes, dynamic_axes=dynamic_axes))
    if verbose is not False:
        print("[torch.onnx] Translate the graph into ONNX... done")
    logging.getLogger("onnxscript.optimizer").warning("fake onnxscript log line")
    warnings.warn("fake exporter warning")
    m = _split_model(input_names[0])
    if opset_version is not None and opset_version < 18:
        m.opset_import[0].version = opset_version  # what the exporter's failed down-conversion leaves
    onnx.save(m, f)


class _FakeModule:
    def eval(self):
        return self


@pytest.fixture
def fake_torch(monkeypatch, tmp_path):
    """A fake ``torch``/``onnxscript`` pair and a factory module ``fake_torch_models:make``."""
    torch = types.ModuleType("torch")
    torch.__version__ = "2.99.0+fake"
    torch.onnx = types.SimpleNamespace(export=_fake_export)
    torch.export = types.SimpleNamespace(Dim=types.SimpleNamespace(DYNAMIC="dynamic"))
    torch.randn = lambda *shape: np.zeros(shape, np.float32)
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "onnxscript", types.ModuleType("onnxscript"))
    factory = types.ModuleType("fake_torch_models")
    factory.make = lambda: (_FakeModule(), np.zeros((1, 4), np.float32))
    monkeypatch.setitem(sys.modules, "fake_torch_models", factory)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the command puts the working directory in front
    CALLS.clear()
    return torch


def test_torch_extra_includes_onnxscript():
    tomllib = pytest.importorskip("tomllib")
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert {"torch", "onnxscript"} <= {d.split(">")[0].split("=")[0].split("<")[0].strip() for d in extras["torch"]}


def test_from_torch_exports_at_the_exporters_opset(fake_torch, tmp_path, capsys):
    dst = tmp_path / "m.onnx"
    assert main(["convert", "--from-torch", "fake_torch_models:make", "-o", str(dst), "--quiet"]) == 0
    assert CALLS[0]["opset_version"] is None
    out = capsys.readouterr().out
    assert "opset        18 -> 18" in out and "PASS" in out
    assert model_opset(onnx.load(str(dst))) == 18


def test_from_torch_converts_when_opset_asks(fake_torch, tmp_path, capsys):
    dst = tmp_path / "m.onnx"
    assert main(["convert", "--from-torch", "fake_torch_models:make", "-o", str(dst), "--opset", "19",
                 "--quiet"]) == 0
    assert CALLS[0]["opset_version"] is None  # tilerun converts, with its one-line errors
    assert "opset        18 -> 19" in capsys.readouterr().out
    assert model_opset(onnx.load(str(dst))) == 19


def test_from_torch_dynamic_batch_uses_dynamic_shapes(fake_torch, tmp_path):
    assert main(["convert", "--from-torch", "fake_torch_models:make", "-o", str(tmp_path / "m.onnx"),
                 "--dynamic-batch", "--no-check", "--quiet"]) == 0
    assert CALLS[0]["dynamic_shapes"] == ({0: "dynamic"},) and CALLS[0]["dynamic_axes"] is None


def test_from_torch_quiet_silences_the_exporter(fake_torch, tmp_path, capfd):
    assert main(["convert", "--from-torch", "fake_torch_models:make", "-o", str(tmp_path / "m.onnx"),
                 "--quiet"]) == 0
    out, err = capfd.readouterr()
    assert CALLS[0]["verbose"] is False
    assert "[torch.onnx]" not in out and "fake exporter warning" not in err and "fake onnxscript" not in err
    assert "Traceback" not in err


def test_from_torch_without_onnxscript_says_what_to_install(fake_torch, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # import onnxscript raises ImportError
    assert main(["convert", "--from-torch", "fake_torch_models:make", "-o", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "onnxscript" in err and "pip install" in err
    assert not CALLS


def test_other_libraries_log_under_their_own_name(capsys):
    root, tl = logging.getLogger(), logging.getLogger("tilerun")
    saved = root.handlers[:], root.level, tl.level
    root.handlers[:] = []
    try:
        cli._setup_logging(0)
        logging.getLogger("onnxscript.optimizer").warning("from onnxscript")
        logging.getLogger("tilerun.cli").warning("from tilerun")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        tl.setLevel(saved[2])
    err = capsys.readouterr().err.splitlines()
    assert "onnxscript.optimizer: from onnxscript" in err and "tilerun: from tilerun" in err
    assert not any(line.startswith("tilerun:") and "onnxscript" in line for line in err)


REAL_TORCH = importlib.util.find_spec("torch") is not None and importlib.util.find_spec("onnxscript") is not None

MODULES = '''
import torch


def split_net():
    torch.manual_seed(0)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
            self.fc = torch.nn.Linear(8 * 8 * 8, 10)

        def forward(self, x):
            a, b = torch.split(torch.relu(self.conv(x)), 4, dim=1)
            return self.fc(torch.cat([b, a], 1).flatten(1))
    return Net(), torch.randn(1, 3, 8, 8)


def encoder():
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(d_model=16, nhead=2, dim_feedforward=32, batch_first=True, dropout=0.0)
    return torch.nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False), torch.randn(1, 5, 16)
'''


@pytest.mark.slow
@pytest.mark.skipif(not REAL_TORCH, reason="needs torch and onnxscript (pip install 'tilerun[torch]')")
@pytest.mark.parametrize("factory", ["split_net", "encoder"])
def test_from_torch_real_export_quiet(factory, tmp_path, capfd, monkeypatch):
    (tmp_path / "real_torch_models.py").write_text(MODULES)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    dst = tmp_path / "m.onnx"
    assert main(["convert", "--from-torch", f"real_torch_models:{factory}", "-o", str(dst), "--quiet",
                 "--tilerun"]) == 0
    out, err = capfd.readouterr()
    assert out.count("PASS") == 2 and "[torch.onnx]" not in out
    assert "Traceback" not in err and not any(line.startswith("tilerun:") for line in err.splitlines())
    assert model_opset(onnx.load(str(dst))) >= 18
