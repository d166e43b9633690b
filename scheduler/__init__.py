"""tilerun.scheduler: CPU topology, the pinned worker pool and the tile executor.

The executor walks a plan's rows in nopython code; the policies decide how
many request slots there are and which workers serve which. Kernels are
called through their addresses and know nothing of threads.
"""
from .policies import Scheduler  # noqa: F401
from .topology import Topology  # noqa: F401
from .trace import Trace  # noqa: F401
