"""Loading a model file with its weights read one at a time (``lean_load``) gives what ``onnx.load`` gives."""
import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import tilerun
from tilerun.errors import ModelError
from tilerun.importer import import_model
from tilerun.load import load_for_import

F = np.float32


def _model(rng):
    w = numpy_helper.from_array(rng.standard_normal((16, 8)).astype(F), "w")
    b = numpy_helper.from_array(rng.standard_normal(8).astype(F), "b")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Add", ["m", "b"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n", 16])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)], [w, b])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("external", [False, True])
def test_split_load_imports_the_same_graph(tmp_path, external):
    model = _model(np.random.default_rng(0))
    w, b = (numpy_helper.to_array(t) for t in model.graph.initializer)
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path), save_as_external_data=external, all_tensors_to_one_file=True, location="w.bin",
              size_threshold=0)
    proto, inits, _ = load_for_import(str(path))
    assert len(proto.graph.initializer) == 0
    lean = import_model(proto, inits)
    whole = import_model(onnx.load(str(path)))
    assert [n.op_type for n in lean.nodes] == [n.op_type for n in whole.nodes] and lean.inputs == whole.inputs
    for name in ("w", "b"):
        np.testing.assert_array_equal(lean.values[name].const, whole.values[name].const)
    x = np.ones((3, 16), F)
    with tilerun.compile_model(str(path)) as eng:
        np.testing.assert_allclose(eng.run([x])[0], x @ w + b, rtol=1e-5)


def test_truncated_file_is_a_model_error(tmp_path):
    data = _model(np.random.default_rng(0)).SerializeToString()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="cannot read ONNX model"):
        tilerun.compile_model(str(path))


def test_dynamic_engine_keeps_large_weights_in_the_file_until_a_build_reads_them(tmp_path):
    """A dynamic model's large weights are deferred: read from the file when packed or read as they are,
    once for every plan (the packed and the shared copies are reused), with results equal to numpy's."""
    rng = np.random.default_rng(1)
    emb = rng.standard_normal((600, 512)).astype(F)  # 1.2 MiB, read as it is by Gather
    w = rng.standard_normal((512, 512)).astype(F)    # 1 MiB, packed by MatMul
    nodes = [helper.make_node("Gather", ["emb", "ids"], ["e"]), helper.make_node("MatMul", ["e", "w"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("ids", onnx.TensorProto.INT64, ["b", "s"])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(emb, "emb"), numpy_helper.from_array(w, "w")])
    path = tmp_path / "d.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with tilerun.compile_model(str(path)) as eng:
        assert eng._plans._graph.values["emb"].deferred and eng._plans._graph.values["w"].deferred
        for shape in [(1, 5), (3, 7), (2, 2)]:
            ids = rng.integers(0, 600, shape).astype(np.int64)
            np.testing.assert_allclose(eng.run([ids])[0], emb[ids] @ w, rtol=1e-4, atol=1e-3)
        plans = [sp.plan for _, sp in eng._plans.cached()]
        shared = {id(p.weights[n]) for p in plans for n in p.weights if p.weights[n].shape == emb.shape}
        assert len(shared) == 1, "every plan should read the same copy of the embedding table"
