"""The bulk sink connector: pacing decisions from Kafka to ``POST …/actiontargets/bulk``.

Three loops share one :class:`DeliveryLedger`:
- *consume* reads ``pacing.actiontargets`` in its own consumer group and keeps the latest
  decision per target;
- *send* posts batches (by count, bytes and linger time, plus a periodic full refresh),
  retrying 408/429/5xx, transport errors and operator errors (wrong URL, missing permission)
  with exponential backoff and full jitter, never sooner than ``Retry-After``; a 413 splits the
  batch; only 400/422 discard what was sent (to the error topic); it raises/clears the alarms;
- *commit* commits (:mod:`connectors.commits`), every ``commit_interval_s`` and on revocation,
  only offsets whose records are all delivered and whose error records are on the broker —
  at-least-once: a crash re-sends, never skips (upserts are idempotent).

Nothing the sink writes to Kafka — error records, alarms, metrics — is awaited by those loops:
:mod:`connectors.side_writes` queues and retries them in a task of its own, so Kafka being
away neither blocks delivery nor ends the process.

Another loop checks every ``kafka.topic_check_interval_s`` (``sink.`` overrides) that its topics exist: a
broker restarted on memory storage loses them, and the consumer would then wait forever. It
reports not ready, raises ``PacingTopicsMissing``, stops committing offsets of the old topic,
replaces the consumer (the old one first stopped, then the topics recreated, then the new one
reads them from the beginning) and clears the alarm once partitions are assigned again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Iterable
from typing import Any

import aiohttp
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import IllegalStateError, KafkaError
from aiokafka.structs import TopicPartition

from connectors.backoff import MAX_RETRY_AFTER_S, Backoff
from connectors.commits import OffsetCommits
from connectors.delivery import DeliveryLedger, Pending
from connectors.entities import action_target
from connectors.fence_log import learn_fence
from connectors.journey_client import (
    Delivered,
    InvalidResponse,
    JourneyClient,
    OperatorError,
    Outcome,
    PayloadTooLarge,
    RequestRejected,
    RetriableFailure,
)
from connectors.side_writes import SideWrites
from schemas import DecodeCategory, DecodeError, decode_decision
from streams.runtime import alarms
from streams.runtime.alarm_publisher import AlarmPublisher
from streams.runtime.alarms import AlarmBoard, AlarmMessage
from streams.runtime.config import Settings
from streams.runtime.dead_letters import dead_letter_headers
from streams.runtime.fencing import EpochFence
from streams.runtime.kafka import client_options, consumer_options
from streams.runtime.metrics import RejectReason, SinkMetrics, SinkOutcome, record_lag, start_metrics_server
from streams.runtime.metrics_reporter import run_reporters
from streams.runtime.outbox import AIOKafkaTransport, Outbox
from streams.runtime.process_health import ProcessHealth
from streams.runtime.topics import ensure_topics, missing_topics, repair_topics, topic_names

log = logging.getLogger(__name__)

# How long Kafka has to acknowledge one attempt at the sink's own records (the node's default send timeout).
KAFKA_WRITE_TIMEOUT_S = 30.0
# How long a stopping sink keeps trying to write the records it still has queued.
STOP_WRITE_GRACE_S = 5.0


class _Rebalance(ConsumerRebalanceListener):
    """Commits what is safe before partitions go; a consumer of a recreated topic starts at its beginning."""

    def __init__(self, sink: BulkSink, consumer: AIOKafkaConsumer, from_beginning: bool):
        self.sink = sink
        self.consumer = consumer
        self.from_beginning = from_beginning

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        revoked = list(revoked)
        try:
            await self.sink.commit(only=set(revoked))
        finally:
            self.sink.ledger.revoke(revoked)
            self.sink._forget_rejected(set(revoked))

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        assigned = set(assigned)
        log.info("sink assigned %s", sorted(tp.partition for tp in assigned))
        if self.from_beginning and assigned:
            self.from_beginning = False  # later assignments: what this incarnation committed is right
            await self.sink._start_from_beginning(self.consumer, assigned)
        else:
            await self.sink._learn_fence(self.consumer, assigned)


class BulkSink:
    """One sink process (several may run: they share the consumer group)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.names = topic_names(settings)
        self.ledger = DeliveryLedger()
        self.fence = EpochFence()  # decisions of an older owner than one applied are dropped
        self._fenced_partitions: set[TopicPartition] = set()  # whose log below the commit was read back
        self.metrics = SinkMetrics()
        self.board = AlarmBoard(settings.tenant, settings.node_id)
        self.scope = f"sink:{settings.node_id}"  # several sinks: each raises and clears its own
        self._wake = asyncio.Event()
        self.commits = OffsetCommits(self.ledger, self.metrics, timeout_s=settings.kafka.session_timeout_s)
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._oldest_pending_at: float | None = None
        self._consecutive_failures = 0
        # Targets the endpoint rejected and has not accepted since (→ PacingResponseTargetError).
        self._rejected: dict[str, TopicPartition | None] = {}
        self._topics_missing: list[str] = []
        self._cluster_unreachable = False  # the last topic check got no answer
        self._resubscribe = asyncio.Event()  # the consume loop restarts its consumer when set
        self._resumed = asyncio.Event()  # set by the consume loop once the new consumer owns partitions
        self.health = ProcessHealth(settings.metrics, self.board)
        self.side_writes = SideWrites(
            self.ledger, AlarmPublisher(self.board, self.names.alarms, self.metrics, self._new_outbox),
            self._new_outbox, Backoff(settings.sink.retry_initial_backoff_s, settings.sink.retry_max_backoff_s),
            self.metrics.kafka_writes_pending)

    def ready(self) -> bool:
        """Ready (``/readyz``): the consumer owns partitions, the cluster answers and the sink's topics exist."""
        return (bool(self._consumer and self._consumer.assignment()) and not self._topics_missing
                and not self._cluster_unreachable)

    def _new_consumer(self, from_beginning: bool = False) -> AIOKafkaConsumer:
        """A consumer of the decision topic; ``from_beginning``: the topic was recreated, ignore committed offsets."""
        kafka = self.settings.kafka
        consumer = AIOKafkaConsumer(
            group_id=self.settings.sink.group_id, enable_auto_commit=False,
            auto_offset_reset="earliest", session_timeout_ms=int(kafka.session_timeout_s * 1000),
            rebalance_timeout_ms=int(kafka.rebalance_timeout_s * 1000),
            heartbeat_interval_ms=int(kafka.heartbeat_interval_s * 1000), **consumer_options(self.settings),
        )
        consumer.subscribe([self.names.actiontargets], listener=_Rebalance(self, consumer, from_beginning))
        return consumer

    # -- lifecycle ----------------------------------------------------------------------

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Run until ``stop`` is set (or forever); commits what is safe on the way out."""
        stop = stop or asyncio.Event()
        await ensure_topics(self.settings)
        options = client_options(self.settings)
        self._consumer = self._new_consumer()
        self._producer = AIOKafkaProducer(acks="all", **options)
        await self._producer.start()
        await self._consumer.start()
        self.commits.use(self._consumer)
        web = None
        if self.settings.sink.web_port:
            web = await start_metrics_server(self.metrics.registry, "0.0.0.0", self.settings.sink.web_port, self.ready)
        session = aiohttp.ClientSession()
        client = JourneyClient(self.settings, session)
        tasks = [
            asyncio.create_task(self._consume_loop(), name="sink-consume"),
            asyncio.create_task(self._send_loop(client), name="sink-send"),
            asyncio.create_task(self._commit_loop(), name="sink-commit"),
            asyncio.create_task(self._health_loop(), name="sink-health"),
            asyncio.create_task(self._topics_loop(), name="sink-topics"),
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
            if self._resubscribe.is_set():
                await self._restart_consumer()
            assert self._consumer is not None
            if not self._resumed.is_set() and self._consumer.assignment():
                self._resumed.set()
            incarnation = self.ledger.incarnation
            batches = await self._consumer.getmany(timeout_ms=200, max_records=5000)
            if self._resubscribe.is_set() and self.ledger.incarnation != incarnation:
                count = sum(len(records) for records in batches.values())
                if count:  # their offsets belong to the lost topic; the new consumer reads the topic from its start
                    log.warning("%d records fetched by the consumer being replaced dropped (the new one reads "
                                "the recreated topic from its beginning)", count)
                continue
            for tp, records in batches.items():
                for record in records:
                    problem = self._intake(tp, record.offset, record.key, record.value)
                    if problem is not None:
                        self._report_unreadable(tp, record.offset, record.key, record.value, *problem)
            if batches:
                self.metrics.pending.set(self.ledger.pending_count)
                self._wake.set()
            self._observe_lag()

    async def _restart_consumer(self) -> None:
        """Replace the consumer of a lost topic: positions, assignment and group are stale.

        The old consumer is stopped before the topics are recreated: with it go its connections
        and any commit of old offsets aiokafka is still retrying, which would otherwise land on
        the new topic. The new consumer reads the new topic from its beginning.
        """
        self._resubscribe.clear()
        old, self._consumer = self._consumer, None
        self.commits.use(None)
        self.fence.forget()  # the new topic's epochs start afresh
        self._fenced_partitions = set()
        if old is not None:
            await self._stop_replaced(old)
        await self._repair_topics()
        self.side_writes.resume()
        while True:
            consumer = self._new_consumer(from_beginning=True)
            try:
                await consumer.start()
                break
            except KafkaError as exc:  # the broker is still coming back
                log.warning("sink consumer restart failed (%s); retrying", exc)
                with contextlib.suppress(Exception):
                    await consumer.stop()
                await asyncio.sleep(1.0)
        self._consumer = consumer
        self.commits.use(consumer)
        log.info("sink consumer restarted on %s", self.names.actiontargets)

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

    async def _start_from_beginning(self, consumer: AIOKafkaConsumer, partitions: set[TopicPartition]) -> None:
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

    async def _learn_fence(self, consumer: AIOKafkaConsumer, assigned: set[TopicPartition]) -> None:
        """Read newly assigned partitions back to their committed offsets into the fence (connectors.fence_log)."""
        new = assigned - self._fenced_partitions
        self._fenced_partitions = set(assigned)
        if not new:
            return
        try:
            committed = {tp: await consumer.committed(tp) for tp in new}
            await learn_fence(self.settings, self.fence, {tp: end for tp, end in committed.items() if end})
        except Exception as exc:  # the fence then starts at the committed offsets: logged, not fatal
            log.warning("could not read the decisions below the committed offsets back into the fence: %s: %s",
                        type(exc).__name__, exc)

    def _observe_lag(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        consumed = self.ledger.consumed_offsets()
        record_lag(self.metrics.lag, [
            (tp.partition, consumer.highwater(tp), consumed.get(tp, self.commits.committed(tp) or 0))
            for tp in consumer.assignment()
        ])

    def _intake(self, tp: TopicPartition, offset: int, key: bytes | None, value: bytes | None
                ) -> tuple[RejectReason, str] | None:
        """Book one consumed record; returns why it cannot be delivered (class and detail), if it cannot."""
        self.metrics.records_in.inc()
        position = self.ledger.position(tp)
        if position is not None and offset < position:
            # The log went backwards: the topic was recreated under us (a broker that lost its
            # data). Old positions would commit offsets past records of the new topic.
            log.warning("%s went back from offset %d to %d: topic recreated; forgetting its old positions",
                        tp, position, offset)
            self.commits.forget([tp])
            self.fence.forget()  # epochs of the lost topic say nothing about the new one
        if not value:
            self.ledger.skip(tp, offset)  # a tombstone: nothing to upsert
            return None
        try:
            decision = decode_decision(value)
            if decision.tenant != self.settings.tenant:
                raise DecodeError(f"tenant {decision.tenant!r} is not served here (serves {self.settings.tenant!r})",
                                  DecodeCategory.WRONG_TENANT)
            entity = action_target(decision)
        except DecodeError as exc:
            self.ledger.skip(tp, offset)
            return RejectReason.of(exc.category), exc.reason
        except Exception as exc:  # a record that decodes but cannot become an entity
            self.ledger.skip(tp, offset)
            return RejectReason.INVALID_FIELD, f"cannot build an ActionTarget: {type(exc).__name__}: {exc}"
        if not self.fence.admit(decision.target_id, decision.owner_epoch, decision.computed_at):
            # From a worker that had lost the target's partition (paused, cut off, a late retry):
            # the newer owner's decision stays (streams.runtime.fencing).
            self.ledger.skip(tp, offset)
            self.metrics.fenced.inc()
            log.info("decision for %s from %s (epoch %d) dropped: an owner of a newer epoch published it",
                     decision.target_id, decision.node, decision.owner_epoch)
            return None
        size = len(json.dumps(entity, separators=(",", ":")))
        self.ledger.record(tp, offset, decision.target_id, entity, size)
        if self._oldest_pending_at is None:
            self._oldest_pending_at = time.monotonic()
        return None

    def _report_unreadable(
        self, tp: TopicPartition, offset: int, key: bytes | None, value: bytes, category: RejectReason, reason: str
    ) -> None:
        """An undeliverable decision record goes, as received, to the error topic with its class and reason.

        Queued, not awaited; its offset is held in the ledger until the record is on the broker.
        """
        log.error("undeliverable decision at %s@%d (key %r): %s", tp, offset, key, reason)
        self.metrics.entity_errors.inc()
        self.side_writes.record(
            self.names.bulk_errors, key, value, what=f"error record of {tp.topic}[{tp.partition}]@{offset}",
            headers=dead_letter_headers(reason, category.value, tp.topic, tp.partition, offset), about=(tp, offset))

    # -- send ---------------------------------------------------------------------------

    async def _wait_for_batch(self) -> None:
        """Until a full batch is ready, the linger time of the oldest pending record passed, or a refresh is due."""
        sink = self.settings.sink
        while True:
            now = time.monotonic()
            if now >= self._next_refresh:
                queued = self.ledger.schedule_refresh()
                self._next_refresh = now + sink.full_refresh_s
                if queued:
                    log.info("full refresh: %d targets queued", queued)
                    self._oldest_pending_at = self._oldest_pending_at or now
            ready = self.ledger.ready_count
            if ready >= sink.batch_max_entities:
                return
            if ready and self._oldest_pending_at is not None:
                wait = self._oldest_pending_at + sink.linger_ms / 1000 - now
                if wait <= 0:
                    return
            else:
                wait = self._next_refresh - now
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=max(0.01, min(wait, self._next_refresh - now)))

    async def _send_loop(self, client: JourneyClient) -> None:
        sink = self.settings.sink
        self._next_refresh = time.monotonic() + sink.full_refresh_s
        backoff = Backoff(sink.retry_initial_backoff_s, sink.retry_max_backoff_s)
        while True:
            await self._wait_for_batch()
            batch = self.ledger.take_batch(sink.batch_max_entities, sink.batch_max_bytes)
            if not batch:
                self._oldest_pending_at = None
                continue
            retry_after = await self._post(client, batch)
            self._oldest_pending_at = time.monotonic() if self.ledger.ready_count else None
            self.metrics.pending.set(self.ledger.pending_count)
            if retry_after is None:
                backoff.reset()
                continue
            # Full jitter on an exponential ceiling; the server's Retry-After is a floor.
            delay = backoff.next_delay(retry_after)
            log.warning("bulk request failed; retrying in %.1fs (%d targets pending)",
                        delay, self.ledger.pending_count)
            await asyncio.sleep(delay)

    async def _post(self, client: JourneyClient, batch: list[Pending]) -> float | None:
        """Send one batch and book the outcome; returns a retry delay floor when it must be retried.

        A 413 halves the batch and sends each half (recursively); a single entity that is still
        too large is rejected alone, to the error topic, like a per-target error. When a part
        fails otherwise, the parts not sent yet go back to the ledger for the next attempt.
        """
        started = time.monotonic()
        outcome = await client.post_bulk([p.entity for p in batch])
        self.metrics.latency.observe(time.monotonic() - started)
        if not isinstance(outcome, PayloadTooLarge) or len(batch) == 1:
            return self._settle(batch, outcome)
        self.metrics.count_request(SinkOutcome.TOO_LARGE)
        half = len(batch) // 2
        log.warning("bulk request of %d targets too large; splitting it in two", len(batch))
        retry_after = await self._post(client, batch[:half])
        if retry_after is not None:
            self.ledger.failed(batch[half:])
            return retry_after
        return await self._post(client, batch[half:])

    def _settle(self, batch: list[Pending], outcome: Outcome) -> float | None:
        """Book the outcome of one request; returns a retry delay floor when it must be retried."""
        if isinstance(outcome, RetriableFailure | OperatorError):
            # Nothing is discarded: the batch stays in the ledger, its offsets uncommitted.
            self.ledger.failed(batch)
            self.metrics.count_request(SinkOutcome.OPERATOR_ERROR if isinstance(outcome, OperatorError)
                                       else SinkOutcome.RETRIABLE_FAILURE)
            self._consecutive_failures += 1
            log.error("bulk request failed: %s", outcome.reason)
            self._alarm(self.board.raise_alarm(
                alarms.PACING_REQUESTS_FAILED, self.scope,
                f"bulk request to {self.settings.bulk_url} failed: {outcome.reason}",
                severity="critical", observed_value=float(self._consecutive_failures), threshold=1.0,
            ))
            return min(outcome.retry_after_s or 0.0, MAX_RETRY_AFTER_S)
        if isinstance(outcome, InvalidResponse):
            self.ledger.failed(batch)
            self.metrics.count_request(SinkOutcome.INVALID_RESPONSE)
            self._alarm(self.board.raise_alarm(
                alarms.PACING_RESPONSE_VALIDATION_ERROR, self.scope, outcome.reason, severity="major"))
            return 0.0
        self._consecutive_failures = 0
        self._alarm(self.board.clear_alarm(
            alarms.PACING_REQUESTS_FAILED, self.scope, "bulk requests succeed again"))
        self.metrics.batch_size.observe(len(batch))
        if isinstance(outcome, PayloadTooLarge):  # one entity alone is too large: only it is rejected
            self.metrics.count_request(SinkOutcome.TOO_LARGE)
            log.error("target %s alone is too large for the endpoint: %s", batch[0].target_id, outcome.reason)
            self._settle_results(batch, [(p, {"status": 413, "message": outcome.reason}) for p in batch])
            return None
        if isinstance(outcome, RequestRejected):
            self.metrics.count_request(SinkOutcome.REJECTED)
            log.error("bulk request rejected (%s); %d targets to the error topic", outcome.reason, len(batch))
            self._alarm(self.board.raise_alarm(
                alarms.PACING_RESPONSE_VALIDATION_ERROR, self.scope, f"request rejected: {outcome.reason}"))
            self._report_errors([(p, {"status": outcome.status, "message": outcome.reason}) for p in batch])
            self.ledger.delivered(batch, rejected=[p.target_id for p in batch])  # resending cannot succeed
            return None
        assert isinstance(outcome, Delivered)
        self.metrics.count_request(SinkOutcome.SUCCESS)
        self._alarm(self.board.clear_alarm(
            alarms.PACING_RESPONSE_VALIDATION_ERROR, self.scope, "requests and responses are valid again"))
        by_id = {p.target_id: p for p in batch}
        failures = [(by_id[r.id], r.error.model_dump() if r.error else {"message": "success false"})
                    for r in outcome.response.results if not r.success and r.id in by_id]
        self._settle_results(batch, failures)
        return None

    def _settle_results(self, batch: list[Pending], failures: list[tuple[Pending, dict[str, Any]]]) -> None:
        """The endpoint answered per target: the failures go to the error topic, the batch is done.

        ``PacingResponseTargetError`` is raised once when a target is rejected and cleared once
        when every target rejected so far has been accepted since (a newer decision of it, as
        the rejected one is never re-sent); a batch without those targets changes nothing.
        """
        self.metrics.entities_sent.inc(len(batch) - len(failures))
        failed = {pending.target_id for pending, _ in failures}
        for pending in batch:
            if pending.target_id not in failed:
                self._rejected.pop(pending.target_id, None)
        for pending, _ in failures:
            self._rejected[pending.target_id] = pending.tp
        if failures:
            self.metrics.entity_errors.inc(len(failures))
            self._report_errors(failures)
            self._alarm(self.board.raise_alarm(
                alarms.PACING_RESPONSE_TARGET_ERROR, self.scope,
                f"{len(failures)} of {len(batch)} targets rejected, e.g. {failures[0][0].target_id}: "
                f"{failures[0][1].get('message')}", observed_value=float(len(self._rejected)), threshold=0.0))
        elif not self._rejected:
            self._alarm(self.board.clear_alarm(
                alarms.PACING_RESPONSE_TARGET_ERROR, self.scope, "every rejected target has been accepted since"))
        log.info("bulk request delivered %d targets (%d rejected)", len(batch), len(failures))
        self.ledger.delivered(batch, rejected=list(failed))

    def _forget_rejected(self, revoked: set[TopicPartition]) -> None:
        """Targets of partitions handed to another sink are its concern now; clear if none is left."""
        if not revoked or not self._rejected:
            return
        for target_id in [t for t, tp in self._rejected.items() if tp in revoked]:
            del self._rejected[target_id]
        if not self._rejected:
            self._alarm(self.board.clear_alarm(
                alarms.PACING_RESPONSE_TARGET_ERROR, self.scope, "the rejected targets moved to another sink"))

    def _report_errors(self, failures: list[tuple[Pending, dict[str, Any]]]) -> None:
        """Rejected entities go to the error topic: queued, each holding its decision's offset until on the broker."""
        for pending, error in failures:
            about = (pending.tp, pending.offset) if pending.tp is not None and pending.offset is not None else None
            self.side_writes.record(
                self.names.bulk_errors, pending.target_id.encode(),
                json.dumps({"entity": pending.entity, "error": error}).encode(),
                what=f"error record of {pending.target_id}", about=about)

    def _alarm(self, message: AlarmMessage | None) -> None:
        """Queue one transition (None: none); written in order, retried until Kafka takes it, never awaited here."""
        self.side_writes.alarm(message)

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
                self._alarm(message)

    # -- topics -------------------------------------------------------------------------

    async def _topics_loop(self) -> None:
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
                    self._cluster_unreachable = False
                    if missing or self._topics_missing:  # the latter: a recovery interrupted before
                        await self._recover_topics(missing or self._topics_missing)
                except (KafkaError, OSError, TimeoutError) as exc:  # broker away: try again, fresh client
                    self._cluster_unreachable = True
                    log.warning("topic check failed (%s); will retry", str(exc) or type(exc).__name__)
                    if admin is not None:
                        with contextlib.suppress(Exception):
                            await admin.close()
                    admin = None
        finally:
            if admin is not None:
                with contextlib.suppress(Exception):
                    await admin.close()

    async def _recover_topics(self, missing: list[str]) -> None:
        """Not ready, alarm, replace the consumer (which recreates the topics); clear once partitions are assigned."""
        self._topics_missing = missing
        log.error("topics missing: %s; recreating them", ", ".join(missing))
        # The old records and offsets are gone: keep the undelivered decisions, forget their
        # positions, and commit nothing more of the old topic (commits in flight are cancelled).
        self.commits.forget()
        self.side_writes.pause()  # until the topics exist again (resumed by _restart_consumer)
        self._alarm(self.board.raise_alarm(
            alarms.TOPICS_MISSING, self.scope,
            f"topics missing: {', '.join(missing)} (recreated; the sink resumes once it owns partitions)",
            severity="critical", observed_value=float(len(missing)), threshold=0.0))
        self._resumed.clear()
        self._resubscribe.set()
        await self._resumed.wait()
        self._topics_missing = []
        self._alarm(self.board.clear_alarm(
            alarms.TOPICS_MISSING, self.scope, f"topics {', '.join(missing)} recreated; consuming again"))

    # -- commit -------------------------------------------------------------------------

    async def _commit_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.sink.commit_interval_s)
            await self.commit()

    async def commit(self, only: set[TopicPartition] | None = None) -> None:
        """Commit every owned partition's safe offset that moved since the last commit (``only``: of these)."""
        await self.commits.commit(only)


def run_sink(settings: Settings) -> None:
    """Run the sink until SIGINT/SIGTERM."""
    import signal

    from streams.runtime.collector import tune_for_long_running_service

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        sink = BulkSink(settings)
        tune_for_long_running_service()
        await sink.run(stop)

    asyncio.run(main())
