"""Graph passes: BatchNorm folding, epilogue fusion, no-op and dead-node removal, against the reference."""
import numpy as np
import pytest
from onnx import helper

import tilerun
from oracle import check_against_reference, make_model

F = np.float32


def conv_bn_model(act=None, residual=False, opset=14):
    rng = np.random.default_rng(0)
    c = 8
    inits = [("w", (rng.standard_normal((c, 4, 3, 3)) * 0.3).astype(F)), ("b", rng.standard_normal(c).astype(F)),
             ("sc", (1 + 0.1 * rng.standard_normal(c)).astype(F)), ("bb", rng.standard_normal(c).astype(F)),
             ("mu", rng.standard_normal(c).astype(F)), ("var", (0.5 + rng.random(c)).astype(F)),
             ("w2", (rng.standard_normal((c, 4, 1, 1)) * 0.3).astype(F))]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "sc", "bb", "mu", "var"], ["n"], epsilon=1e-3)]
    last = "n"
    if residual:
        # The residual branch is computed after the main conv in node order.
        nodes += [helper.make_node("Conv", ["x", "w2"], ["skip"]), helper.make_node("Add", ["n", "skip"], ["s"])]
        last = "s"
    if act:
        op, attrs = act
        nodes.append(helper.make_node(op, [last], ["y"], **attrs))
    else:
        nodes.append(helper.make_node("Identity", [last], ["y"]))
    return make_model(nodes, [("x", F, (2, 4, 9, 9))], [("y", F, None)], inits, opset=opset)


@pytest.mark.parametrize("act", [None, ("Relu", {}), ("LeakyRelu", {"alpha": 0.2}), ("Sigmoid", {}),
                                 ("HardSwish", {}), ("Clip", {"min": 0.0, "max": 6.0})])
def test_conv_bn_activation_fuse_into_one_row(act):
    opset = 10 if act and act[0] == "Clip" else 14
    m = conv_bn_model(act, opset=opset)
    x = np.random.default_rng(1).standard_normal((2, 4, 9, 9)).astype(F)
    # The reference evaluator's BatchNormalization is wrong before opset 14: use ONNX Runtime there.
    check_against_reference(m, {"x": x}, rtol=1e-4, atol=1e-4, use_ort=opset < 14)
    with tilerun.compile_model(m, batch_size=2) as eng:
        assert {r.op_type for r in eng.plan.rows} == {"Conv"}, "BN and activation should fold/fuse into the Conv"


def test_residual_add_and_relu_fuse_into_conv():
    m = conv_bn_model(("Relu", {}), residual=True)
    x = np.random.default_rng(2).standard_normal((2, 4, 9, 9)).astype(F)
    check_against_reference(m, {"x": x}, rtol=1e-4, atol=1e-4)
    with tilerun.compile_model(m, batch_size=2) as eng:
        assert {r.op_type for r in eng.plan.rows} == {"Conv"}


def test_unfusable_when_intermediate_is_also_an_output():
    m = conv_bn_model(("Relu", {}))
    m.graph.output.append(helper.make_tensor_value_info("n", 1, None))
    x = np.random.default_rng(3).standard_normal((2, 4, 9, 9)).astype(F)
    check_against_reference(m, {"x": x}, rtol=1e-4, atol=1e-4)


def test_dropout_identity_and_dead_nodes_removed():
    nodes = [helper.make_node("Dropout", ["x"], ["d"]), helper.make_node("Identity", ["d"], ["i"]),
             helper.make_node("Relu", ["i"], ["y"]), helper.make_node("Sigmoid", ["x"], ["dead"])]
    m = make_model(nodes, [("x", F, (3, 5))], [("y", F, None)], opset=12)
    x = np.random.default_rng(4).standard_normal((3, 5)).astype(F)
    check_against_reference(m, {"x": x})
    with tilerun.compile_model(m) as eng:
        assert [r.op_type for r in eng.plan.rows] == ["Relu"]


def test_identity_as_graph_output_keeps_its_name():
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Identity", ["r"], ["y"])]
    m = make_model(nodes, [("x", F, (3, 5))], [("y", F, None)])
    x = np.random.default_rng(5).standard_normal((3, 5)).astype(F)
    check_against_reference(m, {"x": x})


# -- quantized models are refused by name, before any fold reaches onnx's reference evaluator ---------------------

def qdq_model():
    """A QDQ model: int8 weights behind DequantizeLinear, activations through Quantize/DequantizeLinear (opset 17)."""
    rng = np.random.default_rng(3)
    inits = [("w_q", rng.integers(-100, 100, (4, 2, 3, 3)).astype(np.int8)), ("w_s", np.array(0.02, F)),
             ("w_z", np.array(0, np.int8)), ("x_s", np.array(0.05, F)), ("x_z", np.array(128, np.uint8))]
    nodes = [helper.make_node("DequantizeLinear", ["w_q", "w_s", "w_z"], ["w"], name="w_dq"),
             helper.make_node("QuantizeLinear", ["x", "x_s", "x_z"], ["xq"], name="x_q"),
             helper.make_node("DequantizeLinear", ["xq", "x_s", "x_z"], ["xd"], name="x_dq"),
             helper.make_node("Conv", ["xd", "w"], ["y"], name="conv")]
    return make_model(nodes, [("x", F, (1, 2, 5, 5))], [("y", F, None)], inits, opset=17)


