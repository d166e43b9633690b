"""The light real models shipped in the onnx wheel, with seeded random weights.

Every weight of these models is ``ConstantOfShape(0.02)``, so their shipped
outputs are uniform and prove nothing.  ``randomize_weights`` folds each
ConstantOfShape into an initializer and gives every float weight random values
scaled by the role of its consumer (He init for Conv/Gemm, near-identity
BatchNormalization, small biases), so activations stay in a sane range.
It does not download anything: only the models inside the installed onnx wheel.
"""
import os

import numpy as np
import onnx
from onnx import helper, numpy_helper

LIGHT_MODELS = ["resnet50", "densenet121", "inception_v1", "inception_v2", "shufflenet",
                "squeezenet", "vgg19", "bvlc_alexnet", "zfnet512"]


def light_model_path(name):
    """Path of ``light_<name>.onnx`` inside the installed onnx wheel."""
    name = name[len("light_"):] if name.startswith("light_") else name
    if name not in LIGHT_MODELS:
        raise ValueError(f"unknown light model {name!r}; expected one of {LIGHT_MODELS}")
    base = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")
    return os.path.join(base, f"light_{name}.onnx")


def _role(consumers, name):
    """(op_type, input index) of the first consumer of ``name``, looking through Unsqueeze/Reshape."""
    for node, idx in consumers.get(name, []):
        if node.op_type in ("Unsqueeze", "Reshape", "Cast", "Identity") and idx == 0:
            return _role(consumers, node.output[0])
        return node.op_type, idx
    return None, None


def _random_weight(rng, shape, role):
    op, idx = role
    shape = tuple(int(d) for d in shape)
    normal = rng.standard_normal(shape)
    if op in ("Conv", "Gemm", "MatMul", "ConvTranspose") and idx == 1:
        fan_in = int(np.prod(shape[1:])) if op != "MatMul" and len(shape) > 1 else shape[0]
        if op == "Gemm" and len(shape) == 2:
            fan_in = max(shape)  # transB unknown here; the larger dim is the input width
        w = normal * np.sqrt(2.0 / max(fan_in, 1))
    elif op == "BatchNormalization":
        w = {1: 1 + 0.1 * normal, 2: 0.1 * normal, 3: 0.1 * normal}.get(idx)
        if w is None:
            w = 0.5 + rng.random(shape)
    elif op == "Mul":
        w = 1 + 0.1 * normal
    elif op == "Add":
        w = 0.1 * normal
    else:
        w = 0.01 * normal
    return np.asarray(w, np.float32)


def randomize_weights(model, seed=0):
    """Return a copy of ``model`` whose float weights are seeded random values (see module doc)."""
    if isinstance(model, (str, os.PathLike)):
        model = onnx.load(model)
    model = onnx.ModelProto.FromString(model.SerializeToString())
    g = model.graph
    rng = np.random.default_rng(seed)
    inits = {t.name: t for t in g.initializer}
    consumers = {}
    for node in g.node:
        for i, name in enumerate(node.input):
            consumers.setdefault(name, []).append((node, i))
    new_inits, keep = [], []
    for node in g.node:
        if node.op_type == "ConstantOfShape" and node.input[0] in inits:
            shape = numpy_helper.to_array(inits[node.input[0]])
            w = _random_weight(rng, shape, _role(consumers, node.output[0]))
            new_inits.append(numpy_helper.from_array(w, node.output[0]))
        else:
            keep.append(node)
    for t in g.initializer:
        if t.data_type == onnx.TensorProto.FLOAT:
            arr = numpy_helper.to_array(t)
            w = _random_weight(rng, arr.shape, _role(consumers, t.name))
            t.CopyFrom(numpy_helper.from_array(w, t.name))
    del g.node[:]
    g.node.extend(keep)
    used = {n for node in keep for n in node.input} | {o.name for o in g.output}
    dead = {t.name for t in g.initializer if t.name not in used}
    kept_inits = [t for t in g.initializer if t.name not in dead]
    del g.initializer[:]
    g.initializer.extend(kept_inits + new_inits)
    kept_inputs = [i for i in g.input if i.name not in dead]
    names = {t.name for t in g.initializer}
    for t in new_inits:  # IR 3 lists every initializer as a graph input too
        kept_inputs.append(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
    del g.input[:]
    g.input.extend(kept_inputs)
    assert all(i.name in names or i.name not in dead for i in g.input)
    return model


def without_final_softmax(model):
    """Make the input of the last Softmax (if any) the only graph output, dropping what follows.

    With random weights a classifier's Softmax saturates (one class near 1, the
    rest near 0), so comparisons are made on the logits before it.
    """
    g = model.graph
    found = [i for i, n in enumerate(g.node) if n.op_type == "Softmax"]
    if not found:
        return model
    idx = found[-1]
    name = g.node[idx].input[0]
    nodes = list(g.node[:idx])
    del g.node[:]
    g.node.extend(nodes)
    del g.output[:]
    g.output.extend([helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)])
    return model


