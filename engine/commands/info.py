"""``tilerun info [--ops]``: what tilerun sees on this machine, and (``--ops``) what it supports.

Prints the version, the detected topology (usable cores, NUMA nodes, L3
domains), the SIMD width the kernels use, the Numba/llvmlite/onnx versions and
Numba's cache directory. It compiles nothing.
"""
import os

EXAMPLES = ("tilerun info", "tilerun info --ops   # the supported ONNX ops and their opset ranges")


def add_parser(sub):
    """Register ``info`` on the subparsers ``sub``."""
    i = sub.add_parser("info", help="version, CPU topology, SIMD width, Numba cache; --ops lists supported ops")
    i.add_argument("--ops", action="store_true", help="list the supported ONNX ops with their opset ranges")
    i.set_defaults(func=main)


def main(args):
    """Run the ``info`` command; returns the exit code."""
    import llvmlite
    import numba
    import numpy
    import onnx

    import tilerun
    from tilerun.export import TARGET_OPSET
    from tilerun.load import MIN_OPSET
    from tilerun.scheduler import topology
    topo = topology.detect()
    rows = [("tilerun", tilerun.__version__),
            ("cores", f"{len(topo.cores)} usable: {_cpu_list(topo.cores)}"),
            ("NUMA nodes", str(numa_nodes(topo))),
            ("L3 domains", f"{len(topo.domains)}: " + "; ".join(_cpu_list(d) for d in topo.domains)),
            ("SIMD", simd_description()),
            ("matrix", matrix_description()),
            ("opsets", f"loads {MIN_OPSET}..{onnx.defs.onnx_opset_version()}, convert targets {TARGET_OPSET}"),
            ("numba", numba.__version__), ("llvmlite", llvmlite.__version__),
            ("numpy", numpy.__version__), ("onnx", onnx.__version__),
            ("onnxruntime", _ort_version()),
            ("numba cache", numba_cache_dir())]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    if args.ops:
        print()
        print(format_ops())
    return 0


def _cpu_list(cores):
    cores = sorted(cores)
    parts, start = [], None
    for i, c in enumerate(cores):
        if start is None:
            start = c
        if i + 1 == len(cores) or cores[i + 1] != c + 1:
            parts.append(str(start) if start == c else f"{start}-{c}")
            start = None
    return ",".join(parts)


def numa_nodes(topo):
    """NUMA nodes holding usable cores (the topology's own count when it has one)."""
    n = getattr(topo, "numa_nodes", None)
    if n is not None:
        return n if isinstance(n, int) else len(n)
    root = "/sys/devices/system/node"
    try:
        nodes = [d for d in os.listdir(root) if d.startswith("node") and d[4:].isdigit()]
    except OSError:
        return 1
    return max(1, len(nodes))


def simd_description():
    """Vector width the kernels use: float32 lanes and the ISA it comes from."""
    try:
        from tilerun.kernels.simd import detect_lanes
        lanes = detect_lanes()
    except ImportError:
        lanes = None
    import llvmlite.binding as llvm
    feats = llvm.get_host_cpu_features()
    isa = [f for f in ("avx512f", "avx2", "fma", "neon") if feats.get(f, False)]
    if lanes is None:
        lanes = 16 if "avx512f" in isa else 8 if "avx2" in isa else 4 if "neon" in isa else 0
    bits = lanes * 32
    return (f"{lanes} float32 lanes ({bits}-bit)" if lanes else "none (portable loops)") + \
        f"; cpu {llvm.get_host_cpu_name()}; features {' '.join(isa) or 'none of avx512f/avx2/fma/neon'}"


def matrix_description():
    """Which matrix extensions this CPU has (BF16, AMX, VNNI) and the precisions ``--precision`` can use."""
    from tilerun.precision import cpu_features
    f = cpu_features()
    yes = {True: "yes", False: "no"}
    return (f"avx512_bf16 {yes[f['bf16']]}, amx {yes[f['amx']]}, vnni {yes[f['vnni']]}; precisions fp32"
            + (", bf16" if f["bf16"] else " (bf16 falls back to fp32)"))


def _ort_version():
    try:
        import onnxruntime
        return onnxruntime.__version__
    except ImportError:
        return "not installed (optional: --compare, convert's check)"


def numba_cache_dir():
    """Where Numba keeps compiled kernels: NUMBA_CACHE_DIR, else beside each module's sources."""
    import numba
    d = numba.config.CACHE_DIR or os.environ.get("NUMBA_CACHE_DIR")
    return d if d else "__pycache__ beside each kernel module (set NUMBA_CACHE_DIR to choose)"


def format_ops():
    """Table of supported op types: opset range, tilerun's lowering versions, ONNX's newest version."""
    import onnx
    from tilerun.load import MIN_OPSET
    from tilerun.ops import supported_ops
    newest = onnx.defs.onnx_opset_version()
    ops = supported_ops()
    w = max(len(", ".join(map(str, v))) for v in ops.values()) + 2 if ops else 2
    lines = [f"{len(ops)} supported ops (opsets {MIN_OPSET}..{newest} load):",
             f"  {'op':<24}{'opsets':<10}{'lowerings since':<{w}}onnx newest"]
    for op, versions in ops.items():
        try:
            latest = onnx.defs.get_schema(op, newest).since_version
        except Exception:
            latest = "?"
        lo = max(versions[0], MIN_OPSET)
        lines.append(f"  {op:<24}{f'{lo}..{newest}':<10}{', '.join(map(str, versions)):<{w}}{latest}")
    return "\n".join(lines)
