"""The lowering interface and the helpers that make the common op a few lines.

A lowering works in the stages of an XNNPACK operator:

* ``infer(node, inputs)`` — validate the node against its inputs' static
  shapes and dtypes and return the ``(shape, dtype)`` of every output.
  Raise ``node_error`` for anything a kernel could not handle.
* ``fold(node, arrays)`` — compute outputs at compile time when every input is
  constant (default: onnx's reference evaluator, so any op folds).
* ``lower(node, inputs, outputs, plan)`` — emit kernel rows on the
  ``PlanBuilder``: pack weights once (``plan.weight``), pick tiles
  (``plan.split``), declare views (``plan.alias``). Binding buffers and running
  belong to the plan and the scheduler, never to a lowering.
"""
import numpy as np

from ..errors import ConstantRequiredError, node_error

F32 = np.dtype(np.float32)
I64 = np.dtype(np.int64)


class Lowering:
    """Base class: shape rule, compile-time fold, and kernel rows of one op type."""

    def infer(self, node, inputs):
        """Output ``(shape, dtype)`` pairs; raise ``ModelError`` on a bad node."""
        raise NotImplementedError

    def fold(self, node, arrays, opset):
        """Outputs computed at compile time from constant ``arrays``."""
        return reference_fold(node, arrays, opset)

    def lower(self, node, inputs, outputs, plan):
        """Emit this node's kernel rows on ``plan``."""
        raise NotImplementedError


def reference_fold(node, arrays, opset):
    """Evaluate one node with ``onnx.reference.ReferenceEvaluator`` on constant inputs."""
    from onnx import helper
    from onnx.reference import ReferenceEvaluator
    ins = [helper.make_tensor_value_info(f"i{k}" if name else "", _elem_type(a), a.shape)
           for k, (name, a) in enumerate(zip(node.inputs, arrays))]
    proto = helper.make_node(node.op_type, [f"i{k}" if name else "" for k, name in enumerate(node.inputs)],
                             [f"o{k}" for k in range(len(node.outputs))], domain=node.domain or None)
    if node.proto is not None:
        proto.attribute.extend(node.proto.attribute)
    graph = helper.make_graph([proto], "fold", [v for v in ins if v.name],
                              [helper.make_tensor_value_info(f"o{k}", 0, None) for k in range(len(node.outputs))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    feeds = {f"i{k}": a for k, (name, a) in enumerate(zip(node.inputs, arrays)) if name}
    try:
        return [np.asarray(r) for r in ReferenceEvaluator(model).run(None, feeds)]
    except Exception as e:
        raise node_error(node, f"cannot evaluate on constant inputs: {type(e).__name__}: {e}") from None


def _elem_type(a):
    from onnx import helper
    return helper.np_dtype_to_tensor_dtype(np.asarray(a).dtype)


def expect_inputs(node, inputs, lo, hi=None):
    """Check the node has between ``lo`` and ``hi`` inputs (omitted optional ones count as given)."""
    hi = lo if hi is None else hi
    if not lo <= len(node.inputs) <= hi:
        want = str(lo) if lo == hi else f"{lo} to {hi}"
        raise node_error(node, f"expected {want} inputs, given {len(node.inputs)}")
    for k in range(lo):
        if inputs[k] is None:
            raise node_error(node, f"input {k} is required but omitted")


def expect_dtype(node, value, allowed, what="input"):
    """Check ``value``'s dtype is one of ``allowed`` (numpy dtypes)."""
    allowed = tuple(np.dtype(a) for a in allowed)
    if value.dtype not in allowed:
        raise node_error(node, f"{what} {value.name!r} has dtype {value.dtype}, expected "
                         f"{' or '.join(str(a) for a in allowed)}")


def expect_rank(node, value, ranks, what="input"):
    """Check ``value``'s rank is in ``ranks``."""
    ranks = (ranks,) if isinstance(ranks, int) else tuple(ranks)
    if len(value.shape) not in ranks:
        raise node_error(node, f"{what} {value.name!r} has shape {list(value.shape)}, expected rank "
                         f"{' or '.join(map(str, ranks))}")


def const_input(node, value, what):
    """The constant data of ``value``; error if it is only known at run time."""
    if value is None:
        raise node_error(node, f"{what} is required but omitted")
    if not value.is_const:
        raise ConstantRequiredError(
            f"node {node.name!r} ({node.op_type}): {what} must be a compile-time constant (initializer or "
            f"foldable), given run-time tensor {value.name!r}", value.name)
    return value.const


def _axis(node, axis, rank, what="axis"):
    if not -rank <= axis < max(rank, 1):
        raise node_error(node, f"{what} {axis} is out of range for rank {rank}, expected in [{-rank}, {rank - 1}]")
    return axis % max(rank, 1)


def _ints(node, inputs, k, attr, what):
    """Integer list from input ``k`` (constant) if given, else attribute ``attr`` (None if neither)."""
    if k is not None and len(inputs) > k and inputs[k] is not None:
        return [int(v) for v in np.asarray(const_input(node, inputs[k], what)).reshape(-1)]
    v = node.attrs.get(attr)
    return None if v is None else [int(i) for i in v]
