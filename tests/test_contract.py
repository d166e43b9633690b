"""The declared kernel contract: rows checked at compile time, every plan row matching its kernel's declaration.

A lowering passes keywords; ``PlanBuilder.add`` must refuse a missing, extra
or ill-typed slot with a message naming the kernel and the slot, before any
kernel runs. Every row of every light model must be the length its kernel
declares, with every tensor slot either bound or declared optional.
"""
import numpy as np
import onnx
import pytest

import tilerun
from tilerun.errors import ModelError
from tilerun.ir import Graph, Node, Value
from tilerun.kernels.contract import ContractError, declare_row, declare_struct, float_bits
from tilerun.kernels.elementwise import UNARY, f32_relu
from tilerun.kernels.registry import all_kernels, kernel
from tilerun.models import LIGHT_MODELS, light_model_path
from tilerun.plan import PlanBuilder


def _builder():
    values = {"x": Value("x", (4, 8), np.dtype(np.float32)), "y": Value("y", (4, 8), np.dtype(np.float32))}
    return PlanBuilder(Graph([], values, ["x"], ["y"], 17), num_workers=2), Node("Relu", "relu_0", ["x"], ["y"])


def _relu_args():
    return dict(x="x", y="y", n=32, chunk=32, alpha=0.0, beta=0.0)


def test_keyword_row_packs_in_declared_order():
    plan, node = _builder()
    plan.add(node, f32_relu, tiles=1, **_relu_args())
    row = plan.rows[0]
    assert row.inputs == ["x"] and row.outputs == ["y"]
    assert row.params == [32, 32, float_bits(0.0), float_bits(0.0)]
    assert row.n_params == type(UNARY)._size == UNARY.beta + 1


@pytest.mark.parametrize("change, slot", [
    (lambda a: a.pop("chunk"), "chunk"),                 # missing
    (lambda a: a.update(stride=2), "stride"),            # unknown
    (lambda a: a.update(n=2.5), "n"),                    # an int slot given a float
    (lambda a: a.update(x=None), "x"),                   # a required tensor given None
])
def test_wrong_row_fails_at_compile_time_naming_kernel_and_slot(change, slot):
    plan, node = _builder()
    args = _relu_args()
    change(args)
    with pytest.raises(ModelError) as e:
        plan.add(node, f32_relu, tiles=1, **args)
    assert "f32_relu" in str(e.value) and slot in str(e.value) and "relu_0" in str(e.value)
    assert plan.rows == []


def test_declaration_refuses_duplicate_and_reserved_names():
    with pytest.raises(ContractError, match="declared twice or reserved"):
        declare_row("BAD", inputs=("x",), ints=("x",))
    with pytest.raises(ContractError, match="reserved"):
        declare_row("BAD", ints=("tiles",))


def test_registry_names_every_kernel_once_with_a_row():
    kernels = all_kernels()
    assert len({k.name for k in kernels}) == len(kernels)
    assert kernel("f32_relu") is f32_relu
    undeclared = [k.name for k in kernels if k.row is None]
    assert undeclared == [], f"kernels without a declared row: {undeclared}"
    with pytest.raises(KeyError, match="no tile kernel named"):
        kernel("f32_nope")


@pytest.mark.slow
@pytest.mark.parametrize("name", LIGHT_MODELS)
def test_every_plan_row_matches_its_declaration(name):
    with tilerun.compile_model(onnx.load(light_model_path(name)), num_cores=2) as eng:
        for row in eng.plan.rows:
            r = row.kernel.row
            assert row.n_params == type(r)._size, (row.node, row.kernel.name)
            assert len(row.inputs) == len(r._inputs) and len(row.outputs) == len(r._outputs)
            for slot, name_ in zip(r._inputs + r._outputs, row.inputs + row.outputs):
                assert name_ is not None or slot in r._optional, (row.node, row.kernel.name, slot)


def test_kernel_cache_is_keyed_on_every_kernel_and_scheduler_source(tmp_path, monkeypatch):
    # A kernel inlines helpers from other files: its cached code must go stale when any of them changes.
    from numba.core import caching

    from tilerun.kernels import cache_stamp
    from tilerun.scheduler import executor
    for fn in (f32_relu.fn, executor.serve.py_func):
        assert type(caching.FunctionCache(fn)._impl.locator).__name__.startswith("Tilerun")
    before = cache_stamp.tilerun_source_stamp()
    extra = tmp_path / "helper.py"
    extra.write_text("X = 1\n")
    monkeypatch.setattr(cache_stamp, "_FOLDERS", cache_stamp._FOLDERS + (str(tmp_path),))
    assert cache_stamp.tilerun_source_stamp() != before
    extra.write_text("X = 2\n")
    changed = cache_stamp.tilerun_source_stamp()
    extra.write_text("X = 33\n")  # another size: mtimes of two quick writes may be equal
    assert cache_stamp.tilerun_source_stamp() != changed


def test_a_second_struct_starts_where_the_first_ends():
    st = declare_struct("PAIR", ints=("k",), floats=("f",))
    row = declare_row("TWO_STRUCTS", inputs=("x",), ints=("n",), structs={"a": st, "b": st})
    assert (row.a, row.a_f, row.a_k, row.b, row.b_f, row.b_k) == (2, 2, 3, 4, 4, 5)
    assert type(row)._size == 6
