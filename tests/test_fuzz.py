"""Fuzzing the model boundary: mutated models get a tilerun error or compile, never anything else.

``make_case(rng)`` takes one of a few small valid models and applies one to
three mutations (truncated or flipped bytes, wrong or missing attributes, bad
initializer sizes and dtypes, cycles, missing inputs, wrong ranks, unknown
ops, duplicate names, odd opsets, dangling outputs). ``check_case`` compiles
the result on one core and, when that succeeds, runs it on random inputs: it
returns how far the case got, and raises ``AssertionError`` when anything but
a ``tilerun.TilerunError`` escapes. The hypothesis test here runs a bounded
number of cases; ``benchmarks/fuzz_long.py`` runs the same generator for
minutes in a child process, so that crashes and hangs are caught too.
"""
import faulthandler
import random
import traceback

import numpy as np
import onnx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import tilerun
from tilerun import TilerunError

F, I64 = TensorProto.FLOAT, TensorProto.INT64


def _model(nodes, inputs, outputs, inits=(), opset=17):
    graph = helper.make_graph(nodes, "fuzz", [helper.make_tensor_value_info(*i) for i in inputs],
                              [helper.make_tensor_value_info(n, t, None) for n, t in outputs],
                              [numpy_helper.from_array(np.asarray(a), n) for n, a in inits])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def _w(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32) * 0.3


def seed_models():
    """Small valid models covering the op families and dtypes the engine carries."""
    cnn = _model(
        [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], strides=[1, 1]),
         helper.make_node("Relu", ["c"], ["r"]),
         helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
         helper.make_node("BatchNormalization", ["p", "s", "bb", "m", "v"], ["n"]),
         helper.make_node("GlobalAveragePool", ["n"], ["g"]),
         helper.make_node("Flatten", ["g"], ["f"], axis=1),
         helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], transB=1),
         helper.make_node("Softmax", ["y"], ["out"], axis=1)],
        [("x", F, ["N", 2, 6, 6])], [("out", F)],
        [("w", _w(4, 2, 3, 3)), ("b", _w(4)), ("s", np.ones(4, np.float32)), ("bb", _w(4, seed=1)),
         ("m", _w(4, seed=2)), ("v", np.ones(4, np.float32)), ("fw", _w(3, 4)), ("fb", _w(3))])
    arith = _model(
        [helper.make_node("Add", ["x", "a"], ["s"]),
         helper.make_node("Mul", ["s", "x"], ["m"]),
         helper.make_node("Transpose", ["m"], ["t"], perm=[0, 2, 1]),
         helper.make_node("Reshape", ["t", "shape"], ["r"]),
         helper.make_node("Clip", ["r", "lo", "hi"], ["c"]),
         helper.make_node("Sigmoid", ["c"], ["out"])],
        [("x", F, [1, 3, 4])], [("out", F)],
        [("a", _w(3, 1)), ("shape", np.array([1, -1], np.int64)), ("lo", np.array(-1, np.float32)),
         ("hi", np.array(1, np.float32))])
    movement = _model(
        [helper.make_node("Concat", ["x", "x"], ["c"], axis=1),
         helper.make_node("Slice", ["c", "st", "en", "ax"], ["s"]),
         helper.make_node("Pad", ["s", "pads"], ["p"], mode="reflect"),
         helper.make_node("Split", ["p"], ["u", "v"], axis=2),
         helper.make_node("Gather", ["u", "idx"], ["out"], axis=1),
         helper.make_node("Unsqueeze", ["v", "ua"], ["out2"])],
        [("x", F, [1, 2, 4])], [("out", F), ("out2", F)],
        [("st", np.array([1], np.int64)), ("en", np.array([4], np.int64)), ("ax", np.array([1], np.int64)),
         ("pads", np.array([0, 0, 1, 0, 0, 1], np.int64)), ("idx", np.array([[0, 2], [1, 1]], np.int64)),
         ("ua", np.array([0], np.int64))])
    shapes = _model(
        [helper.make_node("Shape", ["x"], ["sh"]),
         helper.make_node("Gather", ["sh", "zero"], ["n"], axis=0),
         helper.make_node("Unsqueeze", ["n", "zero1"], ["n1"]),
         helper.make_node("Concat", ["n1", "minus1"], ["target"], axis=0),
         helper.make_node("Reshape", ["x", "target"], ["flat"]),
         helper.make_node("Equal", ["ids", "ids2"], ["eq"]),
         helper.make_node("Where", ["eq", "flat", "flat2"], ["out"]),
         helper.make_node("Cast", ["ids"], ["idsf"], to=F),
         helper.make_node("Add", ["ids", "ids2"], ["isum"])],
        [("x", F, [2, 3]), ("ids", I64, [2, 3]), ("ids2", I64, [1, 3])], [("out", F), ("idsf", F), ("isum", I64)],
        [("zero", np.array(0, np.int64)), ("zero1", np.array([0], np.int64)),
         ("minus1", np.array([-1], np.int64)), ("flat2", _w(2, 3))])
    norm = _model(
        [helper.make_node("LayerNormalization", ["x", "g", "b"], ["l"], axis=-1),
         helper.make_node("MatMul", ["l", "w"], ["mm"]),
         helper.make_node("LeakyRelu", ["mm"], ["lr"], alpha=0.1),
         helper.make_node("LogSoftmax", ["lr"], ["ls"], axis=-1),
         helper.make_node("ReduceMean", ["ls"], ["out"], axes=[0, 2], keepdims=1),
         helper.make_node("ArgMax", ["ap"], ["am"], axis=3, keepdims=0),
         helper.make_node("AveragePool", ["x4"], ["ap"], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                          count_include_pad=0)],
        [("x", F, [2, 4, 8]), ("x4", F, [1, 1, 5, 5])], [("out", F), ("ap", F), ("am", I64)],
        [("g", np.ones(8, np.float32)), ("b", _w(8)), ("w", _w(8, 5))])
    return [cnn, arith, movement, shapes, norm]


