"""The sustained run of ``make bench``: one worker, the sink and the emulator under a fixed stat rate.

A producer sends stat events at a fixed rate (default 10,000 events/s) for a fixed time (default
60 s) round-robin over 10,000 targets, as single-event records or StatBatch records of 13 events.
Every event carries the target's next ``ready_agents`` value (1, 2, 3, … per target), and the
producer notes when it sent each (target, value); the published decision carries
``ready_agents``, and the emulator's :attr:`~connectors.emulator.JourneyEmulator.on_stored` hook
notes when a bulk request delivered an entity with it. End-to-end latency = received - produced,
over the (target, value) pairs the emulator received (a value superseded within one decision tick
is never published: not counted). Before the clock starts, every target is seeded once
(``logged_in_agents`` 1,000) and delivered, so state and the sink are warm.

Reported: the rate the producer achieved; the events/s the worker took while it ran
(``pacing_events_in_total``); the largest consumer lag seen (the worker's ``pacing_consumer_lag``
gauge, summed over partitions, and produced - taken as the bench counts it, sampled each second)
and at the end; how long the worker took to catch up once the producer stopped; latency p50 / p99
/ max. Worker and sink run with the configured defaults except the partition count (12) and the
worker's batch size (5,000).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from connectors.emulator import JourneyEmulator
from schemas import STATISTICS, StatEvent, encode_stat_event
from streams.topics import ensure_topics
from tests.benchmarks.throughput import scrape_all
from tests.integration.pipeline import Pipeline, eventually

BATCH_STATS = tuple(sorted(STATISTICS))
TICK_S = 0.05
SEED_LOGGED_IN = 1_000.0
#: Test-harness settings of tests/integration/pipeline.py dropped here, so the configured defaults run.
HARNESS_ONLY = ("PACING_WORKER__BATCH_WITHIN_S", "PACING_SINK__LINGER_MS", "PACING_SINK__COMMIT_INTERVAL_S")


def _event(target: str, statistic: str, value: float, now_ms: int) -> StatEvent:
    return StatEvent(tenant="acme", target_id=target, statistic=statistic, value=value, timestamp=now_ms,
                     source="bench")


def _record(fmt: str, target: str, ready: int, now_ms: int) -> tuple[bytes, int]:
    """One record setting ``ready_agents`` to ``ready``, and the events in it."""
    if fmt == "single":
        return encode_stat_event(_event(target, "ready_agents", float(ready), now_ms)), 1
    from schemas import encode_stat_batch

    values = {"ready_agents": float(ready), "logged_in_agents": SEED_LOGGED_IN, "busy_agents": 0.0}
    return encode_stat_batch([_event(target, name, values.get(name, 0.0), now_ms) for name in BATCH_STATS]), \
        len(BATCH_STATS)


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(bootstrap: str, emulator: JourneyEmulator, tmp: Path, *, fmt: str, rate: int, duration_s: float,
              targets: int, worker_env: dict[str, str]) -> list[str]:
    pipeline = Pipeline(bootstrap, emulator, tmp, **worker_env)
    for key in HARNESS_ONLY:
        pipeline.env.pop(key, None)
    settings = pipeline.settings
    refresh_s = float(settings.targets.refresh_period_s)
    names = [f"sv-{i:05d}" for i in range(targets)]
    produced: dict[tuple[str, int], float] = {}
    received: dict[tuple[str, int], float] = {}

    def on_stored(entity: Any) -> None:
        if not entity.id.startswith("sv-"):
            return
        ready = next((item.value for item in entity.userData if item.key == "readyAgents"), None)
        if ready is None or not ready.isdigit():
            return
        key = (entity.id, int(ready))
        if key in produced and key not in received:
            received[key] = time.time()

    emulator.on_stored = on_stored
    try:
        await ensure_topics(settings)
        await pipeline.start_sink()
        await pipeline.start_worker()
        port = pipeline.worker_ports[-1]
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
        await producer.start()
        try:
            # seed: every target once, delivered, before the clock starts
            now_ms = int(time.time() * 1000)
            seeds = [await producer.send(pipeline.topics.stats, encode_stat_event(
                _event(name, "logged_in_agents", SEED_LOGGED_IN, now_ms)), key=name.encode()) for name in names]
            await asyncio.gather(*seeds)
            await eventually(lambda: sum(1 for t in emulator.targets if t.startswith("sv-")) >= targets,
                             timeout_s=180, interval_s=0.5, message="every seeded target delivered")
            base = (await scrape_all(port)).get("pacing_events_in_total", 0.0)

            sent_events = sent_records = 0
            seq = dict.fromkeys(names, 0)
            samples: list[tuple[float, float, float]] = []  # (t, gauge lag, produced - taken)
            pending: list[asyncio.Future[Any]] = []

            async def sample() -> float:
                metrics = await scrape_all(port)
                taken = metrics.get("pacing_events_in_total", 0.0) - base
                samples.append((time.monotonic(), metrics.get("pacing_consumer_lag", 0.0), sent_events - taken))
                return taken

            started = time.monotonic()
            next_sample = started + 1.0
            cursor = 0
            per_record = 1 if fmt == "single" else len(BATCH_STATS)
            while (elapsed := time.monotonic() - started) < duration_s:
                due = int(elapsed * rate) // per_record - sent_records  # on schedule, catching up if late
                now_ms = int(time.time() * 1000)
                for _ in range(max(0, due)):
                    name = names[cursor % targets]
                    cursor += 1
                    seq[name] += 1
                    value, events = _record(fmt, name, seq[name], now_ms)
                    produced[(name, seq[name])] = time.time()
                    pending.append(await producer.send(pipeline.topics.stats, value, key=name.encode()))
                    sent_records += 1
                    sent_events += events
                if len(pending) > 20_000:
                    await asyncio.gather(*pending)
                    pending.clear()
                if time.monotonic() >= next_sample:
                    next_sample += 1.0
                    await sample()
                await asyncio.sleep(TICK_S)
            produce_s = time.monotonic() - started
            await asyncio.gather(*pending)
            taken_at_stop = taken_while_running = await sample()
            stopped = time.monotonic()
            while taken_at_stop < sent_events and time.monotonic() - stopped < 120:
                await asyncio.sleep(0.1)
                taken_at_stop = (await scrape_all(port)).get("pacing_events_in_total", 0.0) - base
            catch_up_s = time.monotonic() - stopped
            # the last ticks' decisions: wait until deliveries stop coming (at most a refresh period + 5 s)
            quiet_since, seen = time.monotonic(), len(received)
            while time.monotonic() - quiet_since < 3 and time.monotonic() - stopped < refresh_s + 5 + catch_up_s:
                await asyncio.sleep(0.5)
                if len(received) != seen:
                    quiet_since, seen = time.monotonic(), len(received)
        finally:
            await producer.stop()
    finally:
        emulator.on_stored = None
        pipeline.stop()

    window = [s for s in samples if s[0] - started <= duration_s + 0.5]
    taken_rate = taken_while_running / produce_s
    latencies = [received[key] - produced[key] for key in received]
    gauge_max = max((s[1] for s in samples), default=0.0)
    counted_max = max((s[2] for s in samples), default=0.0)
    last_third = [s[2] for s in window if s[0] - started >= 2 * duration_s / 3]
    first_third = [s[2] for s in window if s[0] - started <= duration_s / 3]
    lines = [
        f"sustained: 1 worker + sink + emulator, {targets:,} targets, {fmt} records, "
        f"{rate:,} events/s asked for {duration_s:.0f}s",
        f"  produced                 {sent_events:>12,} events in {produce_s:.1f}s = {sent_events / produce_s:,.0f} "
        f"events/s ({sent_records:,} records)",
        f"  worker took              {taken_rate:>12,.0f} events/s while the producer ran; "
        f"caught up {catch_up_s:.1f}s after it stopped"
        + ("" if taken_at_stop >= sent_events else f" (NOT caught up: {sent_events - taken_at_stop:,.0f} left)"),
        f"  consumer lag, max        {gauge_max:>12,.0f} records (pacing_consumer_lag); {counted_max:,.0f} events "
        f"(produced - taken); median first/last third of the run {_median(first_third):,.0f} / "
        f"{_median(last_third):,.0f} events",
        f"  end-to-end latency       p50 {_percentile(latencies, 0.5):.2f}s  p99 {_percentile(latencies, 0.99):.2f}s  "
        f"max {max(latencies, default=float('nan')):.2f}s over {len(latencies):,} delivered values "
        f"({len({k[0] for k in received}):,} targets; {len(produced):,} values produced)",
        f"  target: >= 10,000 events/s with bounded lag, p99 <= refresh period + 1 s = {refresh_s + 1:.0f}s",
    ]
    return lines


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0
