"""Tile counts: every item covered once, and the workers' chunks as even as the granule allows."""
import pytest

from tilerun.tiling import even_bounds, split, split_even


def _chunks(bounds, n_tiles, workers):
    """Units of each worker's contiguous chunk of tiles, as the executor deals them."""
    return [bounds[-(-(w + 1) * n_tiles // workers)] - bounds[-(-w * n_tiles // workers)] for w in range(workers)]


@pytest.mark.parametrize("items,cost,workers,granule", [
    (838, 512 * 4608, 2, 32),   # a 512-channel 28x28 grid: 27 panels
    (781, 128 * 288, 2, 32),    # 27x27 squeezenet expand
    (100, 81 * 576, 2, 8),      # 100 output channels in 8-row blocks
    (3136, 64 * 576, 16, 32),
    (5, 10, 2, 8),              # less than a granule: one tile
    (1, 1, 4, 1),
])
def test_split_even_covers_and_balances(items, cost, workers, granule):
    units = -(-items // granule)
    n = split_even(items, cost, workers, granule)
    assert 1 <= n <= units
    bounds = [even_bounds(t, n, units) for t in range(n + 1)]
    assert bounds[0] == 0 and bounds[-1] == units
    sizes = [b - a for a, b in zip(bounds, bounds[1:])]
    assert min(sizes) >= 1 and max(sizes) - min(sizes) <= 1
    chunks = _chunks(bounds, n, workers)
    # the busiest worker is within one tile of the even share
    assert max(chunks) <= -(-units // workers) + max(sizes)


def test_split_even_beats_equal_tiles_on_ragged_counts():
    # 838 columns in 32-column panels, 2 workers: equal tiles leave one worker a
    # tile more; even runs keep the chunks within one panel.
    tiles, per = split(838, 512 * 4608, 2, 32)
    equal = [min(838, hi * per) - min(838, lo * per) for lo, hi in ((0, -(-tiles // 2)), (-(-tiles // 2), tiles))]
    n = split_even(838, 512 * 4608, 2, 32)
    bounds = [even_bounds(t, n, 27) for t in range(n + 1)]
    even = [32 * c for c in _chunks(bounds, n, 2)]
    assert max(even) - min(even) <= 32 < max(equal) - min(equal)


def test_ops_below_the_handoff_cost_stay_whole():
    from tilerun.kernels.gemm import MR, NR
    from tilerun.ops.conv_paths import SMALL_PIX
    from tilerun.tiling import MIN_TILE_COST, conv_gemm_tiles, gemm_blocks
    # Squeeze-excitation's pooled 1x1 convs (one pixel): one tile, no channel split.
    assert conv_gemm_tiles(1, MR + 4, 1, 96, 2, MR, NR, SMALL_PIX) == (1, 1, 1)
    assert conv_gemm_tiles(1, 96, 1, 24, 2, MR, NR, SMALL_PIX)[::2] == (1, 1)
    assert gemm_blocks(1, 1, 4 * NR, 64, 2, MR, NR)[::2] == (1, 1)
    # Work that pays for several hand-offs is still split over the workers.
    npb, _, ncob = conv_gemm_tiles(1, 4 * MR, 1, 4 * MIN_TILE_COST, 2, MR, NR, SMALL_PIX)
    assert npb * ncob >= 2
    assert split(1000, 4 * MIN_TILE_COST, 2)[0] >= 2


def test_many_groups_share_the_tile_cap():
    from tilerun.kernels.gemm import MR, NR
    from tilerun.ops.conv_paths import SMALL_PIX
    from tilerun.tiling import TILES_PER_WORKER, conv_gemm_tiles
    groups, workers = 26, 2
    npb, _, ncob = conv_gemm_tiles(groups, 8, 28 * 28, 72, workers, MR, NR, SMALL_PIX)
    assert groups * npb * ncob <= groups * -(-TILES_PER_WORKER * workers // groups)


def test_one_worker_gets_one_tile_per_op():
    # Nothing to balance on one worker: any amount of work stays one tile (each tile costs a claim).
    from tilerun.tiling import MIN_TILE_COST, split, split_even, tile_cap
    assert tile_cap(1) == 1 and tile_cap(2) > 2
    assert split(1000, 100 * MIN_TILE_COST, 1) == (1, 1000)
    assert split_even(1000, 100 * MIN_TILE_COST, 1, 8) == 1
    assert split(1000, 100 * MIN_TILE_COST, 2)[0] > 2