SEEDS = [m.SerializeToString() for m in seed_models()]
KNOWN_OPS = ["Relu", "Add", "Conv", "Gemm", "Reshape", "Transpose", "Concat", "Gather", "Softmax", "MaxPool",
             "Slice", "Pad", "Split", "Cast", "Where", "Equal", "Unsqueeze", "Squeeze", "Flatten", "Clip",
             "BatchNormalization", "MatMul", "Shape", "Expand", "Tile", "Identity", "Dropout", "NoSuchOp"]
ELEM_TYPES = list(TensorProto.DataType.values()) + [0, 99, -1]


def _rand_attr_value(rng):
    kind = rng.randrange(7)
    if kind == 0:
        return rng.choice([-(2 ** 40), -5, -1, 0, 1, 2, 3, 7, 2 ** 31, 2 ** 62])
    if kind == 1:
        return [rng.randrange(-3, 9) for _ in range(rng.randrange(0, 9))]
    if kind == 2:
        return rng.choice([0.0, -1.0, 1e-30, 1e30, float("nan"), float("inf")])
    if kind == 3:
        return rng.choice(["", "SAME_UPPER", "VALID", "NOTSET", "reflect", "edge", "bogus", "\x00"])
    if kind == 4:
        return [rng.uniform(-2, 2) for _ in range(rng.randrange(0, 4))]
    if kind == 5:
        return numpy_helper.from_array(np.zeros([rng.randrange(0, 3)] * rng.randrange(0, 3), np.float32))
    return [rng.choice(["a", "b"])]


def _all_values(g):
    names = [i.name for i in g.input] + [t.name for t in g.initializer]
    for n in g.node:
        names += list(n.output)
    return [n for n in names if n]


