"""Oracles for tests: run a model in tilerun and in onnx's reference evaluator / ONNX Runtime.

``make_model`` builds a one-or-more-node model with ``onnx.helper`` (``conv_graph``
one conv with its epilogue);
``check_against_reference`` compiles it with tilerun on 1 and on every core,
runs both on the same inputs and compares with the reference evaluator (or
ONNX Runtime), and asserts the two tilerun runs are bit-identical.
"""
import numpy as np
import onnx
from onnx import helper
from onnx.reference import ReferenceEvaluator

import tilerun


def make_model(nodes, inputs, outputs, initializers=(), opset=17):
    """A ModelProto from nodes and ``(name, np dtype, shape)`` input/output specs."""
    def vi(name, dtype, shape):
        return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(np.dtype(dtype)), shape)
    inits = [onnx.numpy_helper.from_array(np.asarray(a), name) for name, a in initializers]
    graph = helper.make_graph(nodes, "test", [vi(*i) for i in inputs], [vi(*o) for o in outputs], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def conv_graph(xshape, cout, pads=(1, 1, 1, 1), act=None, bias=True, residual=False, seed=0, k=3, strides=(1, 1)):
    """Conv ``k x k`` (+ residual Add) (+ activation; ``"SiLU"`` is ``x * Sigmoid(x)``); returns ``(model, feeds)``."""
    F = np.float32
    rng = np.random.default_rng(seed)
    c = xshape[1]
    w = (rng.standard_normal((cout, c, k, k)) / np.sqrt(k * k * c)).astype(F)
    inits = [("w", w)] + ([("b", rng.standard_normal(cout).astype(F))] if bias else [])
    oh = (xshape[2] + pads[0] + pads[2] - k) // strides[0] + 1
    ow = (xshape[3] + pads[1] + pads[3] - k) // strides[1] + 1
    nodes = [helper.make_node("Conv", ["x", "w"] + (["b"] if bias else []), ["c"], kernel_shape=[k, k],
                              strides=list(strides), pads=list(pads))]
    inputs, feeds, last = [("x", F, xshape)], {"x": rng.standard_normal(xshape).astype(F)}, "c"
    if residual:
        inputs.append(("r", F, (xshape[0], cout, oh, ow)))
        feeds["r"] = rng.standard_normal((xshape[0], cout, oh, ow)).astype(F)
        nodes.append(helper.make_node("Add", ["c", "r"], ["s"]))
        last = "s"
    if act == "SiLU":
        nodes += [helper.make_node("Sigmoid", [last], ["g"]), helper.make_node("Mul", [last, "g"], ["y"])]
        last = "y"
    elif act == "Clip":  # bounds as constant inputs (opset 11 and later)
        inits += [("lo", np.array(-0.5, F)), ("hi", np.array(0.75, F))]
        nodes.append(helper.make_node("Clip", [last, "lo", "hi"], ["y"]))
        last = "y"
    elif act:
        nodes.append(helper.make_node(act, [last], ["y"]))
        last = "y"
    return make_model(nodes, inputs, [(last, F, None)], inits, opset=17), feeds


def reference_outputs(model, feeds, use_ort=False):
    """Outputs of ``model`` on ``feeds`` (name → array) from ONNX Runtime or the reference evaluator."""
    if use_ort:
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        return sess.run(None, feeds)
    return ReferenceEvaluator(model).run(None, feeds)


def assert_kernel_matches_ort(model, feeds, kernel, taken=True, cores=(1, 2)):
    """Run ``model`` at each core count: ``kernel`` is in its plan exactly when ``taken``, and the output
    matches ONNX Runtime's (tolerance scaled by the largest finite output) with NaN where ORT has NaN."""
    ref = reference_outputs(model, feeds, use_ort=True)[0]
    for n in cores:
        with tilerun.compile_model(model, num_cores=n) as eng:
            y = eng.run(list(feeds.values()))[0]
            kernels = [r.kernel.name for r in eng.plan.rows]
        assert (kernel in kernels) == taken, kernels
        np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-5 * max(1.0, float(np.abs(ref[np.isfinite(ref)]).max())))
        np.testing.assert_array_equal(np.isnan(y), np.isnan(ref))


def run_tilerun(model, arrays, num_cores=None, **kw):
    """Compile ``model`` with tilerun and run it once on ``arrays``."""
    with tilerun.compile_model(model, num_cores=num_cores, **kw) as eng:
        return eng.run(list(arrays))


def check_against_reference(model, feeds, rtol=1e-4, atol=1e-5, use_ort=False, **kw):
    """Assert tilerun (1 core and all cores, bit-identical) matches the reference; returns outputs."""
    arrays = list(feeds.values())
    one = run_tilerun(model, arrays, num_cores=1, **kw)
    every = run_tilerun(model, arrays, num_cores=None, **kw)
    ref = reference_outputs(model, feeds, use_ort)
    assert len(one) == len(ref)
    for a, b, r in zip(one, every, ref):
        r = np.asarray(r)
        assert a.shape == r.shape, f"shape {a.shape} != reference {r.shape}"
        assert a.dtype == r.dtype, f"dtype {a.dtype} != reference {r.dtype}"
        np.testing.assert_array_equal(a, b, err_msg="1-core and all-core runs differ")
        if a.dtype.kind == "f":
            np.testing.assert_allclose(a, r, rtol=rtol, atol=atol)
        else:
            np.testing.assert_array_equal(a, r)
    return one


def check_cnn_on_one_and_all_cores(model):
    """Run ``model`` (one input named ``input``) on 1 and on all cores: the two outputs must be identical and
    match ONNX Runtime's (rtol 1e-4, atol 1e-4 of the largest output). Returns the all-core engine's plan rows."""
    from tilerun.models import random_inputs
    x = random_inputs(model, seed=2)
    ref = reference_outputs(model, {"input": x[0]}, use_ort=True)[0]
    one = None
    for cores in (1, None):
        with tilerun.compile_model(model, num_cores=cores) as eng:
            out = eng.run(x)[0]
            rows = list(eng.plan.rows)
        if one is None:
            one = out
        np.testing.assert_array_equal(out, one, err_msg="1-core and all-core runs differ")
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4 * float(np.abs(ref).max()))
    return rows
