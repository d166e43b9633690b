"""Lower a shaped, folded graph to a ``Plan``: each node's lowering emits its rows.

Graph outputs that are constants or graph inputs need no row; the engine
copies them out directly.
"""
import collections

from .errors import TilerunError, node_error
from .ops import registry
from .plan import PlanBuilder


def lower_graph(graph, num_workers, weight_cache=None, release_consts=False, precision="fp32"):
    """Run every node's lowering in order and finish the plan (packed weights kept in ``weight_cache``).

    ``release_consts``: drop the graph's reference to each constant once the
    last node reading it is lowered (a graph used once: its unpacked weights
    are freed while packing goes on, instead of living beside the packed
    copies until the end).
    ``precision``: ``"bf16"`` lets lowerings pick BF16 kernels (resolved by ``engine.precision``).
    """
    b = PlanBuilder(graph, num_workers, weight_cache=weight_cache, precision=precision)
    readers = collections.Counter(i for n in graph.nodes for i in n.inputs if i)
    keep = set(graph.outputs)
    for node in graph.nodes:
        lowering = registry.resolve(node.op_type, graph.opset, node.domain)
        ins = [graph.value(i) for i in node.inputs]
        outs = [graph.value(o) for o in node.outputs]
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
    return b.finish(graph.inputs, computed)
