"""Custom ops: a user-domain op with its own shape function and tile kernel, against numpy, on every scheduler.

The README's example is run as it stands (extracted from its fenced block),
so the documented code and the behaviour cannot drift apart.
"""
import pathlib
import re

import numpy as np
import onnx
import pytest
from onnx import helper

import tilerun
from tilerun.custom import U, declare_row, f32, param_f32
from tilerun.kernels import contract
from tilerun.kernels import registry as kernel_registry
from tilerun.ops import registry as op_registry
from tilerun.passes import infer as infer_pass
from tilerun.scheduler import Topology, topology

F = np.float32
DOMAIN = "com.example.test"
README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
README_MARKER = "# custom op example"

# -- the test's own op: y = x * a + bias per row (a: one value per column), and optionally each row's sum ---------
ROW_AFFINE = declare_row("ROW_AFFINE", inputs=("x", "a"), outputs=("y", "rowsum?"),
                         ints=("rows", "cols", "rows_per_tile"), floats=("bias",))


def row_affine_shape(node, x, a):
    if x.dtype != F or len(x.shape) != 2 or tuple(a.shape) != (x.shape[1],):
        raise tilerun.ModelError(f"RowAffine: x [R, C] and a [C] float32, given {x.shape} and {a.shape}")
    return [(x.shape, F), ((x.shape[0],), F)]


def row_affine_params(node, inputs, outputs, plan):
    rows, cols = inputs[0].shape
    tiles, per = plan.split(rows, cols)
    return dict(rows=rows, cols=cols, rows_per_tile=per, bias=node.attrs.get("bias", 0.0), tiles=tiles,
                flops=2 * rows * cols)


@tilerun.custom_op("RowAffine", domain=DOMAIN, row=ROW_AFFINE, shape=row_affine_shape, params=row_affine_params)
def custom_test_row_affine(p, tile, scratch):
    rows = p[ROW_AFFINE.rows]
    cols = p[ROW_AFFINE.cols]
    lo = tile * p[ROW_AFFINE.rows_per_tile]
    hi = min(rows, lo + p[ROW_AFFINE.rows_per_tile])
    x = f32(p[ROW_AFFINE.x], rows * cols)
    a = f32(p[ROW_AFFINE.a], cols)
    y = f32(p[ROW_AFFINE.y], rows * cols)
    bias = param_f32(p, ROW_AFFINE.bias)
    for r in range(lo, hi):
        s = np.float32(0)
        for c in range(U(cols)):
            v = x[r * cols + c] * a[c] + bias
            y[r * cols + c] = v
            s += v
        if p[ROW_AFFINE.rowsum] != 0:  # an omitted optional output has address 0
            f32(p[ROW_AFFINE.rowsum], rows)[r] = s
    return 0


ROW_AFFINE_OP = custom_test_row_affine  # the decorator returns the registered CustomOp


def make(nodes, inputs, outputs, inits=(), domains=((DOMAIN, 1),)):
    def vi(name, shape):
        return helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, shape)
    graph = helper.make_graph(nodes, "custom", [vi(n, s) for n, s in inputs], [vi(n, None) for n in outputs],
                              [onnx.numpy_helper.from_array(np.asarray(v), n) for n, v in inits])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]
                             + [helper.make_opsetid(d, v) for d, v in domains])


def row_affine_model(rows=37, cols=50):
    a = np.linspace(-1.5, 2.0, cols).astype(F)
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("RowAffine", ["r", "a"], ["t", "s"], domain=DOMAIN, name="affine", bias=0.25),
             helper.make_node("Add", ["t", "x"], ["y"]),
             helper.make_node("Sigmoid", ["s"], ["z"])]
    return make(nodes, [("x", [rows, cols])], ["y", "z"], [("a", a)]), a


def row_affine_oracle(x, a, bias=0.25):
    t = np.maximum(x, 0) * a + F(bias)
    return t + x, 1 / (1 + np.exp(-t.sum(axis=1, dtype=np.float64)))


def two_domains():
    cores = topology.detect().cores
    if len(cores) < 2:
        pytest.skip("needs two usable cores")
    return Topology(cores[:2], ((cores[0],), (cores[1],)))


# -- running --------------------------------------------------------------------------------------------------
RUNS = [("single_stream", 1), ("single_stream", None), ("multi_stream", 1), ("multi_stream", None),
        ("elastic", None)]  # elastic: on two one-core domains


