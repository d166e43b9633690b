"""``TILERUN_DEBUG``: every request's per-op (1) or per-tile (2) times on stderr, from the request's trace.

The printed ops are the plan's rows (row, node, op type, kernel, tile count,
in plan order), one block per request, whichever way the request came in
(``run``, ``run_async``). The variable is read once, when the model is
compiled.
"""
import re

import numpy as np
import pytest
from onnx import helper

import tilerun

from oracle import make_model

F = np.float32
OP = re.compile(r"^  op +(\d+) (\S+) (\S+) (\S+) tiles=(\d+) busy=([\d.]+)ms span=([\d.]+)ms$")
TILE = re.compile(r"^    tile +(\d+) worker=(\d+) start=([\d.]+)ms end=([\d.]+)ms$")


def _model():
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((32, 3, 3, 3)) * 0.3).astype(F)
    wf = (rng.standard_normal((4, 32)) * 0.3).astype(F)
    nodes = [helper.make_node("Conv", ["x", "w"], ["a"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Relu", ["a"], ["b"], name="relu"),
             helper.make_node("GlobalAveragePool", ["b"], ["c"], name="gap"),
             helper.make_node("Flatten", ["c"], ["d"], name="flat"),
             helper.make_node("Gemm", ["d", "wf"], ["y"], transB=1, name="fc")]
    return make_model(nodes, [("x", F, [1, 3, 96, 96])], [("y", F, None)], [("w", w), ("wf", wf)])


X = np.random.default_rng(1).standard_normal((1, 3, 96, 96)).astype(F)


def _blocks(err):
    """stderr split into one list of lines per request (each block starts at its header)."""
    blocks = []
    for line in err.splitlines():
        if line.startswith("tilerun: request "):
            blocks.append([line])
        elif blocks and line.startswith("  "):
            blocks[-1].append(line)
    return blocks


def _plan_rows(eng):
    return [(i, r.node, r.op_type, r.kernel.name, r.n_tiles) for i, r in enumerate(eng.plan.rows)]


def _ops(block):
    ops = [OP.match(line) for line in block if line.startswith("  op ")]
    assert all(ops), block
    return [(int(m[1]), m[2], m[3], m[4], int(m[5])) for m in ops]


def test_level_1_prints_each_request_per_op(monkeypatch, capsys):
    monkeypatch.setenv("TILERUN_DEBUG", "1")
    with tilerun.compile_model(_model(), num_cores=2) as eng:
        capsys.readouterr()
        y = eng.run([X])[0]
        y_async = eng.run_async([X]).result()[0]
    np.testing.assert_array_equal(y, y_async)
    blocks = _blocks(capsys.readouterr().err)
    assert len(blocks) == 2
    for block in blocks:
        assert _ops(block) == _plan_rows(eng)
        assert f"{len(eng.plan.rows)} ops, {sum(r.n_tiles for r in eng.plan.rows)} tiles" in block[0]
        assert not any(line.startswith("    tile ") for line in block)


def test_level_2_adds_every_tile(monkeypatch, capsys):
    monkeypatch.setenv("TILERUN_DEBUG", "2")
    with tilerun.compile_model(_model(), num_cores=2) as eng:
        capsys.readouterr()
        eng.run([X])
    (block,) = _blocks(capsys.readouterr().err)
    assert _ops(block) == _plan_rows(eng)
    tiles, row = {}, None
    for line in block[1:]:
        if line.startswith("  op "):
            row = int(OP.match(line)[1])
            tiles[row] = []
        else:
            m = TILE.match(line)
            assert m, line
            assert float(m[3]) <= float(m[4]) and int(m[2]) < 2
            tiles[row].append(int(m[1]))
    assert tiles == {i: list(range(r.n_tiles)) for i, r in enumerate(eng.plan.rows)}


def test_read_once_at_compile_time(monkeypatch, capsys):
    monkeypatch.delenv("TILERUN_DEBUG", raising=False)
    with tilerun.compile_model(_model(), num_cores=1) as quiet:
        monkeypatch.setenv("TILERUN_DEBUG", "1")
        with tilerun.compile_model(_model(), num_cores=1) as loud:
            monkeypatch.setenv("TILERUN_DEBUG", "0")
            capsys.readouterr()
            quiet.run([X])
            assert capsys.readouterr().err == ""
            loud.run([X])
            assert len(_blocks(capsys.readouterr().err)) == 1


@pytest.mark.parametrize("value", ["", "0"])
def test_off_prints_nothing(monkeypatch, capsys, value):
    monkeypatch.setenv("TILERUN_DEBUG", value)
    with tilerun.compile_model(_model(), num_cores=1) as eng:
        eng.run([X])
        eng.trace([X])
    assert capsys.readouterr().err == ""


def test_bad_value_is_an_argument_error(monkeypatch):
    monkeypatch.setenv("TILERUN_DEBUG", "yes")
    with pytest.raises(tilerun.ArgumentError, match="TILERUN_DEBUG must be 0, 1.*given 'yes'"):
        tilerun.compile_model(_model())
