"""Remove nodes that compute nothing at inference: Identity, Dropout, and dead nodes.

Identity and inference-mode Dropout are replaced by renaming their output to
their input everywhere (graph outputs keep their names through a rename of the
producer instead). Dead nodes are those no graph output depends on.
"""

_PASS_THROUGH = {"Identity", "Dropout"}


def remove_identities(graph):
    """Drop Identity and Dropout nodes, rewiring their consumers to their input."""
    kept = []
    rename = {}
    for node in graph.nodes:
        node.inputs = [rename.get(i, i) for i in node.inputs]
        if node.op_type in _PASS_THROUGH and not node.domain and node.inputs and node.inputs[0] \
                and node.outputs and node.outputs[0] and (node.op_type == "Dropout" or len(node.outputs) == 1):
            if node.op_type == "Dropout" and not _plain_dropout(graph, node):
                kept.append(node)  # its lowering gives the mask, or refuses training mode
                continue
            src, dst = node.inputs[0], node.outputs[0]
            if dst in graph.outputs:
                # Keep the output's name: rename the producer's output to it instead.
                if src in graph.inputs or src in graph.outputs or graph.values[src].is_const \
                        or not _rename_producer(kept, src, dst):
                    kept.append(node)
                    continue
                rename[src] = dst
            else:
                rename[dst] = src
            continue
        kept.append(node)
    graph.nodes = kept


def _plain_dropout(graph, node):
    """True when a Dropout is the identity for sure: mask unused and training mode absent or a constant false."""
    if len(node.outputs) > 1 and node.outputs[1]:
        if any(node.outputs[1] in n.inputs for n in graph.nodes) or node.outputs[1] in graph.outputs:
            return False
    if len(node.inputs) > 2 and node.inputs[2]:
        mode = graph.values.get(node.inputs[2])
        if mode is None or not mode.is_const or bool(mode.const.reshape(-1)[:1].any()):
            return False
    return True


def _rename_producer(kept, src, dst):
    for n in kept:
        if src in n.outputs:
            n.outputs = [dst if o == src else o for o in n.outputs]
            for m in kept:
                m.inputs = [dst if i == src else i for i in m.inputs]
            return True
    return False


def remove_dead_nodes(graph):
    """Drop nodes none of whose outputs reach a graph output, and the values nothing reads any more.

    Graph inputs stay (a request still gives them), and so does every value
    the graph declares as an output.
    """
    live = set(graph.outputs)
    kept = []
    for node in reversed(graph.nodes):
        if any(o in live for o in node.outputs if o):
            kept.append(node)
            live.update(i for i in node.inputs if i)
    graph.nodes = kept[::-1]
    live.update(graph.inputs)
    live.update(o for n in graph.nodes for o in n.outputs if o)
    for name in [n for n in graph.values if n not in live]:
        del graph.values[name]  # e.g. weights a folding pass replaced: their arrays are freed