@pytest.mark.parametrize("scheduler,num_cores", RUNS)
def test_custom_op_between_builtins_matches_numpy(scheduler, num_cores):
    model, a = row_affine_model(rows=901, cols=256)  # several tiles on several workers, the last one short
    x = np.random.default_rng(3).standard_normal((901, 256)).astype(F)
    want_y, want_z = row_affine_oracle(x, a)
    extra = {"topology": two_domains()} if scheduler == "elastic" else {}
    with tilerun.compile_model(model, num_cores=num_cores, scheduler=scheduler, **extra) as eng:
        rows = [r for r in eng.plan.rows if r.kernel is ROW_AFFINE_OP.kernel]
        assert len(rows) == 1 and rows[0].node == "affine" and rows[0].op_type == "RowAffine"
        assert (rows[0].n_tiles > 1) == (eng.plan.num_workers > 1)  # one worker: one tile per op
        outs = [eng.run([x]) for _ in range(3)] + [f.result(timeout=60) for f in
                                                  [eng.run_async([x]) for _ in range(4)]]
    for y, z in outs:
        np.testing.assert_allclose(y, want_y, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(z, want_z, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(y, outs[0][0])
        np.testing.assert_array_equal(z, outs[0][1])


def test_one_core_and_all_cores_bit_identical_and_tiled():
    model, a = row_affine_model(rows=512, cols=256)
    x = np.random.default_rng(4).standard_normal((512, 256)).astype(F)
    with tilerun.compile_model(model, num_cores=1) as one, tilerun.compile_model(model) as every:
        outs_one, outs_every = one.run([x]), every.run([x])
        if len(every.topology.cores) > 1:
            assert max(r.n_tiles for r in every.plan.rows if r.kernel is ROW_AFFINE_OP.kernel) > 1
    for got_one, got_every, want in zip(outs_one, outs_every, row_affine_oracle(x, a)):
        np.testing.assert_array_equal(got_one, got_every)
        np.testing.assert_allclose(got_one, want, rtol=1e-5, atol=1e-5)


def test_optional_output_omitted_and_kernel_listed():
    a = np.full(8, 2.0, F)
    nodes = [helper.make_node("RowAffine", ["x", "a"], ["y"], domain=DOMAIN)]
    x = np.arange(24, dtype=F).reshape(3, 8)
    with tilerun.compile_model(make(nodes, [("x", [3, 8])], ["y"], [("a", a)])) as eng:
        np.testing.assert_array_equal(eng.run([x])[0], x * 2)
        row = next(r for r in eng.plan.rows if r.kernel is ROW_AFFINE_OP.kernel)
        assert row.outputs[1] is None
    assert kernel_registry.kernel("custom_test_row_affine") is ROW_AFFINE_OP.kernel


def test_constant_inputs_fold_by_running_the_kernel(monkeypatch):
    def no_reference(*args):
        raise AssertionError("a custom op went to onnx's reference evaluator")
    monkeypatch.setattr(infer_pass, "reference_fold", no_reference)
    c = np.random.default_rng(5).standard_normal((5, 6)).astype(F)
    a = np.arange(6, dtype=F)
    nodes = [helper.make_node("RowAffine", ["c", "a"], ["t", "s"], domain=DOMAIN, bias=-1.0),
             helper.make_node("Add", ["x", "t"], ["y"]),
             helper.make_node("Identity", ["s"], ["z"])]
    x = np.ones((5, 6), F)
    with tilerun.compile_model(make(nodes, [("x", [5, 6])], ["y", "z"], [("c", c), ("a", a)])) as eng:
        assert not any(r.kernel is ROW_AFFINE_OP.kernel for r in eng.plan.rows)
        y, z = eng.run([x])
    t = c * a - 1
    np.testing.assert_allclose(y, x + t, rtol=1e-6)
    np.testing.assert_allclose(z, t.sum(axis=1), rtol=1e-5)


def test_domain_versions_pick_the_newest_registration_not_above_the_model():
    def params(bias):
        def fn(node, inputs, outputs, plan):
            return dict(row_affine_params(node, inputs, outputs, plan), bias=bias)
        return fn
    for since, bias in ((1, 1.0), (3, 3.0)):
        tilerun.custom_op("Versioned", domain=DOMAIN, shape=row_affine_shape, params=params(bias),
                          since=since)(ROW_AFFINE_OP.kernel)
    a = np.ones(4, F)
    x = np.zeros((2, 4), F)
    for version, want in ((1, 1.0), (2, 1.0), (3, 3.0), (9, 3.0)):
        nodes = [helper.make_node("Versioned", ["x", "a"], ["y"], domain=DOMAIN)]
        m = make(nodes, [("x", [2, 4])], ["y"], [("a", a)], domains=((DOMAIN, version),))
        with tilerun.compile_model(m) as eng:
            np.testing.assert_array_equal(eng.run([x])[0], np.full((2, 4), want, F))
    a_node = [helper.make_node("Versioned", ["x", "a"], ["y"], domain=DOMAIN)]
    with pytest.raises(tilerun.UnsupportedOpError, match="com.example.test.Versioned"):
        tilerun.compile_model(make(a_node, [("x", [2, 4])], ["y"], [("a", a)], domains=((DOMAIN, 0),)))


# -- the README example, as written -----------------------------------------------------------------------------
def readme_example():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    found = [b for b in blocks if b.startswith(README_MARKER)]
    assert len(found) == 1, f"README.md needs one ```python block starting with {README_MARKER!r}"
    return found[0]


@pytest.fixture(scope="module")
def readme_namespace():
    ns = {"__name__": "readme_custom_op_example"}
    exec(compile(readme_example(), f"{README}:custom-op-example", "exec"), ns)  # asserts against numpy itself
    return ns


def test_readme_example_runs(readme_namespace):
    op = readme_namespace["scale_shift"]
    assert isinstance(op, tilerun.CustomOp) and op.name == "com.example.ScaleShift"
    assert op.kernel.cache is False  # code with no source file compiles without Numba's disk cache


@pytest.mark.parametrize("scheduler,num_cores", RUNS)
def test_readme_model_on_every_scheduler(readme_namespace, scheduler, num_cores):
    model, x = readme_namespace["model"], readme_namespace["x"]
    extra = {"topology": two_domains()} if scheduler == "elastic" else {}
    with tilerun.compile_model(model, batch_size=4, num_cores=num_cores, scheduler=scheduler, **extra) as eng:
        y, = eng.run([x])
    np.testing.assert_allclose(y, np.tanh(np.maximum(x, 0) * 2 - 1), rtol=1e-5, atol=1e-6)


# -- errors -------------------------------------------------------------------------------------------------------
def test_registering_twice_or_in_the_default_domain_or_a_taken_kernel_name():
    with pytest.raises(tilerun.CustomOpError, match=r"com.example.test.RowAffine since version 1 is already"):
        tilerun.custom_op("RowAffine", domain=DOMAIN, shape=row_affine_shape)(ROW_AFFINE_OP.kernel)
    for domain in ("", "ai.onnx"):
        with pytest.raises(tilerun.CustomOpError, match="default domain"):
            tilerun.custom_op("Relu", domain=domain, shape=row_affine_shape)(ROW_AFFINE_OP.kernel)

    def f32_relu(p, tile, scratch):  # the name of a built-in kernel
        return 0
    with pytest.raises(tilerun.CustomOpError, match=r"kernel f32_relu: a tile kernel of that name is declared"):
        tilerun.custom_op("TakenName", domain=DOMAIN, row=ROW_AFFINE, shape=row_affine_shape)(f32_relu)
    with pytest.raises(tilerun.CustomOpError, match="row must be a declare_row"):
        tilerun.custom_op("NoRow", domain=DOMAIN, shape=row_affine_shape)(lambda p, tile, scratch: 0)
    with pytest.raises(tilerun.CustomOpError, match="since must be a version"):
        tilerun.custom_op("BadSince", domain=DOMAIN, shape=row_affine_shape, since=0)
    assert not {(DOMAIN, "TakenName"), (DOMAIN, "NoRow"), (DOMAIN, "BadSince")} & set(op_registry.domain_ops())
    assert kernel_registry.kernel("f32_relu").fn.__module__ == "tilerun.kernels.elementwise"


BAD_SHAPES = {
    "none": (None, r", expected \(shape, dtype\) or a list of them, one per output"),
    "bare_shape": ((2, 3), r"expected \(shape, dtype\) or a list of them"),
    "negative": ((((-1, 3), F)), r"shape \(-1, 3\) is not a sequence of non-negative ints"),
    "float_dim": ((((2.0, 3), F)), r"shape \(2.0, 3\) is not a sequence of non-negative ints"),
    "no_dtype": ((((2, 3), None)), r"dtype None is not one tilerun's kernels carry"),
    "float64": ((((2, 3), np.float64)), r"dtype <class 'numpy.float64'> is not one"),
    "too_few": ([], r"0 output type\(s\) for the node's 1 outputs"),
}


@tilerun.custom_op("BadShape", domain=DOMAIN, row=declare_row("COPY", inputs=("x",), outputs=("y",)),
                   shape=lambda node, x: BAD_SHAPES[node.attrs["case"]][0])
def custom_test_bad_shape(p, tile, scratch):  # never lowered: each case fails in shape inference
    return 0


@pytest.mark.parametrize("case", sorted(BAD_SHAPES))
def test_malformed_shape_function_fails_the_compile_naming_the_op(case):
    nodes = [helper.make_node("BadShape", ["x"], ["y"], domain=DOMAIN, name="bad", case=case)]
    with pytest.raises(tilerun.ModelError, match=r"node 'bad' \(BadShape\): custom op com.example.test.BadShape: "
                                                 r"shape function returned .*" + BAD_SHAPES[case][1]):
        tilerun.compile_model(make(nodes, [("x", [2, 3])], ["y"]))


def test_wrong_slot_fails_the_compile_naming_kernel_and_slot():
    def params(node, inputs, outputs, plan):
        args = row_affine_params(node, inputs, outputs, plan)
        args["rows_per_tiel"] = args.pop("rows_per_tile")
        return args
    tilerun.custom_op("WrongSlot", domain=DOMAIN, shape=row_affine_shape, params=params)(ROW_AFFINE_OP.kernel)
    nodes = [helper.make_node("WrongSlot", ["x", "a"], ["y"], domain=DOMAIN, name="ws")]
    m = make(nodes, [("x", [2, 4])], ["y"], [("a", np.ones(4, F))])
    with pytest.raises(tilerun.ModelError, match=r"node 'ws' \(WrongSlot\): custom op com.example.test.WrongSlot: "
                                                 r"kernel custom_test_row_affine: row ROW_AFFINE has no slot "
                                                 r"rows_per_tiel; slot rows_per_tile not given"):
        tilerun.compile_model(m)


def test_kernel_numba_rejects_fails_the_compile_naming_the_op(monkeypatch):
    # Declared for this test only: later code listing every kernel must not meet it.
    monkeypatch.setattr(contract, "_DECLARED", list(contract._DECLARED))
    monkeypatch.setattr(op_registry, "_DOMAIN_OPS", dict(op_registry._DOMAIN_OPS))

    @tilerun.custom_op("NoCompile", domain=DOMAIN, row=ROW_AFFINE, shape=row_affine_shape,
                       params=row_affine_params)
    def custom_test_no_compile(p, tile, scratch):
        return p.no_such_attribute
    nodes = [helper.make_node("NoCompile", ["x", "a"], ["y"], domain=DOMAIN, name="nc")]
    m = make(nodes, [("x", [2, 4])], ["y"], [("a", np.ones(4, F))])
    with pytest.raises(tilerun.ModelError, match=r"custom op com.example.test.NoCompile: kernel "
                                                 r"custom_test_no_compile does not compile \(TypingError"):
        tilerun.compile_model(m)
    monkeypatch.undo()
    assert "custom_test_no_compile" not in [k.name for k in kernel_registry.all_kernels()]
    assert (DOMAIN, "NoCompile") not in op_registry.domain_ops()


@pytest.mark.parametrize("constant", [False, True])
def test_unregistered_domain_op_is_unsupported_naming_the_domain(constant):
    nodes = [helper.make_node("Frobnicate", ["c" if constant else "x"], ["f"], domain="com.unknown", name="fr"),
             helper.make_node("Add", ["x", "f"], ["y"])]
    m = make(nodes, [("x", [2, 3])], ["y"], [("c", np.ones((2, 3), F))], domains=(("com.unknown", 1),))
    with pytest.raises(tilerun.UnsupportedOpError) as e:
        tilerun.compile_model(m)
    assert e.value.missing == {"com.unknown.Frobnicate": ["fr"]}
    assert "com.unknown.Frobnicate: nodes 'fr'" in str(e.value)
    assert f"{DOMAIN}.RowAffine" in str(e.value)  # registered custom ops are listed among the supported


def test_builtin_ops_are_not_reached_from_a_user_domain():
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]),
             helper.make_node("Relu", ["c"], ["y"], domain=DOMAIN, name="not_onnx_relu")]
    m = make(nodes, [("x", [1, 1, 4, 4])], ["y"], [("w", np.ones((1, 1, 1, 1), F))])
    with pytest.raises(tilerun.UnsupportedOpError) as e:
        tilerun.compile_model(m)  # not fused into the Conv, not lowered as ONNX Relu
    assert e.value.missing == {f"{DOMAIN}.Relu": ["not_onnx_relu"]}
