"""Prometheus metrics of a model server, in a registry of its own.

Per model and protocol: requests by status code, errors, and a latency
histogram; per model, read when scraped: requests running on the engine,
requests waiting for a stream, and the engine's stream count. ``code`` is the
HTTP status for both protocols (a gRPC answer is counted under the status its
error maps to). Unknown model names are counted under ``model=""`` so that a
client cannot grow the label set.
"""
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The server's counters and histograms; ``models`` (name → ``ServedModel``) feeds the gauges."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, models):
        self.registry = CollectorRegistry()
        self.models = models
        labels = ["model", "protocol"]
        self.requests = Counter("tilerun_requests", "Inference requests answered, by status code",
                                labels + ["code"], registry=self.registry)
        self.errors = Counter("tilerun_request_errors", "Inference requests answered with an error",
                              labels + ["code"], registry=self.registry)
        self.latency = Histogram("tilerun_request_duration_seconds", "Time from request to answer",
                                 labels, buckets=BUCKETS, registry=self.registry)
        self.registry.register(_ModelGauges(models))

    def observe(self, model, protocol, code, seconds):
        """Count one answered request of ``model`` (a served name, or None when unknown)."""
        model = model if model in self.models else ""
        self.requests.labels(model, protocol, str(code)).inc()
        if code >= 400:
            self.errors.labels(model, protocol, str(code)).inc()
        self.latency.labels(model, protocol).observe(seconds)

    def render(self):
        """The text exposition format of every metric."""
        return generate_latest(self.registry)


class _ModelGauges:
    """Gauges read from the models when scraped."""

    def __init__(self, models):
        self.models = models

    def collect(self):
        running = GaugeMetricFamily("tilerun_inflight_requests", "Requests running on the model's engine",
                                    labels=["model"])
        queued = GaugeMetricFamily("tilerun_queue_depth", "Requests waiting for a free stream", labels=["model"])
        streams = GaugeMetricFamily("tilerun_model_streams", "Requests the engine runs at once", labels=["model"])
        for name, m in list(self.models.items()):
            running.add_metric([name], m.running)
            queued.add_metric([name], m.queued)
            streams.add_metric([name], m.streams)
        return [running, queued, streams]
