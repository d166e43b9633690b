"""Lower a shaped, folded graph to a ``Plan``: each node's lowering emits its rows.

Graph outputs that are constants or graph inputs need no row; the engine
copies them out directly.
"""
from .errors import TilerunError, node_error
from .ops import registry
from .plan import PlanBuilder


def lower_graph(graph, num_workers, weight_cache=None, precision="fp32"):
    """Run every node's lowering in order and finish the plan (packed weights kept in ``weight_cache``).

    ``precision``: ``"bf16"`` lets lowerings pick BF16 kernels (resolved by ``engine.precision``).
    """
    b = PlanBuilder(graph, num_workers, weight_cache=weight_cache, precision=precision)
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
    computed = [o for o in graph.outputs if graph.values[o].const is None]
    return b.finish(graph.inputs, computed)
