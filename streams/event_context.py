"""Make a stream event Faust's *current event* while a batch is written to a table.

Faust derives the changelog partition of a table write — and its RocksDB store asserts — from
the current event, which exists only inside Faust's per-event drainer, not while an agent
handles a batch from ``take_events``. Pacing nodes fold a batch per target and write each
target once, under one of that target's own events, so the changelog stays co-partitioned with
``pacing.stats`` and a worker taking over a partition restores exactly its targets.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager

from faust.streams import _current_event
from faust.types import EventT


@contextmanager
def as_current_event(event: EventT) -> Iterator[None]:
    """Within the block, Faust sees ``event`` as the event being processed."""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)
