"""Diagnostic kernels: count which tiles ran, and fail on demand.

They let tests check the executor's promises on real compiled code — every
tile runs exactly once and in bounds, a failing kernel fails its request —
without depending on any arithmetic family.
"""
from .abi import i64
from .atomics import atomic_add
from .contract import declare_row, tile_kernel

COUNT_TILES = declare_row("COUNT_TILES", outputs=("order", "counts"), ints=("n_tiles", "row_id"))
FAIL = declare_row("FAIL", ints=("fail_tile",))


@tile_kernel(COUNT_TILES)
def i64_count_tiles(p, tile, scratch):
    """Count the tile and log ``row_id`` in run order.

    ``order`` holds a cursor in element 0 followed by the log; ``counts`` one
    counter per tile. A tile index outside ``[0, n_tiles)`` returns status 2.
    """
    n = p[COUNT_TILES.n_tiles]
    if tile < 0 or tile >= n:
        return 2
    counts = i64(p[COUNT_TILES.counts], n)
    atomic_add(counts, tile, 1)
    order = i64(p[COUNT_TILES.order], 1 << 20)
    at = atomic_add(order, 0, 1)
    order[1 + at] = p[COUNT_TILES.row_id]
    return 0


@tile_kernel(FAIL)
def any_fail(p, tile, scratch):
    """Status 1 on tile ``fail_tile``, 0 on every other."""
    return 1 if tile == p[FAIL.fail_tile] else 0
