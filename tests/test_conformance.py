"""ONNX conformance: onnx's own node and model test cases, run through ``tilerun.backend``.

Collected: every case of ``onnx.backend.test.case.node.collect_testcases()``
whose nodes are all op types tilerun registers, and the ``pytorch-converted``,
``pytorch-operator`` and ``light`` model tests shipped in the onnx wheel whose
ops are all supported. Outputs are compared as onnx's runner compares them
(``Runner.assert_similar_outputs``: same shape and dtype, ``assert_allclose``
with the case's rtol/atol, 1e-3/1e-7 unless the case says otherwise).

Cases known to fail are listed, with the reason, in ``conformance_xfail.XFAIL``
and marked ``xfail(strict=True)``: a listed case that starts passing fails the
suite, so the list only shrinks. Engines run on one core (agreement across
worker counts is tested elsewhere) and are closed after each case.
"""
import glob
import os
import warnings

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from onnx.backend.test.runner import Runner

from tilerun.backend import TilerunBackend
from tilerun.ops import supported_ops

from conformance_xfail import XFAIL

DATA = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data")

# The engine core's op set (issue "Engine core"), with the ops its passes remove.
CORE_OPS = set("""Conv Gemm MatMul BatchNormalization Relu LeakyRelu Clip Sigmoid Tanh HardSigmoid HardSwish
Softmax LRN Add Sub Mul Div Sum Max Min MaxPool AveragePool GlobalAveragePool GlobalMaxPool Concat Flatten
Reshape Transpose Split Slice Squeeze Unsqueeze Pad Gather Shape Size Constant Identity Dropout""".split())

# Tolerances of the light models, as onnx's model test list gives them.
LIGHT_RTOL = {"densenet121": 2e-3}


def _supported(model, ops):
    return all(n.op_type in ops and n.domain in ("", "ai.onnx") for n in model.graph.node)


def _node_cases():
    from onnx.backend.test.case.node import collect_testcases
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the case generators overflow casts on purpose
        cases = collect_testcases(None)
    ops = set(supported_ops())
    return sorted((c for c in cases if _supported(c.model, ops)), key=lambda c: c.name)


def _load_tensors(paths, types):
    out = []
    for path, t in zip(paths, types):
        if not t.HasField("tensor_type"):
            out.append(None)  # sequences and optionals: tilerun refuses their models anyway
            continue
        proto = onnx.TensorProto()
        with open(path, "rb") as f:
            proto.ParseFromString(f.read())
        out.append(numpy_helper.to_array(proto))
    return out


def _dir_case(case_dir):
    """``(model, data_sets, rtol, atol)`` of a model test directory."""
    model = onnx.load(os.path.join(case_dir, "model.onnx"))
    inits = {t.name for t in model.graph.initializer}
    in_types = [vi.type for vi in model.graph.input if vi.name not in inits]
    out_types = [vi.type for vi in model.graph.output]
    sets = []
    for d in sorted(glob.glob(os.path.join(case_dir, "test_data_set_*"))):
        n_in = len(glob.glob(os.path.join(d, "input_*.pb")))
        n_out = len(glob.glob(os.path.join(d, "output_*.pb")))
        sets.append((_load_tensors([os.path.join(d, f"input_{i}.pb") for i in range(n_in)], in_types),
                     _load_tensors([os.path.join(d, f"output_{i}.pb") for i in range(n_out)], out_types)))
    return model, sets, 1e-3, 1e-7


def _light_case(name):
    """The light model with onnx's dummy input (``arange / n``) and its shipped output."""
    path = os.path.join(DATA, "light", f"light_{name}.onnx")
    model = onnx.load(path)
    inits = {t.name for t in model.graph.initializer}
    inputs = []
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        shape = tuple(d.dim_value if d.HasField("dim_value") else 1 for d in vi.type.tensor_type.shape.dim)
        n = int(np.prod(shape))
        inputs.append((np.arange(n).reshape(shape) / n).astype(np.float32))
    outputs = _load_tensors([path[:-len(".onnx")] + "_output_0.pb"], [model.graph.output[0].type])
    return model, [(inputs, outputs)], LIGHT_RTOL.get(name, 1e-3), 1e-7


def _model_case_ids():
    ops = set(supported_ops())
    ids = []
    for kind in ("pytorch-converted", "pytorch-operator"):
        for d in sorted(glob.glob(os.path.join(DATA, kind, "test_*"))):
            if _supported(onnx.load(os.path.join(d, "model.onnx"), load_external_data=False), ops):
                ids.append(f"{kind}/{os.path.basename(d)}")
    for path in sorted(glob.glob(os.path.join(DATA, "light", "light_*.onnx"))):
        ids.append(f"light/{os.path.basename(path)[len('light_'):-len('.onnx')]}")
    return ids


