"""Numba's disk cache keyed on every compiled module of tilerun, not only the file that defines a kernel.

Numba decides that a cached kernel is fresh from its own source file alone,
but tile kernels inline helpers from other files (the GEMM core into the conv
kernels, the activation clamps into every epilogue, the tile call into the
executor): an edit there would leave stale machine code in the cache. For
functions defined under ``kernels/`` or ``scheduler/``, the locators below
stamp the cache with a hash of every ``.py`` file in both folders, so any
edit recompiles them all. Other code cached by Numba is left as Numba does it.
"""
import functools
import hashlib
import os

from numba.core import caching

_HERE = os.path.dirname(os.path.abspath(__file__))
_FOLDERS = (_HERE, os.path.join(os.path.dirname(_HERE), "scheduler"))


@functools.lru_cache(maxsize=None)
def _hash(stat_key):
    h = hashlib.sha256()
    for path, _, _ in stat_key:
        with open(path, "rb") as f:
            h.update(path.encode() + b"\0" + f.read())
    return h.digest()


def tilerun_source_stamp():
    """A hash of every compiled module's source (re-read only when a file's mtime or size changes)."""
    files = sorted(os.path.join(d, f) for d in _FOLDERS if os.path.isdir(d) for f in os.listdir(d) if f.endswith(".py"))
    return _hash(tuple((p, os.stat(p).st_mtime_ns, os.stat(p).st_size) for p in files))


def _ours(py_file):
    return os.path.dirname(os.path.abspath(py_file)) in _FOLDERS


def _stamped(base):
    class Locator(base):
        def get_source_stamp(self):
            return tilerun_source_stamp()

        @classmethod
        def from_function(cls, py_func, py_file):
            return super().from_function(py_func, py_file) if _ours(py_file) else None

    Locator.__name__ = f"Tilerun{base.__name__}"
    return Locator


_LOCATORS = [_stamped(b) for b in (caching.UserProvidedCacheLocator, caching.InTreeCacheLocator,
                                   caching.UserWideCacheLocator)]
if not any(k.__name__.startswith("Tilerun") for k in caching.CacheImpl._locator_classes):
    caching.CacheImpl._locator_classes[:0] = _LOCATORS
