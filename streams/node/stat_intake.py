"""From taken ``pacing.stats`` records to folded target state: decode, reject, forward, fold.

Nothing here is decided, written or acknowledged: the node decides the targets folded since
its last decision tick, writes those folded since its last checkpoint, and then acknowledges
the pending events — once everything they caused is on the broker (:mod:`streams.node.app`).

A record holds one StatEvent or a StatBatch of events (:func:`schemas.decode_stat_records`).
- A record that cannot be decoded, of another tenant, or given up on after
  ``worker.max_attempts`` failed attempts goes to the DLQ as received, with its reason (the
  ``error`` header) and its class (:class:`~streams.runtime.metrics.RejectReason`, the ``error.class``
  header and the ``pacing_events_rejected_total`` label); a bad or foreign-tenant event inside a
  StatBatch goes there alone (as JSON, with its position in the batch in a ``source.index`` header).
- An event that arrived off its target's home partition (producers partition as their client
  does; :mod:`streams.node.partitioning`) is forwarded there, keyed by its target: the record as
  received, or the one event of a StatBatch.
- Every other event is folded into its target's live entry (folding is idempotent: gauges keep
  the newest value, counters the newest sample, so a replay changes nothing).

A target whose statistics changed materially — a target seen for the first time, its ready agents
reaching or leaving zero, its logged-in agents reaching or leaving zero or changing by a tenth — is
also marked *urgent*: the node decides it at once instead of at its next decision tick
(:func:`material_gauge_change`), though not more often than once per ``worker.decide_interval_s``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from faust.types import EventT

from schemas import DecodeError, StatEvent, decode_stat_records, encode_stat_event
from streams.node.cadence import MATERIAL_GAUGES, material_gauge_change
from streams.node.partitioning import home_partition
from streams.node.target_entry import TargetEntry
from streams.node.target_store import TargetStore
from streams.runtime.config import WorkerSettings
from streams.runtime.dead_letters import dead_letter_headers
from streams.runtime.metrics import NodeMetrics, RejectReason
from streams.runtime.outbox import Outbox, SendFailed
from streams.runtime.topics import TopicNames

log = logging.getLogger(__name__)

class EventsFailed(Exception):
    """Handling these events raised; their work is redone and, after enough attempts, they go to the DLQ."""

    def __init__(self, events: Sequence[EventT], error: BaseException):
        super().__init__(f"{type(error).__name__}: {error}")
        self.events = list(events)
        self.error = error


@dataclass(slots=True)
class Touched:
    """A target folded since the last checkpoint: its live entry and the events folded into it.

    ``revived``: its statistics arrived after more than ``worker.stale_after_s`` of silence (its
    ``TargetStale`` alarm, raised here or by a previous owner, is cleared when it is decided).
    """

    entry: TargetEntry
    events: list[EventT] = field(default_factory=list)
    revived: bool = False


def event_key(event: EventT) -> tuple[int, int]:
    """An event's place in ``pacing.stats`` (partition, offset): what failed attempts are counted by."""
    message = event.message
    return message.partition, message.offset