# -- mutations: each edits a ModelProto in place (or returns bytes) ---------------------------
def m_attribute(m, rng):
    """Set, replace or delete an attribute of a random node."""
    node = rng.choice(m.graph.node)
    if node.attribute and rng.random() < 0.3:
        del node.attribute[rng.randrange(len(node.attribute))]
        return
    names = [a.name for a in node.attribute] + ["axis", "perm", "pads", "kernel_shape", "strides", "to", "mode",
                                                 "alpha", "group", "dilations", "auto_pad", "split", "axes"]
    name = rng.choice(names)
    keep = [a for a in node.attribute if a.name != name]
    del node.attribute[:]
    node.attribute.extend(keep)
    try:
        node.attribute.append(helper.make_attribute(name, _rand_attr_value(rng)))
    except (ValueError, TypeError):
        pass


def m_initializer(m, rng):
    """Give an initializer wrong data: short/long raw bytes, other dims, another dtype."""
    if not m.graph.initializer:
        return
    t = rng.choice(m.graph.initializer)
    k = rng.randrange(4)
    if k == 0:
        data = numpy_helper.to_array(t).tobytes()
        cut = rng.randrange(0, len(data) + 1)
        t.ClearField("float_data")
        t.ClearField("int64_data")
        t.raw_data = data[:cut] if rng.random() < 0.7 else data + bytes(rng.randrange(1, 9))
    elif k == 1:
        del t.dims[:]
        t.dims.extend(rng.randrange(0, 5) for _ in range(rng.randrange(0, 4)))
    elif k == 2:
        t.data_type = rng.choice(ELEM_TYPES) % (2 ** 31)
    else:
        t.dims.append(rng.choice([0, 1, 2, 2 ** 40]))


def m_cycle(m, rng):
    """Feed a node from the output of itself or of a later node."""
    nodes = m.graph.node
    i = rng.randrange(len(nodes))
    j = rng.randrange(i, len(nodes))
    if nodes[i].input and nodes[j].output:
        nodes[i].input[rng.randrange(len(nodes[i].input))] = nodes[j].output[0]


def m_missing_input(m, rng):
    """Point an input at a value nothing produces, or blank it, or drop a graph input."""
    k = rng.randrange(3)
    node = rng.choice(m.graph.node)
    if k == 0 and node.input:
        node.input[rng.randrange(len(node.input))] = "nowhere"
    elif k == 1 and node.input:
        node.input[rng.randrange(len(node.input))] = ""
    elif m.graph.input:
        del m.graph.input[rng.randrange(len(m.graph.input))]


def m_rank(m, rng):
    """Add, drop or change dims of a graph input's declared shape."""
    if not m.graph.input:
        return
    vi = rng.choice(m.graph.input)
    dims = vi.type.tensor_type.shape.dim
    k = rng.randrange(4)
    if k == 0 and len(dims):
        del dims[rng.randrange(len(dims))]
    elif k == 1:
        dims.add().dim_value = rng.choice([1, 2, 3])
    elif k == 2 and len(dims):
        d = dims[rng.randrange(len(dims))]
        d.dim_value = rng.choice([0, 1, 5, 7, 100000])
    else:
        vi.type.tensor_type.ClearField("shape")


def m_op_type(m, rng):
    """Turn a node into another op (or an unknown one), or give it a foreign domain."""
    node = rng.choice(m.graph.node)
    if rng.random() < 0.2:
        node.domain = rng.choice(["com.microsoft", "ai.onnx.ml", "bogus"])
    else:
        node.op_type = rng.choice(KNOWN_OPS)


def m_duplicate(m, rng):
    """Reuse a name: two nodes writing one value, or two graph inputs named alike."""
    g = m.graph
    if rng.random() < 0.5 and len(g.node) > 1:
        a, b = rng.sample(range(len(g.node)), 2)
        if g.node[a].output and g.node[b].output:
            g.node[b].output[0] = g.node[a].output[0]
    elif g.input:
        g.input.add().CopyFrom(g.input[0])
    if rng.random() < 0.3 and g.initializer and g.input:
        g.initializer[0].name = g.input[0].name


