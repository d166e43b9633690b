"""Fold an inference BatchNormalization into the Conv that feeds it.

``y = scale * (conv(x, W) + B - mean) / sqrt(var + eps) + bias`` is
``conv(x, W * s) + (B - mean) * s + bias`` with ``s = scale / sqrt(var + eps)``
per output channel. Applies when the Conv's weights and the BatchNorm's
parameters are constants and the Conv output feeds nothing else.
"""
import numpy as np

from ..ir import Value


def fold_batchnorm(graph):
    """Rewrite Conv→BatchNormalization pairs into one Conv, in place."""
    consumers = graph.consumers()
    producers = graph.producers()
    drop = set()
    for bn in graph.nodes:
        if bn.op_type != "BatchNormalization" or len(bn.inputs) < 5:
            continue
        conv = producers.get(bn.inputs[0])
        if conv is None or conv.op_type != "Conv" or len(consumers.get(bn.inputs[0], ())) != 1:
            continue
        if bn.inputs[0] in graph.outputs or len([o for o in bn.outputs if o]) != 1:
            continue
        params = [graph.value(n) for n in bn.inputs[1:5]]
        w = graph.value(conv.inputs[1])
        b = graph.value(conv.inputs[2]) if len(conv.inputs) > 2 and conv.inputs[2] else None
        if any(p.const is None for p in params) or w.const is None or (b is not None and b.const is None):
            continue
        scale, bias, mean, var = (p.const.astype(np.float64) for p in params)
        s = scale / np.sqrt(var + float(bn.attrs.get("epsilon", 1e-5)))
        w_new = (w.const.astype(np.float64) * s.reshape(-1, *([1] * (w.const.ndim - 1)))).astype(np.float32)
        b_old = b.const.astype(np.float64) if b is not None else 0.0
        b_new = ((b_old - mean) * s + bias).astype(np.float32)
        wname, bname = f"{conv.name}/W_bn", f"{conv.name}/B_bn"
        graph.values[wname] = Value(wname, w_new.shape, w_new.dtype, w_new)
        graph.values[bname] = Value(bname, b_new.shape, b_new.dtype, b_new)
        conv.inputs = [conv.inputs[0], wname, bname]
        conv.outputs = [bn.outputs[0]]
        drop.add(id(bn))
    graph.nodes = [n for n in graph.nodes if id(n) not in drop]
