"""How many tiles an op is split into: the one place tile sizes are decided.

An op is split along its independent output items (rows, channel blocks,
element chunks) into tiles that each carry enough work to pay for the
hand-off between cores that a split brings, up to ``TILES_PER_WORKER`` tiles
per worker, which XNNPACK found balances load without drowning the counters.
Small ops stay whole: one tile, which the executor runs on the worker that
finished its producer. On one worker every op is one tile (``tile_cap``):
there is nothing to balance, and each tile costs a claim and its kernel's
set-up.

``HANDOFF_NS`` is what splitting one op over two cores adds to a request's
critical path: ``benchmarks/handoff.py`` times a chain of 200 Relu ops on 128
floats with one tile per op and with two (forced), both on two workers, and
takes the difference per op (the median of alternating rounds). Work is
counted in units of about one multiply-add or one element moved; a tile is
worth splitting off when its work takes ``SPLIT_MARGIN`` hand-offs at
``UNITS_PER_NS`` (the GEMM core's multiply-adds per ns on one core, the fast
end, so element-wise work, slower per unit, splits later rather than
earlier). The margin covers what the median hides: a split op waits for the
slower core, and on a busy machine a core may stall for far longer than
one hand-off, so a request with fewer splits swings less.
"""

HANDOFF_NS = 600
UNITS_PER_NS = 40
SPLIT_MARGIN = 2
MIN_TILE_COST = HANDOFF_NS * UNITS_PER_NS * SPLIT_MARGIN
TILES_PER_WORKER = 5
BALANCE_SLACK = 1.03


def tile_cap(num_workers):
    """Most tiles an op gets on ``num_workers`` workers: ``TILES_PER_WORKER`` each, one on a single worker."""
    workers = max(int(num_workers), 1)
    return TILES_PER_WORKER * workers if workers > 1 else 1


def split(items, cost_per_item, num_workers, granule=1):
    """Split ``items`` work items into tiles; returns ``(n_tiles, items_per_tile)``.

    ``items_per_tile`` is a multiple of ``granule`` (e.g. a micro-kernel's row
    block) except when one tile holds everything. Of the tile counts up to the
    cap, those whose busiest worker gets at most ``BALANCE_SLACK`` times the
    fewest items possible qualify, and the one with the most tiles wins:
    rounding to the granule can otherwise leave one worker a whole tile more.
    """
    items = max(int(items), 1)
    workers = max(int(num_workers), 1)
    total = items * max(float(cost_per_item), 1.0)
    want = int(min(total // MIN_TILE_COST, tile_cap(workers)))
    want = max(1, min(want, -(-items // granule)))
    options = []
    for n in range(1, want + 1):
        per = min(items, -(-(-(-items // n)) // granule) * granule)
        tiles = -(-items // per)
        options.append((_busiest(items, per, tiles, workers), tiles, per))
    fewest = min(o[0] for o in options)
    _, tiles, per = max((o for o in options if o[0] <= fewest * BALANCE_SLACK), key=lambda o: o[1])
    return tiles, per


def even_bounds(t, n_tiles, units):
    """First unit of tile ``t`` when ``units`` are dealt evenly over ``n_tiles`` tiles (tile sizes differ by <= 1).

    Kernels that take an even split compute the same ``t * units // n_tiles``.
    """
    return t * units // n_tiles


def split_even(items, cost_per_item, num_workers, granule, max_tiles=None):
    """Tiles for ``items`` split into near-equal runs of whole granules; returns ``n_tiles``.

    Tile ``t`` covers granules ``[even_bounds(t), even_bounds(t + 1))`` of the
    ``ceil(items / granule)``. Unlike ``split``'s equal tiles plus a short last
    one, the runs differ by at most one granule, so the contiguous chunks the
    workers take stay within a granule of each other.
    """
    units = -(-max(int(items), 1) // granule)
    workers = max(int(num_workers), 1)
    total = max(int(items), 1) * max(float(cost_per_item), 1.0)
    cap = tile_cap(workers) if max_tiles is None else max(1, int(max_tiles))
    want = max(1, min(int(min(total // MIN_TILE_COST, cap)), units))
    options = []
    for n in range(1, want + 1):
        busiest = 0
        for w in range(workers):
            lo, hi = -(-w * n // workers), -(-(w + 1) * n // workers)
            busiest = max(busiest, even_bounds(hi, n, units) - even_bounds(lo, n, units))
        options.append((busiest, n))
    fewest = min(o[0] for o in options)
    return max(n for b, n in options if b <= fewest * BALANCE_SLACK)


def _busiest(items, per, tiles, workers):
    """Items of the busiest worker when ``tiles`` tiles of ``per`` items are dealt in contiguous chunks."""
    out = 0
    for w in range(workers):
        lo, hi = -(-w * tiles // workers), -(-(w + 1) * tiles // workers)
        out = max(out, min(items, hi * per) - min(items, lo * per))
    return out


def conv_gemm_tiles(images, cout_g, npix, kk, workers, mr, nr, small_pix):
    """``(n_pix_blocks, pix_panels, n_co_blocks)`` of a conv's GEMM per image-group (both split evenly).

    Few pixels (at most ``small_pix``: late layers, weights larger than
    activations): split the ``mr``-row output-channel blocks, so each tile
    streams only its own rows of the weights. Otherwise split the
    ``nr``-column panels evenly, adding a channel split only when some worker
    would get no tile and each part still pays for its hand-off (a channel
    split costs a packing pass). ``images`` image-groups share the op's tile
    cap, so a conv of many small groups gets about one tile per group.
    """
    npan = -(-npix // nr)
    cap = -(-tile_cap(workers) // max(int(images), 1))
    if npix <= small_pix and cout_g >= 2 * mr:
        return 1, npan, split_even(cout_g, npix * kk, workers, mr, cap)
    npb = split_even(npix, cout_g * kk, workers, nr, cap)
    ncob = 1
    parts = npix * cout_g * kk // MIN_TILE_COST
    if images * npb < workers and cout_g > mr and parts >= 2:
        ncob = min(-(-cout_g // mr), -(-workers // (images * npb)), parts)
    return npb, npan, ncob


def gemm_blocks(batch, m, n, k, workers, mr, nr):
    """``(n_row_blocks, rows_per_block, n_col_blocks, cols_per_block)`` of a batched ``m x n x k`` GEMM.

    Rows split first (``mr`` granule); columns (``nr`` granule) only while
    there are fewer than two tiles per worker and each column block still
    pays for its hand-off.
    """
    nmb, mb = split(m, n * k, workers, granule=mr)
    nnb, nb = 1, n
    want = 2 * workers
    parts = mb * n * k // MIN_TILE_COST
    if batch * nmb < want and n > nr and parts >= 2:
        nnb = min(-(-n // nr), -(-want // (batch * nmb)), parts)
        nb = -(-(-(-n // nnb)) // nr) * nr
        nnb = -(-n // nb)
    return nmb, mb, nnb, nb


def band_rows(rows, per, n, workers, kh, sh):
    """Pooled rows per tile, at most ``per``, that leave the busiest worker the fewest window rows to compute.

    A tile of ``p`` pooled rows of window ``kh``, stride ``sh`` computes
    ``(p - 1)*sh + kh`` input rows; capping ``per`` alone can leave a worker a
    whole tile more.
    """
    def busiest(p):
        return -(-n * -(-rows // p) // workers) * ((p - 1) * sh + kh)
    return min(range(max(1, per - workers), per + 1), key=lambda p: (busiest(p), -p))
