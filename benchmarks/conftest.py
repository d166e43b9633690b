"""Benchmark configuration: Numba's cache inside the checkout, model selection, run metadata.

``--models resnet50,squeezenet`` keeps only the benchmarks of those light
models (any test parametrized with ``name``); ``--threads 1`` keeps one thread
count (tests parametrized with ``threads``). Saved runs (``--benchmark-autosave``,
``--benchmark-json``) record tilerun's version, the topology and the SIMD width
beside pytest-benchmark's machine info, so a compare names what was measured.
Grouping is each test's ``benchmark.group`` (tilerun and ONNX Runtime of one
model and thread count share a group), which ``--benchmark-compare`` keeps.
"""
import os
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".numba_cache"))


def pytest_addoption(parser):
    """The ``--models`` and ``--threads`` selections."""
    group = parser.getgroup("tilerun benchmarks")
    group.addoption("--models", default=None, help="comma list of light models to benchmark (default: all)")
    group.addoption("--threads", default=None, help="comma list of thread counts to keep (default: all)")


def _selected(item, key, allowed):
    params = getattr(getattr(item, "callspec", None), "params", {})
    return key not in params or str(params[key]) in allowed


def pytest_collection_modifyitems(config, items):
    """Deselect benchmarks of models / thread counts not asked for."""
    rules = [(key, set(v.split(","))) for key, v in (("name", config.getoption("--models")),
                                                     ("threads", config.getoption("--threads"))) if v]
    if not rules:
        return
    keep, drop = [], []
    for item in items:
        (keep if all(_selected(item, key, allowed) for key, allowed in rules) else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_benchmark_update_machine_info(config, machine_info):
    """Add tilerun's view of the machine to the saved run."""
    try:
        import tilerun
        from tilerun.commands.info import numa_nodes, simd_description
        from tilerun.scheduler import topology
        topo = topology.detect()
        machine_info["tilerun"] = {"version": tilerun.__version__, "cores": len(topo.cores),
                                   "l3_domains": len(topo.domains), "numa_nodes": numa_nodes(topo),
                                   "simd": simd_description()}
    except Exception as e:  # metadata must never break a benchmark run
        machine_info["tilerun"] = {"error": f"{type(e).__name__}: {e}"}
