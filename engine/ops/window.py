"""Sliding-window attributes shared by Conv and the pools: strides, dilations, pads, auto_pad, ceil_mode.

``window_geometry`` resolves them for one node into begin/end pads and output
sizes at compile time (as ONNX Runtime does: a ceil-mode window must start
inside the input or its begin padding). It does not check op-specific rules
(a pool's pads must be smaller than its window; Conv's kernel comes from its
weights): the lowerings do.
"""
from ..errors import node_error


def int_list(node, name, n, default):
    """Attribute ``name`` as ``n`` ints, or ``[default] * n`` when absent or empty."""
    v = node.attrs.get(name)
    v = [default] * n if v is None or len(v) == 0 else [int(a) for a in v]
    if len(v) != n:
        raise node_error(node, f"attribute {name} has {len(v)} values, expected {n} (one per spatial axis)")
    return v


def window_geometry(node, spatial, kernel, ceil=False):
    """``(out, strides, dilations, pad_begin, pad_end)`` of a window ``kernel`` sliding over ``spatial``."""
    n = len(spatial)
    strides = int_list(node, "strides", n, 1)
    dil = int_list(node, "dilations", n, 1)
    pads = int_list(node, "pads", 2 * n, 0)
    if min(kernel) < 1 or min(strides) < 1 or min(dil) < 1 or min(pads) < 0:
        raise node_error(node, f"expected kernel, strides and dilations >= 1 and pads >= 0, given kernel "
                               f"{list(kernel)}, strides {strides}, dilations {dil}, pads {pads}")
    auto = node.attrs.get("auto_pad", "NOTSET") or "NOTSET"
    ext = [(k - 1) * d + 1 for k, d in zip(kernel, dil)]
    begin, end, out = pads[:n], pads[n:], []
    for i in range(n):
        size, s, e = spatial[i], strides[i], ext[i]
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            o = -(-size // s)
            total = max(0, (o - 1) * s + e - size)
            small = total // 2
            begin[i], end[i] = (small, total - small) if auto == "SAME_UPPER" else (total - small, small)
        elif auto == "VALID":
            begin[i] = end[i] = 0
            o = (size - e) // s + 1
        elif auto == "NOTSET":
            span = size + begin[i] + end[i] - e
            o = (-(-span // s) if ceil else span // s) + 1
            if ceil and (o - 1) * s >= size + begin[i]:
                o -= 1
        else:
            raise node_error(node, f"auto_pad {auto!r} is not NOTSET, SAME_UPPER, SAME_LOWER or VALID")
        if o < 1 or size + begin[i] + end[i] < e:
            raise node_error(node, f"output axis {i} would be empty: window extent {e} (kernel {list(kernel)}, "
                                   f"dilations {dil}) is larger than input axis {i} of size {size} with pads "
                                   f"{begin + end}")
        out.append(o)
    return out, strides, dil, begin, end
