"""Give every graph input a static shape: the batch-size override and user-given dims.

The first dim of each input is the batch dim: it becomes ``batch_size`` when
it is dynamic, or when a ``batch_size`` other than the declared one is asked
for. Other dynamic dims must come from ``input_shapes``; a dim still unknown
is an error naming the input and the dim. These are ``ArgumentError``: the
model is fine, the arguments do not give it static shapes.
"""
from ..errors import ArgumentError


def bind_input_shapes(graph, batch_size=1, input_shapes=None):
    """Set a static shape on every ``graph.inputs`` value, in place.

    The arguments' types and ranges are the caller's to check (``arguments``,
    at the API boundary); what is checked here is how they fit the graph.
    """
    input_shapes = dict(input_shapes or {})
    unknown = set(input_shapes) - set(graph.inputs)
    if unknown:
        raise ArgumentError(f"input_shapes names {sorted(unknown)}, which are not graph inputs; "
                            f"the graph inputs are {graph.inputs}")
    batch_size = None if batch_size is None else int(batch_size)
    for name in graph.inputs:
        v = graph.values[name]
        if name in input_shapes:
            shape = tuple(int(d) for d in input_shapes[name])
            if v.shape is not None and len(shape) != len(v.shape):
                raise ArgumentError(f"input_shapes[{name!r}] = {list(shape)} has rank {len(shape)}, "
                                    f"but the model declares rank {len(v.shape)} ({list(v.shape)})")
            v.shape = shape
            continue
        if v.shape is None:
            raise ArgumentError(f"input {name!r} declares no shape; pass input_shapes={{{name!r}: [...]}}")
        dims = list(v.shape)
        if dims and batch_size is not None and (not isinstance(dims[0], int) or batch_size != 1):
            dims[0] = batch_size
        missing = [i for i, d in enumerate(dims) if not isinstance(d, int)]
        if missing:
            raise ArgumentError(f"input {name!r} has dynamic dims {[v.shape[i] for i in missing]} at axes {missing}; "
                                f"pass input_shapes={{{name!r}: [...]}} with every dim")
        v.shape = tuple(dims)
