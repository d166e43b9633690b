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
