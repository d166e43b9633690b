"""Checks of a request's inputs against the compiled signature, before any kernel runs.

Kernels run without bounds checks; this boundary is why that is safe. Every
error names the input, what was expected and what was given. What is checked:
the container (list/tuple in graph-input order, a name → array dict, or a lone
array for a one-input model), the count, the names, each array's dtype and
shape (a wrong first dim is reported as a batch size against the compiled
one). What is accepted as it is: non-contiguous, read-only, unaligned arrays
and ndarray subclasses (the engine copies every input into its arena), and
NaN/Inf values, which are computed like any others.
"""
import numpy as np

from .errors import InputError


def check_inputs(names, shapes, dtypes, inputs):
    """Return the request's arrays in graph-input order, or raise ``InputError``.

    ``inputs`` is a list/tuple of arrays in the order of ``names``, a dict
    name → array, or a lone array when the model has one input.
    """
    inputs = _in_order(names, inputs)
    return [_check_one(name, tuple(shape), np.dtype(dtype), a)
            for name, shape, dtype, a in zip(names, shapes, dtypes, inputs)]


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


def _check_one(name, shape, dtype, a):
    if not isinstance(a, np.ndarray):
        raise InputError(f"input {name!r}: expected a numpy array, given {type(a).__name__} "
                         f"(wanted {dtype} of shape {list(shape)})")
    if a.dtype != dtype:
        hint = " (byte order differs: convert with .astype)" if a.dtype.newbyteorder("=") == dtype else ""
        raise InputError(f"input {name!r}: expected dtype {dtype}, given {a.dtype}{hint}")
    given = tuple(a.shape)
    if given != shape:
        msg = f"input {name!r}: expected shape {list(shape)}, given {list(given)}"
        if len(given) == len(shape) and given[1:] == shape[1:] and len(shape) >= 1:
            more = "larger" if given[0] > shape[0] else "smaller"
            msg += (f": batch size {given[0]} is {more} than the compiled batch size {shape[0]}; compile with "
                    f"batch_size={given[0]} to run this batch")
        raise InputError(msg)
    return a