def m_dtype(m, rng):
    """Declare a graph input or output with another (possibly invalid) element type."""
    vi = rng.choice(list(m.graph.input) + list(m.graph.output))
    vi.type.tensor_type.elem_type = rng.choice(ELEM_TYPES) % (2 ** 31)


def m_io(m, rng):
    """Break the graph's interface: no outputs, dangling output, swapped inputs, odd opset or IR version."""
    k = rng.randrange(5)
    g = m.graph
    if k == 0:
        del g.output[:]
    elif k == 1:
        g.output.add().name = rng.choice(["dangling", ""])
    elif k == 2:
        node = rng.choice(g.node)
        ins = list(node.input)
        rng.shuffle(ins)
        del node.input[:]
        node.input.extend(ins)
    elif k == 3:
        m.opset_import[0].version = rng.choice([1, 5, 6, 9, 11, 13, 18, 22, 27, 40])
    else:
        extra = rng.choice(g.node)
        extra.input.append(rng.choice(_all_values(g) + ["", "nowhere"]))


def m_perturb(m, rng):
    """Nudge an integer attribute or a small int64 initializer (shapes, axes, pads, indices) by a little."""
    g = m.graph
    ints = [t for t in g.initializer if t.data_type == TensorProto.INT64]
    if ints and rng.random() < 0.5:
        t = rng.choice(ints)
        a = numpy_helper.to_array(t).copy()
        if a.size:
            a.reshape(-1)[rng.randrange(a.size)] += rng.choice([-3, -2, -1, 1, 2, 5])
        t.CopyFrom(numpy_helper.from_array(a, t.name))
        return
    node = rng.choice(g.node)
    attrs = [a for a in node.attribute if a.type in (onnx.AttributeProto.INT, onnx.AttributeProto.INTS)]
    if not attrs:
        return
    a = rng.choice(attrs)
    if a.type == onnx.AttributeProto.INT:
        a.i += rng.choice([-2, -1, 1, 2])
    elif len(a.ints):
        a.ints[rng.randrange(len(a.ints))] += rng.choice([-2, -1, 1, 2])


def m_bytes(m, rng):
    """Serialize and truncate or corrupt the bytes."""
    data = bytearray(m.SerializeToString())
    if rng.random() < 0.5:
        return bytes(data[:rng.randrange(0, len(data))])
    for _ in range(rng.randrange(1, 8)):
        data[rng.randrange(len(data))] = rng.randrange(256)
    return bytes(data)


MUTATIONS = [m_attribute, m_initializer, m_cycle, m_missing_input, m_rank, m_op_type, m_duplicate, m_dtype,
             m_io, m_bytes, m_perturb, m_perturb, m_perturb]


def make_case(rng):
    """A mutated seed model (a ModelProto, or bytes), and the names of the mutations applied."""
    model = onnx.ModelProto()
    model.ParseFromString(rng.choice(SEEDS))
    applied = []
    for _ in range(rng.choice([1, 1, 1, 2, 2, 3])):
        mutate = rng.choice(MUTATIONS)
        applied.append(mutate.__name__)
        try:
            out = mutate(model, rng)
        except Exception:  # the generator's own trouble (an earlier mutation left nothing to edit), not tilerun's
            continue

        if isinstance(out, bytes):
            return out, applied
    return model, applied


def random_inputs(eng, rng):
    """Random arrays matching the engine's inputs (small integers, so indices are sometimes in range)."""
    gen = np.random.default_rng(rng.randrange(2 ** 32))
    sizes = {}  # a symbolic dim gets one random size shared by every input that has it
    out = []
    for dims, dtype in zip(eng.input_shapes, eng.input_dtypes):
        shape = tuple(d if isinstance(d, int) else sizes.setdefault(d, rng.choice([1, 2, 3])) for d in dims)
        if dtype.kind == "f":
            out.append(gen.standard_normal(shape).astype(dtype))
        elif dtype.kind == "b":
            out.append(gen.random(shape) < 0.5)
        else:
            out.append(gen.integers(0, 3, size=shape).astype(dtype))
    return out


