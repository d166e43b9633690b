"""The README's examples, run as written, so that the README and tilerun's behaviour cannot drift apart.

Every fenced block of README.md is accounted for here: the Python API blocks
run in one namespace (top-level ``await`` included) in a folder holding a
small ``model.onnx``; the command-line synopsis is checked flag by flag
against each command's ``--help``, both ways; every line of the examples
block runs in a fresh process; the quick start runs ``tilerun run`` and
collects the two test tiers (running the suite from inside itself would
recurse; installing is what CI does first, from a fresh venv, so the test
checks the extra it names exists). The custom-op block is run by
``tests/test_custom_op.py``. The benchmark commands are collected, and the
latency summary run on one model for one round.
"""
import ast
import asyncio
import inspect
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys

import numpy as np
import onnx
import pytest

from tilerun.cli import build_parser

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
CUSTOM_OP_MARKER = "# custom op example"


def blocks(lang):
    """The README's fenced ``lang`` blocks, in order."""
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text(), re.S)


def block(lang, first_line):
    """The one ``lang`` block whose first line starts with ``first_line``."""
    found = [b for b in blocks(lang) if b.startswith(first_line)]
    assert len(found) == 1, f"README.md needs one ```{lang} block starting with {first_line!r}"
    return found[0]


def commands(text):
    """Each command of a shell block: comments dropped, ``&&`` chains split, continuation lines joined."""
    out = []
    for line in text.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        while words:
            cut = words.index("&&") if "&&" in words else len(words)
            out.append(words[:cut])
            words = words[cut + 1:]
    return out


def test_every_block_is_accounted_for():
    python = blocks("python")
    assert sum(b.startswith(CUSTOM_OP_MARKER) for b in python) == 1
    bash = blocks("bash")
    firsts = sorted(b.splitlines()[0] for b in bash)
    assert firsts == sorted(["python -m pip install -e \".[dev]\" && tilerun run   # install, then compile and "
                             "check light ResNet-50",
                             "# synopsis (tests/test_readme.py checks these flags against each command's --help)",
                             "# examples (tests/test_readme.py runs each line as written, in a folder holding "
                             "model.onnx and in.npz)",
                             "python -m pytest benchmarks --benchmark-only      # pytest-benchmark: tilerun and ORT "
                             "side by side per group",
                             SERVE_BLOCK]), firsts


SERVE_BLOCK = 'pip install -e ".[serve]"       # fastapi, uvicorn, httptools, grpcio, protobuf, prometheus_client'


