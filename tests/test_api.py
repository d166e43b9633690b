"""The public API: compile from path/bytes/proto, input checking, errors before kernels run."""
import numpy as np
import onnx
import pytest
from onnx import helper

import tilerun
from oracle import make_model, reference_outputs

F = np.float32


def relu_model(shape=("N", 3, 4, 4)):
    return make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", F, shape)], [("y", F, None)])


def test_compile_from_path_bytes_and_proto(tmp_path):
    m = relu_model()
    path = tmp_path / "m.onnx"
    onnx.save(m, path)
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 4)).astype(F)
    for source in (m, m.SerializeToString(), str(path), path):
        with tilerun.compile_model(source, batch_size=2) as eng:
            assert eng.input_names == ["x"] and eng.output_names == ["y"]
            assert eng.input_shapes == [(2, 3, 4, 4)]
            np.testing.assert_array_equal(eng.run([x])[0], np.maximum(x, 0))
            np.testing.assert_array_equal(eng([x])[0], np.maximum(x, 0))
            np.testing.assert_array_equal(eng.run({"x": x})[0], np.maximum(x, 0))
            np.testing.assert_array_equal(eng.run_async([x]).result(timeout=30)[0], np.maximum(x, 0))


def test_scheduler_enum_equals_strings():
    assert tilerun.Scheduler.single_stream == "single_stream"
    assert tilerun.Scheduler.multi_stream == "multi_stream"
    assert tilerun.Scheduler.elastic == "elastic"
    with tilerun.compile_model(relu_model(), scheduler=tilerun.Scheduler.single_stream) as eng:
        assert eng.scheduler == "single_stream" and eng.num_streams == 1


@pytest.mark.parametrize("bad,match", [
    (lambda x: [], r"expected 1 inputs \['x'\], given 0"),
    (lambda x: [x, x], r"expected 1 inputs \['x'\], given 2"),
    (lambda x: {"z": x}, r"expected \['x'\].*unknown \['z'\]"),
    (lambda x: [x.astype(np.float64)], r"input 'x': expected dtype float32, given float64"),
    (lambda x: [np.concatenate([x, x])], r"input 'x': expected shape \[2, 3, 4, 4\], given \[4, 3, 4, 4\]"),
    (lambda x: [x.tolist()], r"input 'x': expected a numpy array, given list"),
    (lambda x: "x", r"inputs must be a list"),
])
def test_bad_inputs_raise_before_running(bad, match):
    x = np.ones((2, 3, 4, 4), F)
    with tilerun.compile_model(relu_model(), batch_size=2) as eng:
        with pytest.raises(tilerun.InputError, match=match):
            eng.run(bad(x))
        assert isinstance(tilerun.InputError("x"), ValueError)
        np.testing.assert_array_equal(eng.run([x])[0], x)  # the engine still serves


def test_non_contiguous_input_is_accepted():
    x = np.random.default_rng(1).standard_normal((2, 3, 4, 8)).astype(F)[..., ::2]
    with tilerun.compile_model(relu_model(), batch_size=2) as eng:
        np.testing.assert_array_equal(eng.run([x])[0], np.maximum(x, 0))


def test_stem_input_read_in_place_or_copied():
    # A conv stem (kernels.stem, masked loads) reads the caller's array itself (no copy into
    # the arena); a strided or misaligned array is copied instead, and every
    # request reads its own input whichever way the one before was bound.
    rng = np.random.default_rng(2)
    shape = (1, 3, 19, 21)
    w = (rng.standard_normal((8, 3, 3, 3)) / 5).astype(F)
    m = make_model([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1], strides=[2, 2])],
                   [("x", F, shape)], [("y", F, None)], [("w", w)])
    strided = rng.standard_normal(shape[:3] + (42,)).astype(F)[..., ::2]
    misaligned = np.zeros(np.prod(shape) * 4 + 1, np.uint8)[1:].view(F).reshape(shape)
    misaligned[...] = rng.standard_normal(shape)
    assert not strided.flags.c_contiguous and not misaligned.flags.aligned
    xs = [rng.standard_normal(shape).astype(F), strided, rng.standard_normal(shape).astype(F), misaligned,
          rng.standard_normal(shape).astype(F)]
    with tilerun.compile_model(m) as eng:
        assert eng.plan.in_place_inputs("x") is not None
        for x in xs:
            before = x.copy()
            np.testing.assert_allclose(eng.run([x])[0], reference_outputs(m, {"x": before})[0], rtol=1e-4, atol=1e-5)
            np.testing.assert_array_equal(x, before)


