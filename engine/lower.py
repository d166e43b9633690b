"""Lower a shaped, folded graph to ``Plan``s (one per worker count): each node's lowering emits its rows.

Graph outputs that are constants or graph inputs need no row; the engine
copies them out directly.
"""
import collections

from .errors import TilerunError, node_error
from .ops import registry
from .plan import PlanBuilder


def lower_graph(graph, widths, weight_cache=None, release_consts=False, precision="fp32"):
    """One plan per entry of ``widths`` (the workers its ops are tiled for), from one walk over the nodes.

    Every node is lowered into each plan before the next node, so the plans
    share the packed weights (``weight_cache``, kept for later plans) and
    ``release_consts`` still holds: drop the graph's reference to each
    constant once the last node reading it is lowered (a graph used once: its
    unpacked weights are freed while packing goes on, instead of living
    beside the packed copies until the end).
    ``precision``: ``"bf16"`` lets lowerings pick BF16 kernels (resolved by ``engine.precision``).
    """
    cache = {} if weight_cache is None else weight_cache
    builders = [PlanBuilder(graph, w, weight_cache=cache, precision=precision) for w in widths]
    readers = collections.Counter(i for n in graph.nodes for i in n.inputs if i)
    keep = set(graph.outputs)
    for node in graph.nodes:
        lowering = registry.resolve(node.op_type, graph.opset, node.domain)
        ins = [graph.value(i) for i in node.inputs]
        outs = [graph.value(o) for o in node.outputs]
        for b in builders:
            try:
                lowering.lower(node, ins, outs, b)
            except TilerunError:
                raise
            except Exception as e:  # a malformed node that its shape rule let through
                raise node_error(node, f"cannot lower ({type(e).__name__}: {e})") from e
        if release_consts:
            for name in node.inputs:
                readers[name] -= 1
                if name and readers[name] == 0 and name not in keep:
                    graph.values[name].const = None
    computed = [o for o in graph.outputs if not graph.values[o].is_const]
    return tuple(b.finish(graph.inputs, computed) for b in builders)
