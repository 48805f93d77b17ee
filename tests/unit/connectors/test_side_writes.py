"""The sink's writes to Kafka beside its deliveries: queued without waiting, retried until taken, offsets held.

The real SideWrites, ledger, AlarmPublisher and Outbox; only the producer is a recording stand-in
that refuses the sends it is told to (on a broker: ``tests/integration/test_sink_kafka_outages.py``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka.structs import TopicPartition

from connectors.backoff import Backoff
from connectors.delivery import DeliveryLedger
from connectors.side_writes import SideWrites
from schemas import decode_alarm
from streams.runtime.alarm_publisher import AlarmPublisher
from streams.runtime.alarms import AlarmBoard
from streams.runtime.metrics import SinkMetrics
from streams.runtime.outbox import Outbox
from tests.unit.node_doubles import RecordingProducer

TP = TopicPartition("pacing.actiontargets", 0)
ERRORS = "pacing.actiontargets.errors"
ALARMS = "pacing.alarms"


class Refusing(RecordingProducer):
    """Refuses the next ``refuse`` sends (their deliveries fail, as Tansu's UnknownError), then records as usual."""

    def __init__(self, refuse: int = 0) -> None:
        super().__init__()
        self.refuse = refuse
        self.attempts = 0

    async def send(self, topic: str, *args: Any) -> asyncio.Future[None]:
        self.attempts += 1
        if self.refuse > 0:
            self.refuse -= 1
            delivery: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            delivery.set_exception(RuntimeError("UnknownError"))
            return delivery
        return await super().send(topic, *args)


class Parts:
    """SideWrites wired as the sink wires it, on a refusing producer."""

    def __init__(self, refuse: int = 0) -> None:
        self.producer = Refusing(refuse)
        self.ledger = DeliveryLedger()
        self.metrics = SinkMetrics()
        self.board = AlarmBoard("acme", "sink-1")
        self.writes = SideWrites(self.ledger, AlarmPublisher(self.board, ALARMS, self.metrics, self.outbox),
                                 self.outbox, Backoff(0.001, 0.004), self.metrics.kafka_writes_pending)

    def outbox(self) -> Outbox:
        return Outbox(self.producer, 1.0)

    def alarm_states(self) -> list[tuple[str, str]]:
        return [(a.name, a.state.value) for a in (decode_alarm(r.value) for r in self.producer.to(ALARMS))]


async def test_queueing_never_waits_for_kafka_and_a_refused_record_is_retried_until_taken() -> None:
    parts = Parts(refuse=3)
    parts.writes.record(ERRORS, b"vq-1", b"{}", what="error record of vq-1")  # a plain call: nothing to await
    assert parts.writes.pending == 1 and parts.producer.attempts == 0
    runner = asyncio.create_task(parts.writes.run())
    try:
        for _ in range(200):
            if not parts.writes.pending:
                break
            await asyncio.sleep(0.005)
    finally:
        runner.cancel()
    assert [r.key for r in parts.producer.to(ERRORS)] == [b"vq-1"]
    assert parts.producer.attempts == 4  # three refusals, then taken
    assert parts.metrics.registry.get_sample_value("sink_kafka_writes_pending") == 0


async def test_an_error_record_holds_its_offset_until_kafka_acknowledged_it() -> None:
    parts = Parts(refuse=1)
    parts.ledger.skip(TP, 7)  # an unreadable record, reported to the error topic
    parts.writes.record(ERRORS, b"k", b"garbage", what="error record", about=(TP, 7))
    assert parts.ledger.safe_offsets() == {TP: 7}
    assert not await parts.writes.write_queued()  # refused: still held
    assert parts.ledger.safe_offsets() == {TP: 7} and parts.writes.pending == 1
    assert await parts.writes.write_queued()
    assert parts.ledger.safe_offsets() == {TP: 8} and parts.writes.pending == 0


async def test_alarm_transitions_keep_their_order_when_one_is_retried() -> None:
    parts = Parts(refuse=1)
    parts.writes.alarm(parts.board.raise_alarm("PacingRequestsFailed", "sink:sink-1", "HTTP 503"))
    parts.writes.record(ERRORS, b"vq-1", b"{}", what="error record of vq-1")
    assert not await parts.writes.write_queued()  # the raise refused, the error record taken
    parts.writes.alarm(parts.board.clear_alarm("PacingRequestsFailed", "sink:sink-1", "ok again"))
    assert await parts.writes.write_queued()
    assert parts.alarm_states() == [("PacingRequestsFailed", "raised"), ("PacingRequestsFailed", "cleared")]
    assert len(parts.producer.to(ERRORS)) == 1  # what Kafka took is not sent twice
    assert parts.metrics.alarms.labels("PacingRequestsFailed")._value.get() == 1  # counted once, when taken


async def test_a_refused_transition_is_not_resent_after_a_later_one_of_its_alarm_was_taken() -> None:
    # Re-sending the refused raise after its clear would leave the alarm raised on the topic.
    parts = Parts(refuse=1)
    parts.writes.alarm(parts.board.raise_alarm("PacingRequestsFailed", "sink:sink-1", "HTTP 503"))
    parts.writes.alarm(parts.board.clear_alarm("PacingRequestsFailed", "sink:sink-1", "ok again"))
    assert await parts.writes.write_queued()
    assert parts.alarm_states() == [("PacingRequestsFailed", "cleared")] and parts.writes.pending == 0
    assert parts.board.raised == []


async def test_drain_writes_everything_queued() -> None:
    parts = Parts(refuse=2)
    for n in range(3):
        parts.writes.record(ERRORS, b"vq-%d" % n, b"{}", what=f"error record of vq-{n}")
    await asyncio.wait_for(parts.writes.drain(), 5)
    assert sorted(r.key for r in parts.producer.to(ERRORS)) == [b"vq-0", b"vq-1", b"vq-2"]


async def test_a_delivery_the_producer_cancels_is_a_failure_to_retry_not_the_writer_stopping() -> None:
    class Cancelling(Refusing):
        async def send(self, topic: str, *args: Any) -> asyncio.Future[None]:
            delivery: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            delivery.cancel()
            return delivery

    parts = Parts()
    parts.producer = Cancelling()
    parts.writes.record(ERRORS, b"vq-1", b"{}", what="error record of vq-1")
    assert not await parts.writes.write_queued()
    assert parts.writes.pending == 1


async def test_nothing_is_written_while_paused_for_a_topic_recreation() -> None:
    parts = Parts()
    parts.writes.pause()
    runner = asyncio.create_task(parts.writes.run())
    try:
        parts.writes.alarm(parts.board.raise_alarm("PacingTopicsMissing", "sink:sink-1", "topics missing"))
        await asyncio.sleep(0.05)
        assert parts.producer.attempts == 0 and parts.writes.pending == 1
        parts.writes.resume()
        for _ in range(100):
            if not parts.writes.pending:
                break
            await asyncio.sleep(0.005)
    finally:
        runner.cancel()
    assert parts.alarm_states() == [("PacingTopicsMissing", "raised")]