def test_elementwise_and_reduce_inputs_read_in_place():
    # Scalar-indexed kernels (elementwise, Reduce*) read only inside their inputs: a model that
    # normalizes or reduces its input first reads the caller's array without copying it.
    rng = np.random.default_rng(3)
    shape = (1, 3, 10, 12)
    nodes = [helper.make_node("Sub", ["x", "mean"], ["c"]), helper.make_node("Div", ["c", "std"], ["y"]),
             helper.make_node("ReduceMean", ["x"], ["m"], axes=[2, 3], keepdims=0),
             helper.make_node("ReduceLogSumExp", ["x"], ["l"], axes=[3], keepdims=0)]
    inits = [("mean", np.array([0.4, 0.5, 0.6], F).reshape(1, 3, 1, 1)),
             ("std", np.array([0.2, 0.25, 0.3], F).reshape(1, 3, 1, 1))]
    m = make_model(nodes, [("x", F, shape)], [("y", F, None), ("m", F, None), ("l", F, None)], inits)
    strided = rng.standard_normal(shape[:3] + (24,)).astype(F)[..., ::2]
    with tilerun.compile_model(m) as eng:
        assert eng.plan.in_place_inputs("x") is not None
        for x in (rng.standard_normal(shape).astype(F), strided):
            before = x.copy()
            for got, want in zip(eng.run([x]), reference_outputs(m, {"x": before})):
                np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
            np.testing.assert_array_equal(x, before)


