"""Fuse ``MatMul -> Add(constant bias)`` into the MatMul, whose GEMM epilogue adds the bias per column.

The bias must be a float32 constant that varies along the last axis only
(``[N]`` or ``[1, ..., 1, N]``) and the sum must have the MatMul's own shape;
the MatMul's output must feed nothing but the Add. The bias becomes the
MatMul's input 2 and ``node.fused.bias``. Not here: a bias that broadcasts
rows, or a run-time bias (that Add stays).
"""
import numpy as np

from .fuse_util import absorb, is_op, other_input, sole_consumer


def fuse_matmul_bias(graph):
    """Fold every eligible bias Add into the MatMul that produces its input, in place."""
    consumers = graph.consumers()
    for mm in list(graph.nodes):
        if not is_op(mm, "MatMul") or len(mm.inputs) != 2 or mm.fused.activation or mm.fused.bias:
            continue
        y = mm.outputs[0]
        add = sole_consumer(graph, y, consumers)
        if not is_op(add, "Add"):
            continue
        bias = other_input(add, y)
        if bias is None or bias == y or not _column_bias(graph, bias, graph.values[y].shape):
            continue
        if tuple(graph.values[add.outputs[0]].shape) != tuple(graph.values[y].shape):
            continue
        mm.inputs = list(mm.inputs) + [bias]
        mm.fused.bias = bias
        mm.outputs = [add.outputs[0]]
        absorb(graph, mm, [add], add)
        consumers = graph.consumers()


def _column_bias(graph, name, out_shape):
    v = graph.values[name]
    if not v.is_const or v.dtype != np.float32 or not out_shape:
        return False
    shape = tuple(v.shape)
    return len(shape) <= len(out_shape) and shape[-1:] == tuple(out_shape[-1:]) and all(d == 1 for d in shape[:-1])