def check_case(model, rng):
    """Compile (and, if that works, run) ``model``: ``'refused'``, ``'compiled'`` or ``'ran'``.

    Raises ``AssertionError`` naming the exception when anything other than a
    ``TilerunError`` escapes.
    """
    try:
        eng = tilerun.compile_model(model, num_cores=1, batch_size=rng.choice([1, 1, 2, 3]))
    except TilerunError:
        return "refused"
    except Exception as e:
        raise AssertionError(f"compile raised {type(e).__name__}, not a TilerunError:\n"
                             f"{traceback.format_exc()}") from e
    try:
        eng.run(random_inputs(eng, rng))
        return "ran"
    except TilerunError:
        return "compiled"
    except Exception as e:
        raise AssertionError(f"run raised {type(e).__name__}, not a TilerunError:\n"
                             f"{traceback.format_exc()}") from e
    finally:
        eng.close()


def cases():
    """Hypothesis strategy of ``(model, mutations, rng)`` fuzz cases."""
    return st.randoms(use_true_random=False).map(lambda r: (*make_case(r), r))


def test_fuzzer_reaches_compiled_and_running_models():
    """Not every case may die at load: a useful fuzzer also gets mutated models through to a run."""
    import collections
    seen = collections.Counter()
    for seed in range(300):
        rng = random.Random(seed)
        model, _ = make_case(rng)
        seen[check_case(model, rng)] += 1
    assert seen["ran"] >= 30 and seen["refused"] >= 100, seen


def test_seed_models_run():
    rng = random.Random(0)
    for data in SEEDS:
        m = onnx.ModelProto()
        m.ParseFromString(data)
        assert check_case(m, rng) == "ran"


@settings(max_examples=500, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(cases())
def test_mutated_models_raise_tilerun_errors_only(case):
    model, applied, rng = case
    # A hang must fail loudly instead of stalling the suite: dump every thread and exit.
    faulthandler.dump_traceback_later(120, exit=True)
    try:
        check_case(model, rng)
    finally:
        faulthandler.cancel_dump_traceback_later()


# -- cases the fuzzer found, kept as plain regressions ---------------------------------------
def test_sparse_initializer_is_densified():
    vals = numpy_helper.from_array(np.array([1.0, 2.0], np.float32), "w")
    sparse = helper.make_sparse_tensor(vals, numpy_helper.from_array(np.array([1, 4], np.int64), "i"), [2, 3])
    g = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", F, [2, 3])], [helper.make_tensor_value_info("y", F, None)],
                          sparse_initializer=[sparse])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    with tilerun.compile_model(m, num_cores=1) as eng:
        np.testing.assert_array_equal(eng.run([np.zeros((2, 3), np.float32)])[0], [[0, 1, 0], [0, 2, 0]])
    m.graph.sparse_initializer[0].dims[:] = [1, 1]  # indices out of range for the dims
    with np.testing.assert_raises(tilerun.ModelError):
        tilerun.compile_model(m, num_cores=1)


def test_attribute_of_the_wrong_type_names_node_and_types():
    m = onnx.ModelProto()
    m.ParseFromString(SEEDS[0])
    relu = next(n for n in m.graph.node if n.op_type == "Relu")
    relu.op_type, relu.name = "LeakyRelu", "lr"
    relu.attribute.append(helper.make_attribute("alpha", [1.0, 2.0]))
    with np.testing.assert_raises_regex(tilerun.ModelError, "'lr'.*alpha.*FLOAT.*FLOATS"):
        tilerun.compile_model(m, num_cores=1)


def test_names_that_are_not_utf8_are_refused():
    m = onnx.ModelProto()
    m.ParseFromString(SEEDS[1])
    data = m.SerializeToString().replace(b"Sigmoid", b"Sigm\xffid")
    with np.testing.assert_raises_regex(tilerun.ModelError, "UTF-8"):
        tilerun.compile_model(data, num_cores=1)
