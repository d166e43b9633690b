"""Which tiling a lone request runs: its ops split over every worker, or the whole request on one worker.

On a shared host two cores are not always the same machine. For seconds at
a time a request split over both cores takes longer than the same request
on one of them, while a one-core request keeps its speed
(``benchmarks/README.md``, twentieth session: MobileNetV3-small split over
2 cores 1.1 ms in most half-second windows and 2.0-2.2 ms in the others,
against 1.6-1.8 ms on one core throughout). A ``single_stream`` engine of
several workers therefore keeps a second plan of each shape, tiled for one
worker, and times every request (the executor call, wall clock).
``TilingChoice`` keeps the last ``WINDOW`` times of each plan and picks the
one whose median is lower. The plan not picked runs every ``PROBE_EVERY``-th
request, so its median follows the host. The one-worker plan is probed
that often until it has ``KNOWN`` times (an engine may start in a slow
phase), then only while the split plan runs ``SLOWED`` times slower than
the best median it had lately and the one-worker plan is within ``SLOWED``
of it, and every ``PROBE_RARELY``-th request otherwise (a model whose
requests are faster on one worker is found there too). Not
here: multi_stream's choice of tiling by how many slots are busy
(``policies.request_widths``).
"""
import collections
import math
import statistics

SPLIT, SOLO = 0, 1
WINDOW = 5  # recent times per plan; their median ignores a lone hiccup
KNOWN = WINDOW // 2 + 1  # one-worker times before it is probed only as the split plan's times say
PROBE_EVERY = 16
PROBE_RARELY = 256
SLOWED = 1.15
# The split plan's best recent median rises by this factor per request it runs, so a lasting change of the
# host becomes its new best.
BEST_DRIFT = 1.001


class TilingChoice:
    """Per shape: ``pick`` the plan for the next request, ``record`` how long it took. Not thread-safe: a
    single_stream engine serves one request at a time."""

    def __init__(self):
        self._recent = (collections.deque(maxlen=WINDOW), collections.deque(maxlen=WINDOW))
        self._median = [math.inf, math.inf]  # of each plan's recent times, kept as they come in
        self._best = math.inf
        self._n = 0

    def pick(self):
        """``SPLIT`` or ``SOLO`` for the next request."""
        self._n += 1
        split, solo = self._median
        if solo < split:
            return SPLIT if self._n % PROBE_EVERY == 0 else SOLO
        known = len(self._recent[SOLO]) >= KNOWN
        slowed = split > self._best * SLOWED and solo < split * SLOWED
        every = PROBE_EVERY if not known or slowed else PROBE_RARELY
        return SOLO if self._n % every == 0 else SPLIT

    def record(self, which, ns):
        """A request of plan ``which`` took ``ns`` nanoseconds."""
        self._recent[which].append(ns)
        self._median[which] = statistics.median(self._recent[which])
        if which == SPLIT and len(self._recent[SPLIT]) == WINDOW:
            self._best = min(self._best * BEST_DRIFT, self._median[SPLIT])
