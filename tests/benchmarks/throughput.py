"""Throughput benchmark (``make bench``): prints a table of events per second.

Measures, on the embedded broker (or ``KAFKA_BOOTSTRAP_SERVERS``):
- the codec alone (bulk decode of Avro single-object stat events, with validation);
- one pacing node draining a backlog of stat events spread over many targets (decode, fold,
  decide, table write once per target per batch, decisions out);
- the sink draining a backlog of decisions to the emulator in bulk requests.
For comparison, anchors.md measured a naive Faust agent with one table write per event at
~3,900 events/s on this kind of machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

import aiohttp
from aiokafka import AIOKafkaProducer

from connectors.emulator import JourneyEmulator
from infra.broker import EmbeddedBroker, free_port
from schemas import StatEvent, decode_stat_events, encode_decision, encode_stat_event
from streams.decisions import build_decision
from streams.engine import TargetState
from streams.topics import ensure_topics
from tests.integration.pipeline import Pipeline, eventually

STATS = ("ready_agents", "busy_agents", "logged_in_agents", "waiting_interactions", "offers_made", "offers_accepted")


def stat_payloads(events: int, targets: int) -> list[tuple[bytes, bytes]]:
    now = int(time.time() * 1000)
    out = []
    for i in range(events):
        target = f"vq-{i % targets:05d}"
        event = StatEvent(tenant="acme", target_id=target, statistic=STATS[i % len(STATS)],
                          value=float(i % 17), timestamp=now + i, source="bench")
        out.append((target.encode(), encode_stat_event(event)))
    return out


def bench_codec(payloads: list[bytes]) -> float:
    started = time.perf_counter()
    decode_stat_events(payloads)
    return len(payloads) / (time.perf_counter() - started)


async def produce_all(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=256 * 1024)
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key) for key, value in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def scrape(port: int, name: str) -> float:
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/metrics") as r:
        text = await r.text()
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))


async def bench_worker(pipeline: Pipeline, records: list[tuple[bytes, bytes]]) -> tuple[float, float, float]:
    """Events/s draining the backlog, and changelog records and decisions written per 100,000 events."""
    await ensure_topics(pipeline.settings)
    await produce_all(pipeline.bootstrap, pipeline.topics.stats, records)
    port = free_port()
    child = pipeline.spawn("worker", "worker", PACING_WORKER__WEB_PORT=str(port))
    await eventually(lambda: _ready(port), timeout_s=60, message="worker ready")
    started = time.perf_counter()
    first = await scrape(port, "pacing_events_in_total")
    await eventually(lambda: _at_least(port, "pacing_events_in_total", len(records)), timeout_s=600,
                     interval_s=0.05, message="worker drained the backlog")
    rate = (len(records) - first) / (time.perf_counter() - started)
    await asyncio.sleep(2 * float(pipeline.settings.worker.decide_interval_s))  # the last tick's output
    per_100k = 100_000 / len(records)
    changelog = await scrape(port, "pacing_flush_targets_sum") * per_100k
    decisions = await scrape(port, "pacing_decisions_emitted_total") * per_100k
    child.terminate()
    return rate, changelog, decisions


async def bench_sink(pipeline: Pipeline, targets: int, updates: int) -> float:
    settings = pipeline.settings
    records = []
    for i in range(targets * updates):
        state = TargetState(f"vq-{i % targets:05d}")
        state.apply("ready_agents", float(i % 9), 1)
        decision = build_decision("acme", "bench", state, settings.targets, int(time.time() * 1000))
        records.append((state.target_id.encode(), encode_decision(decision)))
    await pipeline.start_sink(PACING_SINK__BATCH_MAX_ENTITIES="2000")
    started = time.perf_counter()
    await produce_all(pipeline.bootstrap, pipeline.topics.actiontargets, records)
    await eventually(lambda: len(pipeline.emulator.targets) >= targets, timeout_s=600, interval_s=0.05,
                     message="sink delivered every target")
    return len(records) / (time.perf_counter() - started)


async def _ready(port: int) -> bool:
    try:
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/readyz") as r:
            return r.status == 200
    except aiohttp.ClientError:
        return False


async def _at_least(port: int, name: str, value: float) -> bool:
    try:
        return await scrape(port, name) >= value
    except aiohttp.ClientError:
        return False


async def main(bootstrap: str, events: int, targets: int) -> None:
    records = stat_payloads(events, targets)
    rows = [("codec: decode + validate Avro stat events", f"{bench_codec([v for _, v in records]):,.0f}",
             "events/s")]
    with tempfile.TemporaryDirectory() as tmp:
        emulator = JourneyEmulator(max_recorded_bodies=0)
        await emulator.start()
        try:
            pipeline = Pipeline(bootstrap, emulator, Path(tmp),
                                PACING_KAFKA__STATS_PARTITIONS="12", PACING_WORKER__BATCH_MAX_EVENTS="5000")
            try:
                rate, changelog, decisions = await bench_worker(pipeline, records)
                rows.append((f"pacing node: {events:,} events over {targets:,} targets, 1 worker",
                             f"{rate:,.0f}", "events/s"))
                rows.append(("  changelog records written", f"{changelog:,.0f}", "per 100,000 events"))
                rows.append(("  decisions published", f"{decisions:,.0f}", "per 100,000 events"))
                rate = await bench_sink(pipeline, targets, 3)
                rows.append((f"sink: {3 * targets:,} decisions for {targets:,} targets (produce + deliver)",
                             f"{rate:,.0f}", "decisions/s"))
            finally:
                pipeline.stop()
        finally:
            await emulator.stop()
    width = max(len(r[0]) for r in rows)
    print(f"\n{'job':<{width}} | {'rate':>10} | unit")
    print(f"{'-' * width}-+-{'-' * 10}-+------------")
    for job, rate, unit in rows:
        print(f"{job:<{width}} | {rate:>10} | {unit}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--targets", type=int, default=2_000)
    args = parser.parse_args()
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        asyncio.run(main(external, args.events, args.targets))
    else:
        with EmbeddedBroker() as broker:
            asyncio.run(main(broker.bootstrap_servers, args.events, args.targets))
