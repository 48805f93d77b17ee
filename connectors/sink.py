"""The bulk sink: pacing decisions from Kafka to ``POST …/actiontargets/bulk``, committed only once delivered.

:class:`BulkSink` is the consuming, committing loop around the endpoint's contract. Its tasks
share one :class:`~connectors.delivery.DeliveryLedger`, the single source of what may be
committed:

- *consume* reads ``pacing.actiontargets`` in its own consumer group and books each record
  (:class:`~connectors.intake.SinkIntake`: the latest decision per target, undeliverable ones
  to the error topic);
- *send* (:class:`~connectors.send_loop.SendLoop`) takes batches by count, bytes and linger
  time (plus a periodic full refresh), hands them to the
  :class:`~connectors.target_writer.ActionTargetWriter` — ``write(batch)`` → applied, rejected
  or retry later, per entity — and has :class:`~connectors.settlement.Settlement` book the
  outcomes (ledger, error topic, alarms), retrying with exponential backoff and full jitter,
  never sooner than ``Retry-After``;
- *commit* commits (:mod:`connectors.commits`), every ``commit_interval_s`` and on revocation,
  only offsets whose records are all delivered and whose error records are on the broker —
  at-least-once: a crash re-sends, never skips (upserts are idempotent);
- *topics* (:class:`~connectors.sink_topics.SinkTopics`) is what the consume loop asks about its
  topics; on Apache Kafka they stay. On the embedded dev broker, which loses them when it
  restarts, ``pacing sink`` attaches :class:`streams.dev_broker.sink_topics.TopicRecovery` instead
  (:func:`run_sink`'s ``dev_broker``), which notices lost topics and has the consume loop replace
  its consumer.

Nothing the sink writes to Kafka — error records, alarms, metrics — is awaited by those loops:
:mod:`connectors.side_writes` queues and retries them in a task of its own, so Kafka being
away neither blocks delivery nor ends the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable

import aiohttp
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.structs import TopicPartition

from connectors.backoff import Backoff
from connectors.commits import OffsetCommits
from connectors.delivery import DeliveryLedger
from connectors.fence_log import learn_fence
from connectors.intake import SinkIntake
from connectors.journey_client import JourneyClient
from connectors.send_loop import SendLoop
from connectors.settlement import Settlement
from connectors.side_writes import SideWrites
from connectors.sink_topics import SinkTopics
from connectors.target_writer import ActionTargetWriter
from streams.runtime.alarm_publisher import AlarmPublisher
from streams.runtime.alarms import AlarmBoard
from streams.runtime.config import Settings
from streams.runtime.fencing import EpochFence
from streams.runtime.kafka import client_options, consumer_options
from streams.runtime.metrics import SinkMetrics, record_lag, start_metrics_server
from streams.runtime.metrics_reporter import run_reporters
from streams.runtime.outbox import AIOKafkaTransport, Outbox
from streams.runtime.process_health import ProcessHealth
from streams.runtime.topics import ensure_topics, topic_names

log = logging.getLogger(__name__)

# How long Kafka has to acknowledge one attempt at the sink's own records (the node's default send timeout).
KAFKA_WRITE_TIMEOUT_S = 30.0
# How long a stopping sink keeps trying to write the records it still has queued.
STOP_WRITE_GRACE_S = 5.0
# How often the consumer refreshes the cluster's metadata (aiokafka's default: 5 minutes). A decision
# topic deleted and created again -- by an operator, on any broker -- drops out of the assignment
# and is consumed again only once the consumer's metadata shows it: within this (measured on Apache
# Kafka: every record of the new topic delivered, tests/integration/test_sink_recreated_topics.py).
METADATA_MAX_AGE_MS = 5_000


class _Rebalance(ConsumerRebalanceListener):
    """Commits what is safe before partitions go; a consumer of a recreated topic starts at its beginning.

    One listener per consumer: the partitions whose log below the commit was read back into
    the fence (``fenced``) are those of this consumer; a replacing consumer starts afresh.
    """

    def __init__(self, sink: BulkSink, consumer: AIOKafkaConsumer, from_beginning: bool):
        self.sink = sink
        self.consumer = consumer
        self.from_beginning = from_beginning
        self.fenced: set[TopicPartition] = set()

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        revoked = list(revoked)
        try:
            await self.sink.commit(only=set(revoked))
        finally:
            self.sink.ledger.revoke(revoked)
            self.sink.settlement.forget_rejected(set(revoked))

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        assigned = set(assigned)
        log.info("sink assigned %s", sorted(tp.partition for tp in assigned))
        if self.from_beginning and assigned:
            self.from_beginning = False  # later assignments: what this incarnation committed is right
            await self.sink.topics.start_from_beginning(self.consumer, assigned)
        else:
            await self._learn_fence(assigned)

    async def _learn_fence(self, assigned: set[TopicPartition]) -> None:
        """Read newly assigned partitions back to their committed offsets into the fence (connectors.fence_log)."""
        new = assigned - self.fenced
        self.fenced = set(assigned)
        if not new:
            return
        try:
            committed = {tp: await self.consumer.committed(tp) for tp in new}
            await learn_fence(self.sink.settings, self.sink.fence, {tp: end for tp, end in committed.items() if end})
        except Exception as exc:  # the fence then starts at the committed offsets: logged, not fatal
            log.warning("could not read the decisions below the committed offsets back into the fence: %s: %s",
                        type(exc).__name__, exc)


class BulkSink:
    """One sink process (several may run: they share the consumer group): wires the parts and runs the loops."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.names = topic_names(settings)
        self.ledger = DeliveryLedger()
        self.fence = EpochFence()  # decisions of an older owner than one applied are dropped
        self.metrics = SinkMetrics()
        self.board = AlarmBoard(settings.tenant, settings.node_id)
        self.scope = f"sink:{settings.node_id}"  # several sinks: each raises and clears its own
        self.commits = OffsetCommits(self.ledger, self.metrics, timeout_s=settings.kafka.session_timeout_s)
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self.health = ProcessHealth(settings.metrics, self.board)
        self.side_writes = SideWrites(
            self.ledger, AlarmPublisher(self.board, self.names.alarms, self.metrics, self._new_outbox),
            self._new_outbox, Backoff(settings.sink.retry_initial_backoff_s, settings.sink.retry_max_backoff_s),
            self.metrics.kafka_writes_pending)
        self.settlement = Settlement(self.ledger, self.metrics, self.side_writes, self.board, self.scope,
                                     errors_topic=self.names.bulk_errors, bulk_url=settings.bulk_url)
        self.sending = SendLoop(settings.sink, self.ledger, self.settlement, self.metrics)
        self.intake = SinkIntake(settings.tenant, self.ledger, self.fence, self.metrics, self.side_writes,
                                 errors_topic=self.names.bulk_errors, on_pending=self.sending.note_pending)
        #: What the consume loop asks about its topics (replaced before the sink runs on the dev broker).
        self.topics = SinkTopics(self.ledger, self.commits, self.fence)

    def ready(self) -> bool:
        """Ready (``/readyz``): the consumer owns partitions, the cluster answers and the sink's topics exist."""
        return bool(self._consumer and self._consumer.assignment()) and self.topics.healthy()

    def new_consumer(self, from_beginning: bool = False) -> AIOKafkaConsumer:
        """A consumer of the decision topic; ``from_beginning``: the topic was recreated, ignore committed offsets."""
        kafka = self.settings.kafka
        consumer = AIOKafkaConsumer(
            group_id=self.settings.sink.group_id, enable_auto_commit=False,
            auto_offset_reset="earliest", session_timeout_ms=int(kafka.session_timeout_s * 1000),
            rebalance_timeout_ms=int(kafka.rebalance_timeout_s * 1000),
            heartbeat_interval_ms=int(kafka.heartbeat_interval_s * 1000), metadata_max_age_ms=METADATA_MAX_AGE_MS,
            **consumer_options(self.settings),
        )
        consumer.subscribe([self.names.actiontargets], listener=_Rebalance(self, consumer, from_beginning))
        return consumer

    # -- lifecycle ----------------------------------------------------------------------

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Run until ``stop`` is set (or forever); commits what is safe on the way out."""
        stop = stop or asyncio.Event()
        await ensure_topics(self.settings)
        options = client_options(self.settings)
        self._consumer = self.new_consumer()
        self._producer = AIOKafkaProducer(acks="all", **options)
        await self._producer.start()
        await self._consumer.start()
        self.commits.use(self._consumer)
        web = None
        if self.settings.sink.web_port:
            web = await start_metrics_server(self.metrics.registry, "0.0.0.0", self.settings.sink.web_port, self.ready)
        session = aiohttp.ClientSession()
        writer = ActionTargetWriter(JourneyClient(self.settings.sink, session, auth_url=self.settings.base_auth_url,
                                                  bulk_url=self.settings.bulk_url))
        tasks = [
            asyncio.create_task(self._consume_loop(), name="sink-consume"),
            asyncio.create_task(self.sending.run(writer), name="sink-send"),
            asyncio.create_task(self._commit_loop(), name="sink-commit"),
            asyncio.create_task(self._health_loop(), name="sink-health"),
            asyncio.create_task(self.topics.run(), name="sink-topics"),
            asyncio.create_task(self.side_writes.run(), name="sink-kafka-writes"),
            asyncio.create_task(run_reporters(self.settings, "sink", self.metrics.registry, self._publish_metrics),
                                name="sink-reporters"),
        ]
        self.health.install()
        log.info("sink posting to %s", self.settings.bulk_url)
        stopping = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait([*tasks, stopping], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task in tasks and task.cancelled():  # nobody cancels them but this method
                    raise RuntimeError(f"the sink's {task.get_name()} task was cancelled from inside")
                if task in tasks and task.exception():
                    raise task.exception()  # type: ignore[misc]
        finally:
            stopping.cancel()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            with contextlib.suppress(TimeoutError):  # what is still queued: its offsets stay uncommitted
                await asyncio.wait_for(self.side_writes.drain(), STOP_WRITE_GRACE_S)
            with contextlib.suppress(Exception):
                await self.commit()
            self.health.uninstall()
            await session.close()
            if self._consumer is not None:
                await self._consumer.stop()
            await self._producer.stop()
            if web is not None:
                await web.cleanup()

    # -- consume ------------------------------------------------------------------------

    async def _consume_loop(self) -> None:
        while True:
            if self.topics.restart_requested:
                old, self._consumer = self._consumer, None
                self._consumer = await self.topics.restart_consumer(old)
            assert self._consumer is not None
            self.topics.consuming(self._consumer)
            incarnation = self.ledger.incarnation
            batches = await self._consumer.getmany(timeout_ms=200, max_records=5000)
            if self.topics.stale(batches, incarnation):
                continue
            for tp, records in batches.items():
                for record in records:
                    self.topics.check_position(tp, record.offset)
                    self.intake.book(tp, record.offset, record.key, record.value)
            if batches:
                self.metrics.pending.set(self.ledger.pending_count)
                self.sending.wake()
            self._observe_lag()

    def _observe_lag(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        consumed = self.ledger.consumed_offsets()
        record_lag(self.metrics.lag, [
            (tp.partition, consumer.highwater(tp), consumed.get(tp, self.commits.committed(tp) or 0))
            for tp in consumer.assignment()
        ])

    # -- Kafka side writes, health ------------------------------------------------------

    def _new_outbox(self) -> Outbox:
        assert self._producer is not None
        return Outbox(AIOKafkaTransport(self._producer), KAFKA_WRITE_TIMEOUT_S)

    async def _publish_metrics(self, key: bytes, value: bytes) -> None:
        """A metrics snapshot (the messageServer reporter) goes out like the other records: queued."""
        self.side_writes.record(self.names.metrics, key, value, what="metrics snapshot")

    async def _health_loop(self, interval_s: float = 10.0) -> None:
        while True:
            await asyncio.sleep(interval_s)
            for message in self.health.observe(self.metrics):
                self.side_writes.alarm(message)

    # -- commit -------------------------------------------------------------------------

    async def _commit_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.sink.commit_interval_s)
            await self.commit()

    async def commit(self, only: set[TopicPartition] | None = None) -> None:
        """Commit every owned partition's safe offset that moved since the last commit (``only``: of these)."""
        await self.commits.commit(only)


def run_sink(settings: Settings, *, dev_broker: Callable[[BulkSink], Awaitable[object]] | None = None) -> None:
    """Run the sink until SIGINT/SIGTERM.

    ``dev_broker`` attaches the embedded broker's workaround to the sink before it runs (``pacing sink``
    passes :func:`streams.dev_broker.attach_to_sink`, which attaches nothing on Apache Kafka).
    """
    import signal

    from streams.runtime.collector import tune_for_long_running_service

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        sink = BulkSink(settings)
        if dev_broker is not None:
            await dev_broker(sink)
        tune_for_long_running_service()
        await sink.run(stop)

    asyncio.run(main())
