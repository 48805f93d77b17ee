"""From taken ``pacing.stats`` records to folded target state: decode, reject, forward, fold.

Nothing here is decided or acknowledged: the node decides the targets left dirty on its tick
(:mod:`streams.pacing_node`) and acknowledges the pending events once everything they caused
is on the broker.

- A record that cannot be decoded, of another tenant, or given up on after
  ``worker.max_attempts`` failed attempts goes to the DLQ with its reason.
- A record that arrived off its target's home partition (producers partition as their client
  does; :mod:`streams.partitioning`) is forwarded there, keyed by its target.
- Every other event is folded into its target's live entry (folding is idempotent: gauges keep
  the newest value, counters the newest sample, so a replay changes nothing).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from faust.types import EventT

from schemas import DecodeCategory, DecodeError, StatEvent, decode_stat_events
from streams.config import Settings
from streams.metrics import NodeMetrics
from streams.outbox import Outbox, SendFailed
from streams.partitioning import home_partition
from streams.target_entry import TargetEntry
from streams.target_store import TargetStore
from streams.topics import TopicNames

log = logging.getLogger(__name__)

#: The ``pacing_events_rejected`` label of events given up on after ``worker.max_attempts``.
PROCESSING_FAILED = "processing_failed"


class EventsFailed(Exception):
    """Handling these events raised; their work is redone and, after enough attempts, they go to the DLQ."""

    def __init__(self, events: Sequence[EventT], error: BaseException):
        super().__init__(f"{type(error).__name__}: {error}")
        self.events = list(events)
        self.error = error


@dataclass(slots=True)
class Dirty:
    """A target folded since the last tick: its live entry and the events folded into it."""

    entry: TargetEntry
    events: list[EventT] = field(default_factory=list)


def event_key(event: EventT) -> tuple[int, int]:
    """An event's place in ``pacing.stats`` (partition, offset): what failed attempts are counted by."""
    message = event.message
    return message.partition, message.offset


