"""Prometheus metrics of the pacing nodes and the sink, and the HTTP endpoint serving them.

Each process has its own registry so that tests running several components in one process
do not collide, and ``/metrics``, ``/healthz`` and ``/readyz`` are served by one small
aiohttp app per process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import StrEnum

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from schemas import DecodeCategory


class RejectReason(StrEnum):
    """The ``reason`` label values of ``pacing_events_rejected_total``: a fixed set of classes.

    A label takes one of these, never free text (a fingerprint, a tenant name, a byte count
    would make a new time series per value). The detail of each rejection travels in the DLQ
    record's ``error`` header; its class also in ``error.class``. The decode classes are
    :class:`schemas.DecodeCategory`'s (their meaning is documented there); a test keeps the two
    in step.
    """

    EMPTY = DecodeCategory.EMPTY.value
    TOO_LARGE = DecodeCategory.TOO_LARGE.value
    UNKNOWN_FORMAT = DecodeCategory.UNKNOWN_FORMAT.value
    UNKNOWN_SCHEMA = DecodeCategory.UNKNOWN_SCHEMA.value
    WRONG_RECORD = DecodeCategory.WRONG_RECORD.value
    MALFORMED_AVRO = DecodeCategory.MALFORMED_AVRO.value
    MALFORMED_JSON = DecodeCategory.MALFORMED_JSON.value
    INVALID_FIELD = DecodeCategory.INVALID_FIELD.value
    WRONG_TENANT = DecodeCategory.WRONG_TENANT.value
    INTERNAL_ERROR = DecodeCategory.INTERNAL_ERROR.value
    PROCESSING_FAILED = "processing_failed"
    """Handling the event raised ``worker.max_attempts`` times (the error is in the header)."""

    @classmethod
    def of(cls, category: DecodeCategory) -> RejectReason:
        """The class of a decoder rejection."""
        return cls(category.value)


class SinkOutcome(StrEnum):
    """The ``outcome`` label values of ``sink_requests_total``: how one bulk request ended."""

    SUCCESS = "success"
    """2xx with a valid bulk result (per-target errors are counted in ``sink_entity_errors_total``)."""
    RETRIABLE_FAILURE = "retriable_failure"
    """408, 429, 5xx, transport error or timeout: retried with backoff."""
    OPERATOR_ERROR = "operator_error"
    """401 after renewal, 403, 404, …: the deployment is wrong; retried with backoff."""
    TOO_LARGE = "too_large"
    """413: the batch is split (a single entity still too large goes to the error topic)."""
    REJECTED = "rejected"
    """400 or 422: the entities sent go to the error topic."""
    INVALID_RESPONSE = "invalid_response"
    """2xx whose body is not a bulk result: retried, alarm ``PacingResponseValidationError``."""


class ProcessMetrics:
    """What every process reports about itself: alarms, GC pauses, memory."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.alarms = Counter("pacing_alarms_raised", "Alarms raised", ["name"], registry=r)
        self.gc_pause = Gauge("pacing_gc_pause_max_ms", "Longest GC pause in the last minute", registry=r)
        self.memory = Gauge("pacing_memory_percent", "Resident memory as % of the limit", registry=r)

    def observe_health(self, max_gc_pause_ms: float, memory_percent: float) -> None:
        """Record the latest self-monitoring sample."""
        self.gc_pause.set(max_gc_pause_ms)
        self.memory.set(memory_percent)


def record_lag(gauge: Gauge, lags: Iterable[tuple[int, int | None, int | None]]) -> None:
    """Set a consumer-lag gauge to ``high watermark - position`` per owned partition.

    ``lags`` holds ``(partition, high watermark, position)``; a partition with either unknown is
    left out. The gauge is reset first, so a partition no longer owned stops being reported.
    """
    gauge.clear()
    for partition, highwater, position in lags:
        if highwater is not None and position is not None:
            gauge.labels(str(partition)).set(max(0, highwater - position))


