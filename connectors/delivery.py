"""Which decisions still have to reach the endpoint, and which offsets are safe to commit.

The sink keeps only the latest decision per target (upserts are idempotent, so an older
decision superseded by a newer one never needs to be sent). An offset may be committed only
when every record below it has been delivered or superseded by a delivered one:

    safe offset of a partition = the lowest offset among its undelivered latest records and
                                 its held offsets, or, when there are none, the next offset to consume.

Superseded records always sit below their replacement, so that rule never commits past a
decision that has not reached the endpoint. A *hold* keeps a record's offset uncommitted while
a write about it (its record on the error topic) is not acknowledged by Kafka: the ledger is
the one place that says what may be committed, writes to Kafka included.

The *incarnation* counts how often positions were forgotten because the topic was recreated
(a broker that lost its data): an offset computed under an older incarnation belongs to a
topic that no longer exists and must never be committed to the new one.
This module is pure bookkeeping; the sink does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka.structs import TopicPartition


@dataclass(frozen=True, eq=False)
class Hold:
    """One record's offset kept uncommitted until a write about the record is acknowledged.

    Compared by identity: two holds of the same offset (a record re-read after a reset) are
    released separately, and releasing a hold the ledger already dropped does nothing.
    """

    tp: TopicPartition
    offset: int


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
        self._holds: set[Hold] = set()
        self._incarnation = 0

    # -- intake -------------------------------------------------------------------------

    def record(self, tp: TopicPartition, offset: int, target_id: str, entity: dict[str, Any], size: int) -> None:
        """A decision consumed at ``tp``/``offset``; it replaces any older one for the target."""
        self._pending[target_id] = Pending(target_id, entity, size, tp, offset)
        self._next_offset[tp] = max(self._next_offset.get(tp, 0), offset + 1)

    def skip(self, tp: TopicPartition, offset: int) -> None:
        """A record that needs no delivery (unreadable; reported elsewhere) still advances the position."""
        self._next_offset[tp] = max(self._next_offset.get(tp, 0), offset + 1)

    def start_at(self, tp: TopicPartition, offset: int) -> None:
        """The consumer starts ``tp`` at ``offset`` (the beginning of a recreated topic): that offset is
        safe to commit until records arrive, which overwrites whatever the group had committed there."""
        self._next_offset.setdefault(tp, offset)

    # -- writes about records ---------------------------------------------------------------

    def hold(self, tp: TopicPartition, offset: int) -> Hold:
        """Keep ``offset`` (and what follows it) uncommitted until :meth:`release` of the returned hold."""
        hold = Hold(tp, offset)
        self._holds.add(hold)
        return hold

    def release(self, hold: Hold) -> None:
        """The write about the held record was acknowledged; a hold dropped by a reset or revocation is ignored."""
        self._holds.discard(hold)

    @property
    def held_count(self) -> int:
        """Offsets held back by writes not yet acknowledged."""
        return len(self._holds)

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

    @property
    def incarnation(self) -> int:
        """Bumped by every :meth:`reset_positions`: offsets computed before belong to a topic that is gone."""
        return self._incarnation

    def safe_offsets(self) -> dict[TopicPartition, int]:
        """Per partition, the offset to commit: nothing below it is waiting for delivery or for a write."""
        safe = dict(self._next_offset)
        for pending in self._pending.values():
            if pending.tp is not None and pending.offset is not None:
                safe[pending.tp] = min(safe.get(pending.tp, pending.offset), pending.offset)
        for hold in self._holds:
            safe[hold.tp] = min(safe.get(hold.tp, hold.offset), hold.offset)
        return safe

    def position(self, tp: TopicPartition) -> int | None:
        """The next offset to consume on ``tp``, if anything was consumed there."""
        return self._next_offset.get(tp)

    def reset_positions(self, partitions: Iterable[TopicPartition] | None = None) -> None:
        """The topic was recreated (its records and offsets are gone): forget the partitions' positions.

        ``partitions`` None means all. The undelivered decisions are kept, now without an offset
        (like refresh entries), so none is lost and none holds back — or pushes forward — a
        commit on the new, empty topic. Holds on those partitions go too (their writes still
        happen; they just no longer concern an offset), and the incarnation moves on.
        """
        self._incarnation += 1
        reset = None if partitions is None else set(partitions)
        self._holds = {hold for hold in self._holds if reset is not None and hold.tp not in reset}
        for tp in list(self._next_offset):
            if reset is None or tp in reset:
                del self._next_offset[tp]
        for target_id, pending in self._pending.items():
            if pending.tp is not None and (reset is None or pending.tp in reset):
                self._pending[target_id] = Pending(target_id, pending.entity, pending.size, None, None)
        self._delivered = {target_id: (entity, None if reset is None or tp in reset else tp)
                           for target_id, (entity, tp) in self._delivered.items()}

    def revoke(self, partitions: Iterable[TopicPartition]) -> None:
        """Forget partitions handed to another sink; it re-reads them from the committed offset."""
        revoked = set(partitions)
        for tp in revoked:
            self._next_offset.pop(tp, None)
        self._holds = {hold for hold in self._holds if hold.tp not in revoked}
        for target_id in [t for t, p in self._pending.items() if p.tp in revoked]:
            del self._pending[target_id]  # an in-flight one is then neither kept nor re-sent
        for target_id in [t for t, (_, tp) in self._delivered.items() if tp in revoked]:
            del self._delivered[target_id]
