"""Row dependencies from the arena bytes each row touches, as a pure function.

Rows run as soon as the rows they depend on have finished, so the plan's
order alone does not order them: a row depends on the earlier rows whose
arena bytes it reads or overwrites. The executor counts these dependencies
and walks the consumer lists built from them (``plan.Plan``). Knows nothing
of kernels, tensors or ops: only byte intervals per row.
"""


def hazard_producers(reads, writes):
    """For each row, the earlier rows it must wait for (sorted), from the arena bytes they touch.

    Row k waits for the last writer of every byte it reads or writes
    (read-after-write, write-after-write) and, because the arena reuses dead
    buffers, for every reader since that write of a byte it overwrites
    (write-after-read). Only the nearest such rows become edges: older ones
    are implied through them, which keeps a chain of n ops at O(n) edges.
    """
    bounds = sorted({b for ivs in reads + writes for lo, hi in ivs for b in (lo, hi)})
    index = {b: i for i, b in enumerate(bounds)}
    last_writer = [-1] * max(len(bounds) - 1, 0)
    readers = [[] for _ in last_writer]
    out = []
    for k in range(len(reads)):
        prods = set()
        for lo, hi in reads[k]:
            for seg in range(index[lo], index[hi]):
                if last_writer[seg] >= 0:
                    prods.add(last_writer[seg])
        for lo, hi in writes[k]:
            for seg in range(index[lo], index[hi]):
                if last_writer[seg] >= 0:
                    prods.add(last_writer[seg])
                prods.update(readers[seg])
        for lo, hi in reads[k]:
            for seg in range(index[lo], index[hi]):
                readers[seg].append(k)
        for lo, hi in writes[k]:
            for seg in range(index[lo], index[hi]):
                last_writer[seg] = k
                readers[seg] = []
        prods.discard(k)
        out.append(sorted(prods))
    return out
