"""Checks of a request's inputs against the compiled signature, before any kernel runs.

Kernels run without bounds checks; this boundary is why that is safe. Every
error names the input, what was expected and what was given.
"""
import numpy as np

from .errors import InputError


def check_inputs(names, shapes, dtypes, inputs):
    """Return the request's arrays in graph-input order, or raise ``InputError``.

    ``inputs`` is a list/tuple of arrays in the order of ``names``, a dict
    name → array, or a lone array when the model has one input.
    """
    if isinstance(inputs, dict):
        unknown = sorted(set(inputs) - set(names))
        missing = [n for n in names if n not in inputs]
        if unknown or missing:
            raise InputError(f"input names do not match: expected {names}, "
                             f"given {sorted(inputs)} (missing {missing}, unknown {unknown})")
        inputs = [inputs[n] for n in names]
    elif isinstance(inputs, np.ndarray) and len(names) == 1:
        inputs = [inputs]
    if not isinstance(inputs, (list, tuple)):
        raise InputError(f"inputs must be a list of arrays in the order {names} or a dict, "
                         f"given {type(inputs).__name__}")
    if len(inputs) != len(names):
        raise InputError(f"expected {len(names)} inputs {names}, given {len(inputs)}")
    checked = []
    for name, shape, dtype, a in zip(names, shapes, dtypes, inputs):
        if not isinstance(a, np.ndarray):
            raise InputError(f"input {name!r}: expected a numpy array, given {type(a).__name__}")
        if a.dtype != dtype:
            raise InputError(f"input {name!r}: expected dtype {dtype}, given {a.dtype}")
        if tuple(a.shape) != tuple(shape):
            raise InputError(f"input {name!r}: expected shape {list(shape)}, given {list(a.shape)}")
        checked.append(a)
    return checked
