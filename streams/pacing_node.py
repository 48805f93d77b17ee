"""The pacing nodes: a Faust app whose agent turns stat events into pacing decisions.

Per batch of events (``noack_take``): decode in bulk; reject bad or foreign events to the DLQ
with a reason; forward events that arrived off their target's home partition (producers may
partition as their client does; :mod:`streams.partitioning`); fold the rest into each target's
state, then — once per touched target, not per event — decide, publish the decision if it
changed, and write the state to the changelog-backed table. A timer re-publishes every decision
the worker owns at least every ``keepalive_s`` and turns targets without fresh statistics
inactive (alarm ``TargetStale``).

At-least-once, exactly: a batch's events are acknowledged — and so their offsets become
committable — only after every record the batch caused (decisions, changelog, DLQ, forwarded
events, alarms) was acknowledged by the broker (:class:`streams.outbox.Outbox`).
- A failed or unacknowledged write (Kafka unavailable) retries the batch with backoff, forever,
  reporting not ready; alarm ``PacingKafkaUnavailable``. Folding is idempotent, so a replay
  changes nothing that was already written.
- An exception while handling one event (or one target) retries the batch without
  acknowledging anything; an event that fails ``worker.max_attempts`` times goes to the DLQ with
  the error as its reason instead of looping.
- Anything else crashes the worker, which then replays from the last committed offset.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faust
from aiokafka.admin import NewTopic
from faust.serializers import codecs
from faust.types import TP, EventT

from schemas import DecodeCategory, DecodeError, StatEvent, decode_stat_events, encode_decision
from streams import alarms
from streams.alarms import AlarmBoard, AlarmMessage
from streams.config import Settings
from streams.decisions import build_decision, decision_fingerprint
from streams.engine import TargetState
from streams.faust_compat import changelog_topic_name, forget_positions, release_unacknowledged, store_locally
from streams.kafka import ssl_context
from streams.metrics import NodeMetrics, start_metrics_server
from streams.metrics_reporter import run_reporters
from streams.outbox import Outbox, SendFailed
from streams.partitioning import home_partition
from streams.process_health import ProcessHealth
from streams.target_definitions import TargetDefinitions
from streams.topics import TopicNames, repair_topics, topic_configs, topic_names, topic_problems, topic_specs

log = logging.getLogger(__name__)

RAW = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}
#: The ``pacing_events_rejected`` label of events given up on after ``worker.max_attempts``.
PROCESSING_FAILED = "processing_failed"
RETRY_INITIAL_S = 0.2
RETRY_MAX_S = 5.0


def _now_ms() -> int:
    return int(time.time() * 1000)


def faust_broker_options(settings: Settings) -> dict[str, Any]:
    """Faust settings for the cluster connection and quick group joins."""
    kafka = settings.kafka
    options: dict[str, Any] = {
        "broker": [f"kafka://{server.strip()}" for server in kafka.bootstrap_servers.split(",")],
        "broker_session_timeout": kafka.session_timeout_s,
        "broker_rebalance_timeout": kafka.rebalance_timeout_s,
        "broker_heartbeat_interval": kafka.heartbeat_interval_s,
        "topic_replication_factor": kafka.replication_factor,
    }
    context = ssl_context(settings)  # the same verifying context as every other client of ours
    if kafka.sasl_mechanism:
        options["broker_credentials"] = faust.SASLCredentials(
            username=kafka.sasl_username,
            password=kafka.sasl_password.get_secret_value() if kafka.sasl_password else None,
            mechanism=kafka.sasl_mechanism,
            ssl_context=context,
        )
    elif context is not None:
        options["broker_credentials"] = faust.SSLCredentials(context)
    return options


class EventsFailed(Exception):
    """Handling these events raised; the batch is retried and, after enough attempts, they go to the DLQ."""

    def __init__(self, events: Sequence[EventT], error: BaseException):
        super().__init__(f"{type(error).__name__}: {error}")
        self.events = list(events)
        self.error = error


@dataclass
class _Touched:
    """A target folded in the current batch: its state, its stored table entry and its events."""

    state: TargetState
    stored: dict[str, Any]
    events: list[EventT] = field(default_factory=list)


def _event_key(event: EventT) -> tuple[int, int]:
    return event.message.partition, event.message.offset


class PacingNode:
    """One worker process: the Faust app, its topics, table, timer and metrics."""

    def __init__(self, settings: Settings, definitions: TargetDefinitions | None = None):
        self.settings = settings
        self.names: TopicNames = topic_names(settings)
        self.metrics = NodeMetrics()
        self.board = AlarmBoard(settings.tenant, settings.node_id)
        self.definitions = definitions or TargetDefinitions(settings)
        self.health = ProcessHealth(settings.metrics, self.board)
        # Next offset to process per stats partition, for the lag gauge.
        self._next_offset: dict[int, int] = {}
        # What this worker last published per target: (fingerprint, wall-clock ms).
        self._published: dict[str, tuple[dict[str, Any] | None, int]] = {}
        # Failed attempts per event (partition, offset), and the events to give up on.
        self._attempts: dict[tuple[int, int], int] = {}
        self._poisoned: dict[tuple[int, int], str] = {}
        # The work since the last flush: events folded but not yet acknowledged (in arrival order),
        # the live state of the targets they touched, and the records they caused so far.
        self._pending: list[EventT] = []
        self._live: dict[str, _Touched] = {}
        self._outbox: Outbox | None = None
        self._rebuild_needed = False
        self._lock = asyncio.Lock()
        self._stream: faust.StreamT | None = None
        self._kafka_failing = False
        # What the cluster lost, while the worker recovers from it (not ready meanwhile).
        self._topics_lost: list[str] = []
        self._ready = False
        worker = settings.worker
        datadir = Path(worker.data_dir) / settings.node_id
        datadir.mkdir(parents=True, exist_ok=True)
        self.app = faust.App(
            worker.app_id if not settings.kafka.topic_prefix else f"{settings.kafka.topic_prefix}.{worker.app_id}",
            store=worker.store,
            datadir=str(datadir),
            topic_partitions=settings.kafka.stats_partitions,
            table_standby_replicas=worker.standby_replicas,
            processing_guarantee="at_least_once",
            consumer_auto_offset_reset="earliest",
            web_enabled=False,
            **faust_broker_options(settings),
        )
        partitions = settings.kafka.stats_partitions
        self.stats_topic = self.app.topic(self.names.stats, partitions=partitions, **RAW)
        self.table = self.app.Table(
            "target-state", default=None, partitions=partitions,
            schema=faust.Schema(key_serializer="json", value_serializer="json"),  # plain JSON both ways
            help="per-target pacing state",
        )
        self.app.agent(self.stats_topic, name="pacing-node", concurrency=1)(self._consume)
        tick = min(worker.keepalive_s / 3, settings.targets.refresh_period_s, 5.0)
        self.app.timer(max(0.5, tick), name="refresh")(self._on_timer)
        self.app.timer(worker.decide_interval_s, name="decide")(self._flush_on_tick)
        self.app.timer(settings.kafka.topic_check_interval_s, name="topic-watch")(self._watch_topics)
        self.app.task(self._start_side_services)

    @property
    def ready(self) -> bool:
        """Serving: owns partitions (or processed a batch) and can write to Kafka."""
        return (self._ready or bool(self.owned_partitions())) and not self._kafka_failing and not self._topics_lost

    def _new_outbox(self) -> Outbox:
        return Outbox(self.app.producer, self.settings.worker.send_timeout_s)

    # -- the agent -----------------------------------------------------------------------

    async def _consume(self, stream: faust.StreamT) -> None:
        worker = self.settings.worker
        await self.definitions.wait_caught_up()  # no decision with default names before definitions are read
        self._stream = stream
        self._outbox = self._new_outbox()
        async for events in stream.noack_take(worker.batch_max_events, within=worker.batch_within_s):
            async with self._lock:
                await self._take(events)
            if len(self._pending) >= worker.max_pending_events:
                await self.flush()  # back-pressure: do not let unacknowledged work pile up
            self._ready = True

    async def _take(self, events: Sequence[EventT]) -> None:
        """Fold a batch into the live state of its targets; nothing is decided or acknowledged yet."""
        self.metrics.batch_size.observe(len(events))
        self.metrics.events_in.inc(len(events))
        for event in events:
            message = event.message
            self._next_offset[message.partition] = max(self._next_offset.get(message.partition, 0), message.offset + 1)
        self._pending.extend(events)
        if self._rebuild_needed:
            return  # the next flush folds everything pending again
        try:
            await self._process(events, self._outbox)
        except EventsFailed as exc:
            self._count_failure(exc)
            self._rebuild_needed = True
        except SendFailed:
            self._rebuild_needed = True

    async def _flush_on_tick(self) -> None:
        await self.flush()

    async def flush(self) -> None:
        """Decide and store every target folded since the last flush; then acknowledge its events.

        Once per ``worker.decide_interval_s``: each dirty target is decided, published if its
        decision changed, and written to the table once, however many events it got. The events
        are acknowledged only after Kafka confirmed every record they caused. A failure redoes
        the work from the table's state and the pending events (folding is idempotent) until it
        succeeds, or until the worker stops or partitions move — then nothing is acknowledged and
        the events are replayed from the committed offset.
        """
        async with self._lock:
            backoff = RETRY_INITIAL_S
            while self._pending or self._live:
                try:
                    if self._rebuild_needed:
                        await self._rebuild()
                    await self._store_dirty(self._outbox)
                    await self._outbox.confirm()
                except SendFailed as exc:
                    self._rebuild_needed = True
                    await self._kafka_unavailable(exc, backoff)
                    if self._give_up():
                        return
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, RETRY_MAX_S)
                    continue
                except EventsFailed as exc:
                    self._count_failure(exc)
                    self._rebuild_needed = True
                    continue
                await self._acknowledge()
                await self._kafka_available()

    async def _rebuild(self) -> None:
        """Forget the live state and fold every pending event again, on top of the table's state."""
        while True:
            self._reset_work()
            try:
                await self._process(self._pending, self._outbox)
            except EventsFailed as exc:  # out of attempts, its events are rejected at the next round
                self._count_failure(exc)
                continue
            self._rebuild_needed = False
            return

    def _give_up(self) -> bool:
        """When stopping or rebalancing, drop the pending work: it is replayed from the committed offset."""
        if not (self.app.should_stop or self.app.rebalancing):
            return False
        release_unacknowledged(self.app.consumer, self._pending)
        self._pending = []
        self._reset_work()
        return True

    def _reset_work(self) -> None:
        self._outbox.abandon()
        self._outbox = self._new_outbox()
        self._live.clear()

    async def _acknowledge(self) -> None:
        """Everything pending is on the broker: acknowledge its events, in order, and start afresh."""
        pending, self._pending = self._pending, []
        self._live.clear()
        self._outbox = self._new_outbox()
        for event in pending:
            key = _event_key(event)
            self._attempts.pop(key, None)
            self._poisoned.pop(key, None)
            await self._stream.ack(event)

    def _count_failure(self, failure: EventsFailed) -> None:
        """One more failed attempt for these events; those out of attempts are given up on (DLQ)."""
        self.metrics.processing_errors.inc()
        limit = self.settings.worker.max_attempts
        for event in failure.events:
            key = _event_key(event)
            attempts = self._attempts.get(key, 0) + 1
            self._attempts[key] = attempts
            if attempts >= limit:
                self._poisoned[key] = f"processing failed {attempts} times: {failure}"
        log.error("handling %d events failed (%s); their work is redone", len(failure.events), failure,
                  exc_info=failure.error)

    async def _process(self, events: Sequence[EventT], outbox: Outbox) -> None:
        """Decode, reject, forward and fold events into the live state of their targets.

        Every failure is pinned on the events it came from (:class:`EventsFailed`): the event being
        folded or, outside that, all of them.
        """
        try:
            decoded = decode_stat_events([event.value for event in events])
            for event, result in zip(events, decoded, strict=True):
                try:
                    await self._fold(event, result, self._live, outbox)
                except (SendFailed, EventsFailed):
                    raise
                except Exception as exc:
                    raise EventsFailed([event], exc) from exc
        except (SendFailed, EventsFailed):
            raise
        except Exception as exc:
            raise EventsFailed(events, exc) from exc

    async def _store_dirty(self, outbox: Outbox) -> None:
        """Decide, publish and write every target folded since the last flush (its events pinned on failure)."""
        now = _now_ms()
        for target_id, entry in self._live.items():
            try:
                await self._store_target(target_id, entry, now, outbox)
            except SendFailed:
                raise
            except Exception as exc:
                raise EventsFailed(entry.events, exc) from exc
        self.metrics.flushed_targets.observe(len(self._live))

    async def _fold(
        self, event: EventT, result: StatEvent | DecodeError, touched: dict[str, _Touched], outbox: Outbox
    ) -> None:
        """One event: rejected, forwarded to its home partition, or folded into its target's state."""
        poisoned = self._poisoned.get(_event_key(event))
        if poisoned is not None:
            await self._reject(event, poisoned, PROCESSING_FAILED, outbox)
            return
        if isinstance(result, DecodeError):
            await self._reject(event, result.reason, str(result.category), outbox)
            return
        if result.tenant != self.settings.tenant:
            served = self.settings.tenant
            await self._reject(event, f"tenant {result.tenant!r} is not served here (serves {served!r})",
                               str(DecodeCategory.WRONG_TENANT), outbox)
            return
        home = home_partition(result.target_id, self.settings.kafka.stats_partitions)
        if home != event.message.partition:
            await self._forward(event, result.target_id, home, outbox)
            return
        entry = touched.get(result.target_id)
        if entry is None:
            entry = touched[result.target_id] = self._load(result.target_id)
        entry.events.append(event)
        if not entry.state.apply(result.statistic, result.value, result.timestamp, result.media_type):
            self.metrics.events_stale.inc()

    async def _store_target(self, target_id: str, entry: _Touched, now: int, outbox: Outbox) -> None:
        """Decide and publish one folded target, and write its table entry (changelog included)."""
        stored = entry.stored
        event = entry.events[0]
        was_stale = now - stored.get("received_ms", now) > self.settings.worker.stale_after_s * 1000
        stored["received_ms"] = now
        await self._decide_and_publish(entry.state, stored, now, outbox, keepalive=False)
        stored["state"] = entry.state.to_dict()
        stored["partition"] = event.message.partition
        store_locally(self.table, event, target_id, stored)
        await outbox.send(
            changelog_topic_name(self.table), codecs.dumps("json", target_id), codecs.dumps("json", stored),
            partition=event.message.partition,
        )
        # Cleared even if another worker raised it before a rebalance moved the target here.
        await self._publish_alarm(self.board.clear_alarm(
            alarms.TARGET_STALE, target_id, "statistics arrive again", force=was_stale), outbox)

    def _load(self, target_id: str) -> _Touched:
        stored = self.table.get(target_id)
        if stored is None:
            return _Touched(TargetState(target_id), {})
        return _Touched(TargetState.from_dict(stored["state"]), dict(stored))

    async def _decide_and_publish(
        self, state: TargetState, stored: dict[str, Any], now: int, outbox: Outbox, keepalive: bool,
        stale: bool = False,
    ) -> None:
        """Publish the target's decision if it changed (or, for keepalive, if one is due).

        A decision that cannot be computed is logged, counted and alarmed for that target only:
        the state is still stored and the other targets of the batch go on.
        """
        target_id = state.target_id
        try:
            decision = build_decision(
                self.settings.tenant, self.settings.node_id, state, self.settings.targets, now,
                self.definitions.get(target_id), stale=stale,
            )
        except Exception as exc:
            self.metrics.decision_errors.inc()
            log.exception("no decision for target %s", target_id)
            await self._publish_alarm(self.board.raise_alarm(
                alarms.PACING_DECISION_FAILED, target_id, f"the pacing engine failed: {type(exc).__name__}: {exc}"),
                outbox)
            return
        await self._publish_alarm(self.board.clear_alarm(
            alarms.PACING_DECISION_FAILED, target_id, "the pacing engine decides again"), outbox)
        fingerprint = decision_fingerprint(decision)
        last_fingerprint, last_sent = self._published.get(target_id, (stored.get("decision"), 0))
        changed = fingerprint != last_fingerprint
        due = now - last_sent >= self.settings.worker.keepalive_s * 1000
        if not (changed or (keepalive and due)):
            return
        reason = "changed" if changed else "keepalive"

        def published() -> None:
            self._published[target_id] = (fingerprint, now)
            self.metrics.decisions.labels(reason).inc()

        await outbox.send(self.names.actiontargets, target_id.encode(), encode_decision(decision),
                          on_confirmed=published)
        stored["decision"] = fingerprint

    async def _forward(self, event: EventT, target_id: str, home: int, outbox: Outbox) -> None:
        """Send an event that arrived off its home partition to that partition, keyed by its target."""
        message = event.message
        headers = [*_headers(message.headers),
                   ("pacing.rerouted-from", f"{message.topic}/{message.partition}@{message.offset}".encode())]
        await outbox.send(self.names.stats, target_id.encode(), message.value, partition=home, headers=headers,
                          on_confirmed=self.metrics.events_rerouted.inc)

    async def _reject(self, event: EventT, reason: str, category: str, outbox: Outbox) -> None:
        """To the DLQ as received; the reason in its ``error`` header, its class in the metric label."""
        message = event.message
        log.warning("rejected event at %s[%d]@%d: %s", message.topic, message.partition, message.offset, reason)
        await outbox.send(
            self.names.stats_dlq, message.key, message.value,
            headers=[("error", reason.encode()), ("source.topic", message.topic.encode()),
                     ("source.partition", str(message.partition).encode()),
                     ("source.offset", str(message.offset).encode())],
            on_confirmed=self.metrics.events_rejected.labels(category).inc,
        )

    async def _publish_alarm(self, message: AlarmMessage | None, outbox: Outbox) -> None:
        if message is None:
            return
        alarm = message.alarm
        log.warning("alarm %s %s [%s]: %s", alarm.name, alarm.state.value, alarm.scope, alarm.message)

        def published() -> None:
            if alarm.state.value == "raised":
                self.metrics.alarms.labels(alarm.name).inc()

        await outbox.send(self.names.alarms, message.key, message.value,
                          on_confirmed=published, on_failed=lambda: self.board.revert(message))

    async def _publish_alarms_now(self, *messages: AlarmMessage | None) -> bool:
        """Publish alarm transitions outside a batch; False (and undone) if Kafka did not take them."""
        outbox = self._new_outbox()
        try:
            for message in messages:
                await self._publish_alarm(message, outbox)
            await outbox.confirm()
        except SendFailed as exc:
            outbox.abandon()
            log.error("could not publish alarms: %s", exc)
            return False
        return True

    async def _kafka_unavailable(self, failure: SendFailed, retry_in_s: float) -> None:
        self.metrics.send_failures.inc()
        log.error("writes to Kafka failed, nothing acknowledged; retrying the batch in %.1fs: %s",
                  retry_in_s, failure)
        if not self._kafka_failing:
            self._kafka_failing = True
            await self._publish_alarms_now(self.board.raise_alarm(
                alarms.KAFKA_UNAVAILABLE, self.settings.node_id,
                f"writes to Kafka fail; stat events are not acknowledged until they succeed: {failure}",
                severity="critical"))

    async def _kafka_available(self) -> None:
        if self._kafka_failing:
            self._kafka_failing = False
            log.info("writes to Kafka succeed again")
            await self._publish_alarms_now(self.board.clear_alarm(
                alarms.KAFKA_UNAVAILABLE, self.settings.node_id, "writes to Kafka succeed again"))

    # -- the timer -----------------------------------------------------------------------

    def owned_partitions(self) -> set[int]:
        """The ``pacing.stats`` partitions this worker actively owns (standbys excluded)."""
        actives: set[TP] = self.app.assignor.assigned_actives()
        return {tp.partition for tp in actives if tp.topic == self.names.stats}

    def _settled(self) -> bool:
        """False while partitions move or tables restore: the timer must not publish half-restored state."""
        return (self.app.tables.recovery.completed.is_set() and not self.app.rebalancing
                and self.definitions.caught_up)

    async def _on_timer(self) -> None:
        """Keepalive and staleness for the targets this worker owns; no table writes here."""
        if not self._settled():
            return
        async with self._lock:  # between flushes: never beside a flush publishing the same targets
            await self._keepalive()

    async def _keepalive(self) -> None:
        owned = self.owned_partitions()
        now = _now_ms()
        stale_ms = self.settings.worker.stale_after_s * 1000
        keepalive_ms = self.settings.worker.keepalive_s * 1000
        redefined = self.definitions.take_changed()
        count = 0
        outbox = self._new_outbox()
        for target_id in list(self.table.keys()):
            # Read just before deciding: the agent may have written a newer state meanwhile.
            stored = self.table.get(target_id)
            if not stored or stored.get("partition") not in owned:
                self._published.pop(target_id, None)
                continue
            count += 1
            stale = now - stored.get("received_ms", now) > stale_ms
            went_stale = None
            if stale:
                went_stale = self.board.raise_alarm(
                    alarms.TARGET_STALE, target_id,
                    f"no statistics for {self.settings.worker.stale_after_s:.0f}s; target paced inactive",
                    severity="minor", observed_value=(now - stored["received_ms"]) / 1000,
                    threshold=self.settings.worker.stale_after_s,
                )
                await self._publish_alarm(went_stale, outbox)
            last_sent = self._published.get(target_id, (None, 0))[1]
            if went_stale is None and target_id not in redefined and now - last_sent < keepalive_ms:
                continue  # decided at its last flush or keepalive, same definition: not due yet
            state = TargetState.from_dict(stored["state"])
            # The table is written only by the agent; the timer publishes from a copy.
            await self._decide_and_publish(state, dict(stored), now, outbox, keepalive=True, stale=stale)
        for message in self.health.check():
            await self._publish_alarm(message, outbox)
        try:
            await outbox.confirm()
        except SendFailed as exc:  # nothing is lost: what was not confirmed is published at the next tick
            outbox.abandon()
            self.metrics.send_failures.inc()
            log.error("keepalive decisions and alarms not published: %s", exc)
        self.metrics.targets.set(count)
        await self._observe_lag(owned)
        sample = self.health.sample()
        self.metrics.observe_health(sample.max_gc_pause_ms, sample.memory_percent)

    async def _observe_lag(self, owned: set[int]) -> None:
        """Per owned partition: events on the log not yet taken by this worker.

        A partition this worker has not taken anything from since it was assigned counts from its
        consumer position (the committed offset), not as caught up.
        """
        self.metrics.lag.clear()
        for partition in owned:
            tp = TP(self.names.stats, partition)
            highwater = self.app.consumer.highwater(tp)
            taken = self._next_offset.get(partition)
            if taken is None:
                taken = await self.app.consumer.position(tp)
            if highwater is not None and taken is not None:
                self.metrics.lag.labels(str(partition)).set(max(0, highwater - taken))

    # -- lost topics ---------------------------------------------------------------------

    def _changelog_spec(self) -> NewTopic:
        kafka = self.settings.kafka
        return NewTopic(changelog_topic_name(self.table), kafka.stats_partitions, kafka.replication_factor,
                        topic_configs={**topic_configs(self.settings), "cleanup.policy": "compact"})

    def internal_topics(self) -> list[NewTopic]:
        """Faust's topics of this app, created ahead of Faust with the deployment's topic settings."""
        kafka = self.settings.kafka
        assignor = NewTopic(f"{self.app.conf.id}-__assignor-__leader", 1, kafka.replication_factor,
                            topic_configs=topic_configs(self.settings))
        return [self._changelog_spec(), assignor]

    def _regressed_partitions(self) -> dict[int, tuple[int, int]]:
        """Owned stats partitions whose log end fell below what this worker already read: the log was lost."""
        regressed = {}
        for partition in self.owned_partitions():
            highwater = self.app.consumer.highwater(TP(self.names.stats, partition))
            read = self._next_offset.get(partition, 0)
            if highwater is not None and highwater < read:
                regressed[partition] = (read, highwater)
        return regressed

    async def _watch_topics(self) -> None:
        """Notice that the cluster lost this deployment's topics (a broker restarted on memory storage); recover.

        Recovery: not ready, recreate what is missing or was auto-created wrong, forget the old
        offsets, write the state this worker still holds to the new changelog, alarm
        ``PacingTopicsMissing``; cleared at the first check that finds everything in place.
        """
        names = self.names
        required = {names.stats, names.targets, names.actiontargets, names.alarms, names.stats_dlq}
        specs = [spec for spec in topic_specs(self.settings) if spec.name in required]
        try:
            problems = await topic_problems(self.settings, [*specs, self._changelog_spec()])
        except Exception as exc:  # the broker is away: the next check tries again
            log.warning("topic check failed: %s", exc)
            return
        regressed = self._regressed_partitions()
        if not problems and not regressed:
            if self._topics_lost:
                lost, self._topics_lost = self._topics_lost, []
                await self._publish_alarms_now(self.board.clear_alarm(
                    alarms.TOPICS_MISSING, self.settings.node_id,
                    f"topics back in place after: {'; '.join(lost)}"))
            return
        problems += [f"{names.stats}[{partition}] went back from offset {read} to {end}"
                     for partition, (read, end) in regressed.items()]
        self._topics_lost = problems
        log.error("the cluster lost topics: %s; recovering", "; ".join(problems))
        try:
            repaired = await repair_topics(self.settings, [self._changelog_spec()])
        except Exception as exc:
            log.error("could not recreate topics (%s); will try again", exc)
            return
        for partition in regressed:
            self._next_offset.pop(partition, None)
        forget_positions(self.app.consumer, [TP(names.stats, p) for p in regressed])
        reseeded = await self._reseed_changelog()
        await self._publish_alarms_now(self.board.raise_alarm(
            alarms.TOPICS_MISSING, self.settings.node_id,
            f"the cluster lost topics ({'; '.join(problems)}); {'; '.join(repaired) or 'nothing to recreate'}; "
            f"state of {reseeded} targets written to the new changelog",
            severity="critical", observed_value=float(len(problems)), threshold=0.0))

    async def _reseed_changelog(self) -> int:
        """Write every owned target's state again, so that the new changelog can restore it."""
        owned = self.owned_partitions()
        outbox = self._new_outbox()
        count = 0
        for target_id in list(self.table.keys()):
            stored = self.table.get(target_id)
            if stored and stored.get("partition") in owned:
                await outbox.send(changelog_topic_name(self.table), codecs.dumps("json", target_id),
                                  codecs.dumps("json", stored), partition=stored["partition"])
                count += 1
        try:
            await outbox.confirm()
        except SendFailed as exc:
            log.error("could not write the state again: %s", exc)
            return 0
        return count

    # -- side services -------------------------------------------------------------------

    async def _publish_metrics(self, key: bytes, value: bytes) -> None:
        outbox = self._new_outbox()
        await outbox.send(self.names.metrics, key, value)
        await outbox.confirm()

    async def _start_side_services(self) -> None:
        self.health.install()
        await self.definitions.start()
        self._reporters = asyncio.create_task(run_reporters(
            self.settings, "worker", self.metrics.registry, self._publish_metrics))
        port = self.settings.worker.web_port
        if port:
            self._web = await start_metrics_server(self.metrics.registry, "0.0.0.0", port, lambda: self.ready)
            log.info("metrics on http://0.0.0.0:%d/metrics", port)


def _headers(headers: Any) -> list[tuple[str, bytes]]:
    """A record's headers as a list of pairs, whichever form the client gave them in."""
    if not headers:
        return []
    if isinstance(headers, dict):
        return list(headers.items())
    return list(headers)


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    """Run one pacing node until SIGINT/SIGTERM."""
    from streams.end_offsets import install_faust_end_offset_probe
    from streams.kafka import client_options
    from streams.topics import ensure_topics

    node = PacingNode(settings)
    asyncio.run(ensure_topics(settings, node.internal_topics()))
    if settings.kafka.probe_end_offsets:
        install_faust_end_offset_probe(client_options(settings), settings.kafka.broker_kind)
    worker = faust.Worker(node.app, loglevel=loglevel)
    worker.execute_from_commandline()