def qoperator_model():
    """A QOperator model: QLinearMatMul and MatMulInteger on uint8 tensors."""
    inits = [("w", np.arange(12, dtype=np.uint8).reshape(3, 4)), ("s", np.array(0.1, F)),
             ("z", np.array(0, np.uint8))]
    nodes = [helper.make_node("QLinearMatMul", ["x", "s", "z", "w", "s", "z", "s", "z"], ["q"], name="qmm"),
             helper.make_node("MatMulInteger", ["x", "w"], ["i"], name="mmi")]
    return make_model(nodes, [("x", np.uint8, (2, 3))], [("q", np.uint8, None), ("i", np.int32, None)], inits)


@pytest.mark.parametrize("kind,nodes", [("qdq", {"DequantizeLinear": ["w_dq", "x_dq"], "QuantizeLinear": ["x_q"]}),
                                        ("qoperator", {"QLinearMatMul": ["qmm"], "MatMulInteger": ["mmi"]})])
def test_quantized_model_refused_naming_its_nodes(kind, nodes):
    model = qdq_model() if kind == "qdq" else qoperator_model()
    with pytest.raises(tilerun.QuantizedModelError) as e:
        tilerun.compile_model(model)
    assert isinstance(e.value, tilerun.UnsupportedOpError) and e.value.missing == nodes
    msg = str(e.value)
    assert "quantized models (QDQ or QOperator) are not supported" in msg
    assert all(f"'{n}'" in msg for names in nodes.values() for n in names)
    assert "reference" not in msg and "No implementation" not in msg


# -- tilerun's internal ops live in a domain of their own ----------------------------------------------------------

def test_model_node_named_channel_affine_is_not_the_internal_op():
    from tilerun.ops import registry
    c = 3
    node = helper.make_node("ChannelAffine", ["x", "s", "t"], ["y"], name="mine")
    model = make_model([node], [("x", F, (1, c, 2, 2))], [("y", F, None)],
                       [("s", np.full(c, 2, F)), ("t", np.ones(c, F))])
    with pytest.raises(tilerun.UnsupportedOpError) as e:
        tilerun.compile_model(model)
    assert e.value.missing == {"ChannelAffine": ["mine"]}
    assert "ChannelAffine" not in e.value.known and "ChannelAffine" not in str(e.value).split("supported op types")[1]
    assert "ChannelAffine" not in registry.supported_ops()
    assert not any(d == registry.INTERNAL_DOMAIN for d, _ in registry.domain_ops())
    node = helper.make_node("ChannelAffine", ["x", "s", "t"], ["y"], name="sneaky", domain=registry.INTERNAL_DOMAIN)
    model = make_model([node], [("x", F, (1, c, 2, 2))], [("y", F, None)],
                       [("s", np.full(c, 2, F)), ("t", np.ones(c, F))])
    model.opset_import.append(helper.make_opsetid(registry.INTERNAL_DOMAIN, 1))
    with pytest.raises(tilerun.ModelError, match="reserved for the ops tilerun's passes create"):
        tilerun.compile_model(model)


def test_fold_pass_channel_affine_is_internal_and_still_runs():
    from tilerun.importer import import_model
    from tilerun.ops import registry
    from tilerun.passes import run_passes
    rng = np.random.default_rng(5)
    c = 4
    inits = [("sc", (1 + 0.1 * rng.standard_normal(c)).astype(F)), ("bb", rng.standard_normal(c).astype(F)),
             ("mu", rng.standard_normal(c).astype(F)), ("var", (0.5 + rng.random(c)).astype(F))]
    nodes = [helper.make_node("BatchNormalization", ["x", "sc", "bb", "mu", "var"], ["n"]),
             helper.make_node("Relu", ["n"], ["y"])]
    model = make_model(nodes, [("x", F, (2, c, 3, 3))], [("y", F, None)], inits)
    graph = run_passes(import_model(model), None, None)
    assert [(n.domain, n.op_type, n.fused.activation) for n in graph.nodes] == \
        [(registry.INTERNAL_DOMAIN, "ChannelAffine", ("Relu", 0.0, 0.0))]
    check_against_reference(model, {"x": rng.standard_normal((2, c, 3, 3)).astype(F)})


def test_a_static_build_releases_unpacked_weights_as_it_goes():
    """The folded-away weights leave the graph at once, and lowering drops each constant after its last reader."""
    from tilerun.importer import import_model
    from tilerun.lower import lower_graph
    from tilerun.passes import run_passes
    graph = import_model(conv_bn_model(("Relu", {}), residual=True))
    run_passes(graph, None, {"x": (2, 4, 9, 9)})
    assert not {"w", "b", "sc", "bb", "mu", "var"} & set(graph.values), "unfolded weights should be gone"
    weights = [n for n, v in graph.values.items() if v.const is not None]
    assert weights, "the folded weights are constants until lowering"
    lower_graph(graph, (1, 2), release_consts=True)
    assert [n for n in weights if graph.values[n].const is not None] == []
