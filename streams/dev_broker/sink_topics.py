"""The sink surviving a broker that lost its topics (Tansu restarted on memory storage).

Every ``kafka.topic_check_interval_s`` (``sink.`` overrides) :meth:`TopicRecovery.run` checks
that the sink's topics exist: a broker restarted on memory storage loses them, and the consumer
would then wait forever. When they are gone, the sink reports not ready, raises
``PacingTopicsMissing``, stops committing offsets of the old topic, and the consume loop
replaces its consumer (:meth:`TopicRecovery.restart_consumer`: the old one first stopped, then
the topics recreated, then the new one reads them from the beginning); the alarm clears once
partitions are assigned again.

Topics recreated by another process (a worker's topic watch) before the sink looks are not
missing, yet its consumer's positions belong to the old logs. On Apache Kafka a fetch past a log's
end answers OffsetOutOfRange and the consumer starts the new log again from its beginning
(:meth:`~connectors.sink_topics.SinkTopics.check_position` then forgets the old positions); Tansu
answers nothing, so the consumer would wait until the new log grew past its old position and skip
every record before. Before each fetch (:meth:`TopicRecovery.consuming`), a partition whose high
watermark lies below the sink's position starts the same recovery as missing topics.

The sink meets this class as its :class:`~connectors.sink_topics.SinkTopics`, the interface of its
consume loop; :func:`streams.dev_broker.sink.attach_to_sink` gives it to a sink off Apache Kafka.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import IllegalStateError, KafkaError
from aiokafka.structs import ConsumerRecord, TopicPartition

from connectors.commits import OffsetCommits
from connectors.delivery import DeliveryLedger
from connectors.side_writes import SideWrites
from connectors.sink_topics import SinkTopics
from streams.runtime import alarms
from streams.runtime.alarms import AlarmBoard
from streams.runtime.config import Settings
from streams.runtime.fencing import EpochFence
from streams.runtime.kafka import client_options
from streams.runtime.topics import missing_topics, repair_topics, topic_names

log = logging.getLogger(__name__)


class TopicRecovery(SinkTopics):
    """Notices lost topics and logs, recreates them and replaces the sink's consumer; the consume loop asks it when."""

    def __init__(self, settings: Settings, ledger: DeliveryLedger, commits: OffsetCommits, fence: EpochFence,
                 side_writes: SideWrites, board: AlarmBoard, scope: str,
                 new_consumer: Callable[[bool], AIOKafkaConsumer]):
        super().__init__(ledger, commits, fence)
        self.settings = settings
        self.names = topic_names(settings)
        self.side_writes = side_writes
        self.board = board
        self.scope = scope
        self._new_consumer = new_consumer  # from_beginning → a consumer of the decision topic
        self.missing: list[str] = []
        self.cluster_unreachable = False  # the last topic check got no answer
        self._resubscribe = asyncio.Event()  # the consume loop restarts its consumer when set
        self._resumed = asyncio.Event()  # set by the consume loop once the new consumer owns partitions
        self._recovery: asyncio.Task[None] | None = None  # the recovery under way

    # -- what the consume loop asks ------------------------------------------------------

    def healthy(self) -> bool:
        """The sink's topics exist and the cluster answered the last check."""
        return not self.missing and not self.cluster_unreachable

    @property
    def restart_requested(self) -> bool:
        """The topics were lost: the consume loop must call :meth:`restart_consumer` before fetching again."""
        return self._resubscribe.is_set()

    def consuming(self, consumer: AIOKafkaConsumer) -> None:
        """The consume loop's consumer before a fetch: once it owns partitions, a recovery is over; a log
        that ended below the sink's position was lost and recreated (see the module docstring)."""
        if not self._resumed.is_set() and consumer.assignment():
            self._resumed.set()
        behind = [f"{tp.topic}[{tp.partition}] went back from offset {position} to {end}"
                  for tp in sorted(consumer.assignment())
                  if (end := consumer.highwater(tp)) is not None
                  and (position := self.ledger.position(tp)) is not None and end < position]
        if behind:
            self._start_recovery(behind)

    def stale(self, batches: dict[TopicPartition, list[ConsumerRecord]], incarnation: int) -> bool:
        """True when ``batches``, fetched under ledger ``incarnation``, belong to a lost topic (dropped)."""
        if not (self._resubscribe.is_set() and self.ledger.incarnation != incarnation):
            return False
        count = sum(len(records) for records in batches.values())
        if count:  # their offsets belong to the lost topic; the new consumer reads the topic from its start
            log.warning("%d records fetched by the consumer being replaced dropped (the new one reads "
                        "the recreated topic from its beginning)", count)
        return True

    # -- the topic check -------------------------------------------------------------------

    async def run(self) -> None:
        """Notice that the sink's topics are gone (broker restarted on memory storage) and recover."""
        interval = self.settings.sink.topic_check_interval_s or self.settings.kafka.topic_check_interval_s
        own = [self.names.actiontargets, self.names.bulk_errors, self.names.alarms, self.names.metrics]
        admin: AIOKafkaAdminClient | None = None
        try:
            while True:
                await asyncio.sleep(interval)
                try:
                    if admin is None:
                        admin = AIOKafkaAdminClient(**client_options(self.settings))
                        await admin.start()
                    missing = await asyncio.wait_for(missing_topics(self.settings, own, admin=admin),
                                                     timeout=max(interval, 5.0))
                    self.cluster_unreachable = False
                    if missing or self.missing:  # the latter: a recovery interrupted before
                        self._start_recovery(missing or self.missing)
                except (KafkaError, OSError, TimeoutError) as exc:  # broker away: try again, fresh client
                    self.cluster_unreachable = True
                    log.warning("topic check failed (%s); will retry", str(exc) or type(exc).__name__)
                    if admin is not None:
                        with contextlib.suppress(Exception):
                            await admin.close()
                    admin = None
        finally:
            if self._recovery is not None:
                self._recovery.cancel()
            if admin is not None:
                with contextlib.suppress(Exception):
                    await admin.close()

    def _start_recovery(self, lost: list[str]) -> None:
        """Recover from ``lost`` unless a recovery is under way (it replaces the consumer of every partition)."""
        if self._recovery is None or self._recovery.done():
            self.missing = lost  # not ready from now on
            self._recovery = asyncio.create_task(self._recover_topics(lost), name="sink-topic-recovery")

    async def _recover_topics(self, missing: list[str]) -> None:
        """Not ready, alarm, replace the consumer (which recreates the topics); clear once partitions are assigned."""
        self.missing = missing
        log.error("topics lost: %s; recreating them", "; ".join(missing))
        # The old records and offsets are gone: keep the undelivered decisions, forget their
        # positions, and commit nothing more of the old topic (commits in flight are cancelled).
        self.commits.forget()
        self.side_writes.pause()  # until the topics exist again (resumed by restart_consumer)
        self.side_writes.alarm(self.board.raise_alarm(
            alarms.TOPICS_MISSING, self.scope,
            f"topics lost: {'; '.join(missing)} (recreated; the sink resumes once it owns partitions)",
            severity="critical", observed_value=float(len(missing)), threshold=0.0))
        self._resumed.clear()
        self._resubscribe.set()
        await self._resumed.wait()
        self.missing = []
        self.side_writes.alarm(self.board.clear_alarm(
            alarms.TOPICS_MISSING, self.scope, f"topics recreated after: {'; '.join(missing)}; consuming again"))

    # -- replacing the consumer ------------------------------------------------------------

    async def restart_consumer(self, old: AIOKafkaConsumer | None) -> AIOKafkaConsumer:
        """Replace the consumer of a lost topic: positions, assignment and group are stale.

        The old consumer is stopped before the topics are recreated: with it go its connections
        and any commit of old offsets aiokafka is still retrying, which would otherwise land on
        the new topic. The new consumer reads the new topic from its beginning.
        """
        self._resubscribe.clear()
        self.commits.use(None)
        self.fence.forget()  # the new topic's epochs start afresh
        if old is not None:
            await self._stop_replaced(old)
        await self._repair_topics()
        self.side_writes.resume()
        while True:
            consumer = self._new_consumer(True)
            try:
                await consumer.start()
                break
            except KafkaError as exc:  # the broker is still coming back
                log.warning("sink consumer restart failed (%s); retrying", exc)
                with contextlib.suppress(Exception):
                    await consumer.stop()
                await asyncio.sleep(1.0)
        self.commits.use(consumer)
        log.info("sink consumer restarted on %s", self.names.actiontargets)
        return consumer

    async def _stop_replaced(self, consumer: AIOKafkaConsumer) -> None:
        """Stop a consumer of a lost topic, whatever state its broker connections are in.

        Stopping it while its fetch of the dead broker is being torn down can raise a
        CancelledError from inside aiokafka (seen with short fetch waits): that one is not a
        request to stop the sink, so only a cancellation of this task itself goes on.
        """
        try:
            await asyncio.wait_for(consumer.stop(), timeout=self.settings.kafka.session_timeout_s)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            log.warning("stopping the replaced consumer was cancelled inside the client; it is dropped")
        except Exception as exc:
            log.warning("stopping the replaced consumer failed (%s); it is dropped", str(exc) or type(exc).__name__)

    async def _repair_topics(self) -> None:
        """Recreate the lost topics (and those auto-created with the wrong partitions), retrying until done."""
        while True:
            try:
                await repair_topics(self.settings)  # also those a producer auto-created with the wrong partitions
                return
            except (KafkaError, OSError) as exc:  # the broker is still coming back
                log.warning("recreating topics failed (%s); retrying", str(exc) or type(exc).__name__)
                await asyncio.sleep(1.0)

    async def start_from_beginning(self, consumer: AIOKafkaConsumer, partitions: set[TopicPartition]) -> None:
        """Read a recreated topic from its beginning, whatever the group committed there.

        A commit of the old topic's offsets may have reached the new one (another sink of the
        group, or one made before this sink noticed the loss): starting there would skip the new
        topic's first records. The beginning is also booked in the ledger, so the next commit
        overwrites such an offset even on a partition that stays empty.
        """
        try:
            await consumer.seek_to_beginning(*partitions)
            for tp in partitions:
                self.ledger.start_at(tp, await consumer.position(tp))
        except (KafkaError, IllegalStateError) as exc:
            log.warning("could not start %s at its beginning (%s); it resumes at the committed offsets",
                        sorted(tp.partition for tp in partitions), exc)
