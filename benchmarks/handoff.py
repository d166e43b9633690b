"""The per-tile hand-off cost between cores, the number behind ``tiling.HANDOFF_NS``.

A chain of ``--ops`` tiny Relu ops (each on ``--elems`` floats, so the work
is negligible) runs three ways in one process, alternating:

* ``1 core``: one worker, one tile per op: per op, a claim and a release;
* ``2 cores, 1 tile``: two workers, one tile per op (the idle one spins);
* ``2 cores, 2 tiles``: every op split in two, so each op waits for the
  other core's tile before its consumer is released.

The hand-off cost is ``(2 cores, 2 tiles) - (2 cores, 1 tile)`` per op: what
splitting an op over both cores adds to the critical path. The split is forced
by lowering ``tiling.MIN_TILE_COST`` while that engine compiles. The machine
may be shared: rerun, and quote the median.
"""
import argparse
import os
import pathlib
import sys

os.environ.setdefault("NUMBA_CACHE_DIR", str(pathlib.Path(__file__).resolve().parents[1] / ".numba_cache"))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import onnx  # noqa: E402
from onnx import helper  # noqa: E402

import tilerun  # noqa: E402
from interleave import alternate  # noqa: E402
from tilerun import tiling  # noqa: E402


def relu_chain(n_ops, elems):
    """A ModelProto: ``n_ops`` Relu nodes in a chain on a ``[1, elems]`` float input."""
    nodes = [helper.make_node("Relu", [f"t{i}"], [f"t{i + 1}"]) for i in range(n_ops)]
    nodes[0].input[0] = "x"
    nodes[-1].output[0] = "y"
    g = helper.make_graph(nodes, "relu_chain", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, elems])],
                          [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, elems])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    return m


def _engine(model, cores, forced_tiles):
    saved = tiling.MIN_TILE_COST
    try:
        if forced_tiles:
            tiling.MIN_TILE_COST = 1
        return tilerun.compile_model(model, num_cores=cores)
    finally:
        tiling.MIN_TILE_COST = saved


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ops", type=int, default=200)
    ap.add_argument("--elems", type=int, default=128, help="floats per op (two 64-float tiles when split)")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--block", type=int, default=20)
    args = ap.parse_args(argv)
    model = relu_chain(args.ops, args.elems)
    x = [np.ones((1, args.elems), np.float32)]
    engs = {"1 core": _engine(model, 1, False), "2 cores, 1 tile": _engine(model, 2, False),
            "2 cores, 2 tiles": _engine(model, 2, True)}
    tiles = {k: int(e.plan.tables["n_tiles"].max()) for k, e in engs.items()}
    med = dict(zip(engs, alternate([lambda e=e: e.run(x) for e in engs.values()], args.rounds, args.block)))
    for k, v in med.items():
        print(f"{k:<18s} tiles/op {tiles[k]}  request {v * 1e6:8.1f} us  per op {v / args.ops * 1e9:7.0f} ns")
    per_op = (med["2 cores, 2 tiles"] - med["2 cores, 1 tile"]) / args.ops * 1e9
    print(f"hand-off cost per split op: {per_op:.0f} ns")
    for e in engs.values():
        e.close()


if __name__ == "__main__":
    main()
