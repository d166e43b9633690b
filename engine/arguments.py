"""Checks of the arguments of ``compile_model``, ``convert_model`` and ``Engine``, before any work is done.

Each check raises ``ArgumentError`` naming the argument, what it must be and
what was given, so a typo (``num_cores=0``, ``batch_size="4"``, an unknown
scheduler) fails at the call, not as a ``ZeroDivisionError`` in a lowering.
What is not checked here: the model itself (``load``/``importer`` raise
``ModelError``), whether ``input_shapes`` fit the model's inputs (names,
ranks: ``passes.static_shapes``), and a request's arrays (``validate``).
``TILERUN_DEBUG`` is read here too, once per compiled model.
"""
import numbers
import os

import numpy as np

from tilerun.scheduler import Scheduler, Topology

from .errors import ArgumentError


def check_compile_arguments(batch_size, input_shapes, num_cores, scheduler, topology, work_stealing,
                            empty_dims=False):
    """The scheduling mode of ``scheduler``, after every argument of ``compile_model`` is checked.

    ``empty_dims`` lets ``input_shapes`` hold 0 dims (empty tensors): the onnx
    backend needs them for onnx's conformance cases; ``compile_model`` refuses them.
    ``num_streams`` depends on the mode and topology: ``policies.check_num_streams``
    checks it, and ``compile_model`` turns its ValueError into ``ArgumentError``.
    """
    check_count("batch_size", batch_size, allow_none=True)
    check_count("num_cores", num_cores, allow_none=True)
    check_input_shapes(input_shapes, empty_dims)
    if topology is not None and not isinstance(topology, Topology):
        raise ArgumentError(f"topology must be a tilerun.scheduler.Topology or None, "
                            f"given {type(topology).__name__}")
    if not isinstance(work_stealing, (bool, np.bool_)):
        raise ArgumentError(f"work_stealing must be True or False, given {work_stealing!r}")
    return check_scheduler(scheduler)


def check_scheduler(scheduler):
    """``scheduler`` (a ``Scheduler`` or its name) as a ``Scheduler``."""
    try:
        return Scheduler(scheduler)
    except (ValueError, TypeError):
        raise ArgumentError(f"scheduler must be one of {[s.value for s in Scheduler]} "
                            f"(a string or tilerun.Scheduler), given {scheduler!r}") from None


def is_int(value):
    """An integer (Python or numpy) that is not a bool."""
    return isinstance(value, (numbers.Integral, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_count(name, value, allow_none=False):
    """A positive integer (or None when ``allow_none``), else ``ArgumentError`` naming ``name``."""
    if value is None and allow_none:
        return
    if not is_int(value) or value < 1:
        raise ArgumentError(f"{name} must be a positive integer{' or None' if allow_none else ''}, "
                            f"given {value!r}" + (f" ({type(value).__name__})" if not is_int(value) else ""))


def check_input_shapes(input_shapes, empty_dims=False):
    """``input_shapes``: None or a dict of input name → list of integer dims (positive; >= 0 with
    ``empty_dims``) or symbolic dim name → a size or ``(lo, hi)`` bounds (which keys are which is
    known only once the model is read: ``plans.Signature``)."""
    if input_shapes is None:
        return
    if not isinstance(input_shapes, dict):
        raise ArgumentError(f"input_shapes must be a dict of input name -> list of dims, e.g. "
                            f"{{'input_ids': [1, 128]}}, or None; given {type(input_shapes).__name__}")
    lowest = 0 if empty_dims else 1
    for name, dims in input_shapes.items():
        if not isinstance(name, str):
            raise ArgumentError(f"input_shapes keys must be input names (str), given {name!r}")
        if is_int(dims):
            dims = [dims]
        elif not (isinstance(dims, (list, tuple)) or (isinstance(dims, np.ndarray) and dims.ndim == 1)):
            raise ArgumentError(f"input_shapes[{name!r}] must be a list of dims (an input) or a size or "
                                f"(lo, hi) bounds (a symbolic dim), given {dims!r}")
        dims = list(dims)
        if not all(is_int(d) and d >= lowest for d in dims):
            what = "non-negative" if empty_dims else "positive"
            raise ArgumentError(f"input_shapes[{name!r}] must be a list of {what} integers, given {dims!r}")


def check_timeout(timeout):
    """``timeout``: None or a non-negative number of seconds."""
    if timeout is None:
        return
    if not isinstance(timeout, numbers.Real) or isinstance(timeout, bool) or not timeout >= 0:
        raise ArgumentError(f"timeout must be a non-negative number of seconds or None, given {timeout!r}")


def debug_level(environ=os.environ):
    """``TILERUN_DEBUG`` as 0 (unset, empty or 0), 1 (per-op times) or 2 (per-op and per-tile times)."""
    text = environ.get("TILERUN_DEBUG", "").strip()
    if not text:
        return 0
    try:
        level = int(text)
    except ValueError:
        level = -1
    if level < 0:
        raise ArgumentError(f"TILERUN_DEBUG must be 0, 1 (per-op times) or 2 (per-tile times), given {text!r}")
    return min(level, 2)
