"""The pieces the pacing node and the sink share (streams/runtime): one behaviour, written once."""

from __future__ import annotations

import asyncio
from typing import Any

from schemas import AlarmState, decode_alarm
from streams.runtime.alarm_publisher import AlarmPublisher
from streams.runtime.alarms import AlarmBoard
from streams.runtime.config import MetricsSettings
from streams.runtime.dead_letters import dead_letter_headers
from streams.runtime.metrics import NodeMetrics, SinkMetrics, record_lag
from streams.runtime.outbox import AIOKafkaTransport, Outbox
from streams.runtime.process_health import ProcessHealth


def test_dead_letter_headers_name_the_reason_and_the_source() -> None:
    assert dead_letter_headers("bad value", "malformed_json", "pacing.stats", 3, 41) == [
        ("error", b"bad value"), ("error.class", b"malformed_json"), ("source.topic", b"pacing.stats"),
        ("source.partition", b"3"), ("source.offset", b"41")]
    assert dead_letter_headers("bad", "empty", "t", 0, 7, index=2)[-1] == ("source.index", b"2")


def _lag(metrics: NodeMetrics | SinkMetrics) -> dict[str, float]:
    return {sample.labels["partition"]: sample.value
            for family in metrics.lag.collect() for sample in family.samples}


def test_lag_is_reported_per_owned_partition_and_forgotten_when_no_longer_owned() -> None:
    metrics = SinkMetrics()
    record_lag(metrics.lag, [(0, 100, 40), (1, 10, 12), (2, None, 5), (3, 9, None)])
    assert _lag(metrics) == {"0": 60.0, "1": 0.0}  # never negative; unknown ends are left out
    record_lag(metrics.lag, [(1, 20, 12)])
    assert _lag(metrics) == {"1": 8.0}


def test_a_health_round_records_the_gauges_and_returns_the_transitions() -> None:
    metrics = NodeMetrics()
    watch = ProcessHealth(MetricsSettings(HeapMemoryUsage={"threshold": 0.001}), AlarmBoard("acme", "n1"))
    transitions = [decode_alarm(m.value) for m in watch.observe(metrics)]
    assert [(a.name, a.state) for a in transitions] == [("HeapMemoryUsage", AlarmState.RAISED)]
    assert metrics.memory._value.get() > 0.001


class _Producer:
    """An aiokafka producer's ``send``: records the call, returns a delivery future (or fails it)."""

    def __init__(self, fail: bool = False):
        self.calls: list[dict[str, Any]] = []
        self.fail = fail

    async def send(self, topic: str, **kwargs: Any) -> asyncio.Future[None]:
        self.calls.append({"topic": topic, **kwargs})
        delivery: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.fail:
            delivery.set_exception(ConnectionError("broker gone"))
        else:
            delivery.set_result(None)
        return delivery


async def test_the_sink_publishes_alarms_through_the_same_publisher_as_the_node() -> None:
    producer = _Producer()
    metrics = SinkMetrics()
    board = AlarmBoard("acme", "sink-1")
    publisher = AlarmPublisher(board, "pacing.alarms", metrics,
                               lambda: Outbox(AIOKafkaTransport(producer), 5.0))  # type: ignore[arg-type]
    raised = board.raise_alarm("PacingRequestsFailed", "sink:sink-1", "HTTP 503")
    assert await publisher.publish_now(raised)
    assert producer.calls == [{"topic": "pacing.alarms", "value": raised.value, "key": raised.key,
                               "partition": None, "timestamp_ms": None, "headers": None}]
    assert metrics.alarms.labels("PacingRequestsFailed")._value.get() == 1


async def test_an_alarm_kafka_did_not_take_is_undone_and_raised_again_later() -> None:
    producer = _Producer(fail=True)
    board = AlarmBoard("acme", "sink-1")
    publisher = AlarmPublisher(board, "pacing.alarms", SinkMetrics(),
                               lambda: Outbox(AIOKafkaTransport(producer), 5.0))  # type: ignore[arg-type]
    assert not await publisher.publish_now(board.raise_alarm("PacingRequestsFailed", "sink:sink-1", "HTTP 503"))
    assert board.raised == []  # not published, so not raised: the next failure raises it again
    assert board.raise_alarm("PacingRequestsFailed", "sink:sink-1", "HTTP 503") is not None
