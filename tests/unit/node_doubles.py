"""Stand-ins for what Kafka hands a pacing node, so its parts run in-process without a broker.

Only the transport is replaced: the records a node would take (:class:`FakeEvent`, shaped like
Faust's events) and the producer an :class:`~streams.runtime.outbox.Outbox` sends through
(:class:`RecordingProducer`, which acknowledges or fails each send as told). Everything under
test — intake, store, publisher, keepalive, outbox, Faust's in-memory table — is the real code.
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass, field
from typing import Any

import faust
from faust.types import TableT

from schemas import StatEvent
from streams.node.partitioning import home_partition
from streams.runtime.config import Settings, load_settings

TENANT = "acme"
PARTITIONS = 4
T0 = 1_700_000_000_000


def node_settings(**overrides: Any) -> Settings:
    """Settings of a node serving :data:`TENANT` over :data:`PARTITIONS` stats partitions."""
    kafka = {"stats_partitions": PARTITIONS, **overrides.pop("kafka", {})}
    return load_settings(tenant=TENANT, node_id="node-a", kafka=kafka, **overrides)


def target_on(partition: int, prefix: str = "vq") -> str:
    """A target id whose home partition is ``partition``."""
    for n in range(10_000):
        if home_partition(f"{prefix}-{n}", PARTITIONS) == partition:
            return f"{prefix}-{n}"
    raise AssertionError(f"no target found for partition {partition}")


def stat(target_id: str, statistic: str = "ready_agents", value: float = 3.0, at_ms: int = T0,
         tenant: str = TENANT) -> StatEvent:
    """One valid StatEvent."""
    return StatEvent(tenant=tenant, target_id=target_id, statistic=statistic, value=value, timestamp=at_ms,
                     source="unit-test")


@dataclass
class FakeMessage:
    """The parts of a Kafka message the node reads."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)


class FakeEvent:
    """A taken ``pacing.stats`` record, shaped like a Faust event (weak-referenceable, like Faust's)."""

    def __init__(self, message: FakeMessage):
        self.message = message
        self.value = message.value


def taken(partition: int, offset: int, value: bytes | None, key: bytes | None = None,
          topic: str = "pacing.stats") -> FakeEvent:
    """A record taken from ``topic``[``partition``]@``offset``."""
    return FakeEvent(FakeMessage(topic, partition, offset, key, value))


@dataclass
class Sent:
    """One record handed to the producer."""

    topic: str
    key: bytes | None
    value: bytes | None
    partition: int | None
    headers: list[tuple[str, bytes]] | None

    def header(self, name: str) -> str | None:
        """A header's value as text (None: absent)."""
        for key, value in self.headers or []:
            if key == name:
                return value.decode()
        return None


class RecordingProducer:
    """Faust's transport producer as an Outbox uses it: keeps every send; fails those of ``failing`` topics."""

    def __init__(self) -> None:
        self.sent: list[Sent] = []
        self.failing: set[str] = set()

    async def send(self, topic: str, key: bytes | None, value: bytes | None, partition: int | None,
                   timestamp: float | None, headers: Any) -> asyncio.Future[None]:
        delivery: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if topic in self.failing:
            delivery.set_exception(ConnectionError(f"{topic}: broker gone"))
        else:
            self.sent.append(Sent(topic, key, value, partition, headers))
            delivery.set_result(None)
        return delivery

    def to(self, topic: str) -> list[Sent]:
        """The records sent to ``topic``, in order."""
        return [record for record in self.sent if record.topic == topic]


def memory_table(name: str = "targets") -> TableT:
    """A real Faust table on the in-memory store, of an app that never connects."""
    app = faust.App(f"unit-{name}", broker="kafka://127.0.0.1:1", store="memory://", topic_partitions=PARTITIONS)
    return app.Table(name, default=None, partitions=PARTITIONS)


class PublishingParts:
    """A node's publishing side — publisher, keepalive, store, definitions, alarms — as the production
    wiring (:func:`streams.node.app.create_app`) builds it, on a recording producer instead of Kafka."""

    def __init__(self, **settings: Any):
        from streams.node.app import create_app

        # A memory limit far above use: the process-health alarms stay out of these tests.
        metrics_section = {"memory_limit_mb": 1_000_000, **settings.pop("metrics", {})}
        worker = {"data_dir": tempfile.mkdtemp(prefix="pacing-unit-"), **settings.pop("worker", {})}
        kafka = {"bootstrap_servers": "127.0.0.1:1", **settings.pop("kafka", {})}
        self.settings = node_settings(metrics=metrics_section, worker=worker, kafka=kafka, **settings)
        self.producer = RecordingProducer()
        self.node = create_app(self.settings, producer=self.producer)
        # No group, no rebalance and no log here: the lease holds, nothing moves, everything is caught up.
        self.node.ownership.lapsed = lambda: None  # type: ignore[method-assign]
        self.node.ownership.may_publish = lambda: True  # type: ignore[method-assign]
        self.node.publisher._caught_up = lambda partition: True
        self.names = self.node.names
        self.metrics = self.node.metrics
        self.board = self.node.board
        self.definitions = self.node.definitions
        self.store = self.node.store
        self.alarms = self.node.alarm_publisher
        self.publisher = self.node.publisher
        self.health = self.node.health
        self.keepalive = self.node.keepalive

    def outbox(self) -> Any:
        """A fresh outbox on the recording producer."""
        from streams.runtime.outbox import Outbox

        return Outbox(self.producer, 1.0)

    def count(self, name: str, **labels: str) -> float:
        """A sample of the node's registry (0 when never counted)."""
        return self.metrics.registry.get_sample_value(name, labels or None) or 0.0


class ManualClock:
    """A monotonic clock the test moves: the node's deadlines (tick, checkpoint, keepalive) read it."""

    def __init__(self, start_s: float = 1_000.0):
        self.now_s = start_s

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass."""
        self.now_s += seconds
