"""How many tiles an op is split into: the one place tile sizes are decided.

An op is split along its independent output items (rows, channel blocks,
element chunks) into tiles that each carry enough work to pay for a claim
(``MIN_TILE_COST`` units of about one multiply-add or one element moved), up to
``TILES_PER_WORKER`` tiles per worker, which XNNPACK found balances load
without drowning the counters. Small ops stay whole: splitting them costs more
than it gains.
"""

MIN_TILE_COST = 32_768
TILES_PER_WORKER = 5


def split(items, cost_per_item, num_workers, granule=1):
    """Split ``items`` work items into tiles; returns ``(n_tiles, items_per_tile)``.

    ``items_per_tile`` is a multiple of ``granule`` (e.g. a micro-kernel's row
    block) except when one tile holds everything.
    """
    items = max(int(items), 1)
    total = items * max(float(cost_per_item), 1.0)
    want = int(min(total // MIN_TILE_COST, TILES_PER_WORKER * max(num_workers, 1)))
    want = max(1, min(want, -(-items // granule)))
    per = -(-items // want)
    per = -(-per // granule) * granule
    per = min(per, items)
    return -(-items // per), per
