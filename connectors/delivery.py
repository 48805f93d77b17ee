"""Which decisions still have to reach the endpoint, and which offsets are safe to commit.

The sink keeps only the latest decision per target (upserts are idempotent, so an older
decision superseded by a newer one never needs to be sent). An offset may be committed only
when every record below it has been delivered or superseded by a delivered one:

    safe offset of a partition = the lowest offset among its undelivered latest records,
                                 or, when there are none, the next offset to consume.

Superseded records always sit below their replacement, so that rule never commits past a
decision that has not reached the endpoint. This module is pure bookkeeping; the sink does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka.structs import TopicPartition


@dataclass(frozen=True)
class Pending:
    """The latest undelivered decision of one target (``tp``/``offset`` None for a refresh)."""

    target_id: str
    entity: dict[str, Any]
    size: int
    tp: TopicPartition | None
    offset: int | None


class DeliveryLedger:
    """Latest decision per target, what is in flight, and commit positions."""

    def __init__(self) -> None:
        self._pending: dict[str, Pending] = {}
        self._in_flight: set[str] = set()
        self._next_offset: dict[TopicPartition, int] = {}
        # What the endpoint holds per target, and the partition it came from (for revocation).
        self._delivered: dict[str, tuple[dict[str, Any], TopicPartition | None]] = {}

    # -- intake -------------------------------------------------------------------------

    def record(self, tp: TopicPartition, offset: int, target_id: str, entity: dict[str, Any], size: int) -> None:
        """A decision consumed at ``tp``/``offset``; it replaces any older one for the target."""
        self._pending[target_id] = Pending(target_id, entity, size, tp, offset)
        self._next_offset[tp] = max(self._next_offset.get(tp, 0), offset + 1)

    def skip(self, tp: TopicPartition, offset: int) -> None:
        """A record that needs no delivery (unreadable; reported elsewhere) still advances the position."""
        self._next_offset[tp] = max(self._next_offset.get(tp, 0), offset + 1)

    def schedule_refresh(self) -> int:
        """Queue every delivered target again (periodic full refresh); returns how many."""
        queued = 0
        for target_id, (entity, _) in self._delivered.items():
            if target_id not in self._pending:
                self._pending[target_id] = Pending(target_id, entity, 0, None, None)
                queued += 1
        return queued

    # -- sending ------------------------------------------------------------------------

    @property
    def pending_count(self) -> int:
        """Targets waiting for delivery, in flight included."""
        return len(self._pending)

    @property
    def ready_count(self) -> int:
        """Targets waiting for delivery and not in flight."""
        return len(self._pending) - sum(1 for t in self._in_flight if t in self._pending)

    def take_batch(self, max_entities: int, max_bytes: int) -> list[Pending]:
        """Up to ``max_entities`` pending decisions within ``max_bytes`` (at least one), marked in flight."""
        batch: list[Pending] = []
        total = 0
        for target_id, pending in self._pending.items():
            if target_id in self._in_flight:
                continue
            if batch and (len(batch) >= max_entities or total + pending.size > max_bytes):
                break
            batch.append(pending)
            total += pending.size
        self._in_flight.update(p.target_id for p in batch)
        return batch

    def delivered(self, batch: Iterable[Pending], rejected: Iterable[str] = ()) -> None:
        """The endpoint answered for the batch; drop what was not superseded meanwhile.

        ``rejected`` targets were refused by the endpoint: done with, but not re-sent by the
        full refresh (they would only be refused again).
        """
        refused = set(rejected)
        for sent in batch:
            self._in_flight.discard(sent.target_id)
            revoked_meanwhile = (sent.tp is not None and sent.tp not in self._next_offset) or (
                sent.tp is None and sent.target_id not in self._delivered)
            if sent.target_id in refused or revoked_meanwhile:
                self._delivered.pop(sent.target_id, None)
            else:
                previous_tp = self._delivered.get(sent.target_id, (None, None))[1]
                self._delivered[sent.target_id] = (sent.entity, sent.tp or previous_tp)
            if self._pending.get(sent.target_id) is sent:
                del self._pending[sent.target_id]

    def failed(self, batch: Iterable[Pending]) -> None:
        """The batch did not get through; it stays pending, behind the others, for the next attempt.

        Moving it to the back keeps one persistently failing batch from starving the rest.
        """
        for sent in batch:
            self._in_flight.discard(sent.target_id)
            if self._pending.get(sent.target_id) is sent:
                self._pending[sent.target_id] = self._pending.pop(sent.target_id)

    # -- commits and rebalances -----------------------------------------------------------

    def consumed_offsets(self) -> dict[TopicPartition, int]:
        """Per partition, the next offset to consume."""
        return dict(self._next_offset)

    def safe_offsets(self) -> dict[TopicPartition, int]:
        """Per partition, the offset to commit: nothing below it is waiting for delivery."""
        safe = dict(self._next_offset)
        for pending in self._pending.values():
            if pending.tp is not None and pending.offset is not None:
                safe[pending.tp] = min(safe.get(pending.tp, pending.offset), pending.offset)
        return safe

    def reset_positions(self) -> None:
        """The topic was recreated (its records and offsets are gone): forget every position.

        The undelivered decisions are kept, now without an offset (like refresh entries), so none
        is lost and none holds back — or pushes forward — a commit on the new, empty topic.
        """
        self._next_offset.clear()
        for target_id, pending in self._pending.items():
            if pending.tp is not None:
                self._pending[target_id] = Pending(target_id, pending.entity, pending.size, None, None)
        self._delivered = {target_id: (entity, None) for target_id, (entity, _) in self._delivered.items()}

    def revoke(self, partitions: Iterable[TopicPartition]) -> None:
        """Forget partitions handed to another sink; it re-reads them from the committed offset."""
        revoked = set(partitions)
        for tp in revoked:
            self._next_offset.pop(tp, None)
        for target_id in [t for t, p in self._pending.items() if p.tp in revoked]:
            del self._pending[target_id]  # an in-flight one is then neither kept nor re-sent
        for target_id in [t for t, (_, tp) in self._delivered.items() if tp in revoked]:
            del self._delivered[target_id]
