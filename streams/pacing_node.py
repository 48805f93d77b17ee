"""The pacing nodes: a Faust app whose agent turns stat events into pacing decisions.

Per batch of events (``take_events``): decode in bulk, reject bad or foreign events to the
DLQ with a reason, fold the good ones into each target's state, then — once per touched
target, not per event — decide, publish the decision if it changed, and write the state to
the changelog-backed table. A timer re-publishes every decision the worker owns at least every
``keepalive_s`` and turns targets without fresh statistics inactive (alarm ``TargetStale``).

Offsets: Faust acks a batch's events after the loop body returns and commits acked offsets;
messages sent while handling an event are flushed before that commit, so a crash replays the
batch (at-least-once) and folding is idempotent for replays (stale events are ignored).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import faust
from faust.types import TP, EventT

from schemas import DecodeError, decode_stat_events, encode_decision
from streams import alarms
from streams.alarms import AlarmBoard, AlarmMessage
from streams.config import Settings
from streams.decisions import build_decision, decision_fingerprint
from streams.engine import TargetState
from streams.event_context import as_current_event
from streams.metrics import NodeMetrics, start_metrics_server
from streams.metrics_reporter import run_reporters
from streams.process_health import ProcessHealth
from streams.target_definitions import TargetDefinitions
from streams.topics import TopicNames, topic_names

log = logging.getLogger(__name__)

RAW = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}


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
    if kafka.sasl_mechanism:
        options["broker_credentials"] = faust.SASLCredentials(
            username=kafka.sasl_username,
            password=kafka.sasl_password.get_secret_value() if kafka.sasl_password else None,
            mechanism=kafka.sasl_mechanism,
            ssl_context=faust.SSLCredentials(cafile=kafka.ssl_cafile)
            if kafka.security_protocol == "SASL_SSL" else None,
        )
    elif kafka.security_protocol == "SSL":
        options["broker_credentials"] = faust.SSLCredentials(cafile=kafka.ssl_cafile)
    return options


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
        self.app.task(self._start_side_services)

    # -- the agent -----------------------------------------------------------------------

    async def _consume(self, stream: faust.StreamT) -> None:
        worker = self.settings.worker
        async for events in stream.take_events(worker.batch_max_events, within=worker.batch_within_s):
            await self.process_batch(events)
            self._ready = True

    async def process_batch(self, events: Sequence[EventT]) -> None:
        """Fold one batch of stat events and publish the decisions that changed."""
        self.metrics.batch_size.observe(len(events))
        self.metrics.events_in.inc(len(events))
        decoded = decode_stat_events([event.value for event in events])
        touched: dict[str, tuple[TargetState, dict[str, Any], EventT]] = {}
        for event in events:
            message = event.message
            self._next_offset[message.partition] = max(self._next_offset.get(message.partition, 0), message.offset + 1)
        for event, result in zip(events, decoded, strict=True):
            if isinstance(result, DecodeError):
                await self._reject(event, result.reason)
                continue
            if result.tenant != self.settings.tenant:
                served = self.settings.tenant
                await self._reject(event, f"tenant {result.tenant!r} is not served here (serves {served!r})")
                continue
            entry = touched.get(result.target_id)
            if entry is None:
                entry = self._load(result.target_id, event)
                touched[result.target_id] = entry
            if not entry[0].apply(result.statistic, result.value, result.timestamp, result.media_type):
                self.metrics.events_stale.inc()
        now = _now_ms()
        stale_ms = self.settings.worker.stale_after_s * 1000
        for target_id, (state, stored, event) in touched.items():
            was_stale = now - stored.get("received_ms", now) > stale_ms
            stored["received_ms"] = now
            await self._decide_and_publish(state, stored, now, keepalive=False)
            stored["state"] = state.to_dict()
            stored["partition"] = event.message.partition
            with as_current_event(event):  # the changelog record goes to the event's partition
                self.table[target_id] = stored
            # Cleared even if another worker raised it before a rebalance moved the target here.
            await self._publish_alarm(self.board.clear_alarm(
                alarms.TARGET_STALE, target_id, "statistics arrive again", force=was_stale))

    def _load(self, target_id: str, event: EventT) -> tuple[TargetState, dict[str, Any], EventT]:
        stored = self.table.get(target_id)
        if stored is None:
            return TargetState(target_id), {}, event
        return TargetState.from_dict(stored["state"]), dict(stored), event

    async def _decide_and_publish(
        self, state: TargetState, stored: dict[str, Any], now: int, keepalive: bool, stale: bool = False
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
                alarms.PACING_DECISION_FAILED, target_id, f"the pacing engine failed: {type(exc).__name__}: {exc}"))
            return
        await self._publish_alarm(self.board.clear_alarm(
            alarms.PACING_DECISION_FAILED, target_id, "the pacing engine decides again"))
        fingerprint = decision_fingerprint(decision)
        last_fingerprint, last_sent = self._published.get(state.target_id, (stored.get("decision"), 0))
        changed = fingerprint != last_fingerprint
        due = now - last_sent >= self.settings.worker.keepalive_s * 1000
        if not (changed or (keepalive and due)):
            return
        await self._send(self.names.actiontargets, state.target_id.encode(), encode_decision(decision))
        self._published[state.target_id] = (fingerprint, now)
        stored["decision"] = fingerprint
        self.metrics.decisions.labels("changed" if changed else "keepalive").inc()

    async def _send(
        self, topic: str, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]] | None = None
    ) -> None:
        """Hand a record to the producer without waiting for the broker.

        Faust flushes its producer before every offset commit, so everything sent while handling
        a batch is on the broker before the batch's offsets are committed (at-least-once). The
        transport producer skips Faust's per-message channel machinery, which costs more than
        the pacing work itself.
        """
        await self.app.producer.send(topic, key, value, None, None, headers)

    async def _reject(self, event: EventT, reason: str) -> None:
        self.metrics.events_rejected.labels(reason.split(":")[0][:40]).inc()
        log.warning("rejected event at %s[%d]@%d: %s", event.message.topic, event.message.partition,
                    event.message.offset, reason)
        message = event.message
        await self._send(
            self.names.stats_dlq, message.key, message.value,
            [("error", reason.encode()), ("source.topic", message.topic.encode()),
             ("source.partition", str(message.partition).encode()), ("source.offset", str(message.offset).encode())],
        )

    async def _publish_alarm(self, message: AlarmMessage | None) -> None:
        if message is None:
            return
        if message.alarm.state.value == "raised":
            self.metrics.alarms.labels(message.alarm.name).inc()
        log.warning("alarm %s %s [%s]: %s", message.alarm.name, message.alarm.state.value,
                    message.alarm.scope, message.alarm.message)
        await self._send(self.names.alarms, message.key, message.value)

    # -- the timer -----------------------------------------------------------------------

    def owned_partitions(self) -> set[int]:
        """The ``pacing.stats`` partitions this worker actively owns (standbys excluded)."""
        actives: set[TP] = self.app.assignor.assigned_actives()
        return {tp.partition for tp in actives if tp.topic == self.names.stats}

    def _settled(self) -> bool:
        """False while partitions move or tables restore: the timer must not publish half-restored state."""
        return self.app.tables.recovery.completed.is_set() and not self.app.rebalancing

    async def _on_timer(self) -> None:
        """Keepalive and staleness for the targets this worker owns; no table writes here."""
        if not self._settled():
            return
        owned = self.owned_partitions()
        now = _now_ms()
        stale_ms = self.settings.worker.stale_after_s * 1000
        count = 0
        for target_id in list(self.table.keys()):
            # Read just before deciding: the agent may have written a newer state meanwhile.
            stored = self.table.get(target_id)
            if not stored or stored.get("partition") not in owned:
                self._published.pop(target_id, None)
                continue
            count += 1
            stale = now - stored.get("received_ms", now) > stale_ms
            if stale:
                await self._publish_alarm(self.board.raise_alarm(
                    alarms.TARGET_STALE, target_id,
                    f"no statistics for {self.settings.worker.stale_after_s:.0f}s; target paced inactive",
                    severity="minor", observed_value=(now - stored["received_ms"]) / 1000,
                    threshold=self.settings.worker.stale_after_s,
                ))
            state = TargetState.from_dict(stored["state"])
            # The table is written only by the agent; the timer publishes from a copy.
            await self._decide_and_publish(state, dict(stored), now, keepalive=True, stale=stale)
        self.metrics.targets.set(count)
        self._observe_lag(owned)
        await self._check_health()

    def _observe_lag(self, owned: set[int]) -> None:
        self.metrics.lag.clear()
        for partition in owned:
            highwater = self.app.consumer.highwater(TP(self.names.stats, partition))
            if highwater is not None:
                lag = max(0, highwater - self._next_offset.get(partition, highwater))
                self.metrics.lag.labels(str(partition)).set(lag)

    async def _check_health(self) -> None:
        for message in self.health.check():
            await self._publish_alarm(message)
        sample = self.health.sample()
        self.metrics.observe_health(sample.max_gc_pause_ms, sample.memory_percent)

    # -- side services -------------------------------------------------------------------

    async def _start_side_services(self) -> None:
        self.health.install()
        await self.definitions.start()
        self._reporters = asyncio.create_task(run_reporters(
            self.settings, "worker", self.metrics.registry,
            lambda key, value: self._send(self.names.metrics, key, value)))
        port = self.settings.worker.web_port
        if port:
            self._web = await start_metrics_server(
                self.metrics.registry, "0.0.0.0", port, lambda: self._ready or bool(self.owned_partitions())
            )
            log.info("metrics on http://0.0.0.0:%d/metrics", port)


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    """Run one pacing node until SIGINT/SIGTERM."""
    from streams.end_offsets import install_faust_end_offset_probe
    from streams.kafka import client_options
    from streams.topics import ensure_topics

    asyncio.run(ensure_topics(settings))
    if settings.kafka.probe_end_offsets:
        install_faust_end_offset_probe(client_options(settings))
    node = PacingNode(settings)
    worker = faust.Worker(node.app, loglevel=loglevel)
    worker.execute_from_commandline()
