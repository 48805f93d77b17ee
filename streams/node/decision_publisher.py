"""Deciding one target and publishing its decision when it changed or a keepalive is due.

A target's decision can change at every decision tick (each second under load). The endpoint acts
on ``allowedOffers`` for a whole refresh period, so a small change is published at most once per
``worker.publish_interval_s``: later changes inside that interval are held and the newest decision
goes out when it ends. A *material* change goes out at once (:meth:`_Published.material_change`):
the target stops or starts (turns active or inactive; its offers or its reactive admission reach or
leave zero), its ready agents reach or leave zero, its logged-in agents change materially (reach
or leave zero, or move by a tenth: :func:`~streams.node.cadence.material_gauge_change`), or its
allowed offers move by at least half of what was published (and by at least ``MATERIAL_MIN_OFFERS``): agents who
just became free must not wait seconds for offers. Holding never loses an event's effect: the state
is in the table, and whoever owns the target next publishes its decision at its first keepalive pass.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from streams.engine import TargetState
from streams.node.cadence import material_gauge_change
from streams.node.decisions import decision_record, encode_decision_record, record_fingerprint, target_settings
from streams.node.ownership import Ownership
from streams.node.target_definitions import TargetDefinitions
from streams.runtime import alarms
from streams.runtime.alarm_publisher import AlarmPublisher
from streams.runtime.config import TargetDefaults, WorkerSettings
from streams.runtime.metrics import NodeMetrics
from streams.runtime.outbox import Outbox

log = logging.getLogger(__name__)


#: A move of the allowed offers is material when it is at least this share of the published offers …
MATERIAL_OFFERS_SHARE = 0.5
#: … and at least this many offers (one offer more or less in a small group can wait for the interval).
MATERIAL_MIN_OFFERS = 2


@dataclass(slots=True)
class _Published:
    """What this node last published for a target, and when."""

    fingerprint: tuple[Any, ...]
    sent_ms: int
    allowed_offers: int
    reactive_admission: float
    active: bool
    ready_agents: int
    logged_in_agents: int

    @classmethod
    def of(cls, record: dict[str, Any], fingerprint: tuple[Any, ...], sent_ms: int) -> _Published:
        """What publishing ``record`` at ``sent_ms`` leaves to compare the next decisions with."""
        return cls(fingerprint, sent_ms, record["allowed_offers"], record["reactive_admission"],
                   record["state"] == "active", record["ready_agents"], record["logged_in_agents"])

    def material_change(self, record: dict[str, Any]) -> bool:
        """Whether ``record`` changes what the endpoint must act on now (must not wait for the interval)."""
        offers = record["allowed_offers"]
        if ((record["state"] == "active") != self.active
                or (offers > 0) != (self.allowed_offers > 0)
                or (record["reactive_admission"] > 0) != (self.reactive_admission > 0)
                or material_gauge_change("ready_agents", self.ready_agents, record["ready_agents"])
                or material_gauge_change("logged_in_agents", self.logged_in_agents, record["logged_in_agents"])):
            return True
        move = abs(offers - self.allowed_offers)
        return move >= MATERIAL_MIN_OFFERS and move >= MATERIAL_OFFERS_SHARE * self.allowed_offers


class DecisionPublisher:
    """Decides targets and publishes to ``pacing.actiontargets``; remembers what it last published.

    ``tenant`` and ``node_id`` stamp every decision; ``defaults`` are the configured target defaults
    (a definition overrides them); ``worker`` gives ``keepalive_s`` and ``publish_interval_s``.
    """

    def __init__(self, tenant: str, node_id: str, defaults: TargetDefaults, worker: WorkerSettings, topic: str,
                 definitions: TargetDefinitions, metrics: NodeMetrics, alarm_publisher: AlarmPublisher,
                 ownership: Ownership | None = None, caught_up: Callable[[int], bool] | None = None):
        self._tenant = tenant
        self._node_id = node_id
        self._defaults = defaults
        self._ownership = ownership
        self._caught_up = caught_up  # whether a partition's replay after an assignment is done
        self._topic = topic
        self._definitions = definitions
        self._metrics = metrics
        self._alarms = alarm_publisher
        self._keepalive_ms = worker.keepalive_s * 1000
        self._interval_ms = min(worker.publish_interval_s, worker.keepalive_s) * 1000
        self._published: dict[str, _Published] = {}
        # Targets whose changed decision waits for the end of its publish interval: when it ends (ms).
        self._held: dict[str, int] = {}

    def last_sent_ms(self, target_id: str) -> int:
        """When this node last published the target's decision (0: never, or not since it took it over)."""
        published = self._published.get(target_id)
        return 0 if published is None else published.sent_ms

    def hold(self, target_ids: list[str], due_ms: int) -> None:
        """Decide and publish these targets at ``due_ms`` (or earlier if held already): a pass cut short."""
        held = self._held
        for target_id in target_ids:
            at = held.get(target_id)
            if at is None:
                self._metrics.decisions_held.inc()
            if at is None or at > due_ms:
                held[target_id] = due_ms

    def take_due(self, now_ms: int) -> list[str]:
        """The held targets whose publish interval has ended (no longer held: decide and publish them)."""
        due = [target_id for target_id, at in self._held.items() if at <= now_ms]
        for target_id in due:
            del self._held[target_id]
        return due

    def forget_except(self, owned: set[str]) -> None:
        """Forget targets no longer owned: their next owner publishes them."""
        for target_id in [t for t in self._published if t not in owned]:
            del self._published[target_id]
        for target_id in [t for t in self._held if t not in owned]:
            del self._held[target_id]

    async def publish(self, state: TargetState, now_ms: int, outbox: Outbox, *, keepalive: bool,
                      stale: bool = False, partition: int | None = None) -> None:
        """Publish the target's decision if it changed (or, for keepalive, if one is due).

        A change within ``publish_interval_s`` of the last publication is held (see the module
        docstring) unless it is material or ``keepalive`` is set (a keepalive or a new definition).

        A decision that cannot be computed is logged, counted and alarmed for that target only:
        the target's state is still stored and the other targets of the tick go on.
        """
        target_id = state.target_id
        ownership = self._ownership
        if ((ownership is not None and not ownership.may_publish())
                or (partition is not None and self._caught_up is not None and not self._caught_up(partition))):
            # This worker may have lost the target's partition (paused or cut off past its session),
            # or partitions are moving: nothing goes out. A change waits here until the lease holds
            # and the partitions settled; if the target moved, its new owner publishes it at its
            # first keepalive pass. A partition just taken over waits for its replay
            # (streams.node.catch_up): its restored state can be older than what was published.
            if not keepalive:
                self.hold([target_id], now_ms)
            return
        board = self._alarms.board
        definition = self._definitions.get(target_id)
        try:
            record = decision_record(self._tenant, self._node_id, state, self._defaults,
                                     now_ms, definition, stale=stale,
                                     owner_epoch=0 if ownership is None else ownership.epoch)
        except Exception as exc:
            self._metrics.decision_errors.inc()
            log.exception("no decision for target %s", target_id)
            await self._alarms.publish(board.raise_alarm(
                alarms.PACING_DECISION_FAILED, target_id, f"the pacing engine failed: {type(exc).__name__}: {exc}"),
                outbox)
            return
        await self._alarms.publish(board.clear_alarm(
            alarms.PACING_DECISION_FAILED, target_id, "the pacing engine decides again"), outbox)
        fingerprint = record_fingerprint(record)
        last = self._published.get(target_id)
        changed = last is None or fingerprint != last.fingerprint
        if not changed:
            if not (keepalive and now_ms - last.sent_ms >= self._keepalive_ms):
                self._held.pop(target_id, None)  # back to what was published: nothing to send
                return
            reason = "keepalive"
        elif (last is not None and not keepalive and now_ms - last.sent_ms < self._interval_ms
                and not last.material_change(record)):
            if target_id not in self._held:
                self._held[target_id] = last.sent_ms + int(self._interval_ms)
                self._metrics.decisions_held.inc()
            return
        else:
            reason = "changed"
        self._held.pop(target_id, None)
        published_now = _Published.of(record, fingerprint, now_ms)

        period_s = target_settings(self._defaults, definition).refresh_period_s

        def published() -> None:
            self._published[target_id] = published_now
            self._metrics.decisions.labels(reason).inc()
            # The engine counts the offers made since its statistics were measured from this log
            # (late statistics). The entry reaches the changelog with the target's next events.
            state.record_offers(now_ms, published_now.allowed_offers, period_s)

        await outbox.send(self._topic, target_id.encode(), encode_decision_record(record), on_confirmed=published)
