"""A MobileNetV2-style graph (depthwise separable blocks, Clip(0, 6), residual adds) against ONNX Runtime."""
import numpy as np
import onnx

import tilerun
from oracle import check_cnn_on_one_and_all_cores
from tilerun.models import mobilenet_v2, random_inputs


def test_mobilenet_v2_matches_onnxruntime():
    # A narrow, small-input version keeps the test fast; the blocks and their fusions are the full model's.
    model = mobilenet_v2(seed=1, size=64, width=0.5, classes=10)
    onnx.checker.check_model(model)
    rows = check_cnn_on_one_and_all_cores(model)
    kinds, ops = {r.kernel.name for r in rows}, {r.op_type for r in rows}
    # Every Clip and residual Add runs inside a conv's epilogue, depthwise convs on their own kernel.
    assert "f32_conv_dw_cv" in kinds
    assert ops <= {"Conv", "GlobalAveragePool", "Gemm"}, ops


def test_mobilenet_v2_full_size_shapes():
    model = mobilenet_v2(seed=0)
    with tilerun.compile_model(model) as eng:
        assert eng.input_shapes == [(1, 3, 224, 224)]
        (y,) = eng.run(random_inputs(eng))
    assert y.shape == (1, 1000) and np.isfinite(y).all()