class StatIntake:
    """The events taken and not yet acknowledged, the targets they touched, and the failures seen.

    ``tenant``: events of another tenant are rejected; ``partitions``: ``pacing.stats``'s count, which
    says a target's home partition; ``worker``: ``max_attempts`` and ``stale_after_s``.
    """

    def __init__(self, tenant: str, partitions: int, worker: WorkerSettings, names: TopicNames, store: TargetStore,
                 metrics: NodeMetrics):
        self._tenant = tenant
        self._partitions = partitions
        self._max_attempts = worker.max_attempts
        self._stale_after_ms = worker.stale_after_s * 1000
        self.names = names
        self._store = store
        self.metrics = metrics
        #: Taken and not yet acknowledged, in arrival order.
        self.pending: list[EventT] = []
        #: Targets folded since the last checkpoint (their table entries are due).
        self.touched: dict[str, Touched] = {}
        #: Targets folded since the last decision tick (their decisions are due).
        self.undecided: dict[str, Touched] = {}
        #: The undecided targets whose statistics changed materially (to decide at once).
        self.urgent: set[str] = set()
        #: Next offset to take per stats partition (the lag gauge, lost-log detection).
        self.next_offset: dict[int, int] = {}
        self._attempts: dict[tuple[int, int], int] = {}
        self._poisoned: dict[tuple[int, int], str] = {}

    def note_taken(self, events: Sequence[EventT]) -> None:
        """Count a batch and remember how far each partition was read."""
        self.metrics.batch_size.observe(len(events))
        self.metrics.records_in.inc(len(events))
        next_offset = self.next_offset
        for event in events:
            message = event.message
            offset = message.offset + 1
            if offset > next_offset.get(message.partition, 0):
                next_offset[message.partition] = offset
        self.pending.extend(events)

    async def fold(self, events: Sequence[EventT], outbox: Outbox, *, again: bool = False) -> None:
        """Decode and fold ``events`` (single StatEvents or StatBatches); rejections and forwards go to ``outbox``.

        Every failure is pinned on the records it came from (:class:`EventsFailed`): the record
        being folded or, outside that, all of them. ``again``: a retry, whose events were counted.
        """
        try:
            decoded = decode_stat_records([event.value for event in events])
            if not again:
                self._count_events(decoded)
            elsewhere = self._fold_decoded(events, decoded)
            for event, action in elsewhere:
                await action.send(self, event, outbox)
        except (SendFailed, EventsFailed):
            raise
        except Exception as exc:
            raise EventsFailed(events, exc) from exc

    def count_events(self, events: Sequence[EventT]) -> None:
        """Count taken events that are not folded now (a retry will fold them with the pending ones)."""
        self._count_events(decode_stat_records([event.value for event in events]))

    def _count_events(self, decoded: Sequence[list[StatEvent | DecodeError] | DecodeError]) -> None:
        self.metrics.events_in.inc(sum(len(record) if type(record) is list else 1 for record in decoded))

    def _fold_decoded(self, events: Sequence[EventT], decoded: Sequence[list[StatEvent | DecodeError] | DecodeError]
                      ) -> list[tuple[EventT, _Reject | _Forward]]:
        """Fold what belongs here; return what must be rejected or forwarded."""
        elsewhere: list[tuple[EventT, _Reject | _Forward]] = []
        tenant = self._tenant
        partitions = self._partitions
        touched = self.touched
        undecided = self.undecided
        urgent = self.urgent
        poisoned = self._poisoned
        now_ms = int(time.time() * 1000)
        stale = 0
        for event, record in zip(events, decoded, strict=True):
            if poisoned and event_key(event) in poisoned:
                elsewhere.append((event, _Reject(poisoned[event_key(event)], RejectReason.PROCESSING_FAILED)))
                continue
            if type(record) is not list:
                elsewhere.append((event, _Reject(record.reason, RejectReason.of(record.category))))
                continue
            partition = event.message.partition
            single = len(record) == 1
            for index, result in enumerate(record):
                if type(result) is DecodeError:
                    elsewhere.append((event, _Reject(result.reason, RejectReason.of(result.category), result.item,
                                                                 result.index)))
                    continue
                if result.tenant != tenant:
                    elsewhere.append((event, _Reject(
                        f"tenant {result.tenant!r} is not served here (serves {tenant!r})",
                        RejectReason.WRONG_TENANT,
                        *((None, None) if single else (result.model_dump_json().encode(), index)))))
                    continue
                target_id = result.target_id
                home = home_partition(target_id, partitions)
                if home != partition:
                    elsewhere.append((event, _Forward(target_id, home, None if single else result)))
                    continue
                item = touched.get(target_id)
                if item is None:
                    entry = self._store.get(target_id)
                    if entry is None:
                        entry = TargetEntry.new(target_id, home, now_ms)
                        self._store.add(target_id, entry)
                        urgent.add(target_id)  # its first decision
                    waiting = undecided.get(target_id)  # decided later than its last checkpoint
                    item = touched[target_id] = Touched(entry, revived=waiting is not None and waiting.revived)
                entry = item.entry
                if entry.received_ms != now_ms:  # statistics arrived: once per target per batch
                    if now_ms - entry.received_ms > self._stale_after_ms:
                        item.revived = True
                    entry.received_ms = now_ms
                undecided[target_id] = item
                if not item.events or item.events[-1] is not event:
                    item.events.append(event)
                statistic = result.statistic
                state = item.entry.state
                before = state.gauges.get(statistic) if statistic in MATERIAL_GAUGES else None
                try:
                    applied = state.apply(statistic, result.value, result.timestamp, result.media_type)
                except Exception as exc:
                    raise EventsFailed([event], exc) from exc
                if not applied:
                    stale += 1
                elif statistic in MATERIAL_GAUGES and material_gauge_change(statistic, before,
                                                                            state.gauges.get(statistic)):
                    urgent.add(target_id)
        if stale:
            self.metrics.events_stale.inc(stale)
        return elsewhere

    def count_failure(self, failure: EventsFailed) -> None:
        """One more failed attempt for these events; those out of attempts are given up on (DLQ)."""
        self.metrics.processing_errors.inc()
        for event in failure.events:
            key = event_key(event)
            attempts = self._attempts.get(key, 0) + 1
            self._attempts[key] = attempts
            if attempts >= self._max_attempts:
                self._poisoned[key] = f"processing failed {attempts} times: {failure}"
        log.error("handling %d events failed (%s); their work is redone", len(failure.events), failure,
                  exc_info=failure.error)

    def reset(self) -> None:
        """Forget the touched targets' live state: a retry folds the pending events again from the table.

        Targets waiting for their decide period whose events were all acknowledged keep waiting.
        """
        touched = self.touched
        self._store.forget(touched)
        self.undecided = {target_id: item for target_id, item in self.undecided.items() if target_id not in touched}
        touched.clear()
        self.urgent.clear()

    def take_undecided(self, now_s: float = 0.0, period_s: float = 0.0, urgent_period_s: float = 0.0
                       ) -> dict[str, Touched]:
        """The targets to decide now (``now_s`` on the monotonic clock): those not decided within ``period_s``,
        and the urgent ones not decided within ``urgent_period_s``.

        The others stay undecided for a later tick; events folded from here on make the next batch.
        """
        undecided, urgent = self.undecided, self.urgent
        if period_s <= 0:
            batch, self.undecided = undecided, {}
            urgent.clear()
            return batch
        since, urgent_since = now_s - period_s, now_s - urgent_period_s
        batch = {target_id: item for target_id, item in undecided.items()
                 if item.entry.decided_at <= since or (target_id in urgent and item.entry.decided_at <= urgent_since)}
        for target_id in batch:
            del undecided[target_id]
            urgent.discard(target_id)
        return batch

    def urgent_due(self, now_s: float, urgent_period_s: float) -> bool:
        """Whether an urgent target was not decided within ``urgent_period_s`` before ``now_s``."""
        undecided = self.undecided
        since = now_s - urgent_period_s
        return any(target_id in undecided and undecided[target_id].entry.decided_at <= since
                   for target_id in self.urgent)

    def take_urgent(self, now_s: float = 0.0, urgent_period_s: float = 0.0, limit: int | None = None
                    ) -> dict[str, Touched]:
        """Up to ``limit`` urgent targets not decided within ``urgent_period_s`` before ``now_s``, to decide at once.

        The others wait for the next call or the decision tick (a flapping statistic is decided at
        most once per ``urgent_period_s``).
        """
        undecided, urgent = self.undecided, self.urgent
        since = now_s - urgent_period_s
        batch: dict[str, Touched] = {}
        for target_id in urgent:
            item = undecided.get(target_id)
            if item is not None and item.entry.decided_at <= since:
                batch[target_id] = item
                if len(batch) == limit:
                    break
        for target_id in batch:
            del undecided[target_id]
        urgent.difference_update(batch)
        urgent.intersection_update(undecided)
        return batch

    def take_done(self, count: int) -> list[EventT]:
        """The first ``count`` pending events were written and decided: hand them over for acknowledgement.

        The targets folded since (the next batch to decide) stay touched: their later events are
        acknowledged at a later checkpoint, after their table entries are written again. Targets
        waiting for their decide period stay undecided: their state is written, their decision due.
        """
        done, self.pending = self.pending[:count], self.pending[count:]
        touched = self.touched
        if self.pending:
            self.touched = {target_id: touched[target_id] for target_id in self.undecided if target_id in touched}
        else:
            touched.clear()
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