class NodeMetrics(ProcessMetrics):
    """What a pacing node counts."""

    def __init__(self, registry: CollectorRegistry | None = None):
        super().__init__(registry)
        r = self.registry
        self.records_in = Counter("pacing_records_in", "pacing.stats records consumed", registry=r)
        self.events_in = Counter("pacing_events_in", "Stat events consumed (each event of a StatBatch counts)",
                                 registry=r)
        self.events_rejected = Counter(
            "pacing_events_rejected", "Stat events sent to the DLQ, by class (RejectReason)", ["reason"], registry=r
        )
        self.events_stale = Counter(
            "pacing_events_stale", "Stat events older than what the state already holds", registry=r
        )
        self.decisions = Counter(
            "pacing_decisions_emitted", "Decisions published", ["reason"], registry=r
        )
        self.decisions_held = Counter(
            "pacing_decisions_held",
            "Changed decisions held for the end of the target's publish interval (worker.publish_interval_s), "
            "and targets a decision pass left undecided when partitions started to move",
            registry=r,
        )
        self.targets = Gauge("pacing_targets_owned", "Targets in actively owned partitions", registry=r)
        self.decision_errors = Counter("pacing_decision_errors", "Targets the engine failed to decide", registry=r)
        self.events_rerouted = Counter(
            "pacing_events_rerouted", "Stat events forwarded to their target's home partition", registry=r
        )
        self.processing_errors = Counter(
            "pacing_processing_errors", "Batch attempts abandoned because handling an event raised", registry=r
        )
        self.send_failures = Counter(
            "pacing_send_failures", "Batch attempts or ticks whose writes Kafka did not acknowledge", registry=r
        )
        self.lag = Gauge("pacing_consumer_lag", "Stat events not yet processed, per owned partition",
                         ["partition"], registry=r)
        self.batch_size = Histogram(
            "pacing_batch_events", "Events per processed batch",
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000), registry=r,
        )
        self.decided_targets = Histogram(
            "pacing_decided_targets", "Targets decided per decision tick",
            buckets=(1, 10, 100, 500, 1000, 2500, 5000, 10000, 25000), registry=r,
        )
        self.decide_period = Gauge(
            "pacing_decide_period_seconds",
            "How long a target without material changes waits between decisions (grows under load)", registry=r,
        )
        self.flushed_targets = Histogram(
            "pacing_flush_targets", "Table entries written (changelog records) per checkpoint",
            buckets=(1, 10, 100, 500, 1000, 2500, 5000, 10000, 25000), registry=r,
        )

    def count_rejected(self, reason: RejectReason) -> None:
        """One more event in the DLQ; a reason outside :class:`RejectReason` is a bug and raises."""
        self.events_rejected.labels(RejectReason(reason).value).inc()


class SinkMetrics(ProcessMetrics):
    """What the bulk sink counts."""

    def __init__(self, registry: CollectorRegistry | None = None):
        super().__init__(registry)
        r = self.registry
        self.records_in = Counter("sink_records_in", "Decision records consumed", registry=r)
        self.fenced = Counter("sink_decisions_fenced", "Decisions dropped: an owner of a newer epoch had published "
                              "the target (streams.runtime.fencing)", registry=r)
        self.requests = Counter("sink_requests", "Bulk requests by outcome (SinkOutcome)", ["outcome"], registry=r)
        self.entities_sent = Counter("sink_entities_delivered", "Entities accepted by the endpoint", registry=r)
        self.entity_errors = Counter("sink_entity_errors", "Entities the endpoint rejected", registry=r)
        self.latency = Histogram("sink_request_seconds", "Bulk request latency", registry=r)
        self.batch_size = Histogram(
            "sink_batch_entities", "Entities per bulk request",
            buckets=(1, 10, 50, 100, 500, 1000, 5000, 10000), registry=r,
        )
        self.pending = Gauge("sink_pending_targets", "Targets waiting to be delivered", registry=r)
        self.lag = Gauge("sink_consumer_lag", "Decision records not yet consumed, per owned partition",
                         ["partition"], registry=r)
        self.committed = Counter("sink_offsets_committed", "Offset commits", registry=r)
        self.kafka_writes_pending = Gauge(
            "sink_kafka_writes_pending", "Records for Kafka (error topic, alarms, metrics) not yet acknowledged",
            registry=r)

    def count_request(self, outcome: SinkOutcome) -> None:
        """One more bulk request that ended so; an outcome outside :class:`SinkOutcome` is a bug and raises."""
        self.requests.labels(SinkOutcome(outcome).value).inc()


async def start_metrics_server(
    registry: CollectorRegistry, host: str, port: int, ready: Callable[[], bool]
) -> web.AppRunner:
    """Serve /metrics, /healthz (process alive) and /readyz (``ready()`` true) on ``host:port``."""

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        is_ready = ready()
        return web.json_response({"ready": is_ready}, status=200 if is_ready else 503)

    app = web.Application()
    app.add_routes([web.get("/metrics", metrics), web.get("/healthz", healthz), web.get("/readyz", readyz)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