def _params(items):
    out = []
    for name, value in items:
        marks = [pytest.mark.xfail(reason=XFAIL[name], strict=True)] if name in XFAIL else []
        if name.startswith("light/"):
            marks.append(pytest.mark.slow)  # real models: up to several seconds each
        out.append(pytest.param(value, id=name, marks=marks))
    return out


NODE_CASES = _node_cases()
MODEL_CASES = _model_case_ids()


def _run_and_compare(model, data_sets, rtol, atol):
    with TilerunBackend.prepare(model, num_cores=1) as rep:
        for inputs, expected in data_sets:
            outputs = list(rep.run(inputs))
            Runner.assert_similar_outputs(expected, outputs, rtol=rtol, atol=atol)


@pytest.mark.parametrize("case", _params((c.name, c) for c in NODE_CASES))
def test_node(case):
    _run_and_compare(case.model, case.data_sets, case.rtol, case.atol)


@pytest.mark.parametrize("name", _params((n, n) for n in MODEL_CASES))
def test_model(name):
    kind, case = name.split("/")
    if kind == "light":
        _run_and_compare(*_light_case(case))
    else:
        _run_and_compare(*_dir_case(os.path.join(DATA, kind, case)))


def test_xfail_list_names_only_collected_cases():
    collected = {c.name for c in NODE_CASES} | set(MODEL_CASES)
    stale = sorted(set(XFAIL) - collected)
    assert not stale, f"conformance_xfail lists cases that are not collected: {stale}"


def test_core_op_set_passes_at_least_95_percent():
    """The engine core's op set: at most 5% of its collected node cases may be expected failures."""
    core = [c.name for c in NODE_CASES if all(n.op_type in CORE_OPS for n in c.model.graph.node)]
    failing = [n for n in core if n in XFAIL]
    assert len(core) >= 250, f"expected the core op set to collect most of its ~300 cases, collected {len(core)}"
    assert (len(core) - len(failing)) / len(core) >= 0.95, \
        f"{len(core) - len(failing)} of {len(core)} core cases pass; expected failures: {failing}"


# -- the backend itself ------------------------------------------------------------------
def test_onnx_runner_drives_the_backend():
    """onnx's own ``BackendTest`` runner runs cases through ``tilerun.backend`` unchanged."""
    import unittest

    import onnx.backend.test

    runner = onnx.backend.test.BackendTest(TilerunBackend, __name__)
    runner.include(r"^test_(relu|add_bcast|reshape_negative_dim|gather_0|maxpool_2d_pads|conv_with_strides_padding)"
                   r"_cpu$")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = unittest.TextTestRunner(stream=open(os.devnull, "w")).run(runner.test_suite)
    ran = result.testsRun - len(result.skipped)
    assert ran == 6 and result.wasSuccessful(), (ran, result.failures + result.errors)


def test_run_node_run_model_and_devices():
    from onnx import helper
    import tilerun.backend as backend
    x = np.arange(6, dtype=np.float32).reshape(2, 3) - 2
    (y,) = backend.run_node(helper.make_node("Relu", ["x"], ["y"]), [x])
    np.testing.assert_array_equal(y, np.maximum(x, 0))
    model = helper.make_model(helper.make_graph(
        [helper.make_node("Transpose", ["x"], ["y"])], "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)]))
    for n in (1, 4):  # a dynamic dim compiles for the shapes given
        xs = np.ones((n, 3), np.float32) * np.arange(n, dtype=np.float32)[:, None]
        np.testing.assert_array_equal(backend.run_model(model, [xs])[0], xs.T)
    assert backend.supports_device("CPU") and not backend.supports_device("CUDA")


def test_reps_release_their_worker_threads():
    import threading
    from onnx import helper
    node = helper.make_node("Add", ["a", "b"], ["y"])
    before = threading.active_count()
    for k in range(40):
        a = np.full((2, 2), k, np.float32)
        rep = TilerunBackend.prepare(helper.make_model(helper.make_graph(
            [node], "g", [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, [2, 2]) for n in "ab"],
            [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)])), num_cores=2)
        np.testing.assert_array_equal(rep.run([a, a])[0], 2 * a)
        del rep  # no close(): the finalizer must stop the engine's workers
    assert threading.active_count() <= before + 2