class StatIntake:
    """The events taken since the last tick, the targets they dirtied, and the failures seen."""

    def __init__(self, settings: Settings, names: TopicNames, store: TargetStore, metrics: NodeMetrics):
        self._tenant = settings.tenant
        self._partitions = settings.kafka.stats_partitions
        self._max_attempts = settings.worker.max_attempts
        self._names = names
        self._store = store
        self._metrics = metrics
        #: Taken and not yet acknowledged, in arrival order.
        self.pending: list[EventT] = []
        #: Targets folded since the last tick.
        self.dirty: dict[str, Dirty] = {}
        #: Next offset to take per stats partition (the lag gauge, lost-log detection).
        self.next_offset: dict[int, int] = {}
        self._attempts: dict[tuple[int, int], int] = {}
        self._poisoned: dict[tuple[int, int], str] = {}

    def note_taken(self, events: Sequence[EventT]) -> None:
        """Count a batch and remember how far each partition was read."""
        self._metrics.batch_size.observe(len(events))
        self._metrics.events_in.inc(len(events))
        next_offset = self.next_offset
        for event in events:
            message = event.message
            offset = message.offset + 1
            if offset > next_offset.get(message.partition, 0):
                next_offset[message.partition] = offset
        self.pending.extend(events)

    async def fold(self, events: Sequence[EventT], outbox: Outbox) -> None:
        """Decode and fold ``events``; rejections and forwards go to ``outbox``.

        Every failure is pinned on the events it came from (:class:`EventsFailed`): the event being
        folded or, outside that, all of them.
        """
        try:
            decoded = decode_stat_events([event.value for event in events])
            elsewhere = self._fold_decoded(events, decoded)
            for event, result, home in elsewhere:
                await self._route(event, result, home, outbox)
        except (SendFailed, EventsFailed):
            raise
        except Exception as exc:
            raise EventsFailed(events, exc) from exc

    def _fold_decoded(self, events: Sequence[EventT], decoded: Sequence[StatEvent | DecodeError]
                      ) -> list[tuple[EventT, StatEvent | DecodeError | str, int | None]]:
        """Fold what belongs here; return what must be rejected or forwarded (with the home partition)."""
        elsewhere: list[tuple[EventT, Any, int | None]] = []
        tenant = self._tenant
        partitions = self._partitions
        dirty = self.dirty
        poisoned = self._poisoned
        now_ms = int(time.time() * 1000)
        stale = 0
        for event, result in zip(events, decoded, strict=True):
            if poisoned and event_key(event) in poisoned:
                elsewhere.append((event, poisoned[event_key(event)], None))
                continue
            if type(result) is DecodeError or result.tenant != tenant:
                elsewhere.append((event, result, None))
                continue
            target_id = result.target_id
            home = home_partition(target_id, partitions)
            if home != event.message.partition:
                elsewhere.append((event, result, home))
                continue
            item = dirty.get(target_id)
            if item is None:
                entry = self._store.get(target_id)
                if entry is None:
                    entry = TargetEntry.new(target_id, home, now_ms)
                    self._store.add(target_id, entry)
                item = dirty[target_id] = Dirty(entry)
            item.events.append(event)
            try:
                folded = item.entry.state.apply(result.statistic, result.value, result.timestamp, result.media_type)
            except Exception as exc:
                raise EventsFailed([event], exc) from exc
            if not folded:
                stale += 1
        if stale:
            self._metrics.events_stale.inc(stale)
        return elsewhere

    async def _route(self, event: EventT, result: StatEvent | DecodeError | str, home: int | None,
                     outbox: Outbox) -> None:
        if isinstance(result, str):
            await self._reject(event, result, PROCESSING_FAILED, outbox)
        elif isinstance(result, DecodeError):
            await self._reject(event, result.reason, str(result.category), outbox)
        elif home is not None:
            await self._forward(event, result.target_id, home, outbox)
        else:
            await self._reject(event, f"tenant {result.tenant!r} is not served here (serves {self._tenant!r})",
                               str(DecodeCategory.WRONG_TENANT), outbox)

    async def _forward(self, event: EventT, target_id: str, home: int, outbox: Outbox) -> None:
        """Send an event that arrived off its home partition to that partition, keyed by its target."""
        message = event.message
        headers = [*_headers(message.headers),
                   ("pacing.rerouted-from", f"{message.topic}/{message.partition}@{message.offset}".encode())]
        await outbox.send(self._names.stats, target_id.encode(), message.value, partition=home, headers=headers,
                          on_confirmed=self._metrics.events_rerouted.inc)

    async def _reject(self, event: EventT, reason: str, category: str, outbox: Outbox) -> None:
        """To the DLQ as received; the reason in its ``error`` header, its class in the metric label."""
        message = event.message
        log.warning("rejected event at %s[%d]@%d: %s", message.topic, message.partition, message.offset, reason)
        await outbox.send(
            self._names.stats_dlq, message.key, message.value,
            headers=[("error", reason.encode()), ("source.topic", message.topic.encode()),
                     ("source.partition", str(message.partition).encode()),
                     ("source.offset", str(message.offset).encode())],
            on_confirmed=self._metrics.events_rejected.labels(category).inc,
        )

    def count_failure(self, failure: EventsFailed) -> None:
        """One more failed attempt for these events; those out of attempts are given up on (DLQ)."""
        self._metrics.processing_errors.inc()
        for event in failure.events:
            key = event_key(event)
            attempts = self._attempts.get(key, 0) + 1
            self._attempts[key] = attempts
            if attempts >= self._max_attempts:
                self._poisoned[key] = f"processing failed {attempts} times: {failure}"
        log.error("handling %d events failed (%s); their work is redone", len(failure.events), failure,
                  exc_info=failure.error)

    def reset(self) -> None:
        """Forget the dirty targets' live state: a retry folds the pending events again from the table."""
        self._store.forget(self.dirty)
        self.dirty.clear()

    def take_done(self) -> list[EventT]:
        """Everything pending was written: hand its events over for acknowledgement and start afresh."""
        done, self.pending = self.pending, []
        self.dirty.clear()
        if self._attempts or self._poisoned:
            for event in done:
                key = event_key(event)
                self._attempts.pop(key, None)
                self._poisoned.pop(key, None)
        return done

    def drop_pending(self) -> list[EventT]:
        """Give up on the pending events (replayed from the committed offset); return them."""
        dropped, self.pending = self.pending, []
        self.reset()
        return dropped


def _headers(headers: Any) -> list[tuple[str, bytes]]:
    """A record's headers as a list of pairs, whichever form the client gave them in."""
    if not headers:
        return []
    if isinstance(headers, dict):
        return list(headers.items())
    return list(headers)
