"""Person-facing Kafka tools: a console producer and an alarm tail.

Debian's kcat cannot talk to the embedded broker (its librdkafka fails the ApiVersions
handshake), so the project ships the two console tools an operator needs.
"""

from __future__ import annotations

import asyncio
import sys
from typing import TextIO

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from schemas import DecodeError, decode_alarm
from streams.config import Settings
from streams.kafka import client_options
from streams.topics import ensure_topics, topic_names


async def produce_lines(settings: Settings, topic: str, key: str | None, lines: TextIO) -> int:
    """Send every non-empty line of ``lines`` as one record (``key`` or ``KEY<TAB>VALUE`` lines)."""
    await ensure_topics(settings)
    producer = AIOKafkaProducer(acks="all", **client_options(settings))
    await producer.start()
    count = 0
    try:
        for line in lines:
            line = line.rstrip("\n")
            if not line.strip():
                continue
            record_key, value = (key, line) if key or "\t" not in line else line.split("\t", 1)
            await producer.send_and_wait(topic, value.encode(), key=record_key.encode() if record_key else None)
            count += 1
    finally:
        await producer.stop()
    return count


def format_alarm(value: bytes) -> str:
    """One readable line per alarm record."""
    try:
        alarm = decode_alarm(value)
    except DecodeError as exc:
        return f"(unreadable alarm record: {exc.reason})"
    figures = ""
    if alarm.observed_value is not None:
        figures = f" observed={alarm.observed_value:g}"
        if alarm.threshold is not None:
            figures += f" threshold={alarm.threshold:g}"
    return (f"{alarm.timestamp} {alarm.state.value.upper():8} {alarm.severity:8} {alarm.name} "
            f"[{alarm.scope}] node={alarm.node}: {alarm.message}{figures}")


async def tail_alarms(settings: Settings, from_beginning: bool, out: TextIO = sys.stdout) -> None:
    """Print alarm transitions as they arrive, until cancelled."""
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
