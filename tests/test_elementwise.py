"""Elementwise activations and broadcasting arithmetic against the reference evaluator."""
import numpy as np
import pytest
from onnx import helper

from oracle import check_against_reference, make_model

F = np.float32


@pytest.mark.parametrize("op,attrs", [
    ("Relu", {}), ("LeakyRelu", {"alpha": 0.1}), ("Sigmoid", {}), ("Tanh", {}),
    ("HardSigmoid", {"alpha": 0.3, "beta": 0.4}), ("HardSwish", {}),
])
def test_activation(op, attrs):
    x = (np.random.default_rng(0).standard_normal((2, 3, 17, 19)) * 4).astype(F)
    m = make_model([helper.make_node(op, ["x"], ["y"], **attrs)], [("x", F, x.shape)], [("y", F, None)])
    check_against_reference(m, {"x": x})


@pytest.mark.parametrize("opset", [9, 13])
def test_clip(opset):
    x = np.random.default_rng(1).standard_normal((4, 1000)).astype(F) * 10
    if opset < 11:
        node = helper.make_node("Clip", ["x"], ["y"], min=0.0, max=6.0)
        inits = []
    else:
        node = helper.make_node("Clip", ["x", "lo", "hi"], ["y"])
        inits = [("lo", np.array(0, F)), ("hi", np.array(6, F))]
    m = make_model([node], [("x", F, x.shape)], [("y", F, None)], inits, opset=opset)
    check_against_reference(m, {"x": x})


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div", "Max", "Min"])
@pytest.mark.parametrize("sa,sb", [
    ((2, 3, 4, 5), (2, 3, 4, 5)), ((2, 3, 4, 5), (3, 1, 1)), ((1, 3, 1, 5), (2, 1, 4, 1)),
    ((5,), (2, 3, 4, 5)), ((2, 3, 4, 5), ()), ((4, 1), (1, 7)), ((2, 1, 3, 1, 2, 1), (1, 4, 1, 5, 1, 3)),
])
def test_broadcast_binary(op, sa, sb):
    rng = np.random.default_rng(hash((op, sa, sb)) % 2**32)
    a = rng.standard_normal(sa).astype(F)
    b = np.asarray(rng.standard_normal(sb) + (3 if op == "Div" else 0), dtype=F)
    m = make_model([helper.make_node(op, ["a", "b"], ["y"])], [("a", F, sa), ("b", F, sb)], [("y", F, None)])
    check_against_reference(m, {"a": a, "b": b})


def test_variadic_sum_with_constant():
    rng = np.random.default_rng(2)
    xs = [rng.standard_normal(s).astype(F) for s in [(3, 8, 8), (8, 1), (3, 8, 8)]]
    m = make_model([helper.make_node("Sum", ["a", "b", "c", "k"], ["y"])],
                   [("a", F, xs[0].shape), ("b", F, xs[1].shape), ("c", F, xs[2].shape)], [("y", F, None)],
                   [("k", np.ones((1, 8), F))])
    check_against_reference(m, dict(zip("abc", xs)))
