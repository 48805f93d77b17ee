"""The node's checkpoint: what makes taken stat events committable, in three steps, in one place.

Quix Streams' ``Checkpoint.commit`` is the model: flush what was produced, then the state, then
the offsets. Here, for every event the node's loop has taken so far:

1. **write** the table entry of every target folded since the last checkpoint — once, however
   many events it got — into the local store, with its changelog record into the node's outbox;
2. **confirm** every record of that outbox with the broker — decisions, changelog, DLQ, forwarded
   events, alarms (:meth:`streams.runtime.outbox.Outbox.confirm`);
3. **acknowledge** the events, in the order they were taken: Faust commits their offsets.

Steps 1 and 2 raise with nothing acknowledged (:class:`~streams.runtime.outbox.SendFailed` when
Kafka did not take a record, :class:`~streams.node.stat_intake.EventsFailed` when writing a
target's entry failed): the node redoes the work from the table's state and the pending events,
and folding is idempotent.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from faust.types import EventT

from streams.node.stat_intake import EventsFailed, StatIntake
from streams.node.target_store import TargetStore
from streams.runtime.metrics import NodeMetrics
from streams.runtime.outbox import Outbox, SendFailed

Acknowledge = Callable[[EventT], Awaitable[Any]]


class Checkpoint:
    """Writes, confirms and acknowledges (see the module docstring); says when the next one is due."""

    def __init__(self, intake: StatIntake, store: TargetStore, metrics: NodeMetrics, interval_s: float,
                 clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._intake = intake
        self._store = store
        self._metrics = metrics
        self._interval_s = interval_s
        #: When the next checkpoint is due (monotonic): ``interval_s`` after the oldest pending event was taken.
        self.due_at = 0.0

    def events_taken(self) -> None:
        """Events are about to join the pending ones: the first of them starts the interval."""
        if not self._intake.pending:
            self.due_at = self._clock() + self._interval_s

    def due(self) -> bool:
        """Whether the oldest pending event has waited ``interval_s``."""
        return self._clock() >= self.due_at

    async def commit(self, outbox: Outbox, acknowledge: Acknowledge) -> None:
        """Make every pending event committable: write (1), confirm (2), acknowledge (3)."""
        await self._write_entries(outbox)
        await outbox.confirm()
        for event in self._intake.take_done(len(self._intake.pending)):
            await acknowledge(event)
        self.due_at = self._clock() + self._interval_s

    async def _write_entries(self, outbox: Outbox) -> None:
        touched = self._intake.touched
        write = self._store.write
        for target_id, item in touched.items():
            try:
                await write(target_id, item.entry, item.events[0], outbox)
            except SendFailed:
                raise
            except Exception as exc:
                raise EventsFailed(item.events, exc) from exc
        self._metrics.flushed_targets.observe(len(touched))