def test_serve_block_names_a_real_extra_and_parses():
    # Starting a server is tests/test_serve.py's job: here the block's lines must be ones tilerun accepts.
    import tomllib
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    lines = commands(block("bash", SERVE_BLOCK))
    assert lines[0][:3] == ["pip", "install", "-e"] and lines[0][3] == ".[serve]" and "serve" in extras
    for words in lines[1:]:
        assert words[:2] == ["tilerun", "serve"], words
        build_parser().parse_args(words[1:])


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A folder holding ``model.onnx`` (a small conv net, input ``x`` of dims ``[N, 3, 8, 8]``) and ``in.npz``."""
    from test_cli import _convnet
    onnx.save(_convnet("N"), str(tmp_path / "model.onnx"))
    np.savez(tmp_path / "in.npz", x=np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_python_api_blocks(workdir, capsys):
    ns = {"__name__": "readme"}
    api = [b for b in blocks("python") if not b.startswith(CUSTOM_OP_MARKER)]
    assert len(api) == 5
    try:
        for k, src in enumerate(api):
            code = compile(src, f"{README}:python-block-{k}", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
            result = eval(code, ns)
            if code.co_flags & inspect.CO_COROUTINE:
                asyncio.run(result)
    finally:
        if "eng" in ns:
            ns["eng"].close()
    out = capsys.readouterr().out
    assert "['x'] [(1, 3, 8, 8)] ['y']" in out
    assert "[('N', 3, 8, 8)]" in out  # the dynamic-shape block
    assert "Config(hint='throughput', scheduler='multi_stream'" in out and "auto_batch=" in out
    assert re.search(r"<tilerun\.Engine inputs \(x: float32\[N, 3, 8, 8\]\) -> outputs \['y'\]; elastic, \d "
                     r"stream\(s\), \d core\(s\), open>", out), out
    assert ns["outs"][0].shape == (1, 10) and (workdir / "trace.json").exists()


def _synopsis():
    """``{command: set of flags}`` of the synopsis block (``""``: the flags before COMMAND)."""
    flags = {}
    cmd = None
    for line in block("bash", "# synopsis").splitlines()[1:]:
        if line.startswith("tilerun "):
            word = line.split()[1]
            cmd = "" if word.startswith("[") else word
            flags.setdefault(cmd, set())
        flags[cmd] |= set(re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)", line))
    return flags


def test_synopsis_flags_match_help():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    readme = _synopsis()
    assert set(readme) == {""} | set(sub.choices)
    for name, cmd in [("", parser)] + sorted(sub.choices.items()):
        documented = readme[name] - {"-vv"}
        options = [a.option_strings for a in cmd._actions if a.option_strings and a.dest != "help"]
        missing = [opts[-1] for opts in options if not documented & set(opts)]
        unknown = documented - {o for opts in options for o in opts}
        assert not missing and not unknown, f"tilerun {name}: README lacks {missing}, has unknown {sorted(unknown)}"


def test_run_options_sentence_matches_help():
    text = README.read_text().split("Options: `tilerun run [MODEL]", 1)[1].split("`.", 1)[0]
    run = next(a for a in build_parser()._actions if a.dest == "command").choices["run"]
    flags = {o for a in run._actions if a.dest != "help" for o in a.option_strings}
    assert set(re.findall(r"--[a-z-]+", text)) == flags


def test_one_ratio_convention():
    text = README.read_text()
    assert "tilerun / ONNX Runtime" not in text and "< 1: tilerun faster" not in text
    assert text.count("> 1: tilerun faster") >= 2 or text.count("> 1 means tilerun is faster") >= 1


def _script(words):
    """argv for a README command: ``tilerun`` is the console script beside this interpreter."""
    if words[0] == "tilerun":
        exe = os.path.join(os.path.dirname(sys.executable), "tilerun")
        return [exe if os.path.exists(exe) else shutil.which("tilerun")] + words[1:]
    if words[0] == "python":
        return [sys.executable] + words[1:]
    raise AssertionError(f"README command of unknown program: {words}")


def _run(words, cwd, timeout=600):
    r = subprocess.run(_script(words), cwd=cwd, capture_output=True, text=True, timeout=timeout,
                       env=dict(os.environ))
    assert r.returncode == 0, f"{shlex.join(words)} exited {r.returncode}:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
    return r


@pytest.mark.slow  # seven commands in fresh processes, squeezenet among them: about a minute
def test_command_line_examples(workdir):
    lines = commands(block("bash", "# examples"))
    assert len(lines) >= 8
    for words in lines:
        _run(words, workdir)
    assert (workdir / "out.npz").exists() and (workdir / "bench.json").exists()
    assert (workdir / "trace.json").exists() and (workdir / "tune.json").exists()
    assert (workdir / "model_dynamic.onnx").exists()


@pytest.mark.slow  # light ResNet-50 compiled, checked against ONNX Runtime; the test suite collected twice
def test_quick_start(tmp_path):
    install, run, collect_all, collect_fast = commands(block("bash", "python -m pip install"))
    assert install == ["python", "-m", "pip", "install", "-e", ".[dev]"]
    # CI runs this install in a fresh venv before the tests: the extra it names must exist.
    assert re.search(r"^\[project\.optional-dependencies\]\n(?:.*\n)*?dev = \[", (ROOT / "pyproject.toml").read_text(),
                     re.M)
    r = _run(run, tmp_path)
    assert "PASS" in r.stdout and "top-5" in r.stdout
    for words in (collect_all, collect_fast):
        assert words[:3] == ["python", "-m", "pytest"]
        _run(words + ["--collect-only", "-q"], ROOT)


@pytest.mark.slow  # the benchmark suite collected; the latency summary on one model, one round
def test_benchmark_commands(tmp_path):
    suite, summary = commands(block("bash", "python -m pytest benchmarks"))
    _run(suite + ["--collect-only", "-q"], ROOT)
    r = _run(summary + ["--threads", "1", "--rounds", "1", "squeezenet"], ROOT)
    assert "speed-up" in r.stdout and "squeezenet" in r.stdout
