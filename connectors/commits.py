"""The sink's offset commits: only what the ledger calls safe, and never an offset of a topic that is gone.

A broker restarted on memory storage loses every topic, and the group's offsets with them.
aiokafka retries a commit whose topic is unknown (``UnknownTopicOrPartition``) until the topic
exists again — so offsets consumed from the old topic would land on the recreated one, and the
next consumer would start past its first records. Hence:

- every commit is tagged with the ledger's *incarnation* and made through a consumer of that
  incarnation; an attempt still running when the topic turns out to be recreated is cancelled
  (:meth:`OffsetCommits.forget`), and its offsets are not recorded as committed;
- an attempt is bounded in time (``timeout_s``): aiokafka's retries never carry old offsets
  across an outage; the next commit recomputes them from the ledger.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from connectors.delivery import DeliveryLedger
from streams.runtime.metrics import SinkMetrics

log = logging.getLogger(__name__)


class OffsetCommits:
    """Commits the ledger's safe offsets through the current consumer, one incarnation of the topic at a time."""

    def __init__(self, ledger: DeliveryLedger, metrics: SinkMetrics, timeout_s: float):
        self._ledger = ledger
        self._metrics = metrics
        self._timeout_s = timeout_s
        self._consumer: AIOKafkaConsumer | None = None
        self._incarnation = ledger.incarnation  # the ledger incarnation the consumer reads
        self._committed: dict[TopicPartition, int] = {}
        self._attempts: set[asyncio.Future[None]] = set()

    def use(self, consumer: AIOKafkaConsumer | None) -> None:
        """Commit through ``consumer`` (None: commit nothing); it reads the topic as the ledger now knows it."""
        self._consumer = consumer
        self._incarnation = self._ledger.incarnation

    def committed(self, tp: TopicPartition) -> int | None:
        """The offset last committed on ``tp`` in this incarnation, if any."""
        return self._committed.get(tp)

    def forget(self, partitions: Iterable[TopicPartition] | None = None) -> None:
        """The topic was recreated under these partitions (None: all of them, the consumer to be replaced).

        The ledger forgets their positions (a new incarnation), commits in flight are cancelled,
        and nothing is committed until :meth:`use` names a consumer of the new topic — except
        for a partial reset, noticed by the current consumer reading the new topic already.
        """
        partitions = None if partitions is None else list(partitions)
        self._ledger.reset_positions(partitions)
        if partitions is None:
            self._committed.clear()
        else:
            for tp in partitions:
                self._committed.pop(tp, None)
            self._incarnation = self._ledger.incarnation
        for attempt in list(self._attempts):
            attempt.cancel()

    async def commit(self, only: set[TopicPartition] | None = None) -> None:
        """Commit every owned partition's safe offset that moved since the last commit (``only``: of these)."""
        consumer = self._consumer
        incarnation = self._ledger.incarnation
        if consumer is None or incarnation != self._incarnation:
            return  # no consumer, or one of a topic that is gone
        owned = consumer.assignment()
        offsets = {
            tp: offset for tp, offset in self._ledger.safe_offsets().items()
            if tp in owned and (only is None or tp in only) and self._committed.get(tp) != offset
        }
        if offsets and await self._attempt(consumer, offsets) and self._ledger.incarnation == incarnation:
            self._committed.update(offsets)
            self._metrics.committed.inc()

    async def _attempt(self, consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> bool:
        """One bounded, cancellable commit; True when the broker took it."""
        attempt = asyncio.ensure_future(consumer.commit(offsets))
        self._attempts.add(attempt)
        try:
            done, _ = await asyncio.wait({attempt}, timeout=self._timeout_s)
        except asyncio.CancelledError:
            attempt.cancel()
            raise
        finally:
            self._attempts.discard(attempt)
        if not done:
            attempt.cancel()
            log.warning("offset commit not done within %.0fs; the next one recomputes it", self._timeout_s)
            return False
        if attempt.cancelled():
            log.info("offset commit abandoned: the topic was recreated, its offsets are not committed")
            return False
        failure = attempt.exception()
        if isinstance(failure, KafkaError):  # e.g. a rebalance in progress: the next commit catches up
            log.warning("offset commit failed (%s); will retry", failure)
            return False
        if failure is not None:
            raise failure
        return True
