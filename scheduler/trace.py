"""A request's tile timeline: which worker ran which op's tiles, and when.

``Trace.events`` holds one row per tile: worker, plan row, tile index, start
and end in nanoseconds from the request's start. ``per_op`` sums them per
plan row; ``report`` formats them as text (what ``TILERUN_DEBUG`` prints);
``to_chrome`` writes the Chrome / Perfetto trace-event JSON (one track per
worker), which ``chrome://tracing`` and ui.perfetto.dev open.
"""
import json

import numpy as np

from .executor import EV_END, EV_ROW, EV_START, EV_TILE, EV_WORKER


class Trace:
    """The timeline of one traced request, with its outputs and the plan rows it ran."""

    def __init__(self, rows, events, wall_ns, outputs, start_ns=0):
        self.rows = rows
        self.start_ns = int(start_ns)  # CLOCK_MONOTONIC, the origin of the event times
        self.events = events
        self.wall_ns = int(wall_ns)
        self.outputs = outputs

    def per_op(self):
        """One dict per plan row that ran: node, its output, op type, kernel, tiles, busy/span ms, workers, flops."""
        out = []
        for r in np.unique(self.events[:, EV_ROW]):
            ev = self.events[self.events[:, EV_ROW] == r]
            row = self.rows[int(r)]
            out.append({"row": int(r), "node": row.node, "output": getattr(row, "output", ""),
                        "op_type": row.op_type, "kernel": row.kernel.name,
                        "tiles": int(len(ev)),
                        "busy_ms": float((ev[:, EV_END] - ev[:, EV_START]).sum()) / 1e6,
                        "span_ms": float(ev[:, EV_END].max() - ev[:, EV_START].min()) / 1e6,
                        "workers": sorted(int(w) for w in np.unique(ev[:, EV_WORKER])),
                        "flops": int(row.flops)})
        return out

    def report(self, detail=1):
        """Text: a header, one ``op`` line per plan row that ran (plan order) and, at ``detail`` 2, its tiles.

        An ``op`` line is row, node, op type, kernel, tiles, busy ms, span ms;
        a ``tile`` line is tile index, worker, start and end ms from the request's start.
        """
        ops = self.per_op()
        lines = [f"tilerun: request {self.wall_ns / 1e6:.3f} ms, {len(ops)} ops, {len(self.events)} tiles"]
        for o in ops:
            lines.append(f"  op {o['row']:>4} {o['node'] or '-'} {o['op_type']} {o['kernel']} tiles={o['tiles']} "
                         f"busy={o['busy_ms']:.3f}ms span={o['span_ms']:.3f}ms")
            if detail < 2:
                continue
            ev = self.events[self.events[:, EV_ROW] == o["row"]]
            for w, _, t, s, e in ev[np.argsort(ev[:, EV_TILE], kind="stable")].tolist():
                lines.append(f"    tile {t:>4} worker={w} start={s / 1e6:.3f}ms end={e / 1e6:.3f}ms")
        return "\n".join(lines)

    def to_chrome(self, path=None):
        """The Chrome trace-event dict (times in µs); also written as JSON to ``path`` if given."""
        events = [{"name": "process_name", "ph": "M", "pid": 0, "args": {"name": "tilerun request"}}]
        for w in np.unique(self.events[:, EV_WORKER]):
            events.append({"name": "thread_name", "ph": "M", "pid": 0, "tid": int(w),
                           "args": {"name": f"worker {int(w)}"}})
        for w, r, t, s, e in self.events.tolist():
            row = self.rows[r]
            events.append({"name": row.node or row.op_type, "cat": row.op_type, "ph": "X", "pid": 0,
                           "tid": w, "ts": s / 1e3, "dur": max(e - s, 0) / 1e3,
                           "args": {"row": r, "tile": t, "of_tiles": row.n_tiles, "kernel": row.kernel.name}})
        doc = {"traceEvents": events, "displayTimeUnit": "ms"}
        if path is not None:
            with open(path, "w") as f:
                json.dump(doc, f)
        return doc
