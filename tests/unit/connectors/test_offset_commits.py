"""Offset commits: what the ledger calls safe, bounded in time, and never an offset of a topic that is gone.

The real OffsetCommits and ledger; the consumer is a stand-in whose commit answers, fails or hangs
as told — a hanging commit is aiokafka retrying a commit whose topic the broker no longer knows.
On a broker: ``tests/integration/test_sink_kafka_outages.py``.
"""

from __future__ import annotations

import asyncio

from aiokafka.errors import CommitFailedError
from aiokafka.structs import TopicPartition

from connectors.commits import OffsetCommits
from connectors.delivery import DeliveryLedger
from streams.runtime.metrics import SinkMetrics

P0 = TopicPartition("pacing.actiontargets", 0)
P1 = TopicPartition("pacing.actiontargets", 1)


class Consumer:
    """Owns P0 and P1; keeps what was committed; ``hang`` holds commits until released, ``fail`` refuses them."""

    def __init__(self, hang: bool = False, fail: bool = False) -> None:
        self.hang = hang
        self.fail = fail
        self.committed: list[dict[TopicPartition, int]] = []
        self.release = asyncio.Event()
        self.started = asyncio.Event()

    def assignment(self) -> set[TopicPartition]:
        return {P0, P1}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.started.set()
        if self.hang:
            await self.release.wait()
        if self.fail:
            raise CommitFailedError("rebalanced")
        self.committed.append(dict(offsets))


def parts(consumer: Consumer, timeout_s: float = 5.0) -> tuple[DeliveryLedger, OffsetCommits]:
    ledger = DeliveryLedger()
    commits = OffsetCommits(ledger, SinkMetrics(), timeout_s)
    commits.use(consumer)  # type: ignore[arg-type]
    return ledger, commits


async def test_only_moved_safe_offsets_are_committed() -> None:
    consumer = Consumer()
    ledger, commits = parts(consumer)
    ledger.skip(P0, 4)
    await commits.commit()
    await commits.commit()  # nothing moved
    ledger.skip(P1, 0)
    await commits.commit()
    assert consumer.committed == [{P0: 5}, {P1: 1}]
    assert commits.committed(P0) == 5


async def test_a_commit_in_flight_when_the_topic_is_found_recreated_is_cancelled_and_not_recorded() -> None:
    consumer = Consumer(hang=True)
    ledger, commits = parts(consumer)
    ledger.skip(P0, 12)
    attempt = asyncio.create_task(commits.commit())
    await consumer.started.wait()
    commits.forget()  # the sink found its topics gone
    await asyncio.wait_for(attempt, 1)
    consumer.release.set()
    await asyncio.sleep(0)
    assert consumer.committed == [] and commits.committed(P0) is None
    ledger.start_at(P0, 0)
    await commits.commit()  # the old consumer reads a topic that is gone: nothing goes through it
    assert consumer.committed == []

    fresh = Consumer()
    commits.use(fresh)  # type: ignore[arg-type]
    await commits.commit()
    assert fresh.committed == [{P0: 0}]


async def test_a_partition_found_recreated_by_the_consumer_keeps_committing_through_it() -> None:
    consumer = Consumer()
    ledger, commits = parts(consumer)
    ledger.skip(P0, 40)
    ledger.skip(P1, 3)
    await commits.commit()
    commits.forget([P0])  # P0 went back to offset 0 under the consumer
    ledger.skip(P0, 0)
    await commits.commit()
    assert consumer.committed == [{P0: 41, P1: 4}, {P0: 1}]


async def test_a_commit_that_does_not_finish_in_time_is_given_up_and_redone_later() -> None:
    consumer = Consumer(hang=True)
    ledger, commits = parts(consumer, timeout_s=0.05)
    ledger.skip(P0, 0)
    await asyncio.wait_for(commits.commit(), 1)
    assert commits.committed(P0) is None
    consumer.hang = False
    await commits.commit()
    assert consumer.committed == [{P0: 1}]


async def test_a_refused_commit_is_retried_by_the_next_one() -> None:
    consumer = Consumer(fail=True)
    ledger, commits = parts(consumer)
    ledger.skip(P0, 0)
    await commits.commit()
    assert commits.committed(P0) is None
    consumer.fail = False
    await commits.commit()
    assert consumer.committed == [{P0: 1}]
