"""What a bulk sink gets for the dev broker: a topic recovery on Tansu, the plain topics on Apache Kafka.

The sink is the production one (:class:`connectors.sink.BulkSink`), never started; the broker kind
is configured, or the question to the cluster answered by the test (``questions``).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.structs import TopicPartition

from connectors.sink import BulkSink
from connectors.sink_topics import SinkTopics
from streams.dev_broker import attach_to_sink
from streams.dev_broker.sink_topics import TopicRecovery
from streams.runtime.config import load_settings


def _sink(**kafka: Any) -> BulkSink:
    return BulkSink(load_settings(kafka={"bootstrap_servers": "127.0.0.1:1", **kafka}))


async def test_a_sink_configured_for_apache_kafka_gets_no_dev_broker_hook_and_asks_nothing(
        questions: list[str]) -> None:
    sink = _sink(broker_kind="kafka")
    assert await attach_to_sink(sink) is None
    assert type(sink.topics) is SinkTopics and questions == []
    # Nothing to watch: the topics' task waits (a task that ended would stop the sink), always healthy.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(sink.topics.run(), 0.1)
    assert sink.topics.healthy() and not sink.topics.restart_requested


async def test_auto_asks_once_and_a_sink_on_tansu_gets_the_topic_recovery(
        questions: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    sink = _sink(broker_kind="tansu")
    recovery = await attach_to_sink(sink)
    assert isinstance(recovery, TopicRecovery) and sink.topics is recovery and questions == []
    on_kafka = _sink()  # auto: the cluster answers "kafka"
    assert await attach_to_sink(on_kafka) is None and questions == ["127.0.0.1:1"]


class _Consumer:
    """What TopicRecovery reads of the consume loop's consumer: its assignment and high watermarks."""

    def __init__(self, highwaters: dict[TopicPartition, int]):
        self.highwaters = highwaters

    def assignment(self) -> set[TopicPartition]:
        return set(self.highwaters)

    def highwater(self, tp: TopicPartition) -> int | None:
        return self.highwaters.get(tp)


async def test_a_log_that_ends_below_the_sinks_position_starts_the_recovery(questions: list[str]) -> None:
    # Tansu answers a fetch past the end of a recreated log with nothing: the high watermark is the sign.
    sink = _sink(broker_kind="tansu")
    recovery = await attach_to_sink(sink)
    assert recovery is not None
    tp = TopicPartition(sink.names.actiontargets, 0)
    for offset in range(20):
        sink.ledger.skip(tp, offset)  # consumed up to offset 20
    recovery.consuming(_Consumer({tp: 20}))
    assert recovery.healthy() and not recovery.restart_requested
    recovery.consuming(_Consumer({tp: 3}))  # the topic was recreated: its log ends at 3
    assert not recovery.healthy()
    await asyncio.sleep(0)  # the recovery task starts
    assert recovery.restart_requested and sink.ledger.position(tp) is None  # old positions forgotten
    assert "went back from offset 20 to 3" in recovery.missing[0]
    recovery.consuming(_Consumer({tp: 3}))  # one recovery at a time
    if recovery._recovery is not None:
        recovery._recovery.cancel()
