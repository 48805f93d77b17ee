"""The seed's metric reporters publish a snapshot at their logFrequency."""

from __future__ import annotations

import asyncio
import contextlib
import json

from streams.runtime.config import load_settings
from streams.runtime.metrics import SinkMetrics
from streams.runtime.metrics_reporter import run_reporters, snapshot


def test_snapshot_carries_counters_with_labels() -> None:
    metrics = SinkMetrics()
    metrics.requests.labels("success").inc(3)
    figures = snapshot(metrics.registry)
    assert figures["sink_requests_total{outcome=success}"] == 3
    assert not any(name.endswith("_bucket") for name in figures)


async def test_message_server_reporter_publishes_at_its_frequency() -> None:
    settings = load_settings(tenant="acme", node_id="n1", metrics={"reporter": {
        "messageServer": {"enabled": True, "logFrequency": "200ms"},
        "log": {"enabled": False}, "console": {"enabled": False}}})
    metrics = SinkMetrics()
    metrics.records_in.inc(7)
    loop = asyncio.get_running_loop()
    published: list[tuple[bytes, bytes]] = []
    times: list[float] = []
    three = asyncio.Event()

    async def publish(key: bytes, value: bytes) -> None:
        published.append((key, value))
        times.append(loop.time())
        if len(published) == 3:
            three.set()

    started = loop.time()
    task = asyncio.create_task(run_reporters(settings, "sink", metrics.registry, publish))
    try:
        # Waits for the third snapshot; a reporter stuck at the 30 min default would time out.
        await asyncio.wait_for(three.wait(), timeout=10)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    # Never sooner than logFrequency apart (the loop may wake a hair early: 10 ms of slack).
    gaps = [later - earlier for earlier, later in zip([started, *times], times, strict=False)]
    assert all(gap >= 0.19 for gap in gaps), gaps
    key, value = published[0]
    record = json.loads(value)
    assert key == b"sink:n1"
    assert record["tenant"] == "acme" and record["metrics"]["sink_records_in_total"] == 7
