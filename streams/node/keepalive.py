"""Between ticks: re-publish decisions that are due, and pace targets without fresh statistics inactive.

Every owned target's decision is re-published at least every ``worker.keepalive_s`` (the sink
and the endpoint may have lost it), at once when its definition changed on ``pacing.targets``,
and a target whose statistics stopped arriving for ``worker.stale_after_s`` is published
inactive with alarm ``TargetStale``. Nothing here writes the table: the state is only read.
"""

from __future__ import annotations

import logging

from streams.node.decision_publisher import DecisionPublisher
from streams.node.target_definitions import TargetDefinitions
from streams.node.target_store import TargetStore
from streams.runtime import alarms
from streams.runtime.alarm_publisher import AlarmPublisher
from streams.runtime.config import Settings
from streams.runtime.metrics import NodeMetrics
from streams.runtime.outbox import Outbox
from streams.runtime.process_health import ProcessHealth

log = logging.getLogger(__name__)


class Keepalive:
    """One pass over the owned targets per timer tick."""

    def __init__(self, settings: Settings, store: TargetStore, publisher: DecisionPublisher,
                 definitions: TargetDefinitions, alarm_publisher: AlarmPublisher, health: ProcessHealth,
                 metrics: NodeMetrics):
        self._store = store
        self._publisher = publisher
        self._definitions = definitions
        self._alarms = alarm_publisher
        self._health = health
        self._metrics = metrics
        self._stale_after_s = settings.worker.stale_after_s
        self._keepalive_ms = settings.worker.keepalive_s * 1000

    async def run(self, owned: set[int], now_ms: int, outbox: Outbox, caught_up: set[int] | None = None) -> int:
        """Publish what is due for the targets of the ``owned`` partitions; return how many there are.

        ``caught_up``: the owned partitions whose replay after an assignment is done
        (:mod:`streams.node.catch_up`); the targets of the others are counted but not published yet.
        """
        stale_ms = self._stale_after_s * 1000
        redefined = self._definitions.take_changed()
        board = self._alarms.board
        count = 0
        seen: set[str] = set()
        for target_id, entry in self._store.owned(owned):
            seen.add(target_id)
            count += 1
            if caught_up is not None and entry.partition not in caught_up:
                continue  # restored state, older than its replayed events may be: wait for them
            stale = now_ms - entry.received_ms > stale_ms
            went_stale = None
            if stale:
                went_stale = board.raise_alarm(
                    alarms.TARGET_STALE, target_id,
                    f"no statistics for {self._stale_after_s:.0f}s; target paced inactive",
                    severity="minor", observed_value=(now_ms - entry.received_ms) / 1000,
                    threshold=self._stale_after_s,
                )
                await self._alarms.publish(went_stale, outbox)
            due = now_ms - self._publisher.last_sent_ms(target_id) >= self._keepalive_ms
            if went_stale is None and target_id not in redefined and not due:
                continue  # decided at its last tick or keepalive, same definition: not due yet
            await self._publisher.publish(entry.state, now_ms, outbox, keepalive=True, stale=stale,
                                          partition=entry.partition)
        self._publisher.forget_except(seen)
        for message in self._health.observe(self._metrics):  # also records the health gauges
            await self._alarms.publish(message, outbox)
        failure = await outbox.settle()
        if failure is not None:  # nothing is lost: what was not confirmed is published at the next tick
            self._metrics.send_failures.inc()
            log.error("keepalive decisions and alarms not published: %s", failure)
        return count
