"""An in-process bulk sink on the real broker, fed decisions directly, for fast sink tests.

The sink runs as a :class:`BulkSink` object in the test's event loop (no child process, no
pacing node): the test produces ActionTargetDecision records onto its own prefixed
``pacing.actiontargets``, and reads what the sink did from the real broker (committed group
offsets, the alarm and error topics) and from the emulator.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Iterable
from types import TracebackType
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from connectors.sink import BulkSink
from infra.emulator import JourneyEmulator
from schemas import ActionTargetDecision, Alarm, decode_alarm, encode_decision
from streams.dev_broker import attach_to_sink
from streams.runtime.config import Settings, load_settings
from streams.runtime.topics import TopicNames, ensure_topics
from tests.integration.pipeline import eventually, read_topic

GROUP_PARTITIONS = 2


def decision(target_id: str, ready_agents: int, *, tenant: str = "acme", description: str = "") -> ActionTargetDecision:
    """A valid decision whose ``ready_agents`` (``readyAgents`` at the endpoint) tells versions apart."""
    return ActionTargetDecision(
        tenant=tenant, target_id=target_id, name=f"target {target_id}", state="active",
        supported_media_types=("webchat",), service_level_percentage=0.8, service_level_duration_ms=20_000,
        short_abandon_threshold=10, description=description, allowed_offers=3, reactive_admission=1.0,
        ready_agents=ready_agents, busy_agents=5, logged_in_agents=10, waiting_interactions=0,
        outstanding_offers=0, acceptance_rate=0.3, algorithm="SUPER_PROGRESSIVE",
        computed_at=int(time.time() * 1000), node="test",
    )


def endpoint_ready_agents(emulator: JourneyEmulator) -> dict[str, str]:
    """What the endpoint holds: target id → readyAgents."""
    return {tid: next(u.value for u in e.userData if u.key == "readyAgents") for tid, e in emulator.targets.items()}


def sink_settings(bootstrap: str, emulator: JourneyEmulator, prefix: str, sink: dict[str, Any] | None = None,
                  kafka: dict[str, Any] | None = None, **overrides: Any) -> Settings:
    """Settings of a fast sink on its own topics: short linger, backoff and commit interval."""
    return load_settings(
        tenant="acme", node_id=f"sink-{prefix}",
        base_auth_url=overrides.pop("base_auth_url", emulator.base_auth_url),
        base_service_url=overrides.pop("base_service_url", emulator.base_service_url),
        # Short group timeouts: a restarted sink rejoins once the broker dropped the old member.
        kafka={"bootstrap_servers": bootstrap, "topic_prefix": prefix, "stats_partitions": GROUP_PARTITIONS,
               "session_timeout_s": 3, "rebalance_timeout_s": 3, "heartbeat_interval_s": 0.5, **(kafka or {})},
        # Its own consumer group: a group shared with other tests' sinks would rebalance with them.
        sink={"group_id": f"{prefix}.sink", "linger_ms": 50, "retry_initial_backoff_s": 0.1, "retry_max_backoff_s": 0.4,
              "commit_interval_s": 0.1, "request_timeout_s": 5, "web_port": 0, **(sink or {})},
        **overrides,
    )


async def committed_offsets(bootstrap: str, group_id: str, topic: str, partitions: int) -> dict[TopicPartition, int]:
    """A consumer group's committed offsets on ``topic`` (partitions without a commit left out)."""
    # A group member that never joins: it only fetches the group's offsets (the admin client's
    # OffsetFetch version does not decode against Tansu).
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group_id, enable_auto_commit=False)
    await consumer.start()
    try:
        committed = {}
        for partition in range(partitions):
            tp = TopicPartition(topic, partition)
            offset = await consumer.committed(tp)
            if offset is not None and offset >= 0:
                committed[tp] = offset
    finally:
        await consumer.stop()
    return committed


