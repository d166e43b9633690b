"""``tilerun run`` checks every output against ONNX Runtime and shows the top-5 of each batch item."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import tilerun
from tilerun.cli import main

pytest.importorskip("onnxruntime")


def _two_outputs(path, batch):
    """``x + w`` and ``x * w``, ``w`` rising along the last axis and large against ``x``: each item's top-5 is 9..5."""
    w = numpy_helper.from_array(np.tile(np.arange(10, dtype=np.float32) * 100, (batch, 1)), "w")
    g = helper.make_graph([helper.make_node("Add", ["x", "w"], ["sum"]), helper.make_node("Mul", ["x", "w"], ["prod"])],
                          "two", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 10])],
                          [helper.make_tensor_value_info("sum", TensorProto.FLOAT, [batch, 10]),
                           helper.make_tensor_value_info("prod", TensorProto.FLOAT, [batch, 10])], [w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(m, str(path))
    return str(path)


def test_run_checks_every_output(tmp_path, capsys, monkeypatch):
    model = _two_outputs(tmp_path / "two.onnx", 1)
    assert main(["run", model, "--iterations", "1", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "('sum'): " in out and "('prod'): " in out and out.count("PASS") == 2
    # A wrong second output must fail the check (only the first was compared before).
    real = tilerun.Engine.run

    def wrong_second(self, inputs, *a, **kw):
        outs = real(self, inputs, *a, **kw)
        return [outs[0]] + [o + 1000 for o in outs[1:]]
    monkeypatch.setattr(tilerun.Engine, "run", wrong_second)
    assert main(["run", model, "--iterations", "1", "--quiet"]) == 1
    out = capsys.readouterr().out
    lines = {ln.split(":")[0]: ln for ln in out.splitlines() if ln.startswith("max abs diff")}
    assert "PASS" in lines["max abs diff vs ONNX Runtime ('sum')"]
    assert "FAIL" in lines["max abs diff vs ONNX Runtime ('prod')"]


def test_run_top5_per_batch_item(tmp_path, capsys):
    model = _two_outputs(tmp_path / "two_b3.onnx", 3)
    assert main(["run", model, "--iterations", "1", "--quiet"]) == 0
    top = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("top-5")]
    assert [ln.split(":")[0] for ln in top] == ["top-5 [item 0]", "top-5 [item 1]", "top-5 [item 2]"]
    for ln in top:
        assert [int(p.split(",")[0]) for p in ln.split(": ", 1)[1].strip("()").split("), (")] == [9, 8, 7, 6, 5]


def test_top5_lines_and_compare_units():
    from tilerun.commands.run import compare, top5_lines
    assert top5_lines(np.arange(7, dtype=np.float32)) == ["top-5: (6, 6), (5, 5), (4, 4), (3, 3), (2, 2)"]
    assert top5_lines(np.array([[True, False]])) == ["top-5: (0, 1), (1, 0)"]
    assert top5_lines(np.zeros((0, 3)))[0].startswith("top-5: (empty")
    nan = np.array([1.0, np.nan, np.inf], np.float32)
    assert compare(nan, nan.copy()) == (0.0, 1e-3, True)
    diff, _, ok = compare(nan, np.array([1.0, 2.0, np.inf], np.float32))
    assert np.isnan(diff) and not ok
    assert compare(np.zeros(3), np.zeros(4))[2] is False
