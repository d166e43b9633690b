"""Function-op expansion: ops ONNX defines by a function body compile as their body, against the oracles."""
import numpy as np
import pytest
from onnx import helper

import tilerun

from oracle import make_model, reference_outputs, run_tilerun

RNG = np.random.default_rng(3)

CASES = [
    ("Swish", 24, dict(alpha=1.5)),
    ("Mish", 22, {}),
    ("HardSwish", 22, {}),
    ("Celu", 22, dict(alpha=0.7)),
    ("Shrink", 22, dict(lambd=0.3, bias=0.1)),
    ("Softsign", 22, {}),
    ("ThresholdedRelu", 22, dict(alpha=0.4)),
]


def _model(op, opset, attrs, ins, specs, inits=()):
    model = make_model([helper.make_node(op, ins, ["y"], **attrs)], specs, [("y", np.float32, None)], inits,
                       opset=opset)
    model.ir_version = 10
    return model


@pytest.mark.parametrize("op,opset,attrs", CASES, ids=[c[0] for c in CASES])
def test_function_ops_match_reference(op, opset, attrs):
    x = RNG.standard_normal((2, 3, 8)).astype(np.float32)
    x[0, 0, 0] = np.nan
    model = _model(op, opset, attrs, ["x"], [("x", np.float32, [2, 3, 8])])
    (y,) = run_tilerun(model, [x])
    (r,) = reference_outputs(model, {"x": x})
    np.testing.assert_array_equal(np.isnan(y), np.isnan(r))  # NaN in gives what the body gives: NaN, or Shrink's 0
    np.testing.assert_allclose(y, r, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("axis", [-1, 1])
def test_rms_normalization_context_dependent_body(axis):
    x = RNG.standard_normal((2, 3, 8)).astype(np.float32)
    scale = np.linspace(0.5, 1.5, 8 if axis == -1 else 24).astype(np.float32).reshape((8,) if axis == -1 else (3, 8))
    model = _model("RMSNormalization", 23, dict(epsilon=1e-5, axis=axis), ["x", "s"], [("x", np.float32, [2, 3, 8])],
                   [("s", scale)])
    (y,) = run_tilerun(model, [x])
    (r,) = reference_outputs(model, {"x": x})
    np.testing.assert_allclose(y, r, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("attrs,mask,shapes", [
    ({}, False, [(2, 4, 5, 8), (2, 4, 7, 8), (2, 4, 7, 8)]),
    (dict(is_causal=1), False, [(2, 4, 5, 8), (2, 4, 7, 8), (2, 4, 7, 8)]),
    ({}, True, [(2, 4, 5, 8), (2, 4, 7, 8), (2, 4, 7, 8)]),
    (dict(q_num_heads=4, kv_num_heads=4, scale=0.3), False, [(2, 5, 32), (2, 7, 32), (2, 7, 32)]),
], ids=["plain", "causal", "bool-mask", "3d-heads"])
def test_attention_23_expands(attrs, mask, shapes):
    ins = ["q", "k", "v"] + (["m"] if mask else [])
    specs = [(n, np.float32, list(s)) for n, s in zip("qkv", shapes)] + ([("m", np.bool_, [5, 7])] if mask else [])
    model = _model("Attention", 23, attrs, ins, specs)
    feeds = {n: RNG.standard_normal(s).astype(np.float32) for n, s in zip("qkv", shapes)}
    if mask:
        feeds["m"] = RNG.random((5, 7)) < 0.7
        feeds["m"][:, 0] = True
    (y,) = run_tilerun(model, list(feeds.values()))
    (r,) = reference_outputs(model, feeds, use_ort=True)
    np.testing.assert_allclose(y, r, rtol=1e-4, atol=1e-5)


def test_op_without_function_or_lowering_is_still_reported():
    model = make_model([helper.make_node("Det", ["x"], ["y"])], [("x", np.float32, [3, 3])], [("y", np.float32, None)])
    with pytest.raises(tilerun.UnsupportedOpError, match="Det"):
        tilerun.compile_model(model)


def test_body_checks_bad_input_dtype():
    model = _model("Mish", 22, {}, ["x"], [("x", np.int64, [4])])
    with pytest.raises(tilerun.TilerunError):
        tilerun.compile_model(model)