async def produce_decisions(bootstrap: str, topic: str,
                            decisions: Iterable[ActionTargetDecision]) -> dict[TopicPartition, int]:
    """Publish decisions keyed by target id; returns, per partition, the offset after the last one."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    ends: dict[TopicPartition, int] = {}
    try:
        for item in decisions:
            meta = await producer.send_and_wait(topic, encode_decision(item), key=item.target_id.encode())
            tp = TopicPartition(meta.topic, meta.partition)
            ends[tp] = max(ends.get(tp, 0), meta.offset + 1)
    finally:
        await producer.stop()
    return ends


class SinkRun:
    """One sink in the test's loop; ``async with`` starts it (ready: owns partitions) and stops it."""

    def __init__(self, bootstrap: str, emulator: JourneyEmulator, *, prefix: str | None = None,
                 sink: dict[str, Any] | None = None, kafka: dict[str, Any] | None = None, **overrides: Any):
        self.bootstrap = bootstrap
        self.emulator = emulator
        self.prefix = prefix or f"t{uuid.uuid4().hex[:10]}"
        self.settings = sink_settings(bootstrap, emulator, self.prefix, sink, kafka, **overrides)
        self.topics = TopicNames.for_prefix(self.prefix)
        self.sink: BulkSink | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._crash_reported = False

    async def start(self) -> BulkSink:
        """Start the sink and return once it owns partitions."""
        await ensure_topics(self.settings)
        self.sink = BulkSink(self.settings)
        await attach_to_sink(self.sink)  # as pacing sink does: the dev broker's topic recovery, none on Kafka
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self.sink.run(self._stop))

        def ready() -> bool:
            assert self._task is not None
            if self._task.done():
                self._task.result()  # raises what stopped the sink
                raise AssertionError("sink stopped")
            return self.sink is not None and self.sink.ready()

        await eventually(ready, timeout_s=30, interval_s=0.05, message="sink owns partitions")
        return self.sink

    def running(self) -> bool:
        """True while the sink runs; an AssertionError naming what stopped it if it ended on its own (a crash)."""
        if self._task is not None and self._task.done():
            crash = None if self._task.cancelled() else self._task.exception()
            self._crash_reported = True
            raise AssertionError(f"the sink stopped by itself: {crash!r}") from crash
        return self._task is not None

    async def stop(self) -> None:
        """Stop the sink (it commits what is safe on the way out)."""
        if self._task is not None:
            self._stop.set()
            # A crash that running() already reported is not raised a second time over it.
            with contextlib.suppress(asyncio.CancelledError, *((Exception,) if self._crash_reported else ())):
                await asyncio.wait_for(self._task, 30)
            self._task = None

    async def __aenter__(self) -> SinkRun:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    # -- Kafka, from outside the sink -----------------------------------------------------

    async def produce(self, decisions: Iterable[ActionTargetDecision]) -> dict[TopicPartition, int]:
        """Publish decisions keyed by target id; returns, per partition, the offset after the last one."""
        return await produce_decisions(self.bootstrap, self.topics.actiontargets, decisions)

    async def committed(self) -> dict[TopicPartition, int]:
        """The sink group's committed offsets on the decision topic, as the broker has them."""
        return await committed_offsets(self.bootstrap, self.settings.sink.group_id, self.topics.actiontargets,
                                       GROUP_PARTITIONS)

    async def read_all(self, topic: str, timeout_s: float = 0.5) -> list[Any]:
        """Every record on ``topic`` now (from the beginning, no group)."""
        return await read_topic(self.bootstrap, topic, timeout_s)

    async def alarms(self, name: str) -> list[Alarm]:
        """The transitions of alarm ``name`` on the alarm topic, in order."""
        return [a for a in (decode_alarm(r.value) for r in await self.read_all(self.topics.alarms)) if a.name == name]

    async def errors(self) -> dict[str, dict[str, Any]]:
        """The error topic: target id → the JSON ``{"entity", "error"}`` of its latest record."""
        return {r.key.decode(): json.loads(r.value) for r in await self.read_all(self.topics.bulk_errors)}

    def idle(self) -> bool:
        """Nothing pending or in flight in the sink's ledger."""
        return self.sink is not None and self.sink.ledger.pending_count == 0
