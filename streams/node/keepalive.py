"""Between ticks: re-publish decisions that are due, and pace targets without fresh statistics inactive.

Every owned target's decision is re-published at least every ``worker.keepalive_s`` (the sink
and the endpoint may have lost it), at once when its definition changed on ``pacing.targets``,
and a target whose statistics stopped arriving for ``worker.stale_after_s`` is published
inactive with alarm ``TargetStale``. Nothing here writes the table: the state is only read.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from streams.node.decision_publisher import DecisionPublisher
from streams.node.target_definitions import TargetDefinitions
from streams.node.target_store import TargetStore
from streams.runtime import alarms
from streams.runtime.alarm_publisher import AlarmPublisher
from streams.runtime.config import WorkerSettings
from streams.runtime.metrics import NodeMetrics
from streams.runtime.outbox import Outbox
from streams.runtime.process_health import ProcessHealth

log = logging.getLogger(__name__)


@dataclass(slots=True)
class KeepalivePass:
    """One pass's work: the owned targets to publish (id, and whether silent for too long), when it began."""

    now_ms: int
    owned_count: int
    due: list[tuple[str, bool]] = field(default_factory=list)


class Keepalive:
    """One pass over the owned targets per keepalive interval: planned at once, published in slices."""

    def __init__(self, worker: WorkerSettings, store: TargetStore, publisher: DecisionPublisher,
                 definitions: TargetDefinitions, alarm_publisher: AlarmPublisher, health: ProcessHealth,
                 metrics: NodeMetrics):
        self._store = store
        self._publisher = publisher
        self._definitions = definitions
        self._alarms = alarm_publisher
        self._health = health
        self._metrics = metrics
        self._stale_after_s = worker.stale_after_s
        self._keepalive_ms = worker.keepalive_s * 1000

    async def run(self, owned: set[int], now_ms: int, outbox: Outbox) -> int:
        """A whole pass at once: publish what is due for the targets of the ``owned`` partitions; return
        how many there are."""
        planned = self.plan(owned, now_ms)
        await self.publish(planned.due, now_ms, outbox)
        await self.finish(outbox)
        return planned.owned_count

    def plan(self, owned: set[int], now_ms: int) -> KeepalivePass:
        """Which owned targets are due: a keepalive, a new definition, or silent for ``worker.stale_after_s``.

        Only reads: targets no longer owned are forgotten by the publisher, nothing is sent yet.
        """
        stale_ms = self._stale_after_s * 1000
        redefined = self._definitions.take_changed()
        planned = KeepalivePass(now_ms, 0)
        last_sent_ms = self._publisher.last_sent_ms
        seen: set[str] = set()
        board = self._alarms.board
        for target_id, entry in self._store.owned(owned):
            seen.add(target_id)
            stale = now_ms - entry.received_ms > stale_ms
            went_stale = stale and not board.is_raised(alarms.TARGET_STALE, target_id)
            if went_stale or target_id in redefined or now_ms - last_sent_ms(target_id) >= self._keepalive_ms:
                planned.due.append((target_id, stale))
        planned.owned_count = len(seen)
        self._publisher.forget_except(seen)
        return planned

    async def publish(self, due: list[tuple[str, bool]], now_ms: int, outbox: Outbox) -> None:
        """Publish these planned targets' decisions (inactive when silent, with alarm ``TargetStale``).

        A target whose entry is gone meanwhile (partitions moved) is left to its owner.
        """
        board = self._alarms.board
        for target_id, stale in due:
            entry = self._store.get(target_id)
            if entry is None:
                continue
            if stale:  # raised once: None (nothing to publish) while it stays raised
                await self._alarms.publish(board.raise_alarm(
                    alarms.TARGET_STALE, target_id,
                    f"no statistics for {self._stale_after_s:.0f}s; target paced inactive",
                    severity="minor", observed_value=(now_ms - entry.received_ms) / 1000,
                    threshold=self._stale_after_s,
                ), outbox)
            await self._publisher.publish(entry.state, now_ms, outbox, keepalive=True, stale=stale,
                                          partition=entry.partition)

    async def finish(self, outbox: Outbox) -> None:
        """Process health, then wait for the broker to take the pass's records (failures are retried later)."""
        for message in self._health.observe(self._metrics):  # also records the health gauges
            await self._alarms.publish(message, outbox)
        failure = await outbox.settle()
        if failure is not None:  # nothing is lost: what was not confirmed is published at the next pass
            self._metrics.send_failures.inc()
            log.error("keepalive decisions and alarms not published: %s", failure)
