"""Checks of a request's inputs against the compiled signature, before any kernel runs.

Kernels run without bounds checks; this boundary is why that is safe. Every
error names the input, what was expected and what was given. What is checked:
the container (list/tuple in graph-input order, a name → array dict, or a lone
array for a one-input model), the count, the names and each array's dtype.
Shapes are checked against the engine's signature (``plans.Signature``,
fixed and symbolic dims). What is accepted as it is: non-contiguous, read-only, unaligned arrays
and ndarray subclasses (the engine copies every input into its arena), and
NaN/Inf values, which are computed like any others.
"""
import numpy as np

from .errors import InputError


def check_inputs(names, dtypes, inputs):
    """Return the request's arrays in graph-input order, or raise ``InputError``.

    ``inputs`` is a list/tuple of arrays in the order of ``names``, a dict
    name → array, or a lone array when the model has one input.
    """
    inputs = _in_order(names, inputs)
    return [_check_one(name, np.dtype(dtype), a) for name, dtype, a in zip(names, dtypes, inputs)]


def _in_order(names, inputs):
    if isinstance(inputs, dict):
        unknown = sorted(str(k) for k in set(inputs) - set(names))
        missing = [n for n in names if n not in inputs]
        if unknown or missing:
            raise InputError(f"input names do not match: expected {names}, "
                             f"given {sorted(str(k) for k in inputs)} (missing {missing}, unknown {unknown})")
        return [inputs[n] for n in names]
    if isinstance(inputs, np.ndarray):
        if len(names) != 1:
            raise InputError(f"expected {len(names)} inputs {names} as a list or dict, given one array")
        return [inputs]
    if not isinstance(inputs, (list, tuple)):
        raise InputError(f"inputs must be a list of arrays in the order {names} or a dict, "
                         f"given {type(inputs).__name__}")
    if len(inputs) != len(names):
        raise InputError(f"expected {len(names)} inputs {names}, given {len(inputs)}")
    return inputs


def _check_one(name, dtype, a):
    if not isinstance(a, np.ndarray):
        raise InputError(f"input {name!r}: expected a numpy array, given {type(a).__name__} (wanted {dtype})")
    if a.dtype != dtype:
        hint = " (byte order differs: convert with .astype)" if a.dtype.newbyteorder("=") == dtype else ""
        raise InputError(f"input {name!r}: expected dtype {dtype}, given {a.dtype}{hint}")
    return a


def fixed_match(inputs, expected):
    """The arrays of ``inputs`` when each is an ndarray of exactly its ``(dtype, shape)`` in ``expected``, else None.

    The fast accept of an engine whose every dim is fixed: a list/tuple in
    graph-input order or a lone array that matches needs no other check. Any
    other request (a dict, a subclass, another dtype or shape) returns None
    and takes ``check_inputs``, which names what is wrong.
    """
    if type(inputs) is np.ndarray:
        inputs = (inputs,)
    elif type(inputs) is not list and type(inputs) is not tuple:
        return None
    if len(inputs) != len(expected):
        return None
    for a, (dtype, shape) in zip(inputs, expected):
        if type(a) is not np.ndarray or a.dtype != dtype or a.shape != shape:
            return None
    return list(inputs)
