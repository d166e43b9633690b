"""Performance hints: ``hint="latency"`` or ``"throughput"`` picks scheduler, streams and auto-batching.

A rule on the model's signature and the machine, no calibration run:

* ``latency`` — ``single_stream``: every core on each request, one at a time.
* ``throughput`` — ``multi_stream`` with one stream per core (idle workers
  steal tiles, so a lone request still uses every core). When more callers
  than streams are expected (``num_requests``) and the model takes any batch,
  requests are also gathered into batches of up to
  ``ceil(num_requests / streams)`` (at most ``MAX_AUTO_BATCH``) after at most
  ``BATCH_TIMEOUT_MS``.

Arguments the caller gives explicitly win over the hint's choice.
``Config`` is what the engine reports as ``eng.config``.
"""
from dataclasses import asdict, dataclass

from .errors import ArgumentError

HINTS = ("latency", "throughput")
MAX_AUTO_BATCH = 8
BATCH_TIMEOUT_MS = 2.0


@dataclass(frozen=True)
class Config:
    """What an engine runs with, and why (``hint``: the hint that chose it, or None)."""
    hint: str
    scheduler: str
    num_streams: int
    auto_batch: int
    batch_timeout_ms: float
    optimal_batch_size: int
    stream_range: tuple
    precision: str = "fp32"  # what the plans use, and why when it is not what was asked

    def as_dict(self):
        return asdict(self)


def check_hint(hint, num_requests):
    """``hint`` is None or one of ``HINTS``; ``num_requests`` None or a positive int."""
    if hint is not None and hint not in HINTS:
        raise ArgumentError(f"hint must be one of {list(HINTS)} or None, given {hint!r}")
    if num_requests is not None and (not isinstance(num_requests, int) or isinstance(num_requests, bool)
                                     or num_requests < 1):
        raise ArgumentError(f"num_requests must be a positive integer or None, given {num_requests!r}")


def choose(hint, cores, batchable, num_requests=None):
    """``(scheduler, num_streams, auto_batch)`` for ``hint`` on ``cores`` workers (None where not chosen).

    ``batchable()`` says whether the model's inputs all lead with a batch dim (asked only when it matters).
    """
    if hint is None:
        return None, None, None
    if hint == "latency":
        return "single_stream", None, None
    streams = cores if num_requests is None else max(1, min(cores, num_requests))
    batch = None
    if num_requests is not None and num_requests > streams and batchable():
        batch = min(MAX_AUTO_BATCH, -(-num_requests // streams))
    return "multi_stream", streams, batch
