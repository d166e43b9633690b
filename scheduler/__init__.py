"""tilerun.scheduler: CPU topology, the pinned worker pool and the tile executor.

The executor walks a plan's rows in nopython code; the policies decide which
requests are in flight and which workers serve them. Kernels are called
through their addresses and know nothing of threads.
"""
from .policies import Scheduler  # noqa: F401
