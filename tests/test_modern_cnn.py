"""MobileNetV3-small, EfficientNet-B0 and RegNetY-400MF-style graphs against ONNX Runtime.

Depthwise and grouped convs, squeeze-excitation (HardSigmoid and Sigmoid
gates), HardSwish and SiLU as ``x * Sigmoid(x)``: narrow, small-input versions
keep the tests fast while the blocks and their fusions are the full models'.
"""
import numpy as np
import onnx
import pytest

import tilerun
from oracle import reference_outputs
from tilerun.models import MODERN_CNNS, random_inputs


@pytest.mark.parametrize("name", sorted(MODERN_CNNS))
def test_modern_cnn_matches_onnxruntime(name):
    model = MODERN_CNNS[name](seed=1, size=64, width=0.5, classes=10)
    onnx.checker.check_model(model)
    x = random_inputs(model, seed=2)
    ref = reference_outputs(model, {"input": x[0]}, use_ort=True)[0]
    one = None
    for cores in (1, None):
        with tilerun.compile_model(model, num_cores=cores) as eng:
            out = eng.run(x)[0]
            ops = {r.op_type for r in eng.plan.rows}
        if one is None:
            one = out
        np.testing.assert_array_equal(out, one, err_msg="1-core and all-core runs differ")
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4 * float(np.abs(ref).max()))
    # Activations (SiLU's Sigmoid and Mul included) run in the producing conv's epilogue.
    assert not ops & {"Sigmoid", "HardSigmoid", "HardSwish", "Relu", "Add"}, ops


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MODERN_CNNS))
def test_modern_cnn_full_size(name):
    model = MODERN_CNNS[name](seed=0)
    x = random_inputs(model, seed=0)
    ref = reference_outputs(model, {"input": x[0]}, use_ort=True)[0]
    with tilerun.compile_model(model) as eng:
        assert eng.input_shapes == [(1, 3, 224, 224)]
        (y,) = eng.run(x)
    np.testing.assert_allclose(y, ref, rtol=1e-3, atol=1e-4 * float(np.abs(ref).max()))
