"""What the sink's consume loop asks about its topics, answered as on Apache Kafka: they stay.

A running sink's topics are not lost on Apache Kafka (persistent, replicated storage), so there is
nothing to watch and no consumer to replace: :class:`SinkTopics` is always healthy and never asks
for a restart. One thing can still happen on any broker: an operator deletes the decision topic and
creates it again. The topic then drops out of the consumer's assignment and comes back at its next
metadata refresh (``METADATA_MAX_AGE_MS`` in :mod:`connectors.sink`); a fetch past the new log's end
is answered with OffsetOutOfRange, and the consumer starts the log again from its beginning. Where
the consumer reads the new log below the offsets it had reached, :meth:`SinkTopics.check_position`
makes the sink forget that partition's old positions, so that no offset computed for the old topic
is committed to the new one.

The embedded development broker (Tansu) loses every topic when it restarts; its sink gets
:class:`streams.dev_broker.sink_topics.TopicRecovery` instead (attached by ``pacing sink``), which
also notices lost topics, recreates them and replaces the consumer.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord, TopicPartition

from connectors.commits import OffsetCommits
from connectors.delivery import DeliveryLedger
from streams.runtime.fencing import EpochFence

log = logging.getLogger(__name__)


class SinkTopics:
    """The sink's topics as the consume loop sees them; on Apache Kafka they stay (see the module docstring)."""

    def __init__(self, ledger: DeliveryLedger, commits: OffsetCommits, fence: EpochFence):
        self.ledger = ledger
        self.commits = commits
        self.fence = fence

    def healthy(self) -> bool:
        """The sink's topics exist (as far as this object watches them)."""
        return True

    @property
    def restart_requested(self) -> bool:
        """True when the consume loop must call :meth:`restart_consumer` before fetching again."""
        return False

    def consuming(self, consumer: AIOKafkaConsumer) -> None:
        """Told before each fetch of the consume loop's consumer."""

    def stale(self, batches: dict[TopicPartition, list[ConsumerRecord]], incarnation: int) -> bool:
        """True when ``batches``, fetched under ledger ``incarnation``, belong to a lost topic (dropped)."""
        return False

    def check_position(self, tp: TopicPartition, offset: int) -> None:
        """Before a record is booked: a log that went backwards was recreated under the consumer."""
        position = self.ledger.position(tp)
        if position is not None and offset < position:
            # Old positions would commit offsets past records of the new topic.
            log.warning("%s went back from offset %d to %d: topic recreated; forgetting its old positions",
                        tp, position, offset)
            self.commits.forget([tp])
            self.fence.forget()  # epochs of the lost topic say nothing about the new one

    async def run(self) -> None:
        """The sink's task for its topics: nothing to watch here, so it waits until the sink stops."""
        await asyncio.Event().wait()

    async def restart_consumer(self, old: AIOKafkaConsumer | None) -> AIOKafkaConsumer:
        """Never asked here (:attr:`restart_requested` stays false)."""
        raise NotImplementedError("the topics stay: nothing replaces the consumer")

    async def start_from_beginning(self, consumer: AIOKafkaConsumer, partitions: set[TopicPartition]) -> None:
        """Never asked here: only a consumer that :meth:`restart_consumer` made starts at the beginning."""
        raise NotImplementedError("the topics stay: no consumer starts from the beginning")
