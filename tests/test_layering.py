"""Imports flow one way: ``engine/`` -> ``scheduler/`` -> ``kernels/``, read from the source with ``ast``.

Every ``import`` and ``from ... import`` of every module (at any depth: inside
functions too) and every ``importlib.import_module("...")`` with a literal
name is resolved to an absolute ``tilerun`` module name, using the folder ->
package map of ``pyproject.toml``. Then:

* ``kernels/`` imports nothing of ours but ``tilerun.kernels``, and never
  reaches up with a relative import (``from .. import``);
* ``scheduler/`` imports only ``tilerun.kernels`` and ``tilerun.scheduler``
  (no ``tilerun`` engine module: api, ops, passes, errors, ...);
* no module imports the folder names ``engine``, ``kernels`` or
  ``scheduler`` as top-level packages (they are not installed).
"""
import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
# Folder -> package, as [tool.setuptools.package-dir] maps them.
PACKAGES = {"engine": "tilerun", "engine/ops": "tilerun.ops", "engine/passes": "tilerun.passes",
            "engine/commands": "tilerun.commands", "engine/serve": "tilerun.serve", "kernels": "tilerun.kernels",
            "scheduler": "tilerun.scheduler"}
FOLDER_NAMES = {"engine", "kernels", "scheduler"}


def _modules():
    """``(path, package, module name)`` of every source module of the three folders."""
    out = []
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).glob("*.py")):
            name = package if path.stem == "__init__" else f"{package}.{path.stem}"
            out.append((path, package, name))
    return out


def _imports(path, package):
    """``(line, absolute name, relative level)`` of every import in ``path``; level 0 for absolute ones."""
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name, 0) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                base = node.module
            else:
                parts = package.split(".")
                up = parts[:len(parts) - (node.level - 1)] if node.level - 1 < len(parts) else []
                base = ".".join(up + ([node.module] if node.module else []))
            # ``from pkg import mod`` may name a submodule: record pkg.mod as well as pkg.
            found.append((node.lineno, base, node.level))
            found += [(node.lineno, f"{base}.{a.name}", node.level) for a in node.names if a.name != "*"]
        elif (isinstance(node, ast.Call) and _called(node) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            found.append((node.lineno, node.args[0].value, 0))
    return found


def _called(call):
    """The name a call calls: ``f`` of ``f(...)`` or ``a.f(...)``."""
    return getattr(call.func, "attr", getattr(call.func, "id", None))


def _ours(name):
    return name == "tilerun" or name.startswith("tilerun.")


def _within(name, *packages):
    return any(name == p or name.startswith(p + ".") for p in packages)


MODULES = _modules()


def _of(package):
    return [m for m in MODULES if m[1] == package]


def _ids(modules):
    return [name for _, _, name in modules]


def test_every_folder_has_modules():
    folders = {p for _, p, _ in MODULES}
    assert folders == set(PACKAGES.values())


@pytest.mark.parametrize("path,package,name", _of("tilerun.kernels"), ids=_ids(_of("tilerun.kernels")))
def test_kernels_import_only_kernels(path, package, name):
    bad = [(line, mod) for line, mod, level in _imports(path, package)
           if level > 1 or (_ours(mod) and not _within(mod, "tilerun.kernels"))]
    assert not bad, f"{name} imports outside tilerun.kernels (or relative-up): {bad}"


@pytest.mark.parametrize("path,package,name", _of("tilerun.scheduler"), ids=_ids(_of("tilerun.scheduler")))
def test_scheduler_imports_only_kernels_and_itself(path, package, name):
    bad = [(line, mod) for line, mod, level in _imports(path, package)
           if level > 1 or (_ours(mod) and not _within(mod, "tilerun.kernels", "tilerun.scheduler"))]
    assert not bad, f"{name} imports tilerun engine modules (only tilerun.kernels and itself allowed): {bad}"


@pytest.mark.parametrize("path,package,name", MODULES, ids=_ids(MODULES))
def test_no_folder_names_as_packages(path, package, name):
    bad = [(line, mod) for line, mod, level in _imports(path, package)
           if level == 0 and mod.split(".")[0] in FOLDER_NAMES]
    assert not bad, f"{name} imports a folder name as a package (use tilerun, tilerun.kernels, ...): {bad}"


def test_resolver_catches_what_the_rules_forbid(tmp_path):
    """The checks above see relative-up, absolute and lazy imports (a rule that sees nothing passes vacuously)."""
    src = tmp_path / "m.py"
    src.write_text("from .. import api\nfrom ..scheduler import executor\n"
                   "def f():\n    import tilerun.ops\n    importlib.import_module('tilerun.passes')\n"
                   "from . import simd\n")
    got = {(mod, level) for _, mod, level in _imports(src, "tilerun.kernels")}
    assert {("tilerun.api", 2), ("tilerun.scheduler.executor", 2), ("tilerun.ops", 0),
            ("tilerun.passes", 0), ("tilerun.kernels.simd", 1)} <= got
