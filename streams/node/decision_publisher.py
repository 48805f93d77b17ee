"""Deciding one target and publishing its decision when it changed or a keepalive is due."""

from __future__ import annotations

import logging
from typing import Any

from streams.engine import TargetState
from streams.node.decisions import decision_record, encode_decision_record, record_fingerprint
from streams.node.target_definitions import TargetDefinitions
from streams.runtime import alarms
from streams.runtime.alarm_publisher import AlarmPublisher
from streams.runtime.config import Settings
from streams.runtime.metrics import NodeMetrics
from streams.runtime.outbox import Outbox

log = logging.getLogger(__name__)


class DecisionPublisher:
    """Decides targets and publishes to ``pacing.actiontargets``; remembers what it last published."""

    def __init__(self, settings: Settings, topic: str, definitions: TargetDefinitions, metrics: NodeMetrics,
                 alarm_publisher: AlarmPublisher):
        self._settings = settings
        self._topic = topic
        self._definitions = definitions
        self._metrics = metrics
        self._alarms = alarm_publisher
        self._keepalive_ms = settings.worker.keepalive_s * 1000
        # Per target: the fingerprint of the decision last published by this node, and when.
        self._published: dict[str, tuple[tuple[Any, ...], int]] = {}

    def last_sent_ms(self, target_id: str) -> int:
        """When this node last published the target's decision (0: never, or not since it took it over)."""
        published = self._published.get(target_id)
        return 0 if published is None else published[1]

    def forget_except(self, owned: set[str]) -> None:
        """Forget targets no longer owned: their next owner publishes them."""
        for target_id in [t for t in self._published if t not in owned]:
            del self._published[target_id]

    async def publish(self, state: TargetState, now_ms: int, outbox: Outbox, *, keepalive: bool,
                      stale: bool = False) -> None:
        """Publish the target's decision if it changed (or, for keepalive, if one is due).

        A decision that cannot be computed is logged, counted and alarmed for that target only:
        the target's state is still stored and the other targets of the tick go on.
        """
        target_id = state.target_id
        board = self._alarms.board
        try:
            record = decision_record(self._settings.tenant, self._settings.node_id, state, self._settings.targets,
                                     now_ms, self._definitions.get(target_id), stale=stale)
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
        changed = last is None or fingerprint != last[0]
        if not changed and not (keepalive and now_ms - last[1] >= self._keepalive_ms):
            return
        reason = "changed" if changed else "keepalive"

        def published() -> None:
            self._published[target_id] = (fingerprint, now_ms)
            self._metrics.decisions.labels(reason).inc()

        await outbox.send(self._topic, target_id.encode(), encode_decision_record(record), on_confirmed=published)
