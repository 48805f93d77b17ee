"""The pacing nodes: a Faust app whose agent turns stat events into pacing decisions.

This module is the Faust wiring — :func:`create_app` at the end: the app, the stats topic, the
state table, ``@app.agent`` and the ``@app.timer`` s, as in Faust's own examples — and the decision
tick and checkpoint (:class:`PacingNode`); each other step has its own module:
- :mod:`streams.node.stat_intake` decodes, rejects, forwards and folds taken events into live state;
- :mod:`streams.node.target_store` keeps the owned targets' entries in front of the changelog table;
- :mod:`streams.node.cadence` says when a target is decided (a material change at once, else once per
  decide period);
- :mod:`streams.node.decision_publisher` decides a target and publishes its decision when it changed;
- :mod:`streams.node.checkpoint` writes the touched targets' entries, confirms every send and
  acknowledges the events;
- :mod:`streams.node.keepalive` re-publishes due decisions and paces silent targets inactive;
- :mod:`streams.node.topic_watch` recovers when the cluster lost the deployment's topics.

Work is proportional to targets, not events. Events are folded into live state as they arrive;
a target whose statistics changed materially (:attr:`StatIntake.urgent`) is decided by the agent
right after the batch that changed it; on the decision tick (every ``worker.decide_interval_s``)
each other target folded since the last tick is decided once, in slices the agent's intake
interleaves with, and its decision published if it changed; at a checkpoint (a tick at most
``worker.checkpoint_interval_s`` after the oldest unacknowledged event was taken) each target
folded since the last checkpoint has its table entry written once, and the events are
acknowledged. A target without a material change waits for its decide period, which grows under
load so that deciding takes at most about a quarter of the worker's time, never past 0.75 of
``targets.refresh_period_s`` (:mod:`streams.node.cadence`): fewer output records per event, and
the latency stays within a refresh period.

At-least-once, exactly: the events are acknowledged — and so their offsets become committable —
only at a checkpoint, after every record they caused (decisions, changelog, DLQ, forwarded
events, alarms) was acknowledged by the broker (:class:`streams.runtime.outbox.Outbox`).
- A failed or unacknowledged write (Kafka unavailable) redoes the tick with backoff, forever,
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
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import faust
from aiokafka.admin import NewTopic
from faust.types import TP, EventT

from streams.node.cadence import DecideCadence
from streams.node.catch_up import CatchUp
from streams.node.checkpoint import Checkpoint
from streams.node.decision_publisher import DecisionPublisher
from streams.node.faust_compat import (
    LeanMonitor,
    committed_offset,
    consumption_suspended,
    install_consumer,
    owned_actives,
    recovery_completed,
    refetch_cleared_events,
    release_unacknowledged,
)
from streams.node.keepalive import Keepalive
from streams.node.ownership import Fenced, Ownership
from streams.node.stat_intake import EventsFailed, StatIntake, Touched
from streams.node.target_definitions import TargetDefinitions
from streams.node.target_store import TargetStore
from streams.node.topic_watch import TopicWatch, changelog_spec
from streams.runtime import alarms
from streams.runtime.alarm_publisher import AlarmPublisher
from streams.runtime.alarms import AlarmBoard
from streams.runtime.config import Settings
from streams.runtime.kafka import ssl_context
from streams.runtime.metrics import NodeMetrics, record_lag, start_metrics_server
from streams.runtime.metrics_reporter import run_reporters
from streams.runtime.outbox import Outbox, SendFailed
from streams.runtime.process_health import ProcessHealth
from streams.runtime.topics import TopicNames, topic_configs, topic_names

log = logging.getLogger(__name__)

RAW = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}
RETRY_INITIAL_S = 0.2
RETRY_MAX_S = 5.0
#: Targets decided per slice of a decision pass (the lock is released between slices).
DECIDE_SLICE = 200
_Item = TypeVar("_Item")


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
    """One worker's pacing state and work: the intake, the decision tick, the checkpoint, the keepalive.

    :func:`create_app` builds the Faust app, its topic and table, and wires this node's methods
    as the app's agent and timers.
    """

    def __init__(self, settings: Settings, app: faust.App, table: faust.Table,
                 definitions: TargetDefinitions | None = None):
        self.settings = settings
        self.app = app
        self.names: TopicNames = topic_names(settings)
        self.metrics = NodeMetrics()
        self.board = AlarmBoard(settings.tenant, settings.node_id)
        self.definitions = definitions or TargetDefinitions(settings)
        self.health = ProcessHealth(settings.metrics, self.board)
        worker = settings.worker
        self.ownership = Ownership(app, settings.kafka.session_timeout_s,
                                   lambda: {self.names.actiontargets, self.store.changelog_topic})
        self.store = TargetStore(table, lambda: self.ownership.epoch)
        self.alarm_publisher = AlarmPublisher(self.board, self.names.alarms, self.metrics, self._new_outbox)
        self.intake = StatIntake(settings, self.names, self.store, self.metrics)
        self.catch_up = CatchUp(self.names.stats, self.intake.next_offset, lambda tp: self.app.consumer.highwater(tp))
        self.publisher = DecisionPublisher(settings, self.names.actiontargets, self.definitions, self.metrics,
                                           self.alarm_publisher, self.ownership, self.catch_up.reached)
        self.keepalive = Keepalive(settings, self.store, self.publisher, self.definitions, self.alarm_publisher,
                                   self.health, self.metrics)
        # Unguarded: after a broker lost its state the group is gone too, and the state written again
        # carries epoch 0, which any owner's entry supersedes (streams.runtime.fencing).
        self.topic_watch = TopicWatch(settings, self.names, app, self.store, self.intake.next_offset,
                                      self.owned_partitions, self.alarm_publisher,
                                      lambda: Outbox(self.app.producer, worker.send_timeout_s))
        self._outbox: Outbox | None = None
        self._rebuild_needed = False
        self._lock = asyncio.Lock()  # the intake, the live entries and the outbox
        self._flushing = asyncio.Lock()  # one decision pass at a time
        self._stream: faust.StreamT | None = None
        self._kafka_failing = False
        self._ready = False
        self.checkpoint = Checkpoint(self.intake, self.store, self.metrics, worker.checkpoint_interval_s)
        self.cadence = DecideCadence(worker.decide_interval_s, settings.targets.refresh_period_s, time.monotonic())
        self._urgent_deciding_s = 0.0  # spent on urgent passes since the last tick

    @property
    def ready(self) -> bool:
        """Serving: owns partitions (or processed a batch) and can write to Kafka."""
        return ((self._ready or bool(self.owned_partitions())) and not self._kafka_failing
                and not self.topic_watch.lost)

    def _new_outbox(self) -> Outbox:
        return Outbox(self.app.producer, self.settings.worker.send_timeout_s, self.ownership.guard)

    async def on_partitions_moved(self, *_: Any, **__: Any) -> None:
        """The table holds the truth for whatever this worker owns now: drop the live entries.

        Targets still waiting for their decide period are held: this worker publishes those it still
        owns once the partitions settle, a new owner at its first keepalive pass.
        """
        self.publisher.hold(list(self.intake.take_undecided()), _now_ms())
        self.store.forget()

    # -- the agent -----------------------------------------------------------------------

    async def consume(self, stream: faust.StreamT) -> None:
        """The agent: take stat events in batches and fold them into live state (decided at the next tick)."""
        worker = self.settings.worker
        await self.definitions.wait_caught_up()  # no decision with default names before definitions are read
        self._stream = stream
        self._outbox = self._new_outbox()
        async for events in stream.noack_take(worker.batch_max_events, within=worker.batch_within_s):
            async with self._lock:
                await self._take(events)
            if len(self.intake.pending) >= worker.max_pending_events:
                await self.flush(checkpoint=True)  # back-pressure: do not let unacknowledged work pile up
            elif (self.intake.urgent and not self._flushing.locked()
                  and self.intake.urgent_due(time.monotonic(), self.cadence.min_period_s)):
                await self.flush(checkpoint=False, urgent=True)  # a material change: decided now, not at the tick
            self._ready = True

    async def _take(self, events: list[EventT]) -> None:
        """Fold a batch into the live state of its targets; nothing is decided or acknowledged yet."""
        self.checkpoint.events_taken()  # an event waits at most one checkpoint interval for its acknowledgement
        self.intake.note_taken(events)
        if self._rebuild_needed:
            self.intake.count_events(events)
            return  # the next tick folds everything pending again
        try:
            await self.intake.fold(events, self._outbox)
        except EventsFailed as exc:
            self.intake.count_failure(exc)
            self._rebuild_needed = True
        except SendFailed:
            self._rebuild_needed = True

    # -- the decision tick and the checkpoint -----------------------------------------------

    async def on_decide_tick(self) -> None:
        """The decision timer: a tick when due, a checkpoint when due or when Faust suspends the flow."""
        if consumption_suspended(self.app):
            # Partitions move or the worker stops: Faust waits for the pending events meanwhile.
            await self.flush(checkpoint=True)
        else:
            await self.flush(checkpoint=self.checkpoint.due())
        if self._settled():
            await self._publish_held()

    async def _publish_held(self) -> None:
        """Publish the decisions held for the end of their publish interval (see DecisionPublisher)."""
        due = self.publisher.take_due(_now_ms())
        if not due:
            return
        stale_ms = self.settings.worker.stale_after_s * 1000
        outbox = self._new_outbox()

        async def publish(targets: list[str]) -> None:
            owned = self.owned_partitions()  # read under the lock, slice by slice: ownership may have moved
            now = _now_ms()
            for target_id in targets:
                entry = self.store.get(target_id)
                if entry is not None and entry.partition in owned:
                    await self.publisher.publish(entry.state, now, outbox, keepalive=False,
                                                 stale=now - entry.received_ms > stale_ms, partition=entry.partition)

        # Partitions started to move: the rest waits for them to settle.
        rest = await self._in_slices(due, lambda: not self._settled(), publish)
        if rest:
            self.publisher.hold(rest, _now_ms())
        async with self._lock:  # one wait for the broker's acknowledgements, not one per slice
            failure = await outbox.settle()
        if failure is not None:  # nothing is lost: the keepalive publishes them
            self.metrics.send_failures.inc()
            log.error("held decisions not published: %s", failure)

    async def _in_slices(self, items: list[_Item], stop: Callable[[], bool],
                         work: Callable[[list[_Item]], Awaitable[None]]) -> list[_Item]:
        """Run ``work`` over ``items`` one slice of DECIDE_SLICE at a time under the node lock, letting the
        agent fold and the timers run between slices; return the items left when ``stop()`` said so."""
        for first in range(0, len(items), DECIDE_SLICE):
            if first and stop():
                return items[first:]
            async with self._lock:
                await work(items[first:first + DECIDE_SLICE])
            await asyncio.sleep(0)  # let a waiting agent or timer have the lock
        return []

    async def flush(self, checkpoint: bool = True, urgent: bool = False) -> None:
        """Decide the targets folded since the last tick; on a checkpoint also store them and acknowledge.

        ``urgent``: decide only the targets whose statistics changed materially
        (:attr:`StatIntake.urgent`), at once; the others keep waiting for the tick.

        Each target is decided (and published if its decision changed) once per tick, and its table
        entry written once per checkpoint, however many events it got. The targets are decided in
        slices, and the agent takes and folds events between slices: a long pass (thousands of
        targets the engine has not seen) never stops the intake. A checkpoint acknowledges the
        events taken before the pass began, and only after Kafka confirmed every record they
        caused; later events wait for the next one. A failure redoes the work from the table's
        state and the pending events (folding is idempotent) until it succeeds, or until the worker
        stops or partitions move — then nothing is acknowledged and the events are replayed from
        the committed offset. A pass that Faust suspends the flow under (partitions move, the worker
        stops) ends after its current slice and checkpoints: Faust waits for the pending events.
        """
        intake = self.intake
        async with self._flushing:
            backoff = RETRY_INITIAL_S
            deciding_s = 0.0
            while True:
                async with self._lock:
                    if not (intake.pending or intake.touched or intake.undecided):
                        return
                    try:
                        if self._rebuild_needed:
                            await self._rebuild()
                    except SendFailed as exc:
                        if await self._write_failed(exc, backoff):
                            return
                        backoff = min(backoff * 2, RETRY_MAX_S)
                        continue
                    taken = len(intake.pending)  # what this pass may acknowledge
                    cadence = self.cadence
                    # The agent decides urgent targets itself: one slice per batch it takes, so that a
                    # burst of material changes (a whole site opening) never stalls the intake.
                    batch = (intake.take_urgent(time.monotonic(), cadence.min_period_s, DECIDE_SLICE) if urgent
                             else intake.take_undecided(time.monotonic(), cadence.period_s, cadence.min_period_s))
                    outbox = self._outbox
                try:
                    spent, cut_short = await self._decide(batch, outbox)
                    deciding_s += spent
                    checkpoint = checkpoint or cut_short  # Faust waits for the events: acknowledge them now
                    async with self._lock:
                        if self._rebuild_needed or outbox is not self._outbox:
                            continue  # a fold failed meanwhile: redo from the pending events
                        if checkpoint:
                            await self.checkpoint.commit(outbox, taken, self._stream.ack)
                        else:
                            await outbox.confirm()
                        self._outbox = self._new_outbox()
                        await self._kafka_available()
                except SendFailed as exc:
                    async with self._lock:
                        self._rebuild_needed = True
                        if await self._write_failed(exc, backoff):
                            return
                    backoff = min(backoff * 2, RETRY_MAX_S)
                    continue
                except EventsFailed as exc:
                    async with self._lock:
                        intake.count_failure(exc)
                        self._rebuild_needed = True
                    continue
                break
            if urgent:
                self._urgent_deciding_s += deciding_s
            else:
                period = self.cadence.passed(deciding_s + self._urgent_deciding_s, time.monotonic())
                self._urgent_deciding_s = 0.0
                self.metrics.decide_period.set(period)

    async def _write_failed(self, failure: SendFailed, backoff: float) -> bool:
        """Kafka did not take the writes: alarm, and wait before the retry; True if the work is given up."""
        await self._kafka_unavailable(failure, backoff)
        if self._give_up():
            return True
        await asyncio.sleep(backoff)
        return False

    def _moving(self) -> bool:
        return self.app.should_stop or self.app.rebalancing

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
        release_unacknowledged(self.app.consumer, self.intake.drop_pending())
        self._reset_work()
        return True

    def _reset_work(self) -> None:
        self._outbox.abandon()
        self._outbox = self._new_outbox()
        self.intake.reset()

    async def _decide(self, batch: dict[str, Touched], outbox: Outbox) -> tuple[float, bool]:
        """Decide and publish ``batch`` in slices (its events pinned on failure).

        The lock is taken per slice: between slices the agent folds new events (into the next
        batch) and the keepalive timer runs. Returns the time spent deciding, and whether the
        pass was cut short because Faust suspended the flow (partitions move, the worker stops).
        """
        items = list(batch.items())
        spent = 0.0

        async def decide(targets: list[tuple[str, Touched]]) -> None:
            nonlocal spent
            started = time.monotonic()
            now = _now_ms()
            for target_id, item in targets:
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
            spent += time.monotonic() - started

        # Partitions move or the worker stops: Faust waits for every delivered event to be acknowledged,
        # so the pass ends after its current slice and checkpoints. The rest are held: this node
        # publishes those it still owns once the rebalance settles, a new owner at its first keepalive
        # pass (their states are in the checkpoint).
        rest = await self._in_slices(items, lambda: consumption_suspended(self.app), decide)
        if rest:
            self.publisher.hold([target_id for target_id, _ in rest], _now_ms())
        self.metrics.decided_targets.observe(len(items) - len(rest))
        return spent, bool(rest)

    async def _kafka_unavailable(self, failure: SendFailed, retry_in_s: float) -> None:
        if isinstance(failure, Fenced):  # not Kafka's fault: the rebalance that follows decides
            log.warning("checkpoint not written, nothing acknowledged; retrying in %.1fs: %s", retry_in_s, failure)
            return
        self.metrics.send_failures.inc()
        log.error("writes to Kafka failed, nothing acknowledged; retrying in %.1fs: %s", retry_in_s, failure)
        if not self._kafka_failing:
            self._kafka_failing = True
            await self.alarm_publisher.publish_now(self.board.raise_alarm(
                alarms.KAFKA_UNAVAILABLE, self.settings.node_id,
                f"writes to Kafka fail; stat events are not acknowledged until they succeed: {failure}",
                severity="critical"))

    async def _kafka_available(self) -> None:
        if self._kafka_failing:
            self._kafka_failing = False
            log.info("writes to Kafka succeed again")
            await self.alarm_publisher.publish_now(self.board.clear_alarm(
                alarms.KAFKA_UNAVAILABLE, self.settings.node_id, "writes to Kafka succeed again"))

    # -- the keepalive timer -------------------------------------------------------------

    def owned_partitions(self) -> set[int]:
        """The ``pacing.stats`` partitions this worker actively owns (standbys excluded)."""
        return {tp.partition for tp in owned_actives(self.app) if tp.topic == self.names.stats}

    def _settled(self) -> bool:
        """False while partitions move or tables restore: the timer must not publish half-restored state."""
        return (recovery_completed(self.app) and not self.app.rebalancing
                and self.definitions.caught_up)

    async def on_refresh_timer(self) -> None:
        """Keepalive and staleness for the targets this worker owns; no table writes here."""
        if not self._settled():
            return
        async with self._lock:  # between ticks: never beside a tick publishing the same targets
            owned = self.owned_partitions()  # read under the lock: a rebalance may have moved them meanwhile
            caught_up = await self.catch_up.caught_up(owned, self.intake.next_offset, self.app.consumer.highwater,
                                                      lambda tp: committed_offset(self.app, tp))
            count = await self.keepalive.run(owned, _now_ms(), self._new_outbox(), caught_up)
        self.metrics.targets.set(count)
        await self._observe_lag(owned)

    async def _observe_lag(self, owned: set[int]) -> None:
        """Per owned partition: events on the log not yet taken by this worker.

        A partition this worker has not taken anything from since it was assigned counts from its
        consumer position (the committed offset), not as caught up.
        """
        lags = []
        for partition in owned:
            tp = TP(self.names.stats, partition)
            taken = self.intake.next_offset.get(partition)
            if taken is None:
                taken = await self.app.consumer.position(tp)
            lags.append((partition, self.app.consumer.highwater(tp), taken))
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

    async def _checkpoint_when_stopping(self) -> None:
        """When the worker stops, write and acknowledge what is pending.

        Faust stops its timers first and then waits until every event it delivered is acknowledged:
        without this final checkpoint the wait would not end, and the next owner would replay the
        events. If the checkpoint cannot be written in time, the events are released (replayed).
        """
        await self.app.wait_for_stopped()
        try:
            await asyncio.wait_for(self.flush(checkpoint=True), self.settings.worker.send_timeout_s)
        except Exception as exc:
            log.warning("final checkpoint not written (%s: %s); the pending events are replayed by their next owner",
                        type(exc).__name__, exc)
            self._give_up()

    async def start_side_services(self) -> None:
        """Events a resumed flow throws away fetched again; the final checkpoint's watcher, health
        sampling, target definitions, reporters, /metrics."""
        refetch_cleared_events(self.app)  # here, not in create_app: it binds the app's flow control to the loop
        self._final_checkpoint = asyncio.create_task(self._checkpoint_when_stopping())
        self.health.install()
        await self.definitions.start()
        self._reporters = asyncio.create_task(run_reporters(
            self.settings, "worker", self.metrics.registry, self._publish_metrics))
        port = self.settings.worker.web_port
        if port:
            self._web = await start_metrics_server(self.metrics.registry, "0.0.0.0", port, lambda: self.ready)
            log.info("metrics on http://0.0.0.0:%d/metrics", port)


def create_app(settings: Settings, definitions: TargetDefinitions | None = None) -> PacingNode:
    """The Faust app of one pacing node: its stats topic, state table, agent and timers.

    Read it as a Faust example: the settings are read first, so the app is built here rather than
    at import time; the agent and timers hand their work to the :class:`PacingNode`.
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
    node = PacingNode(settings, app, table, definitions)

    @app.agent(stats_topic, name="pacing-node", concurrency=1)
    async def pacing(stream: faust.StreamT) -> None:
        """Stat events in: folded into the live state of their targets (:mod:`streams.node.stat_intake`)."""
        await node.consume(stream)

    @app.timer(worker.decide_interval_s, name="decide")
    async def decide() -> None:
        """Decisions out: each target folded since the last tick is decided once, its decision published."""
        await node.on_decide_tick()

    @app.timer(max(0.5, min(worker.keepalive_s / 3, settings.targets.refresh_period_s, 5.0)), name="refresh")
    async def refresh() -> None:
        """Keepalive, staleness, lag and process health of the owned targets."""
        await node.on_refresh_timer()

    @app.timer(kafka.topic_check_interval_s, name="topic-watch")
    async def topic_watch() -> None:
        """Recover when the cluster lost the deployment's topics."""
        await node.topic_watch.check()

    @app.task
    async def side_services() -> None:
        await node.start_side_services()

    app.on_partitions_revoked.connect(node.on_partitions_moved)
    app.on_partitions_assigned.connect(node.on_partitions_moved)
    app.on_partitions_assigned.connect(node.ownership.on_assigned_signal)
    app.on_partitions_assigned.connect(node.catch_up.on_assigned_signal)
    return node


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    """Run one pacing node until SIGINT/SIGTERM."""
    from streams.node.end_offsets import install_faust_end_offset_probe
    from streams.runtime.collector import tune_for_long_running_service
    from streams.runtime.kafka import client_options
    from streams.runtime.topics import ensure_topics

    node = create_app(settings)
    asyncio.run(ensure_topics(settings, node.internal_topics()))
    if settings.kafka.probe_end_offsets:
        install_faust_end_offset_probe(client_options(settings), settings.kafka.broker_kind)
    worker = faust.Worker(node.app, loglevel=loglevel)
    tune_for_long_running_service()
    worker.execute_from_commandline()