def default_model():
    """The default demo model: light_resnet50 with seeded random weights, output = logits."""
    return without_final_softmax(randomize_weights(onnx.load(light_model_path("resnet50")), seed=0))


def random_array(rng, shape, dtype):
    """Random data of ``shape``/``dtype``: standard normal floats, small non-negative integers, random bools."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, size=shape).astype(dtype)
    return rng.integers(0, 8, size=shape).astype(dtype)


def random_inputs(model_or_engine, seed=0):
    """Seeded random arrays for the real (non-initializer) graph inputs, of each input's dtype (``random_array``).

    Takes an ``Engine`` (its shapes, dynamic dims as 1) or a ModelProto (declared
    shapes, dynamic dims as 1).
    """
    rng = np.random.default_rng(seed)
    if hasattr(model_or_engine, "input_shapes"):
        shapes = [tuple(d if isinstance(d, int) else 1 for d in s) for s in model_or_engine.input_shapes]
        dtypes = list(model_or_engine.input_dtypes)
    else:
        g = model_or_engine.graph
        inits = {t.name for t in g.initializer}
        real = [i for i in g.input if i.name not in inits]
        shapes = [tuple(max(d.dim_value, 1) for d in i.type.tensor_type.shape.dim) for i in real]
        dtypes = [helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type) for i in real]
    return [random_array(rng, s, d) for s, d in zip(shapes, dtypes)]


# (expansion t, output channels c, repeats n, first stride s) of MobileNetV2's inverted residual stages.
MOBILENET_V2_STAGES = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                       (6, 160, 3, 2), (6, 320, 1, 1)]


def mobilenet_v2(seed=0, size=224, width=1.0, classes=1000):
    """A MobileNetV2-style ModelProto (opset 13) with seeded random weights, built with ``onnx.helper``.

    The stages of MobileNetV2: a 3x3 stride-2 stem, inverted residual blocks
    (1x1 expand + Clip(0, 6), 3x3 depthwise + Clip(0, 6), 1x1 linear project,
    and a residual Add when shapes allow), a 1x1 conv to 1280 channels,
    global average pooling and a classifier. BatchNorm is taken as already
    folded into each Conv's bias, as exporters do. ``size`` is the input's
    height and width, ``width`` the channel multiplier; input ``input`` is
    ``[1, 3, size, size]``, output ``output`` is ``[1, classes]``.
    """
    rng = np.random.default_rng(seed)
    nodes, inits = [], []

    def ch(c):
        return max(8, int(c * width + 4) // 8 * 8)

    def conv(x, cin, cout, k, stride, group=1, clip=True):
        i = len(nodes)
        w = rng.standard_normal((cout, cin // group, k, k)) * np.sqrt(2.0 / (cin // group * k * k))
        inits.append(numpy_helper.from_array(w.astype(np.float32), f"w{i}"))
        inits.append(numpy_helper.from_array((0.01 * rng.standard_normal(cout)).astype(np.float32), f"b{i}"))
        y = f"conv{i}"
        nodes.append(helper.make_node("Conv", [x, f"w{i}", f"b{i}"], [y], kernel_shape=[k, k], strides=[stride] * 2,
                                      pads=[k // 2] * 4, group=group))
        if clip:
            nodes.append(helper.make_node("Clip", [y, "clip_lo", "clip_hi"], [y + "_clip"]))
            y += "_clip"
        return y

    inits += [numpy_helper.from_array(np.array(0, np.float32), "clip_lo"),
              numpy_helper.from_array(np.array(6, np.float32), "clip_hi")]
    cin = ch(32)
    x = conv("input", 3, cin, 3, 2)
    for t, c, n, s in MOBILENET_V2_STAGES:
        cout = ch(c)
        for r in range(n):
            stride = s if r == 0 else 1
            hidden = cin * t
            y = conv(x, cin, hidden, 1, 1) if t != 1 else x
            y = conv(y, hidden, hidden, 3, stride, group=hidden)
            y = conv(y, hidden, cout, 1, 1, clip=False)
            if stride == 1 and cin == cout:
                nodes.append(helper.make_node("Add", [x, y], [y + "_add"]))
                y += "_add"
            x, cin = y, cout
    x = conv(x, cin, 1280, 1, 1)
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["pool"]))
    nodes.append(helper.make_node("Flatten", ["pool"], ["flat"]))
    fc = rng.standard_normal((classes, 1280)) * np.sqrt(1.0 / 1280)
    inits += [numpy_helper.from_array(fc.astype(np.float32), "fc_w"),
              numpy_helper.from_array(np.zeros(classes, np.float32), "fc_b")]
    nodes.append(helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["output"], transB=1))
    graph = helper.make_graph(nodes, "mobilenet_v2",
                              [helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, [1, 3, size, size])],
                              [helper.make_tensor_value_info("output", onnx.TensorProto.FLOAT, [1, classes])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


class _Builder:
    """Accumulates nodes and seeded initializers of a conv net built with ``onnx.helper``.

    Every conv has a bias (BatchNorm taken as folded, as exporters do);
    ``act`` names the activation the way torch exports it: ``"Relu"``,
    ``"HardSwish"``, ``"HardSigmoid"`` (alpha 1/6), ``"Sigmoid"``, and ``"Silu"``
    as ``x * Sigmoid(x)`` (two nodes).
    """

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits = [], []

    def _name(self, base):
        return f"{base}{len(self.nodes)}"

    def conv(self, x, cin, cout, k, stride=1, group=1, act=None, gain=2.0):
        """Conv (He-init weights, small bias) then ``act``; returns the output name."""
        name = self._name("conv")
        fan = cin // group * k * k
        w = self.rng.standard_normal((cout, cin // group, k, k)) * np.sqrt(gain / fan)
        self.inits.append(numpy_helper.from_array(w.astype(np.float32), name + "_w"))
        self.inits.append(numpy_helper.from_array((0.01 * self.rng.standard_normal(cout)).astype(np.float32),
                                                  name + "_b"))
        self.nodes.append(helper.make_node("Conv", [x, name + "_w", name + "_b"], [name], kernel_shape=[k, k],
                                           strides=[stride] * 2, pads=[k // 2] * 4, group=group))
        return self.act(name, act)

    def act(self, x, act):
        """Apply activation ``act`` (None: none) to ``x``; returns the output name."""
        if act is None:
            return x
        y = self._name(act.lower())
        if act == "Silu":
            self.nodes.append(helper.make_node("Sigmoid", [x], [y + "_sig"]))
            self.nodes.append(helper.make_node("Mul", [x, y + "_sig"], [y]))
        elif act == "HardSigmoid":
            self.nodes.append(helper.make_node("HardSigmoid", [x], [y], alpha=1.0 / 6, beta=0.5))
        else:
            self.nodes.append(helper.make_node(act, [x], [y]))
        return y

    def binary(self, op, a, b):
        """``op(a, b)`` (Add, Mul); returns the output name."""
        y = self._name(op.lower())
        self.nodes.append(helper.make_node(op, [a, b], [y]))
        return y

    def squeeze_excite(self, x, c, squeeze, act, gate):
        """GlobalAveragePool -> 1x1 Conv -> act -> 1x1 Conv -> gate -> Mul with ``x``."""
        p = self._name("se_pool")
        self.nodes.append(helper.make_node("GlobalAveragePool", [x], [p]))
        s = self.conv(p, c, squeeze, 1, act=act)
        s = self.conv(s, squeeze, c, 1, act=gate, gain=1.0)
        return self.binary("Mul", x, s)

    def head(self, x, cin, classes, hidden=None, hidden_act=None):
        """GlobalAveragePool, Flatten, optional hidden Gemm + act, classifier Gemm to ``output``."""
        self.nodes.append(helper.make_node("GlobalAveragePool", [x], ["pool"]))
        self.nodes.append(helper.make_node("Flatten", ["pool"], ["flat"]))
        x = "flat"
        for i, (n_in, n_out, act) in enumerate(((cin, hidden, hidden_act), (hidden or cin, classes, None))):
            if n_out is None:
                continue
            w = self.rng.standard_normal((n_out, n_in)) * np.sqrt(1.0 / n_in)
            self.inits += [numpy_helper.from_array(w.astype(np.float32), f"fc{i}_w"),
                           numpy_helper.from_array(np.zeros(n_out, np.float32), f"fc{i}_b")]
            y = "output" if n_out == classes else f"fc{i}"
            self.nodes.append(helper.make_node("Gemm", [x, f"fc{i}_w", f"fc{i}_b"], [y], transB=1))
            x = self.act(y, act)

    def model(self, name, size, classes, opset=14):
        """The finished ModelProto: input ``input`` ``[1, 3, size, size]``, output ``output`` ``[1, classes]``."""
        graph = helper.make_graph(self.nodes, name,
                                  [helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT,
                                                                 [1, 3, size, size])],
                                  [helper.make_tensor_value_info("output", onnx.TensorProto.FLOAT, [1, classes])],
                                  self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        model.ir_version = 8
        return model


def _divisible(v, width=1.0):
    """``v * width`` rounded to a multiple of 8 (never below 90% of it), as torchvision's ``_make_divisible``."""
    v = v * width
    new = max(8, int(v + 4) // 8 * 8)
    return new + 8 if new < 0.9 * v else new


# (kernel, expanded, out, squeeze-excitation, activation, stride) of MobileNetV3-small's blocks.
MOBILENET_V3_SMALL_BLOCKS = [(3, 16, 16, True, "Relu", 2), (3, 72, 24, False, "Relu", 2),
                             (3, 88, 24, False, "Relu", 1), (5, 96, 40, True, "HardSwish", 2),
                             (5, 240, 40, True, "HardSwish", 1), (5, 240, 40, True, "HardSwish", 1),
                             (5, 120, 48, True, "HardSwish", 1), (5, 144, 48, True, "HardSwish", 1),
                             (5, 288, 96, True, "HardSwish", 2), (5, 576, 96, True, "HardSwish", 1),
                             (5, 576, 96, True, "HardSwish", 1)]


def mobilenet_v3_small(seed=0, size=224, width=1.0, classes=1000):
    """A MobileNetV3-small-style ModelProto (opset 14) with seeded random weights.

    torchvision's structure: 3x3 stride-2 stem + HardSwish, inverted residual
    blocks (1x1 expand, kxk depthwise, each + Relu or HardSwish;
    squeeze-excitation GlobalAveragePool -> 1x1 Conv -> Relu -> 1x1 Conv ->
    HardSigmoid -> Mul; 1x1 linear project; residual Add at stride 1 with equal
    channels), a 1x1 conv + HardSwish, pooling, a 1024-wide hidden Gemm +
    HardSwish and the classifier. ``width`` scales the channels.
    """
    b = _Builder(seed)
    cin = _divisible(16, width)
    x = b.conv("input", 3, cin, 3, 2, act="HardSwish")
    for k, exp, out, se, act, stride in MOBILENET_V3_SMALL_BLOCKS:
        exp, out = _divisible(exp, width), _divisible(out, width)
        y = b.conv(x, cin, exp, 1, act=act) if exp != cin else x
        y = b.conv(y, exp, exp, k, stride, group=exp, act=act)
        if se:
            y = b.squeeze_excite(y, exp, _divisible(exp // 4), "Relu", "HardSigmoid")
        y = b.conv(y, exp, out, 1)
        if stride == 1 and cin == out:
            y = b.binary("Add", x, y)
        x, cin = y, out
    last = 6 * cin
    x = b.conv(x, cin, last, 1, act="HardSwish")
    b.head(x, last, classes, hidden=1024, hidden_act="HardSwish")
    return b.model("mobilenet_v3_small", size, classes)


# (expansion, kernel, first stride, out channels, repeats) of EfficientNet-B0's MBConv stages.
EFFICIENTNET_B0_STAGES = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
                          (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)]


def efficientnet_b0(seed=0, size=224, width=1.0, classes=1000):
    """An EfficientNet-B0-style ModelProto (opset 13) with seeded random weights.

    torchvision's structure: 3x3 stride-2 stem + SiLU, MBConv blocks (1x1
    expand + SiLU, kxk depthwise + SiLU, squeeze-excitation with SiLU and
    Sigmoid whose squeeze width is a quarter of the block's input channels,
    1x1 linear project, residual Add at stride 1 with equal channels), a 1x1
    conv to 1280 + SiLU, pooling and the classifier. SiLU is ``x * Sigmoid(x)``,
    as torch exports it. ``width`` scales the channels.
    """
    b = _Builder(seed)
    cin = _divisible(32, width)
    x = b.conv("input", 3, cin, 3, 2, act="Silu")
    for t, k, s, c, n in EFFICIENTNET_B0_STAGES:
        cout = _divisible(c, width)
        for r in range(n):
            stride = s if r == 0 else 1
            exp = cin * t
            y = b.conv(x, cin, exp, 1, act="Silu") if t != 1 else x
            y = b.conv(y, exp, exp, k, stride, group=exp, act="Silu")
            y = b.squeeze_excite(y, exp, max(1, cin // 4), "Silu", "Sigmoid")
            y = b.conv(y, exp, cout, 1)
            if stride == 1 and cin == cout:
                y = b.binary("Add", x, y)
            x, cin = y, cout
    last = _divisible(1280, max(width, 1.0))
    x = b.conv(x, cin, last, 1, act="Silu")
    b.head(x, last, classes)
    return b.model("efficientnet_b0", size, classes, opset=13)


# (width, depth) of RegNetY-400MF's stages; group width 8, bottleneck ratio 1, SE ratio 0.25.
REGNETY_400MF_STAGES = [(48, 1), (104, 3), (208, 6), (440, 6)]


def regnety_400mf(seed=0, size=224, width=1.0, classes=1000, group_width=8):
    """A RegNetY-400MF-style ModelProto (opset 13) with seeded random weights.

    torchvision's structure: 3x3 stride-2 stem + Relu, four stages of Y blocks
    (1x1 conv + Relu, 3x3 grouped conv of ``group_width`` channels per group
    + Relu (stride 2 in a stage's first block), squeeze-excitation with Relu
    and Sigmoid squeezing to a quarter of the block's input channels, 1x1
    linear conv, a 1x1 stride-2 projection on the shortcut where shapes
    change, residual Add + Relu), pooling and the classifier.
    """
    b = _Builder(seed)
    cin = _divisible(32, width)
    x = b.conv("input", 3, cin, 3, 2, act="Relu")
    for c, depth in REGNETY_400MF_STAGES:
        cout = max(group_width, int(round(c * width / group_width)) * group_width)
        for r in range(depth):
            stride = 2 if r == 0 else 1
            y = b.conv(x, cin, cout, 1, act="Relu")
            y = b.conv(y, cout, cout, 3, stride, group=cout // group_width, act="Relu")
            y = b.squeeze_excite(y, cout, max(1, int(round(0.25 * cin))), "Relu", "Sigmoid")
            y = b.conv(y, cout, cout, 1)
            short = b.conv(x, cin, cout, 1, stride) if stride != 1 or cin != cout else x
            x = b.act(b.binary("Add", short, y), "Relu")
            cin = cout
    b.head(x, cin, classes)
    return b.model("regnety_400mf", size, classes, opset=13)


MODERN_CNNS = {"mobilenet_v3_small": mobilenet_v3_small, "efficientnet_b0": efficientnet_b0,
               "regnety_400mf": regnety_400mf}
