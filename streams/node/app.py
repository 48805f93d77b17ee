"""The pacing nodes: a Faust app whose agent turns stat events into pacing decisions.

This module is the Faust wiring — :func:`create_app` at the end: the app, the stats topic, the
state table, ``@app.agent`` and ``@app.task``, as in Faust's own examples — and the node's loop
(:class:`PacingNode`); each step it takes has its own module:
- :mod:`streams.node.inbox` hands the agent's batches to the loop;
- :mod:`streams.node.stat_intake` decodes, rejects, forwards and folds taken events into live state;
- :mod:`streams.node.target_store` keeps the owned targets' entries in front of the changelog table;
- :mod:`streams.node.cadence` says when a target is decided (a material change at once, else once per
  decide period);
- :mod:`streams.node.decision_publisher` decides a target and publishes its decision when it changed;
- :mod:`streams.node.checkpoint` writes the touched targets' entries, confirms every send and
  acknowledges the events;
- :mod:`streams.node.keepalive` re-publishes due decisions and paces silent targets inactive.

The embedded development broker's workarounds (lost topics, under-reported end offsets) are not
here: ``pacing worker`` hands :func:`run_worker` the one that attaches them (:mod:`streams.dev_broker`),
and on Apache Kafka nothing is attached; there a topic that vanishes stops the worker instead
(:mod:`streams.node.topic_guard`).

One task does the work: the agent only takes batches from its stream and hands them over, and the
node's loop (:meth:`PacingNode.run`) folds them, decides, publishes, checkpoints and keeps alive,
one step at a time (:meth:`PacingNode.turn`). Nothing is shared between tasks, so nothing is
locked; a long decision pass is cut into slices with a batch folded between them.

Work is proportional to targets, not events. Events are folded into live state as they arrive;
a target whose statistics changed materially (:attr:`StatIntake.urgent`) is decided right after
the batch that changed it; on the decision tick (every ``worker.decide_interval_s``) each other
target whose decide period ended is decided once and its decision published if it changed; at a
checkpoint (at most ``worker.checkpoint_interval_s`` after the oldest unacknowledged event was
taken) each target folded since the last checkpoint has its table entry written once, and the
events are acknowledged. The decide period grows under load so that deciding takes at most about
a quarter of the worker's time, never past 0.75 of ``targets.refresh_period_s``
(:mod:`streams.node.cadence`): fewer output records per event, and the latency stays within a
refresh period.

At-least-once, exactly: the events are acknowledged — and so their offsets become committable —
only at a checkpoint, after every record they caused (decisions, changelog, DLQ, forwarded
events, alarms) was acknowledged by the broker (:class:`streams.runtime.outbox.Outbox`).
- A failed or unacknowledged write (Kafka unavailable) redoes the work with backoff, forever,
  reporting not ready; alarm ``PacingKafkaUnavailable``. Folding is idempotent, so a replay
  changes nothing that was already written.
- An exception while handling one event (or one target) redoes the work without acknowledging
  anything; an event that fails ``worker.max_attempts`` times goes to the DLQ with the error as
  its reason instead of looping.
- Anything else crashes the worker, which then replays from the last committed offset.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import faust
from aiokafka.admin import NewTopic
from faust.exceptions import ConsumerNotStarted
from faust.types import TP, EventT

from streams.node.api_process import start_api_process
from streams.node.cadence import DecideCadence
from streams.node.catch_up import CatchUp
from streams.node.checkpoint import Acknowledge, Checkpoint
from streams.node.decision_publisher import DecisionPublisher
from streams.node.faust_compat import (
    BatchingTransport,
    LeanMonitor,
    committed_offset,
    consumption_suspended,
    install_consumer,
    owned_actives,
    recovery_completed,
    refetch_cleared_events,
    release_unacknowledged,
)
from streams.node.inbox import Inbox
from streams.node.keepalive import Keepalive, KeepalivePass
from streams.node.ownership import Fenced, Ownership
from streams.node.stat_intake import EventsFailed, StatIntake, Touched
from streams.node.target_definitions import TargetDefinitions
from streams.node.target_store import TargetStore
from streams.node.topic_guard import EXIT_TOPICS_MISSING, TopicGuard
from streams.runtime import alarms
from streams.runtime.alarm_publisher import AlarmPublisher
from streams.runtime.alarms import AlarmBoard
from streams.runtime.config import Settings
from streams.runtime.kafka import consumer_options, ssl_context
from streams.runtime.metrics import NodeMetrics, record_lag, start_metrics_server
from streams.runtime.metrics_reporter import run_reporters
from streams.runtime.outbox import Outbox, SendFailed, TransportProducer
from streams.runtime.process_health import ProcessHealth
from streams.runtime.topics import (
    TopicNames,
    changelog_spec,
    topic_configs,
    topic_names,
    topic_problems,
    worker_topic_specs,
)

log = logging.getLogger(__name__)

RAW = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}
RETRY_INITIAL_S = 0.2
RETRY_MAX_S = 5.0
#: Targets decided per slice of a decision pass (the loop takes a batch between slices).
DECIDE_SLICE = 200
#: With events pending, how often the idle loop looks whether Faust suspended the flow (a rebalance).
SUSPENSION_CHECK_S = 0.1


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
    if settings.worker.static_membership:  # a restart within the session keeps the partitions (docs/operations.md)
        options["consumer_group_instance_id"] = settings.node_id
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


class PacingNode:
    """One worker's pacing state and its loop: intake, decisions, checkpoint and keepalive, in one task.

    :func:`create_app` builds the Faust app, its topic and table, and wires :meth:`consume` as the
    app's agent and :meth:`run` as its task. ``producer`` (default: the app's) is what every
    outbox sends through; ``clock`` (monotonic seconds) is what the loop's deadlines are read on.
    """

    def __init__(self, settings: Settings, app: faust.App, table: faust.Table,
                 definitions: TargetDefinitions | None = None, *, producer: TransportProducer | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.settings = settings
        self.app = app
        self.names: TopicNames = topic_names(settings)
        self.metrics = NodeMetrics()
        self.board = AlarmBoard(settings.tenant, settings.node_id)
        self.definitions = definitions or TargetDefinitions(consumer_options(settings), self.names.targets,
                                                            settings.tenant)
        self.health = ProcessHealth(settings.metrics, self.board)
        worker = settings.worker
        self._producer = producer
        self._transport = BatchingTransport(app)
        self._clock = clock
        self.ownership = Ownership(app, settings.kafka.session_timeout_s,
                                   lambda: {self.names.actiontargets, self.store.changelog_topic})
        self.store = TargetStore(table, lambda: self.ownership.epoch)
        self.alarm_publisher = AlarmPublisher(self.board, self.names.alarms, self.metrics, self._new_outbox)
        self.intake = StatIntake(settings.tenant, settings.kafka.stats_partitions, worker, self.names, self.store,
                                 self.metrics)
        self.catch_up = CatchUp(self.names.stats, self.intake.next_offset, lambda tp: self.app.consumer.highwater(tp))
        self.publisher = DecisionPublisher(settings.tenant, settings.node_id, settings.targets, worker,
                                           self.names.actiontargets, self.definitions, self.metrics,
                                           self.alarm_publisher, self.ownership, self.catch_up.reached)
        self.keepalive = Keepalive(worker, self.store, self.publisher, self.definitions, self.alarm_publisher,
                                   self.health, self.metrics)
        self.checkpoint = Checkpoint(self.intake, self.store, self.metrics, worker.checkpoint_interval_s, clock)
        self.cadence = DecideCadence(worker.decide_interval_s, settings.targets.refresh_period_s, clock())
        self.inbox: Inbox[list[EventT]] = Inbox()
        self._outbox = self._new_outbox()
        self._acknowledge: Acknowledge | None = None
        self._rebuild_needed = False
        self._backoff_s = RETRY_INITIAL_S
        self._kafka_failing = False
        self._took_events = False
        # The decision pass under way: targets left to decide, and held ones left to publish.
        self._pass: list[tuple[str, Touched]] = []
        self._pass_size = 0
        self._held: list[str] = []
        # The keepalive pass under way (published a slice per turn), on the partitions owned when planned.
        self._keeping: KeepalivePass | None = None
        self._keeping_owned: set[int] = set()
        self._keepalive_outbox = self._new_outbox()
        self._deciding_s = 0.0  # spent deciding since the cadence last adjusted the period
        now = clock()
        self._tick_at = now + worker.decide_interval_s
        self._keepalive_every_s = max(0.5, min(worker.keepalive_s / 3, settings.targets.refresh_period_s, 5.0))
        self._keepalive_at = now + self._keepalive_every_s
        self._max_pending = worker.max_pending_events
        #: Further conditions of :attr:`ready`, each true when met (what is attached to the node adds them).
        self.readiness: list[Callable[[], bool]] = []

    @property
    def ready(self) -> bool:
        """Serving: owns partitions (or processed a batch), can write to Kafka, and every :attr:`readiness` holds."""
        return ((self._took_events or bool(self.owned_partitions())) and not self._kafka_failing
                and all(check() for check in self.readiness))

    def _new_outbox(self) -> Outbox:
        return Outbox(self._producer or self._transport, self.settings.worker.send_timeout_s, self.ownership.guard)

    def unfenced_outbox(self) -> Outbox:
        """An outbox whose sends are not checked against this worker's ownership (:mod:`streams.node.ownership`):
        for writes that belong to no group generation."""
        return Outbox(self._producer or self._transport, self.settings.worker.send_timeout_s)

    async def on_partitions_moved(self, *_: Any, **__: Any) -> None:
        """The table holds the truth for whatever this worker owns now: drop the live entries.

        Targets still waiting for their decide period, or for the pass under way, are held: this
        worker publishes those it still owns once the partitions settle, a new owner at its first
        keepalive pass. The loop is woken to checkpoint what it took: Faust waits for those events.
        """
        self._took_events = False  # ready again once it owns partitions (or takes events) on the new assignment
        waiting = [target_id for target_id, _ in self._pass]
        self._pass = []
        self._keeping = None  # planned on the old assignment
        self.publisher.hold([*waiting, *self.intake.take_undecided()], _now_ms())
        self.store.forget()
        self.inbox.nudge()

    # -- the agent and the loop ------------------------------------------------------------

    async def consume(self, stream: faust.StreamT) -> None:
        """The agent: hand each batch of stat events to the node's loop, which acknowledges them."""
        worker = self.settings.worker
        self.attach(stream)
        async for events in stream.noack_take(worker.batch_max_events, within=worker.batch_within_s):
            await self.inbox.put(events)

    def attach(self, stream: Any) -> None:
        """The stream whose events this node takes: a checkpoint acknowledges them through it."""
        self._acknowledge = stream.ack

    async def run(self) -> None:
        """The node's loop, the one task that touches its live state, outbox and checkpoint.

        Each turn takes the next batch the agent handed over — waiting at most until the next piece
        of work is due — and does what is due (:meth:`turn`). When the worker stops, the loop is
        woken to checkpoint at once, and goes on checkpointing what the agent still hands over until
        Faust cancels it: Faust waits for every event it delivered to be acknowledged, and without
        that the next owner would replay them.
        """
        await self.definitions.wait_caught_up()  # no decision with default names before definitions are read
        stopping = asyncio.ensure_future(self._nudge_when_stopping())
        try:
            while True:
                await self.turn(await self.inbox.next(self._idle_s()))
        finally:
            stopping.cancel()

    async def _nudge_when_stopping(self) -> None:
        await self.app.wait_for_stopped()
        self.inbox.nudge()

    def _idle_s(self) -> float:
        """How long the loop may wait for a batch before something else is due."""
        if self._moving():  # nothing is due but checkpointing what arrives: a batch or a nudge wakes the loop
            return self.settings.worker.decide_interval_s
        if self._pass or self._held or self._keeping is not None:
            return 0.0
        now = self._clock()
        if self.intake.urgent and self.intake.urgent_due(now, self.cadence.min_period_s):
            return 0.0
        deadline = min(self._tick_at, self._keepalive_at)
        if self.intake.pending:
            # Faust suspends the flow for a rebalance and then waits for the pending events without
            # waking anyone: look again soon, so that they are checkpointed at once.
            deadline = min(deadline, self.checkpoint.due_at, now + SUSPENSION_CHECK_S)
        return max(0.0, deadline - now)

    async def turn(self, events: list[EventT] | None = None) -> None:
        """One turn of the loop: fold ``events`` (if any), then do what is due, in this order:

        1. partitions move or the worker stops: end the pass under way (its targets are held) and
           checkpoint — Faust waits for the events;
        2. a material change (:attr:`StatIntake.urgent`): decide one slice of those targets now;
        3. the decision tick (every ``worker.decide_interval_s``): start a pass over the targets
           whose decide period ended, and the held decisions whose publish interval did;
        4. decide (or publish) one slice of the pass under way: a batch is folded between slices,
           so a long pass never stops the intake;
        5. a checkpoint when due (``worker.checkpoint_interval_s`` after the oldest pending event
           was taken) or when ``worker.max_pending_events`` wait;
        6. the keepalive pass (planned every few seconds, published a slice per turn), then the lag
           gauge and process health.

        A failed write (Kafka unavailable) or a failing event ends the turn: the live state is
        rebuilt from the table and the pending events at the next (folding is idempotent), after a
        backoff that doubles up to ``RETRY_MAX_S``; nothing is acknowledged meanwhile.
        """
        try:
            if events:
                await self._take(events)
            if self._rebuild_needed:
                await self._rebuild()
            if self._moving():
                await self._suspend()
                return
            now = self._clock()
            intake = self.intake
            if intake.urgent and intake.urgent_due(now, self.cadence.min_period_s):
                urgent = list(intake.take_urgent(now, self.cadence.min_period_s, DECIDE_SLICE).items())
                await self._decide(urgent)
                await self._confirm()
                self.metrics.decided_targets.observe(len(urgent))
            if now >= self._tick_at and not self._pass and not self._held:
                self._start_pass(now)
            if self._pass:
                await self._decide_slice()
            elif self._held:
                await self._publish_held_slice()
            if intake.pending and (self.checkpoint.due() or len(intake.pending) >= self._max_pending):
                await self._commit()  # due, or back-pressure: unacknowledged work must not pile up
            await self._outbox.flush()  # what this turn sent leaves now; it is confirmed at the pass's end
        except SendFailed as exc:
            await self._failed(exc)
            return
        except EventsFailed as exc:
            self.intake.count_failure(exc)
            self._redo_later()
            return
        if self._keeping is not None or self._clock() >= self._keepalive_at:
            await self._keepalive_slice()

    async def _take(self, events: list[EventT]) -> None:
        """Fold a batch into the live state of its targets; nothing is decided or acknowledged yet."""
        self.checkpoint.events_taken()  # an event waits at most one checkpoint interval for its acknowledgement
        self.intake.note_taken(events)
        self._took_events = True
        if self._rebuild_needed:
            self.intake.count_events(events)
            return  # the next turn folds everything pending again
        await self.intake.fold(events, self._outbox)

    def _start_pass(self, now: float) -> None:
        """The decision tick: the targets whose decide period ended, and the held decisions now due."""
        self._tick_at = now + self.settings.worker.decide_interval_s
        self._pass = list(self.intake.take_undecided(now, self.cadence.period_s, self.cadence.min_period_s).items())
        self._pass_size = len(self._pass)
        if self._settled():
            self._held = self.publisher.take_due(_now_ms())

    async def _decide_slice(self) -> None:
        """Decide the next slice of the pass; at its end confirm its decisions and adjust the decide period."""
        batch, self._pass = self._pass[:DECIDE_SLICE], self._pass[DECIDE_SLICE:]
        await self._decide(batch)
        if not self._pass:
            await self._confirm()
            self.metrics.decided_targets.observe(self._pass_size)
            self.metrics.decide_period.set(self.cadence.passed(self._deciding_s, self._clock()))
            self._deciding_s = 0.0

    async def _decide(self, batch: list[tuple[str, Touched]]) -> None:
        """Decide these targets and publish the decisions that changed (failures pinned on their events)."""
        started = self._clock()
        now = _now_ms()
        outbox = self._outbox
        for target_id, item in batch:
            entry = item.entry
            try:
                entry.decided_at = started
                await self.publisher.publish(entry.state, now, outbox, keepalive=False, partition=entry.partition)
                # Cleared even if another worker raised it before a rebalance moved the target here.
                await self.alarm_publisher.publish(self.board.clear_alarm(
                    alarms.TARGET_STALE, target_id, "statistics arrive again", force=item.revived), outbox)
            except SendFailed:
                raise
            except Exception as exc:
                raise EventsFailed(item.events, exc) from exc
        self._deciding_s += self._clock() - started

    async def _publish_held_slice(self) -> None:
        """Publish the next slice of the decisions held for the end of their publish interval."""
        if not self._settled():  # partitions started to move: the rest waits for them to settle
            self.publisher.hold(self._held, _now_ms())
            self._held = []
            return
        batch, self._held = self._held[:DECIDE_SLICE], self._held[DECIDE_SLICE:]
        stale_ms = self.settings.worker.stale_after_s * 1000
        owned = self.owned_partitions()
        now = _now_ms()
        for target_id in batch:
            entry = self.store.get(target_id)
            if entry is not None and entry.partition in owned:
                await self.publisher.publish(entry.state, now, self._outbox, keepalive=False,
                                             stale=now - entry.received_ms > stale_ms, partition=entry.partition)
        if not self._held:
            await self._confirm()

    async def _confirm(self) -> None:
        """Wait for the broker to take what the outbox holds; the decisions count as published once it did."""
        await self._outbox.confirm()
        self._outbox = self._new_outbox()
        await self._kafka_available()

    async def _commit(self) -> None:
        """Write, confirm and acknowledge (:class:`Checkpoint`)."""
        await self.checkpoint.commit(self._outbox, self._acknowledge_event)
        self._outbox = self._new_outbox()
        await self._kafka_available()

    async def _acknowledge_event(self, event: EventT) -> None:
        assert self._acknowledge is not None, "events were taken, so a stream was attached"
        await self._acknowledge(event)

    async def _suspend(self) -> None:
        """Partitions move or the worker stops: checkpoint what was taken, including what waits in the inbox.

        The pass under way was held when partitions moved (:meth:`on_partitions_moved`); a worker
        that stops holds it too, for nobody: its next owner publishes those targets at its first
        keepalive pass.
        """
        if self._pass or self._held:
            self.publisher.hold([*(target_id for target_id, _ in self._pass), *self._held], _now_ms())
            self._pass, self._held = [], []
        while (events := self.inbox.take_nowait()) is not None:
            await self._take(events)
        if self.intake.pending:
            await self._commit()

    async def _failed(self, failure: SendFailed) -> None:
        """Kafka did not take the writes: alarm, redo from the table after a backoff, or give up when moving."""
        self._redo_later()
        if isinstance(failure, Fenced):  # not Kafka's fault: the rebalance that follows decides
            log.warning("checkpoint not written, nothing acknowledged; retrying in %.1fs: %s", self._backoff_s, failure)
        else:
            self.metrics.send_failures.inc()
            log.error("writes to Kafka failed, nothing acknowledged; retrying in %.1fs: %s", self._backoff_s, failure)
        if not self._kafka_failing and not isinstance(failure, Fenced):
            self._kafka_failing = True
            await self.alarm_publisher.publish_now(self.board.raise_alarm(
                alarms.KAFKA_UNAVAILABLE, self.settings.node_id,
                f"writes to Kafka fail; stat events are not acknowledged until they succeed: {failure}",
                severity="critical"))
        if self._give_up():
            return
        await asyncio.sleep(self._backoff_s)
        self._backoff_s = min(self._backoff_s * 2, RETRY_MAX_S)

    def _redo_later(self) -> None:
        """The work in flight failed: decide the pass's targets again, after the live state is rebuilt."""
        for target_id, item in self._pass:
            self.intake.undecided[target_id] = item
        self._pass = []
        self._rebuild_needed = True

    def _moving(self) -> bool:
        return consumption_suspended(self.app) or self.app.should_stop

    async def _rebuild(self) -> None:
        """Forget the live state and fold every pending event again, on top of the table's state."""
        while True:
            self._reset_work()
            try:
                await self.intake.fold(self.intake.pending, self._outbox, again=True)
            except EventsFailed as exc:  # out of attempts, its events are rejected at the next round
                self.intake.count_failure(exc)
                continue
            self._rebuild_needed = False
            return

    def _give_up(self) -> bool:
        """When stopping or rebalancing, drop the pending work: it is replayed from the committed offset."""
        if not self._moving():
            return False
        dropped = self.intake.drop_pending()
        for events in self.inbox.drain():
            dropped.extend(events)
        release_unacknowledged(self.app.consumer, dropped)
        self._reset_work()
        self._rebuild_needed = False
        return True

    def _reset_work(self) -> None:
        self._outbox.abandon()
        self._outbox = self._new_outbox()
        self.intake.reset()

    async def _kafka_available(self) -> None:
        self._backoff_s = RETRY_INITIAL_S
        if self._kafka_failing:
            self._kafka_failing = False
            log.info("writes to Kafka succeed again")
            # Forced: a raise that timed out (so the board forgot it) may still have been delivered by
            # the producer once the broker was reachable again, and would otherwise stay raised.
            await self.alarm_publisher.publish_now(self.board.clear_alarm(
                alarms.KAFKA_UNAVAILABLE, self.settings.node_id, "writes to Kafka succeed again", force=True))

    # -- the keepalive pass ----------------------------------------------------------------

    def owned_partitions(self) -> set[int]:
        """The ``pacing.stats`` partitions this worker actively owns (standbys excluded)."""
        return {tp.partition for tp in owned_actives(self.app) if tp.topic == self.names.stats}

    def _settled(self) -> bool:
        """False while partitions move or tables restore: nothing may publish half-restored state."""
        return (recovery_completed(self.app) and not self.app.rebalancing
                and self.definitions.caught_up)

    async def _check_caught_up(self, owned: set[int]) -> None:
        """Find the partitions newly assigned with nothing to replay (their position is their end): the
        publisher holds the decisions of the others until the intake took them to it (streams.node.catch_up)."""
        try:
            await self.catch_up.caught_up(owned, self.intake.next_offset, self.app.consumer.highwater,
                                          lambda tp: committed_offset(self.app, tp))
        except ConsumerNotStarted:  # a node run without Kafka: nothing to replay
            pass

    async def _keepalive_slice(self) -> None:
        """Plan a keepalive pass when due, and publish one slice of it per turn; at its end, health and lag.

        The pass is dropped when partitions start to move (the next one, on the new assignment, redoes
        it) or when Kafka refuses a record (the next one retries).
        """
        if self._keeping is None:
            self._keepalive_at = self._clock() + self._keepalive_every_s
            if not self._settled():
                return
            self._keepalive_outbox.discard()  # a pass dropped when partitions moved
            self._keeping_owned = self.owned_partitions()
            await self._check_caught_up(self._keeping_owned)
            self._keeping = self.keepalive.plan(self._keeping_owned, _now_ms())
            self._keepalive_outbox = self._new_outbox()
            self.metrics.targets.set(self._keeping.owned_count)
        planned, outbox = self._keeping, self._keepalive_outbox
        if not self._settled():
            self._keeping = None
            outbox.discard()
            return
        batch, planned.due = planned.due[:DECIDE_SLICE], planned.due[DECIDE_SLICE:]
        started = self._clock()
        try:
            await self.keepalive.publish(batch, planned.now_ms, outbox)
            await outbox.flush()
            self._deciding_s += self._clock() - started  # re-deciding counts in the decide period's share
        except SendFailed as exc:  # nothing is lost: the next pass publishes what is still due
            self._keeping = None
            outbox.discard()
            self.metrics.send_failures.inc()
            log.error("keepalive decisions and alarms not published: %s", exc)
            return
        if not planned.due:
            self._keeping = None
            await self.keepalive.finish(outbox)
            await self._observe_lag(self._keeping_owned)

    async def _observe_lag(self, owned: set[int]) -> None:
        """Per owned partition: events on the log not yet taken by this worker.

        A partition this worker has not taken anything from since it was assigned counts from its
        consumer position (the committed offset), not as caught up.
        """
        lags = []
        consumer = self.app.consumer
        try:
            for partition in owned:
                tp = TP(self.names.stats, partition)
                taken = self.intake.next_offset.get(partition)
                if taken is None:
                    taken = await consumer.position(tp)
                lags.append((partition, consumer.highwater(tp), taken))
        except ConsumerNotStarted:  # starting (or a node run without Kafka): no lag known yet
            return
        record_lag(self.metrics.lag, lags)

    def internal_topics(self) -> list[NewTopic]:
        """Faust's topics of this app, created ahead of Faust with the deployment's topic settings."""
        kafka = self.settings.kafka
        assignor = NewTopic(f"{self.app.conf.id}-__assignor-__leader", 1, kafka.replication_factor,
                            topic_configs=topic_configs(self.settings))
        return [changelog_spec(self.settings, self.store.changelog_topic), assignor]

    # -- side services -------------------------------------------------------------------

    async def _publish_metrics(self, key: bytes, value: bytes) -> None:
        outbox = self._new_outbox()
        await outbox.send(self.names.metrics, key, value)
        await outbox.confirm()

    async def start_side_services(self) -> None:
        """Events a resumed flow throws away fetched again; health sampling, target definitions,
        reporters, /metrics."""
        refetch_cleared_events(self.app)  # here, not in create_app: it binds the app's flow control to the loop
        self.health.install()
        await self.definitions.start()
        self._reporters = asyncio.create_task(run_reporters(
            self.settings, "worker", self.metrics.registry, self._publish_metrics))
        port = self.settings.worker.web_port
        if port:
            self._web = await start_metrics_server(self.metrics.registry, "0.0.0.0", port, lambda: self.ready)
            log.info("metrics on http://0.0.0.0:%d/metrics", port)
        if self.settings.api.port:  # the Pacing REST API (streams/api), in a process of its own
            self.api = await start_api_process(self.settings, lambda: self.ready)


