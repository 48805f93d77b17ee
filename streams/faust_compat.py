"""The few places where the pacing node reaches below Faust's public API, kept together.

- Faust derives the changelog partition of a table write — and its RocksDB store picks the
  partition's database — from the *current event*, which exists only inside Faust's per-event
  drainer, not while an agent handles a batch. :func:`as_current_event` makes one of the
  target's own events current for the write, so the changelog stays co-partitioned with
  ``pacing.stats`` and a worker taking over a partition restores exactly its targets.
- A table assignment hands its changelog record to Faust's producer buffer and drops the
  delivery future, so a failed write would go unnoticed. :func:`store_locally` updates only the
  local store; the node sends the changelog record itself (:func:`changelog_topic_name`) and
  waits for the broker's acknowledgement before it acknowledges the source events.
- After the broker lost a topic's log, :func:`forget_positions` resets Faust's own offset marks.
- A batch given up on when the worker stops or partitions move is taken out of the set Faust
  waits on before it commits (:func:`release_unacknowledged`).

Tested against the pinned faust-streaming version in ``tests/unit/test_faust_compat.py``.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from faust.streams import _current_event
from faust.types import TP, EventT, TableT


@contextmanager
def as_current_event(event: EventT) -> Iterator[None]:
    """Within the block, Faust sees ``event`` as the event being processed."""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


def store_locally(table: TableT, event: EventT, key: Any, value: Any) -> None:
    """Write ``key`` to the table's local store (partition of ``event``), without a changelog record."""
    with as_current_event(event):
        table.data[key] = value


def changelog_topic_name(table: TableT) -> str:
    """The name of the table's changelog topic."""
    return table.changelog_topic.get_topic_name()


def forget_positions(consumer: Any, partitions: Iterable[TP]) -> None:
    """Forget Faust's read and commit marks of partitions whose log started again at offset 0.

    After a broker lost a topic (memory storage, restart), Faust would otherwise drop every new
    record below the old read mark and never commit offsets below the old commit mark.
    """
    for tp in partitions:
        consumer._read_offset[tp] = None
        consumer._committed_offset[tp] = None


def release_unacknowledged(consumer: Any, events: Iterable[EventT]) -> None:
    """Stop Faust waiting for events this worker gives up on without acknowledging them.

    On stop and on every rebalance Faust waits until all delivered messages are acknowledged.
    A batch abandoned then (its writes could not be confirmed) is never acknowledged; it is
    replayed from the committed offset — Faust seeks every assigned partition there after a
    rebalance — so the wait must not include it.
    """
    for event in events:
        consumer._unacked_messages.discard(event.message)
