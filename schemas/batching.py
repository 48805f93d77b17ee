"""Coalescing stat events per target into StatBatch records: a helper for bridges and tools.

A producer of ``pacing.stats`` that reports many statistics per target at once (a Stat Server
bridge reports 13 per target per cycle) should send them as one StatBatch record per target
rather than one record per event: the pacing node decodes a 13-event batch several times
faster per event than 13 single records (see ``docs-drafts/statbatch-readme.md``), and the
broker stores and ships one record instead of 13.

:class:`StatBatcher` does the grouping and the encoding and nothing else: it yields
``(key, value)`` pairs of bytes for any Kafka client (aiokafka, confluent-kafka, kafka-python,
a REST proxy), so it has no Kafka dependency and no clock. The caller decides when a cycle
ends and calls :meth:`StatBatcher.flush`::

    from schemas import StatEvent
    from schemas.batching import StatBatcher

    batcher = StatBatcher()
    for event in events_of_this_cycle:             # StatEvent instances, any targets
        for key, value in batcher.add(event):      # a target's batch that became full
            producer.send("pacing.stats", key=key, value=value)
    for key, value in batcher.flush():             # the rest: one record per target
        producer.send("pacing.stats", key=key, value=value)

Every record is keyed by its target id (UTF-8), so the client's default partitioner puts it on
the target's home partition, and holds the events of that one target in the order they were
added.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from schemas.codec import MAX_BATCH_EVENTS, MAX_PAYLOAD_BYTES, REGISTRY, SchemaRegistry
from schemas.models import StatEvent

__all__ = ["DEFAULT_MAX_BYTES", "DEFAULT_MAX_EVENTS", "StatBatcher"]

#: Events per record by default: a few reports of a target (13 statistics each); well under
#: :data:`schemas.codec.MAX_BATCH_EVENTS`.
DEFAULT_MAX_EVENTS = 128

#: Bytes per record value by default: half the decoder's 64 KiB limit (a 13-event Avro batch of
#: usual ids is under 1 KiB, so only unusually long strings get near it).
DEFAULT_MAX_BYTES = 32 * 1024

_BATCH_END = b"\x00"  # the Avro array's closing block count


def _zigzag(n: int) -> bytes:
    """Avro long ``n`` (>= 0 here) as a zig-zag varint."""
    n <<= 1
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


@dataclass(slots=True)
class _Pending:
    """A target's events not yet returned: encoded (Avro body or JSON object), and their total size."""

    bodies: list[bytes]
    size: int


class StatBatcher:
    """Groups :class:`StatEvent` instances per target and encodes one record per group.

    ``max_events`` and ``max_bytes`` bound one record: when adding an event would go over
    either, the target's pending events are returned as a record first (by :meth:`add`). A
    target with a single pending event is sent as a plain StatEvent record when
    ``single_events`` is true (the default): a batch of one gains nothing, and every consumer
    version reads a StatEvent. ``as_json`` writes JSON (``{"events": [...]}``) instead of Avro
    single-object encoding: readable in a console consumer, about twice as costly to decode.

    Not thread-safe; one batcher per producing thread or task.
    """

    def __init__(
        self,
        *,
        max_events: int = DEFAULT_MAX_EVENTS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        as_json: bool = False,
        single_events: bool = True,
        registry: SchemaRegistry | None = None,
    ) -> None:
        if not 1 <= max_events <= MAX_BATCH_EVENTS:
            raise ValueError(f"max_events must be 1..{MAX_BATCH_EVENTS}, not {max_events}")
        if not 256 <= max_bytes <= MAX_PAYLOAD_BYTES:
            raise ValueError(f"max_bytes must be 256..{MAX_PAYLOAD_BYTES}, not {max_bytes}")
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.as_json = as_json
        self.single_events = single_events
        self._registry = REGISTRY if registry is None else registry
        self._event_header = self._registry.latest("StatEvent").header
        self._batch_header = self._registry.latest("StatBatch").header
        # Per target, in the order targets first got a pending event.
        self._pending: dict[str, _Pending] = {}
        self._events = 0

    def __len__(self) -> int:
        """Events added and not yet returned in a record."""
        return self._events

    @property
    def pending_targets(self) -> int:
        """Targets with events not yet returned in a record."""
        return len(self._pending)

    def add(self, event: StatEvent) -> list[tuple[bytes, bytes]]:
        """Add one event; returns the records that became due (empty, or that target's full batch)."""
        body = self._encode(event)
        target_id = event.target_id
        pending = self._pending.get(target_id)
        out: list[tuple[bytes, bytes]] = []
        if pending is not None and (
            len(pending.bodies) >= self.max_events
            or self._record_size(len(pending.bodies) + 1, pending.size + len(body)) > self.max_bytes
        ):
            out.append(self._record(target_id, pending.bodies))
            self._events -= len(pending.bodies)
            del self._pending[target_id]  # pending again below, now last in flush order
            pending = None
        if pending is None:
            self._pending[target_id] = _Pending([body], len(body))
        else:
            pending.bodies.append(body)
            pending.size += len(body)
        self._events += 1
        return out

    def extend(self, events: Iterable[StatEvent]) -> list[tuple[bytes, bytes]]:
        """:meth:`add` each event; returns all the records that became due, in order."""
        out: list[tuple[bytes, bytes]] = []
        for event in events:
            out.extend(self.add(event))
        return out

    def flush(self) -> list[tuple[bytes, bytes]]:
        """Every pending event as records: one per target, targets in the order they first had one."""
        out = [self._record(target_id, pending.bodies) for target_id, pending in self._pending.items()]
        self._pending.clear()
        self._events = 0
        return out

    # --- encoding ---------------------------------------------------------------------------

    def _encode(self, event: StatEvent) -> bytes:
        """The event as it goes inside a batch: its Avro body (no header), or its JSON object."""
        if self.as_json:
            return json.dumps(event.model_dump(), ensure_ascii=False, separators=(",", ":")).encode()
        return self._registry.encode("StatEvent", event.to_avro_dict())[len(self._event_header):]

    def _record_size(self, count: int, body_bytes: int) -> int:
        if self.as_json:  # {"events":[ + bodies joined by commas + ]}
            return 11 + body_bytes + count - 1 + 2
        return len(self._batch_header) + len(_zigzag(count)) + body_bytes + 1

    def _record(self, target_id: str, bodies: list[bytes]) -> tuple[bytes, bytes]:
        key = target_id.encode("utf-8")
        if len(bodies) == 1 and self.single_events:
            return key, bodies[0] if self.as_json else self._event_header + bodies[0]
        if self.as_json:
            return key, b'{"events":[' + b",".join(bodies) + b"]}"
        # One array block: count, the events, the closing 0 (what fastavro writes; tests compare).
        return key, self._batch_header + _zigzag(len(bodies)) + b"".join(bodies) + _BATCH_END
