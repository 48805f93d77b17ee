"""The checkpoint's three steps: write the touched targets' entries, confirm every send, acknowledge in order.

Real intake, store (Faust's in-memory table), outbox and codec; the producer is the recording stand-in.
"""

from __future__ import annotations

import pytest
from faust.types import EventT

from schemas import encode_stat_event
from streams.node.checkpoint import Checkpoint
from streams.node.stat_intake import StatIntake
from streams.node.target_store import TargetStore
from streams.runtime.metrics import NodeMetrics
from streams.runtime.outbox import Outbox, SendFailed
from streams.runtime.topics import TopicNames
from tests.unit.node_doubles import T0, RecordingProducer, memory_table, node_settings, stat, taken, target_on

NAMES = TopicNames.for_prefix("")


class Parts:
    def __init__(self) -> None:
        settings = node_settings()
        self.metrics = NodeMetrics()
        self.store = TargetStore(memory_table())
        self.intake = StatIntake(settings.tenant, settings.kafka.stats_partitions, settings.worker, NAMES, self.store,
                                 self.metrics)
        self.checkpoint = Checkpoint(self.intake, self.store, self.metrics, interval_s=5.0)
        self.producer = RecordingProducer()
        self.acked: list[EventT] = []
        self._offset = 0

    async def take(self, *targets: str) -> list[EventT]:
        events = []
        for target_id in targets:
            events.append(taken(1, self._offset, encode_stat_event(stat(target_id, at_ms=T0 + self._offset))))
            self._offset += 1
        self.checkpoint.events_taken()
        self.intake.note_taken(events)
        await self.intake.fold(events, self.outbox())
        return events

    def outbox(self) -> Outbox:
        return Outbox(self.producer, 1.0)

    async def ack(self, event: EventT) -> None:
        self.acked.append(event)


async def test_a_commit_writes_each_touched_target_once_then_acknowledges_in_order() -> None:
    parts = Parts()
    a, b = target_on(1, "ca"), target_on(1, "cb")
    events = await parts.take(a, b, a, a)
    await parts.checkpoint.commit(parts.outbox(), parts.ack)
    changelog = [record.key for record in parts.producer.to(parts.store.changelog_topic)]
    assert sorted(changelog) == sorted([f'"{a}"'.encode(), f'"{b}"'.encode()]), "one entry per target"
    assert parts.acked == events and not parts.intake.pending


async def test_a_failed_write_acknowledges_nothing() -> None:
    parts = Parts()
    events = await parts.take(target_on(1, "cf"))
    parts.producer.failing.add(parts.store.changelog_topic)
    with pytest.raises(SendFailed):
        await parts.checkpoint.commit(parts.outbox(), parts.ack)
    assert parts.acked == [] and parts.intake.pending == events


async def test_the_oldest_pending_event_starts_the_interval_and_a_commit_restarts_it() -> None:
    parts = Parts()
    first = await parts.take(target_on(1, "cp"))
    due = parts.checkpoint.due_at
    later = await parts.take(target_on(1, "cq"))
    assert parts.checkpoint.due_at == due, "the oldest pending event starts the interval"
    await parts.checkpoint.commit(parts.outbox(), parts.ack)
    assert parts.acked == first + later and not parts.intake.pending
    assert parts.checkpoint.due_at > due and not parts.checkpoint.due()
