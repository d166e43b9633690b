"""CPU topology from the OS: usable cores, NUMA nodes and L3 domains.

Reads the process affinity mask (psutil, which also covers Windows), the
NUMA nodes under ``/sys/devices/system/node`` and each core's L3
``shared_cpu_list``. A ``Topology`` can also be built by hand (a virtual
topology) so tests can exercise domain-aware policies on any machine.
"""
import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Topology:
    """Usable cores, grouped into domains (NUMA node or L3 sharing set)."""
    cores: tuple
    domains: tuple  # tuple of tuples of core ids

    @classmethod
    def detect(cls):
        """This process's usable cores and their domains, read from the OS (``topology.detect``)."""
        return detect()

    def limit(self, num_cores, busy=None):
        """``num_cores`` cores, keeping domains whole where possible: the first ones, or with ``busy`` (a mapping
        core -> engines already pinned there) the least busy ones, the first of them on a tie."""
        if num_cores is None or num_cores >= len(self.cores):
            return self
        if num_cores < 1:
            raise ValueError(f"num_cores must be at least 1, given {num_cores}")
        busy = busy or {}
        order = sorted(range(len(self.cores)), key=lambda i: (busy.get(self.cores[i], 0), i))
        keep = tuple(self.cores[i] for i in sorted(order[:num_cores]))
        domains = tuple(d for d in (tuple(c for c in dom if c in keep) for dom in self.domains) if d)
        return Topology(keep, domains)


def _parse_cpu_list(text):
    cpus = []
    for part in text.strip().split(","):
        if not part:
            continue
        if "-" in part:
            lo, hi = part.split("-")
            cpus.extend(range(int(lo), int(hi) + 1))
        else:
            cpus.append(int(part))
    return cpus


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def usable_cores():
    """Cores this process may run on (its affinity mask), sorted."""
    try:
        import psutil
        return tuple(sorted(psutil.Process().cpu_affinity()))
    except (ImportError, AttributeError, OSError):  # macOS has no affinity masks
        pass
    if hasattr(os, "sched_getaffinity"):
        return tuple(sorted(os.sched_getaffinity(0)))
    return tuple(range(os.cpu_count() or 1))


def detect():
    """The topology of this process: affinity-mask cores, split by L3 domain, else NUMA node."""
    cores = usable_cores()
    groups = {}
    for c in cores:
        shared = None
        for idx in range(8):
            base = f"/sys/devices/system/cpu/cpu{c}/cache/index{idx}"
            if _read(f"{base}/level") is None:
                break
            if _read(f"{base}/level").strip() == "3":
                shared = _read(f"{base}/shared_cpu_list")
        key = tuple(x for x in _parse_cpu_list(shared) if x in cores) if shared else None
        groups.setdefault(key or _numa_node_of(c, cores), []).append(c)
    domains = tuple(tuple(sorted(g)) for g in groups.values())
    return Topology(cores, tuple(sorted(domains)))


def _numa_node_of(core, cores):
    node_root = "/sys/devices/system/node"
    try:
        nodes = [d for d in os.listdir(node_root) if d.startswith("node")]
    except OSError:
        return tuple(cores)
    for d in nodes:
        text = _read(f"{node_root}/{d}/cpulist")
        if text and core in _parse_cpu_list(text):
            return tuple(x for x in _parse_cpu_list(text) if x in cores)
    return tuple(cores)
