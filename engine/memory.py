"""Arena layout: byte offsets for buffers from their lifetimes, as a pure function.

Each buffer lives from the step that writes it first to the step that reads it
last; two buffers whose lifetimes overlap never share bytes. Placement is
greedy, largest first, at the lowest aligned offset that fits between the
buffers already placed and alive at the same time (the usual best-fit of
TFLite's and ONNX Runtime's planners). Knows nothing of graphs or ops.
"""

ALIGN = 64


def align_up(n, align=ALIGN):
    """``n`` rounded up to a multiple of ``align``."""
    return (n + align - 1) // align * align


def plan_offsets(lifetimes, align=ALIGN):
    """Offsets for buffers given as ``(first_step, last_step, nbytes)``.

    Returns ``(offsets, total_bytes)`` with ``offsets[i]`` a multiple of
    ``align`` and no two buffers with overlapping ``[first, last]`` intervals
    overlapping in memory.
    """
    order = sorted(range(len(lifetimes)), key=lambda i: (-lifetimes[i][2], lifetimes[i][0], i))
    placed = []  # (offset, end, first, last)
    offsets = [0] * len(lifetimes)
    total = 0
    for i in order:
        first, last, nbytes = lifetimes[i]
        size = align_up(max(int(nbytes), 1), align)
        busy = sorted((o, e) for o, e, f, l in placed if f <= last and first <= l)
        offset = 0
        for o, e in busy:
            if offset + size <= o:
                break
            offset = max(offset, align_up(e, align))
        offsets[i] = offset
        placed.append((offset, offset + size, first, last))
        total = max(total, offset + size)
    return offsets, total