def _array_ending_at_a_guard_page(shape, values):
    """A float32 array of ``shape`` whose last byte is the last before a page that faults on any access."""
    import ctypes
    import mmap
    nbytes = int(np.prod(shape)) * 4
    pages = -(-nbytes // mmap.PAGESIZE) + 1
    buf = mmap.mmap(-1, pages * mmap.PAGESIZE)
    base = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    assert libc.mprotect(base + (pages - 1) * mmap.PAGESIZE, mmap.PAGESIZE, 0) == 0  # PROT_NONE
    a = np.frombuffer(buf, F, count=nbytes // 4, offset=(pages - 1) * mmap.PAGESIZE - nbytes).reshape(shape)
    a[...] = values
    return a, buf


def test_movement_inputs_read_in_place_and_in_bounds():
    # Mapped copies (Transpose, Slice, Pad, Expand), the blocked transpose, Concat, run-time Gather, Softmax
    # (rows and columns) and the normalizations read only the elements their geometry names: the caller's
    # array is read where it is, even one that ends right before a page no access may touch.
    rng = np.random.default_rng(6)
    shape = (2, 5, 33, 67)
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1]),
             helper.make_node("Transpose", ["x"], ["t2"], perm=[0, 1, 3, 2]),
             helper.make_node("Slice", ["x", "b", "e", "ax"], ["s"]),
             helper.make_node("Pad", ["x", "p"], ["pd"], mode="reflect"),
             helper.make_node("Expand", ["x", "es"], ["ex"]),
             helper.make_node("Concat", ["x", "x"], ["c"], axis=3),
             helper.make_node("Gather", ["x", "i"], ["g"], axis=2),
             helper.make_node("Softmax", ["x"], ["sm"], axis=-1),
             helper.make_node("LogSoftmax", ["x"], ["ls"], axis=1),
             helper.make_node("LayerNormalization", ["x", "gam", "bt"], ["ln"], axis=-1),
             helper.make_node("InstanceNormalization", ["x", "sc", "bi"], ["in"]),
             helper.make_node("BatchNormalization", ["x", "sc", "bi", "mu", "var"], ["bn"]),
             helper.make_node("LRN", ["x"], ["lrn"], size=3)]
    inits = [("b", np.array([-7], np.int64)), ("e", np.array([100], np.int64)), ("ax", np.array([3], np.int64)),
             ("p", np.array([0, 0, 2, 3, 0, 0, 2, 3], np.int64)), ("es", np.array([3, 2, 1, 1, 1], np.int64)),
             ("gam", rng.uniform(0.5, 2, 67).astype(F)), ("bt", rng.standard_normal(67).astype(F)),
             ("sc", rng.uniform(0.5, 2, 5).astype(F)), ("bi", rng.standard_normal(5).astype(F)),
             ("mu", rng.standard_normal(5).astype(F)), ("var", rng.uniform(0.5, 2, 5).astype(F))]
    outs = ["t", "t2", "s", "pd", "ex", "c", "g", "sm", "ls", "ln", "in", "bn", "lrn"]
    m = make_model(nodes, [("x", F, shape), ("i", np.int64, (4,))], [(o, F, None) for o in outs], inits)
    x, keep = _array_ending_at_a_guard_page(shape, rng.standard_normal(shape))
    i = np.array([32, 0, -1, 7], np.int64)
    for cores in (1, 2):
        with tilerun.compile_model(m, num_cores=cores) as eng:
            assert eng.plan.in_place_inputs("x") is not None and eng.plan.in_place_inputs("i") is not None
            got = eng.run([x, i])
            want = reference_outputs(m, {"x": x.copy(), "i": i})
            want[-4:] = reference_outputs(m, {"x": x.copy(), "i": i}, use_ort=True)[-4:]  # the evaluator's LRN is off
            for g, w in zip(got[:7], want[:7]):
                np.testing.assert_array_equal(g, w)
            for g, w in zip(got[7:], want[7:]):  # softmax rows (67 wide: a ragged tail) and columns, the norms
                np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)
    del x, keep