def create_app(settings: Settings, definitions: TargetDefinitions | None = None, *,
               producer: TransportProducer | None = None, clock: Callable[[], float] = time.monotonic) -> PacingNode:
    """The Faust app of one pacing node: its stats topic, state table, agent and tasks.

    Read it as a Faust example: the settings are read first, so the app is built here rather than
    at import time; the agent hands its batches to the :class:`PacingNode`'s loop. ``producer`` and
    ``clock`` replace the app's producer and the monotonic clock (tests run the node without Kafka).
    """
    worker = settings.worker
    kafka = settings.kafka
    datadir = Path(worker.data_dir) / settings.node_id
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        worker.app_id if not kafka.topic_prefix else f"{kafka.topic_prefix}.{worker.app_id}",
        store=worker.store,
        datadir=str(datadir),
        topic_partitions=kafka.stats_partitions,
        table_standby_replicas=worker.standby_replicas,
        processing_guarantee="at_least_once",
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        Monitor=LeanMonitor,
        **faust_broker_options(settings),
    )
    install_consumer(app, fetch_max_wait_ms=kafka.fetch_max_wait_ms, fast_drain=worker.fast_drain)
    stats_topic = app.topic(topic_names(settings).stats, partitions=kafka.stats_partitions, **RAW)
    table = app.Table(
        "target-state", default=None, partitions=kafka.stats_partitions,
        schema=faust.Schema(key_serializer="json", value_serializer="json"),  # plain JSON both ways
        help="per-target pacing state",
    )
    node = PacingNode(settings, app, table, definitions, producer=producer, clock=clock)

    @app.agent(stats_topic, name="pacing-node", concurrency=1)
    async def pacing(stream: faust.StreamT) -> None:
        """Stat events in: handed to the node's loop (:meth:`PacingNode.run`)."""
        await node.consume(stream)

    @app.task
    async def pacing_loop() -> None:
        """Fold, decide, publish, checkpoint and keep alive: the one task that touches the node's state."""
        await node.run()

    @app.task
    async def side_services() -> None:
        await node.start_side_services()

    app.on_partitions_revoked.connect(node.on_partitions_moved)
    app.on_partitions_assigned.connect(node.on_partitions_moved)
    app.on_partitions_assigned.connect(node.ownership.on_assigned_signal)
    app.on_partitions_assigned.connect(node.catch_up.on_assigned_signal)
    return node


