"""Diagnostic kernels: count which tiles ran, and fail on demand.

They let tests check the executor's promises on real compiled code — every
tile runs exactly once and in bounds, a failing kernel fails its request —
without depending on any arithmetic family.
"""
from .abi import i64, tile_kernel
from .atomics import atomic_add


@tile_kernel
def i64_count_tiles(p, tile, scratch):
    """``[order, counts, n_tiles, row_id]``: count the tile and log ``row_id`` in run order.

    ``order`` holds a cursor in element 0 followed by the log; ``counts`` one
    counter per tile. A tile index outside ``[0, n_tiles)`` returns status 2.
    """
    n = p[2]
    if tile < 0 or tile >= n:
        return 2
    counts = i64(p[1], n)
    atomic_add(counts, tile, 1)
    order = i64(p[0], 1 << 20)
    at = atomic_add(order, 0, 1)
    order[1 + at] = p[3]
    return 0


@tile_kernel
def any_fail(p, tile, scratch):
    """``[fail_tile]``: status 1 on tile ``fail_tile``, 0 on every other."""
    return 1 if tile == p[0] else 0
