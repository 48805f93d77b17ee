"""`pacing alarms` on the real broker: one line per transition in local time, nothing else on stdout."""

from __future__ import annotations

import asyncio
import signal
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import AIOKafkaProducer

from schemas import encode_alarm
from schemas.models import Alarm, AlarmState
from streams.runtime.config import load_settings
from streams.runtime.kafka import client_options
from streams.runtime.topics import ensure_topics, topic_names
from tests.integration.test_cli_options import ROOT, clean_env, pacing_command

pytestmark = pytest.mark.integration

LOCAL_ZONE = "XYZ-5:30"  # POSIX TZ: local time is UTC+05:30, so a UTC clock would show
STARTED = datetime(2026, 11, 25, 8, 0, 0, tzinfo=UTC)


def _alarm(state: AlarmState, scope: str, message: str, at: datetime, **figures: float) -> Alarm:
    return Alarm(name="GcLatency" if scope == "process" else "TargetStale", state=state, severity="major",
                 tenant="demo", node="worker-7", scope=scope, message=message,
                 timestamp=int(at.timestamp() * 1000), **figures)


async def _next_line(stream: asyncio.StreamReader, timeout_s: float = 30) -> str:
    return (await asyncio.wait_for(stream.readline(), timeout_s)).decode()


async def test_alarms_prints_one_local_time_line_per_transition_and_nothing_else(kafka_bootstrap: str) -> None:
    prefix = f"alarms-{uuid.uuid4().hex[:8]}"
    settings = load_settings(kafka={"bootstrap_servers": kafka_bootstrap, "topic_prefix": prefix})
    await ensure_topics(settings)
    topic = topic_names(settings).alarms
    producer = AIOKafkaProducer(acks="all", **client_options(settings))
    await producer.start()
    process = None
    try:
        raised = _alarm(AlarmState.RAISED, "vq-sales-chat", "no statistics for 300 s; paced inactive", STARTED)
        await producer.send_and_wait(topic, encode_alarm(raised), key=b"TargetStale:vq-sales-chat")
        env = clean_env(TZ=LOCAL_ZONE, PACING_KAFKA__TOPIC_PREFIX=prefix)
        process = await asyncio.create_subprocess_exec(
            *pacing_command(), "alarms", "--from-beginning", "--bootstrap-servers", kafka_bootstrap,
            env=env, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        first = await _next_line(process.stdout)
        assert first == ("2026-11-25 13:30:00  RAISED   TargetStale  vq-sales-chat: "
                         "no statistics for 300 s; paced inactive\n")

        # Transitions that arrive while it runs are printed as they come.
        later = STARTED + timedelta(minutes=2, seconds=5)
        cleared = _alarm(AlarmState.CLEARED, "vq-sales-chat", "statistics arrive again", later)
        gc = _alarm(AlarmState.RAISED, "process", "longest GC pause 1500 ms in the last minute (threshold 1000 ms)",
                    later, observed_value=1500, threshold=1000)
        await producer.send_and_wait(topic, encode_alarm(cleared), key=b"TargetStale:vq-sales-chat")
        await producer.send_and_wait(topic, encode_alarm(gc), key=b"GcLatency:process")
        assert await _next_line(process.stdout) == (
            "2026-11-25 13:32:05  CLEARED  TargetStale  vq-sales-chat: statistics arrive again\n")
        assert await _next_line(process.stdout) == (
            "2026-11-25 13:32:05  RAISED   GcLatency  process worker-7: longest GC pause 1500 ms in the last minute "
            "(threshold 1000 ms)\n")

        process.send_signal(signal.SIGINT)
        rest, errors = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode == 0
        assert rest == b""  # nothing but the transitions on stdout
        assert errors.decode().strip() == ""  # and no client chatter in the terminal either
    finally:
        await producer.stop()
        if process is not None and process.returncode is None:
            process.kill()
            await process.wait()
