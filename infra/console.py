"""Person-facing Kafka tools: a console producer (JSON stat events coalesced per target) and an alarm tail.

Any Kafka client can produce stat events and read alarms (confluent-kafka works with the embedded
broker too); these two need nothing but the project: Debian's kcat, built on an older
librdkafka, fails the embedded broker's ApiVersions handshake, and an Avro alarm record is not
for reading raw.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime
from typing import TextIO

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from schemas import DecodeError, decode_alarm, decode_stat_event
from schemas.batching import DEFAULT_MAX_BYTES, DEFAULT_MAX_EVENTS
from streams.runtime.config import Settings
from streams.runtime.kafka import client_options
from streams.runtime.topics import ensure_topics, topic_names


class LineBatcher:
    """Coalesces typed JSON stat events per target into JSON StatBatch records (``pacing produce``).

    :meth:`add` takes one line's record key and value. A value that decodes as a valid StatEvent
    waits with the other events of its target (and record key); anything else (an invalid event
    kept to try the DLQ, a batch typed by hand, another topic's record) is due at once, as typed.
    A target's waiting events become one record ``{"events": [<the objects as typed>]}`` keyed by
    the given key, or by the target id when none was given, when :meth:`flush` is called or when
    ``max_events``/``max_bytes`` would be exceeded; a target with a single waiting event is sent
    as that line, as typed (and keyed as typed).
    """

    def __init__(self, max_events: int = DEFAULT_MAX_EVENTS, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_events = max_events
        self.max_bytes = max_bytes
        self._pending: dict[tuple[bytes | None, str], list[bytes]] = {}

    def __len__(self) -> int:
        """Events waiting."""
        return sum(map(len, self._pending.values()))

    def add(self, key: bytes | None, value: bytes) -> list[tuple[bytes | None, bytes]]:
        """One line; returns the records due now: the line itself, a full batch, or nothing."""
        try:
            event = decode_stat_event(value)
        except DecodeError:
            return [(key, value)]
        value = value.strip()
        if value[:1] != b"{":  # Avro cannot be typed, but a pipe could carry it: sent as it is
            return [(key, value)]
        group = (key, event.target_id)
        waiting = self._pending.get(group)
        due = []
        if waiting is not None and (len(waiting) >= self.max_events
                                    or self._size(waiting) + 2 + len(value) > self.max_bytes):
            due.append(self._record(group, self._pending.pop(group)))
            waiting = None
        if waiting is None:
            self._pending[group] = [value]
        else:
            waiting.append(value)
        return due

    def flush(self) -> list[tuple[bytes | None, bytes]]:
        """Every waiting event as records, one per target (and key), in the order they first waited."""
        due = [self._record(group, values) for group, values in self._pending.items()]
        self._pending.clear()
        return due

    @staticmethod
    def _size(values: list[bytes]) -> int:
        """Bytes of the record :meth:`_record` makes of two or more ``values``."""
        return len(b'{"events": []}') + sum(map(len, values)) + 2 * (len(values) - 1)

    @staticmethod
    def _record(group: tuple[bytes | None, str], values: list[bytes]) -> tuple[bytes | None, bytes]:
        key, target_id = group
        if len(values) == 1:
            return key, values[0]
        return (key if key is not None else target_id.encode()), b'{"events": [' + b", ".join(values) + b"]}"


async def produce_lines(
    settings: Settings, topic: str, key: str | None, lines: TextIO, *, batch: bool = False, linger_s: float = 0.1,
) -> int:
    """Send every non-empty line of ``lines`` as a record (``key`` or ``KEY<TAB>VALUE`` lines); returns the count.

    With ``batch`` (``pacing produce`` on the stats topic, unless ``--single``), JSON stat events
    are coalesced per target into StatBatch records (:class:`LineBatcher`): lines that arrive
    together (a paste, a pipe) go in one record per target, sent once no line came for
    ``linger_s`` seconds or at the end of the input.
    """
    await ensure_topics(settings)
    producer = AIOKafkaProducer(acks="all", **client_options(settings))
    await producer.start()
    batcher = LineBatcher()
    loop = asyncio.get_running_loop()
    count = 0

    async def send(records: list[tuple[bytes | None, bytes]]) -> None:
        nonlocal count
        for record_key, value in records:
            await producer.send_and_wait(topic, value, key=record_key)
            count += 1

    try:
        while True:
            read = loop.run_in_executor(None, lines.readline)
            if len(batcher):
                done, _ = await asyncio.wait({read}, timeout=linger_s)
                if not done:  # a pause in the input: what waits goes now
                    await send(batcher.flush())
            line = await read
            if not line:
                break
            line = line.rstrip("\n")
            if not line.strip():
                continue
            record_key, value = (key, line) if key or "\t" not in line else line.split("\t", 1)
            encoded_key = record_key.encode() if record_key else None
            if batch:
                await send(batcher.add(encoded_key, value.encode()))
            else:
                await send([(encoded_key, value.encode())])
        await send(batcher.flush())
    finally:
        await producer.stop()
    return count


def format_alarm(value: bytes) -> str:
    """One line per alarm transition: local time, RAISED/CLEARED, the alarm, where, the message.

    ``2026-11-25 10:15:02  RAISED   PacingRequestsFailed  sink:node-1: bulk request to … failed: …``.
    Where is the alarm's scope (a target id, ``sink:<node>``, a node id), and for process-wide
    alarms the node as well. The messages state their own figures (observed value, threshold).
    """
    try:
        alarm = decode_alarm(value)
    except DecodeError as exc:
        return f"(unreadable alarm record: {exc.reason})"
    when = datetime.fromtimestamp(alarm.timestamp / 1000).astimezone()  # the reader's local time
    where = f"{alarm.scope} {alarm.node}" if alarm.scope == "process" else alarm.scope
    return f"{when:%Y-%m-%d %H:%M:%S}  {alarm.state.value.upper():7}  {alarm.name}  {where}: {alarm.message}"


async def tail_alarms(settings: Settings, from_beginning: bool, out: TextIO = sys.stdout) -> None:
    """Print alarm transitions as they arrive, one line each (:func:`format_alarm`), until cancelled.

    Nothing else goes to ``out``; ``pacing alarms`` keeps the Kafka client's INFO lines out of
    the terminal by logging at WARNING unless ``--log-level`` asks for more (on stderr).
    """
    await ensure_topics(settings)
    consumer = AIOKafkaConsumer(
        topic_names(settings).alarms, group_id=None,
        auto_offset_reset="earliest" if from_beginning else "latest", **client_options(settings),
    )
    await consumer.start()
    try:
        async for record in consumer:
            print(format_alarm(record.value or b""), file=out, flush=True)
    except asyncio.CancelledError:
        pass
    finally:
        await consumer.stop()
