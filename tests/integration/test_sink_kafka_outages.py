"""The sink rides out Kafka outages (issue 18, item 2), on the real embedded broker and the emulator.

(a) A write to the error topic that Kafka refuses — Tansu answers ``UnknownError`` to the first
    write into a topic that was lost, written to while gone, and created again, as after a
    broker restart — is retried; the sink keeps running and commits those offsets only once
    the error record is on the broker.
(b) A broker restart that loses every topic: offsets consumed from the old topic are never
    committed to the recreated one, and the sink reads the new topic from its beginning.
(c) An alarm Kafka cannot take (the broker is down) does not hold back the decisions the sink
    already holds.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

import streams.dev_broker.sink_topics as topic_recovery_module
from infra.broker import EmbeddedBroker
from infra.emulator import JourneyEmulator
from schemas import AlarmState
from streams.runtime.config import Settings
from streams.runtime.topics import repair_topics
from tests.integration.pipeline import eventually
from tests.integration.sink_harness import SinkRun, decision, endpoint_ready_agents

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.environ.get("PACING_TEST_BROKER") == "kafka",
                       reason="Tansu's behaviour after a topic loss (and a private Tansu broker): run once"),
]

NEVER = 3600.0  # a topic check interval the test outlasts: the sink does not look by itself


async def lose_and_recreate(settings: Settings, topic: str) -> None:
    """``topic`` is lost, written to while gone (as the sink or a worker does after a broker restart),
    and created again (as a worker's repair does): Tansu then refuses the next write to it with UnknownError."""
    bootstrap = settings.kafka.bootstrap_servers
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        # A client that knows the topic (a fresh one asking for it would have it auto-created).
        await producer.send_and_wait(topic, b"before the loss", key=b"elsewhere")
        await admin.delete_topics([topic])
        await producer.send_and_wait(topic, b"written while the topic was gone", key=b"elsewhere")
    finally:
        await admin.close()
        await producer.stop()
    await repair_topics(settings)


async def produce_raw(bootstrap: str, topic: str, key: bytes, value: bytes) -> tuple[TopicPartition, int]:
    """Write one record as is; returns where it went."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        meta = await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()
    return TopicPartition(meta.topic, meta.partition), meta.offset


@pytest.mark.parametrize("failure", ["rejected", "unreadable"])
async def test_an_error_record_kafka_refuses_is_retried_and_the_sink_keeps_running(
        kafka_bootstrap: str, emulator: JourneyEmulator, failure: str) -> None:
    emulator.faults.set(fail_target_ids=["vq-bad"])
    async with SinkRun(kafka_bootstrap, emulator, kafka={"topic_check_interval_s": NEVER}) as run:
        await lose_and_recreate(run.settings, run.topics.bulk_errors)
        if failure == "rejected":  # the endpoint refuses vq-bad: _report_errors
            ends = await run.produce([decision("vq-ok", 1), decision("vq-bad", 1)])
        else:  # a record that is no decision: _report_unreadable
            ends = await run.produce([decision("vq-ok", 1)])
            tp, offset = await produce_raw(kafka_bootstrap, run.topics.actiontargets, b"vq-bad", b"no decision")
            ends[tp] = max(ends.get(tp, 0), offset + 1)

        async def reported() -> bool:
            run.running()  # a crash fails the test at once, with its traceback
            return any(r.key == b"vq-bad" for r in await run.read_all(run.topics.bulk_errors))

        await eventually(reported, timeout_s=15, message="vq-bad's error record on the error topic")
        await eventually(lambda: run.running() and endpoint_ready_agents(emulator) == {"vq-ok": "1"},
                         message="vq-ok delivered")
        await eventually(lambda: _committed_at(run, ends), message="every offset committed once its writes are done")
        assert run.running()


async def _committed_at(run: SinkRun, ends: dict) -> bool:
    run.running()
    return await run.committed() == ends


class CommitRefusals(logging.Handler):
    """Counts aiokafka's "OffsetCommit failed … UnknownTopicOrPartition": offsets of a lost topic being retried."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "OffsetCommit failed" in message and "UnknownTopicOrPartition" in message:
            self.count += 1


def notice_missing_topics_only_when(ready: Callable[[], bool], monkeypatch: pytest.MonkeyPatch) -> None:
    """The sink's topic check reports the lost topics only once ``ready()``: the order of events of a
    sink on the default 5 s check interval, without waiting that long."""
    real = topic_recovery_module.missing_topics

    async def delayed(*args, **kwargs) -> list[str]:  # type: ignore[no-untyped-def]
        missing = await real(*args, **kwargs)
        return missing if ready() else []

    monkeypatch.setattr(topic_recovery_module, "missing_topics", delayed)


async def test_offsets_of_a_lost_topic_are_never_committed_to_the_recreated_one(
        private_broker: EmbeddedBroker, emulator: JourneyEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    refusals = CommitRefusals()
    coordinator_log = logging.getLogger("aiokafka.consumer.group_coordinator")
    coordinator_log.addHandler(refusals)
    restarted_at: list[float] = []
    # Until aiokafka has retried the old offsets against the lost topic a few times (at most 5 s).
    notice_missing_topics_only_when(
        lambda: bool(restarted_at) and (refusals.count >= 3 or time.monotonic() - restarted_at[0] > 5),
        monkeypatch)
    run = SinkRun(private_broker.bootstrap_servers, emulator, kafka={"topic_check_interval_s": 0.2})
    try:
        async with run:
            # Twenty decisions consumed; their request is answered while the broker is down, so the
            # sink has offsets of the old topic to commit when the broker comes back empty.
            emulator.faults.set(delay_s=1.5, remaining=1)
            old = await run.produce([decision(f"old-{i}", 1) for i in range(20)])
            await eventually(lambda: emulator.faults.current.remaining is None, interval_s=0.01,
                             message="the request in flight")
            await asyncio.to_thread(private_broker.stop, 0.5)
            await eventually(lambda: len(emulator.targets) == 20, message="the old decisions delivered")
            await asyncio.to_thread(private_broker.start)
            restarted_at.append(time.monotonic())

            await eventually(lambda: run.running() and run.sink is not None and run.sink.topics.missing,
                             interval_s=0.02, message="the sink notices its topics are gone")
            await eventually(lambda: run.running() and run.sink is not None and run.sink.ready(),
                             message="the sink ready again")
            committed = await run.committed()
            assert all(offset == 0 for offset in committed.values()), (
                f"offsets of the old topic {old} committed to the new, empty one: {committed}")

            ends = await run.produce([decision(f"new-{i}", 2) for i in range(20)])
            await eventually(lambda: run.running() and all(f"new-{i}" in emulator.targets for i in range(20)),
                             timeout_s=15, message="every decision of the new topic at the endpoint")
            await eventually(lambda: _committed_at(run, ends), message="the new topic's offsets committed")
    finally:
        coordinator_log.removeHandler(refusals)


async def test_an_alarm_kafka_cannot_take_does_not_hold_back_delivery(
        private_broker: EmbeddedBroker, emulator: JourneyEmulator) -> None:
    run = SinkRun(private_broker.bootstrap_servers, emulator, sink={"batch_max_entities": 5},
                  kafka={"topic_check_interval_s": 0.2})
    async with run:
        emulator.faults.set(status=503)
        await run.produce([decision(f"vq-{i}", 1) for i in range(20)])

        async def raised() -> bool:
            transitions = await run.alarms("PacingRequestsFailed")
            return bool(transitions) and transitions[-1].state == AlarmState.RAISED

        await eventually(raised, message="PacingRequestsFailed raised")
        await asyncio.to_thread(private_broker.stop, 0.5)
        # The endpoint recovers while Kafka is down: clearing the alarm cannot reach Kafka, and the
        # four batches the sink holds must not wait for it.
        emulator.faults.clear()
        started = time.monotonic()
        await eventually(lambda: run.running() and len(emulator.targets) == 20, timeout_s=10, interval_s=0.05,
                         message="all four batches delivered while Kafka is down")
        assert time.monotonic() - started < 5
        assert run.running()

        # Kafka back (empty: memory storage): the clear that waited is written, not lost.
        await asyncio.to_thread(private_broker.start)

        async def cleared() -> bool:
            run.running()
            transitions = await run.alarms("PacingRequestsFailed")
            return bool(transitions) and transitions[-1].state == AlarmState.CLEARED

        await eventually(cleared, timeout_s=20, message="PacingRequestsFailed cleared once Kafka is back")