def guard_topics(node: PacingNode) -> TopicGuard:
    """Stop the worker, with ``PacingTopicsMissing`` and its own exit status, when its topics vanish.

    For brokers where topics do not vanish by themselves (:mod:`streams.node.topic_guard`); checked
    every ``kafka.topic_check_interval_s``.
    """
    settings = node.settings

    async def problems() -> list[str]:
        return await topic_problems(settings, worker_topic_specs(settings, node.store.changelog_topic))

    async def raise_alarm(lost: list[str]) -> bool:
        return await node.alarm_publisher.publish_now(node.board.raise_alarm(
            alarms.TOPICS_MISSING, settings.node_id,
            f"deployment topics missing or wrong: {'; '.join(lost)}; the worker stops (exit status "
            f"{EXIT_TOPICS_MISSING}) for its supervisor to restart it, which creates what is missing",
            severity="critical", observed_value=float(len(lost)), threshold=0.0))

    async def clear_alarm(message: str) -> bool:
        return await node.alarm_publisher.publish_now(node.board.clear_alarm(
            alarms.TOPICS_MISSING, settings.node_id, message, force=True))

    mark = Path(settings.worker.data_dir) / settings.node_id / "topics-missing"
    guard = TopicGuard(problems, raise_alarm, clear_alarm, node.app.crash, mark)
    node.app.timer(settings.kafka.topic_check_interval_s, name="topic-guard")(guard.check)
    return guard


def run_worker(settings: Settings, loglevel: str = "info", *,
               dev_broker: Callable[[PacingNode], Awaitable[object]] | None = None) -> None:
    """Run one pacing node until SIGINT/SIGTERM.

    ``dev_broker`` attaches the embedded broker's workarounds to the node once its topics exist and
    before it starts (``pacing worker`` passes :func:`streams.dev_broker.attach_to_worker`, which
    attaches nothing on Apache Kafka and returns None). Where it attached no topic recovery, the
    worker stops when its topics vanish (:func:`guard_topics`), exiting with
    :data:`~streams.node.topic_guard.EXIT_TOPICS_MISSING`.
    """
    from streams.runtime.collector import tune_for_long_running_service
    from streams.runtime.topics import ensure_topics

    node = create_app(settings)
    asyncio.run(ensure_topics(settings, node.internal_topics()))
    recovery = asyncio.run(dev_broker(node)) if dev_broker is not None else None
    guard = guard_topics(node) if recovery is None else None
    worker = faust.Worker(node.app, loglevel=loglevel)
    tune_for_long_running_service()
    try:
        worker.execute_from_commandline()
    except SystemExit:
        if guard is not None and guard.lost:
            sys.exit(EXIT_TOPICS_MISSING)
        raise