@dataclass(slots=True)
class _Reject:
    """To the DLQ: the whole record as received, or one event of a StatBatch alone (``alone``, ``index``).

    ``reason`` is the one-line detail (``error`` header); ``category`` its class (``error.class``
    header and metric label).
    """

    reason: str
    category: RejectReason
    alone: bytes | None = None
    index: int | None = None

    async def send(self, intake: StatIntake, event: EventT, outbox: Outbox) -> None:
        message = event.message
        headers = dead_letter_headers(self.reason, self.category.value, message.topic, message.partition,
                                      message.offset, self.index)
        value = message.value if self.index is None else self.alone
        log.warning("rejected event at %s[%d]@%d%s: %s", message.topic, message.partition, message.offset,
                    "" if self.index is None else f" #{self.index}", self.reason)
        await outbox.send(intake.names.stats_dlq, message.key, value, headers=headers,
                          on_confirmed=partial(intake.metrics.count_rejected, self.category))


@dataclass(slots=True)
class _Forward:
    """To the target's home partition, keyed by it: the record as received, or one event of a StatBatch."""

    target_id: str
    home: int
    item: StatEvent | None = None

    async def send(self, intake: StatIntake, event: EventT, outbox: Outbox) -> None:
        message = event.message
        value = message.value if self.item is None else encode_stat_event(self.item)
        headers = [*_headers(message.headers),
                   ("pacing.rerouted-from", f"{message.topic}/{message.partition}@{message.offset}".encode())]
        await outbox.send(intake.names.stats, self.target_id.encode(), value, partition=self.home,
                          headers=headers, on_confirmed=intake.metrics.events_rerouted.inc)


def _headers(headers: Any) -> list[tuple[str, bytes]]:
    """A record's headers as a list of pairs, whichever form the client gave them in."""
    if not headers:
        return []
    if isinstance(headers, dict):
        return list(headers.items())
    return list(headers)
