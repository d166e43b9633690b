"""Every light real model, with seeded random weights, in tilerun against ONNX Runtime.

Compared on the values before the final Softmax (``without_final_softmax``),
rtol 1e-3, atol 1e-3 * max(1, max|ref|).  Also checks that 1 and 2 cores give
bit-identical outputs on resnet50.
"""
import numpy as np
import onnx
import pytest

import tilerun
from tilerun.models import (LIGHT_MODELS, light_model_path, random_inputs, randomize_weights,
                            without_final_softmax)

try:
    import onnxruntime as ort
except ImportError:  # a dev dependency: fail loudly, never skip
    ort = None


def ort_run(model, inputs):
    """First output of ONNX Runtime on one thread."""
    assert ort is not None, "onnxruntime is required for the model tests (pip install -e '.[dev]')"
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    s = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return s.run(None, {i.name: x for i, x in zip(s.get_inputs(), inputs)})[0]


@pytest.mark.slow
@pytest.mark.parametrize("name", LIGHT_MODELS)
def test_light_model_matches_ort(name):
    model = without_final_softmax(randomize_weights(onnx.load(light_model_path(name)), seed=1))
    with tilerun.compile_model(model, batch_size=1) as eng:
        inputs = random_inputs(eng, seed=2)
        got = eng.run(inputs)[0]
    ref = ort_run(model, inputs)
    assert np.isfinite(ref).all()
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=1e-3, atol=1e-3 * max(1.0, float(np.abs(ref).max())))


def test_resnet50_cores_bit_identical():
    model = randomize_weights(onnx.load(light_model_path("resnet50")), seed=3)
    outs = []
    for cores in (1, 2):
        with tilerun.compile_model(model, num_cores=cores) as eng:
            outs.append(eng.run(random_inputs(eng, seed=4))[0])
    assert np.array_equal(outs[0], outs[1])


def test_randomized_weights_not_uniform():
    model = randomize_weights(onnx.load(light_model_path("squeezenet")), seed=0)
    assert not any(n.op_type == "ConstantOfShape" for n in model.graph.node)
    onnx.checker.check_model(model)
    ref = ort_run(without_final_softmax(model), random_inputs(model, seed=0))
    assert np.isfinite(ref).all() and ref.std() > 0