@pytest.mark.parametrize("shape", [(2, 5, 33, 67), (1, 2, 100, 9), (1, 20, 12, 12)])
def test_pool_inputs_read_in_place_and_in_bounds(shape):
    # Max pools read the planes in place (rows of 67 and narrow rows of 9, at column strides 1 and 2, kernels
    # 2 and 3 wide), averages copy them into a bordered buffer, small planes (12x12) go through a transpose,
    # dilated windows and global pools have kernels of their own: each reads only inside the caller's array,
    # here one that ends right before a page no access may touch.
    rng = np.random.default_rng(7)
    pools = [("MaxPool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])),
             ("MaxPool", dict(kernel_shape=[2, 2], strides=[2, 2])),
             ("MaxPool", dict(kernel_shape=[3, 3], strides=[1, 1])),
             ("AveragePool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])),
             ("MaxPool", dict(kernel_shape=[2, 3], strides=[1, 3], dilations=[2, 1], pads=[0, 1, 1, 2])),
             ("GlobalAveragePool", {}), ("GlobalMaxPool", {})]
    nodes = [helper.make_node(op, ["x"], [f"y{k}"], **attrs) for k, (op, attrs) in enumerate(pools)]
    m = make_model(nodes, [("x", F, shape)], [(f"y{k}", F, None) for k in range(len(pools))])
    x, keep = _array_ending_at_a_guard_page(shape, rng.standard_normal(shape))
    for cores in (1, 2):
        with tilerun.compile_model(m, num_cores=cores) as eng:
            assert eng.plan.in_place_inputs("x") is not None
            for got, want in zip(eng.run([x]), reference_outputs(m, {"x": x.copy()})):
                np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    del x, keep


def test_inputs_read_by_other_kernels_or_passed_out_are_copied():
    gemm = make_model([helper.make_node("MatMul", ["x", "w"], ["y"])], [("x", F, (1, 4, 8, 1))], [("y", F, None)],
                      [("w", np.array([[0.5, -1.0, 2.0]], F))])
    same = make_model([helper.make_node("Identity", ["x"], ["y"])], [("x", F, (1, 4, 8, 1))], [("y", F, None)])
    x = np.arange(32, dtype=F).reshape(1, 4, 8, 1) / 8
    for m, want in ((gemm, reference_outputs(gemm, {"x": x.copy()}, use_ort=True)[0]), (same, x.copy())):
        with tilerun.compile_model(m) as eng:
            assert eng.plan.in_place_inputs("x") is None
            y = eng.run([x])[0]
            np.testing.assert_allclose(y, want, rtol=1e-6)
            x[0, 0, 0, 0] = 99.0  # the output is the engine's own array, not the caller's input
            np.testing.assert_allclose(y, want, rtol=1e-6)
            x[0, 0, 0, 0] = 0.0



def test_outputs_are_written_into_arrays_of_each_request():
    # An output that is a tensor of its own goes straight into an array the request returns, with no copy
    # out of the arena: Softmax's (read by the Relu after it too), the Relu's, and Concat's (its inputs are
    # written into its slices). Each request's arrays are new, aligned and writable. An output and a Reshape
    # of it (both outputs) and an input passed out are copied as before.
    rng = np.random.default_rng(8)
    nodes = [helper.make_node("Softmax", ["x"], ["s"]),
             helper.make_node("Relu", ["s"], ["r"]),
             helper.make_node("Neg", ["x"], ["a"]),
             helper.make_node("Abs", ["x"], ["b"]),
             helper.make_node("Concat", ["a", "b"], ["c"], axis=1),
             helper.make_node("Sigmoid", ["x"], ["g"]),
             helper.make_node("Reshape", ["g", "shape"], ["gr"]),
             helper.make_node("Identity", ["x"], ["xi"])]
    outs = ["s", "r", "c", "g", "gr", "xi"]
    m = make_model(nodes, [("x", F, (3, 100))], [(o, F, None) for o in outs],
                   [("shape", np.array([300], np.int64))])
    for cores in (1, 2):
        with tilerun.compile_model(m, num_cores=cores) as eng:
            assert [eng.plan.direct_output(o) is not None for o in outs] == [True, True, True, False, False, False]
            xs = [rng.standard_normal((3, 100)).astype(F) for _ in range(2)]
            got = [eng.run([x]) for x in xs]
            for x, ys in zip(xs, got):  # the first request's arrays still hold its results
                for y, want in zip(ys, reference_outputs(m, {"x": x})):
                    np.testing.assert_allclose(y, want, rtol=1e-6, atol=1e-7)
                assert all(y.flags.writeable and y.ctypes.data % 64 == 0 for y in ys[:3])
            assert not any(np.shares_memory(a, b) for a, b in zip(*got))

def test_unsupported_ops_listed_together_with_node_names():
    nodes = [helper.make_node("Relu", ["x"], ["a"]),
             helper.make_node("Acosh", ["a"], ["b"], name="erf_1"),
             helper.make_node("Relu", ["b"], ["c"]),
             helper.make_node("Acosh", ["c"], ["d"], name="erf_2"),
             helper.make_node("Hardmax", ["d"], ["y"], name="hm")]
    m = make_model(nodes, [("x", F, (1, 4))], [("y", F, None)])
    with pytest.raises(tilerun.UnsupportedOpError) as e:
        tilerun.compile_model(m)
    assert e.value.missing == {"Acosh": ["erf_1", "erf_2"], "Hardmax": ["hm"]}
    assert "'erf_1'" in str(e.value) and "supported op types" in str(e.value)


def test_malformed_and_missing_files(tmp_path):
    with pytest.raises(tilerun.ModelError, match="not found"):
        tilerun.compile_model(str(tmp_path / "nope.onnx"))
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x08\x07garbage\xff\xff\xff")
    with pytest.raises(tilerun.ModelError):
        tilerun.compile_model(str(junk))
    with pytest.raises(tilerun.ArgumentError, match="must be a path, bytes or onnx.ModelProto"):
        tilerun.compile_model(42)


def test_dynamic_dims_stay_dynamic_unless_fixed():
    m = relu_model(("N", 3, "H", 4))
    with tilerun.compile_model(m) as eng:
        assert eng.input_shapes == [("N", 3, "H", 4)]
        for shape in [(1, 3, 5, 4), (2, 3, 1, 4), (1, 3, 5, 4)]:
            x = np.random.default_rng(0).standard_normal(shape).astype(F)
            np.testing.assert_array_equal(eng.run([x])[0], np.maximum(x, 0))
        with pytest.raises(tilerun.InputError, match=r"dim 1 is 3|expected shape \[N, 3, H, 4\], given \[1, 2, 5, 4\]"):
            eng.run([np.ones((1, 2, 5, 4), F)])
    with tilerun.compile_model(m, input_shapes={"x": [1, 3, 5, 4]}) as eng:
        assert eng.input_shapes == [(1, 3, 5, 4)]
    with tilerun.compile_model(m, input_shapes={"H": 6}, batch_size=2) as eng:
        assert eng.input_shapes == [(2, 3, 6, 4)]
    with pytest.raises(tilerun.ArgumentError, match="which are not graph inputs"):
        tilerun.compile_model(m, input_shapes={"q": [1]})


def test_bad_node_shapes_are_named():
    m = make_model([helper.make_node("Add", ["a", "b"], ["y"], name="the_add")],
                   [("a", F, (2, 3)), ("b", F, (4,))], [("y", F, None)])
    with pytest.raises(tilerun.ModelError, match=r"node 'the_add' \(Add\): input shapes \[\[2, 3\], \[4\]\] do not broadcast"):
        tilerun.compile_model(m)


def test_cycle_is_an_error():
    nodes = [helper.make_node("Relu", ["x", ], ["a"]), helper.make_node("Add", ["a", "c"], ["b"]),
             helper.make_node("Relu", ["b"], ["c"])]
    m = make_model(nodes, [("x", F, (2,))], [("c", F, None)])
    with pytest.raises(tilerun.ModelError, match="cycle"):
        tilerun.compile_model(m)


def test_run_after_close_raises():
    eng = tilerun.compile_model(relu_model(), batch_size=1)
    eng.close()
    eng.close()  # idempotent
    with pytest.raises(tilerun.RequestError, match="closed"):
        eng.run([np.ones((1, 3, 4, 4), F)])


def test_constant_folding_of_shape_chains():
    # Shape → Gather → Concat → Reshape folds to a constant target at compile time.
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Gather", ["s", "i0"], ["n"], axis=0),
             helper.make_node("Concat", ["n", "m1"], ["t"], axis=0),
             helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("Mul", ["r", "two"], ["y"])]
    m = make_model(nodes, [("x", F, ("N", 3, 2))], [("y", F, None), ("t", np.int64, None)],
                   [("i0", np.array([0], np.int64)), ("m1", np.array([-1], np.int64)), ("two", np.array(2, F))])
    with tilerun.compile_model(m, batch_size=3) as eng:
        assert [r.op_type for r in eng.plan.rows] == ["Relu", "Mul"]
        x = np.random.default_rng(2).standard_normal((3, 3, 2)).astype(F)
        y, t = eng.run([x])
        np.testing.assert_array_equal(t, [3, -1])
        np.testing.assert_allclose(y, np.maximum(x, 0) * 2)


# -- what a new user reaches for: clear file errors, documented API, honest engine objects -----------------------

def test_empty_file_and_directory_say_what_they_are(tmp_path):
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(tilerun.ModelError) as e:
        tilerun.compile_model(str(empty))
    assert str(e.value) == f"cannot read ONNX model {str(empty)!r}: the file is empty (0 bytes)"
    graphless = tmp_path / "graphless.onnx"
    graphless.write_bytes(onnx.ModelProto(ir_version=8).SerializeToString())
    with pytest.raises(tilerun.ModelError, match="cannot read ONNX model .* holds no ONNX graph"):
        tilerun.compile_model(str(graphless))
    with pytest.raises(tilerun.ModelError) as e:
        tilerun.compile_model(str(tmp_path))
    assert str(e.value) == f"model path is a directory: expected a path to an .onnx file, given {str(tmp_path)!r}"


def test_topology_is_exported_and_detects():
    assert tilerun.Topology is tilerun.scheduler.Topology and "Topology" in tilerun.__all__
    topo = tilerun.Topology.detect()
    assert topo.cores and all(c in topo.cores for d in topo.domains for c in d)


def test_compile_model_docstring_explains_arguments_and_errors():
    doc = tilerun.compile_model.__doc__
    for word in ("batch_size", "input_shapes", "{\"input_ids\": [1, 128]}", "num_cores", "ArgumentError",
                 "ModelError", "UnsupportedOpError", "QuantizedModelError"):
        assert word in doc, word


def test_engine_attributes_in_help_and_repr():
    import pydoc
    text = pydoc.render_doc(tilerun.Engine)
    for attr in ("input_names", "input_shapes", "input_dtypes", "output_names", "scheduler", "num_streams",
                 "num_cores", "topology", "closed"):
        assert f"``{attr}``" in text or f"{attr}\n" in text, attr
    with tilerun.compile_model(relu_model(), batch_size=2, scheduler="multi_stream", num_streams=2,
                               num_cores=1) as eng:
        assert repr(eng) == ("<tilerun.Engine inputs (x: float32[2, 3, 4, 4]) -> outputs ['y']; multi_stream, "
                             "2 stream(s), 1 core(s), open>")
        assert eng.num_cores == 1 and not eng.closed
    assert eng.closed and repr(eng).endswith("closed>")


def test_with_block_on_a_closed_engine_raises():
    eng = tilerun.compile_model(relu_model(), batch_size=1)
    eng.close()
    with pytest.raises(tilerun.RequestError, match="engine is closed"):
        with eng:
            pass


def test_num_cores_beyond_usable_warns():
    usable = len(tilerun.Topology.detect().cores)
    with pytest.warns(UserWarning, match=f"num_cores={usable + 6}, but only {usable} cores are usable"):
        eng = tilerun.compile_model(relu_model(), num_cores=usable + 6)
    with eng:
        assert eng.num_cores == usable


def test_random_inputs_follow_input_dtypes():
    from tilerun.models import random_inputs
    m = make_model([helper.make_node("Gather", ["x", "i"], ["y"], axis=0),
                    helper.make_node("Not", ["b"], ["nb"])],
                   [("x", F, (8, 3)), ("i", np.int64, (2,)), ("b", np.bool_, (3,))],
                   [("y", F, None), ("nb", np.bool_, None)])
    for source in (m, None):
        if source is None:
            with tilerun.compile_model(m) as eng:
                arrays = random_inputs(eng, seed=1)
                eng.run(arrays)  # int64 indices in range: the request runs
        else:
            arrays = random_inputs(source, seed=1)
        assert [a.dtype for a in arrays] == [np.dtype(F), np.dtype(np.int64), np.dtype(np.bool_)]
        assert arrays[1].min() >= 0 and arrays[1].max() < 8
