"""The sustained run of ``make bench``: one worker, the sink and the emulator under a fixed stat rate.

A producer (tests/benchmarks/rate_producer.py, a child process) sends stat records at a fixed rate
(default 10,000 events/s) for a fixed time (default 60 s) round-robin over 10,000 targets, as
single-event records or StatBatch records of 13 events. Every record carries the target's next
``ready_agents`` value (1, 2, 3, … per target), and the producer notes when it sent each
(target, value); the published decision carries ``ready_agents``, and the emulator's
:attr:`~infra.emulator.JourneyEmulator.on_stored` hook notes when a bulk request delivered an
entity with it. End-to-end latency, per produced (target, value): when the endpoint first held that
value or a later one (a decision reflects every earlier value; values coalesced into a later
decision count until it arrived) - when it was produced. Before the clock starts, every target is
seeded once (``logged_in_agents`` 1,000) and delivered, so state and the sink are warm.

Reported: the rate the producer achieved; the events/s the worker took while it ran
(``pacing_events_in_total``); the largest consumer lag seen (the worker's ``pacing_consumer_lag``
gauge, summed over partitions, and produced - taken as the bench counts it, sampled each second)
and at the end; how long the worker took to catch up once the producer stopped; latency p50 / p99
/ max; beside the load, 20 probe targets whose ready agents flip 0 <-> 10 (one every 0.5 s), produced
with confluent-kafka: the material-change latency under load (target p95 <= 2 s). Worker and sink run
with the configured defaults except the partition count (12) and the
worker's batch size (5,000).
"""

from __future__ import annotations

import asyncio
import bisect
import json
import statistics
import sys
import time
from array import array
from pathlib import Path
from typing import Any

from infra.broker import die_with_parent
from infra.emulator import JourneyEmulator
from schemas import StatEvent, encode_stat_event
from streams.runtime.topics import ensure_topics
from tests.benchmarks.throughput import scrape_all
from tests.integration.pipeline import ROOT, Pipeline, eventually

SEED_LOGGED_IN = 1_000.0
#: How long the worker may take to catch up once the producer stopped (then reported as not caught up).
CATCH_UP_MAX_S = 60.0
#: Test-harness settings of tests/integration/pipeline.py dropped here, so the configured defaults run.
HARNESS_ONLY = ("PACING_WORKER__BATCH_WITHIN_S", "PACING_SINK__LINGER_MS", "PACING_SINK__COMMIT_INTERVAL_S")


def _event(target: str, statistic: str, value: float, now_ms: int) -> StatEvent:
    return StatEvent(tenant="acme", target_id=target, statistic=statistic, value=value, timestamp=now_ms,
                     source="bench")


PROBE_PREFIX = "cl-"
PROBES = 20
#: A probe target flips every this many seconds (one of the PROBES at a time, round-robin).
PROBE_SPACING_S = 0.5
PROBE_TARGET_P95_S = 2.0


class MaterialProbes:
    """Targets beside the load whose ready agents flip 0 <-> 10 during the run: material changes, timed.

    Produced with confluent-kafka (librdkafka's partitioner, so most take the forwarding hop) into the
    same stats topic as the load; each flip is timed from its production to the endpoint holding it.
    """

    def __init__(self, bootstrap: str):
        from tests.benchmarks.change_latency import OutsideProducer

        self._producer = OutsideProducer(bootstrap)
        self._names = [f"{PROBE_PREFIX}{i:03d}" for i in range(PROBES)]
        self._ready = dict.fromkeys(self._names, 0)
        self._produced: dict[tuple[str, int], float] = {}
        self._arrived: dict[tuple[str, int], float] = {}
        self.latencies: list[float] = []
        self.missed = 0

    def delivered(self, target: str, ready: int) -> None:
        """The emulator stored ``target`` holding ``ready`` ready agents."""
        key = (target, ready)
        sent = self._produced.pop(key, None)
        if sent is not None:
            self.latencies.append(time.time() - sent)
        self._arrived.setdefault(key, time.time())

    async def seed(self, topic: str) -> None:
        """Every probe closed (no agent ready) and delivered, before the clock starts."""
        from tests.benchmarks.change_latency import snapshot

        for name in self._names:
            self._producer.send(topic, name.encode(), snapshot(name, 0))
        await eventually(lambda: all((name, 0) in self._arrived for name in self._names), timeout_s=180,
                         interval_s=0.5, message="every probe target delivered")

    async def flip_while(self, topic: str, until: float) -> None:
        """Flip one probe every PROBE_SPACING_S until ``until`` (monotonic)."""
        from tests.benchmarks.change_latency import LOGGED_IN, snapshot

        turn = 0
        while time.monotonic() < until:
            name = self._names[turn % len(self._names)]
            turn += 1
            ready = LOGGED_IN if self._ready[name] == 0 else 0
            self._ready[name] = ready
            self._arrived.pop((name, ready), None)
            self._produced[(name, ready)] = time.time()
            self._producer.send(topic, name.encode(), snapshot(name, ready))
            await asyncio.sleep(PROBE_SPACING_S)

    def close(self) -> None:
        """Flips never delivered count as missed."""
        self.missed += len(self._produced)
        self._produced.clear()
        self._producer.close()

    def report(self) -> str:
        """The line printed under the sustained run."""
        values = self.latencies
        verdict = "met" if values and _percentile(values, 0.95) <= PROBE_TARGET_P95_S and not self.missed \
            else "NOT met"
        return (f"  material changes         p50 {_percentile(values, 0.5):.2f}s  "
                f"p95 {_percentile(values, 0.95):.2f}s  max {max(values, default=float('nan')):.2f}s over "
                f"{len(values)} flips of {PROBES} probe targets (ready 0 <-> 10, confluent-kafka), {self.missed} "
                f"missed; target p95 <= {PROBE_TARGET_P95_S:.1f}s: {verdict}")


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
    received: dict[tuple[str, int], float] = {}  # (target, ready_agents) -> first delivered

    probes = MaterialProbes(bootstrap)

    def on_stored(entity: Any) -> None:
        if not entity.id.startswith(("sv-", PROBE_PREFIX)):
            return
        ready = next((item.value for item in entity.userData if item.key == "readyAgents"), None)
        if ready is None or not ready.isdigit():
            return
        if entity.id.startswith(PROBE_PREFIX):
            probes.delivered(entity.id, int(ready))
        else:
            received.setdefault((entity.id, int(ready)), time.time())

    emulator.on_stored = on_stored
    times_path = tmp / f"{pipeline.prefix}.times"
    child: asyncio.subprocess.Process | None = None
    try:
        await ensure_topics(settings)
        await pipeline.start_sink()
        await pipeline.start_worker()
        port = pipeline.worker_ports[-1]
        # seed: every target once, delivered, before the clock starts
        now_ms = int(time.time() * 1000)
        await pipeline.produce([(name.encode(), encode_stat_event(_event(name, "logged_in_agents", SEED_LOGGED_IN,
                                                                          now_ms))) for name in names])
        await eventually(lambda: sum(1 for t in emulator.targets if t.startswith("sv-")) >= targets,
                         timeout_s=180, interval_s=0.5, message="every seeded target delivered")
        await probes.seed(pipeline.topics.stats)
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.benchmarks.rate_producer", "--bootstrap", bootstrap,
            "--topic", pipeline.topics.stats, "--format", fmt, "--rate", str(rate), "--duration", str(duration_s),
            "--targets", str(targets), "--times", str(times_path), cwd=ROOT, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, preexec_fn=die_with_parent)
        assert child.stdin is not None and child.stdout is not None
        line = await asyncio.wait_for(child.stdout.readline(), 300)
        if line.strip() != b"ready":
            raise RuntimeError(f"the producer did not start: {line!r}")
        base = (await scrape_all(port)).get("pacing_events_in_total", 0.0)
        samples: list[tuple[float, float, float]] = []  # (t, gauge lag, produced - taken)

        async def sample(expected: float) -> float:
            metrics = await scrape_all(port)
            taken = metrics.get("pacing_events_in_total", 0.0) - base
            samples.append((time.monotonic(), metrics.get("pacing_consumer_lag", 0.0), expected - taken))
            return taken

        child.stdin.write(b"go\n")
        await child.stdin.drain()
        started = time.monotonic()
        probing = asyncio.ensure_future(probes.flip_while(pipeline.topics.stats, until=started + duration_s))
        report_line = asyncio.ensure_future(child.stdout.readline())
        while not report_line.done():
            await asyncio.wait([report_line], timeout=1.0)
            await sample(min(time.monotonic() - started, duration_s) * rate)  # sent on schedule, as far as known
        report = json.loads(report_line.result())
        await child.wait()
        produce_s = float(report["seconds"])
        sent_events, sent_records = int(report["events"]), int(report["records"])
        taken_at_stop = taken_while_running = await sample(sent_events)
        stopped = time.monotonic()
        while taken_at_stop < sent_events and time.monotonic() - stopped < CATCH_UP_MAX_S:
            await asyncio.sleep(0.2)
            taken_at_stop = await sample(sent_events)
        catch_up_s = time.monotonic() - stopped
        # the last ticks' decisions: wait until deliveries stop coming (at most a refresh period + 5 s)
        quiet_since, seen = time.monotonic(), len(received)
        while time.monotonic() - quiet_since < 3 and time.monotonic() - stopped < refresh_s + 5 + catch_up_s:
            await asyncio.sleep(0.5)
            if len(received) != seen:
                quiet_since, seen = time.monotonic(), len(received)
        await probing
    finally:
        probes.close()
        emulator.on_stored = None
        if child is not None and child.returncode is None:
            child.kill()
            await child.wait()
        pipeline.stop()

    send_times = array("d")
    with times_path.open("rb") as source:
        send_times.fromfile(source, sent_records)
    produced = {(f"sv-{i % targets:05d}", i // targets + 1): t for i, t in enumerate(send_times)}
    window = [s for s in samples if s[0] - started <= duration_s + 0.5]
    taken_rate = taken_while_running / produce_s
    latencies, unseen = reflected_latencies(produced, received)
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
        f"max {max(latencies, default=float('nan')):.2f}s over {len(latencies):,} produced values "
        f"({len({k[0] for k in received if k in produced}):,} targets; {unseen:,} never reflected)",
        f"  target: >= 10,000 events/s with bounded lag, p99 <= refresh period + 1 s = {refresh_s + 1:.0f}s",
        probes.report(),
    ]
    return lines


def reflected_latencies(produced: dict[tuple[str, int], float],
                        received: dict[tuple[str, int], float]) -> tuple[list[float], int]:
    """Per produced (target, value): the time until the endpoint held that value or a later one.

    A decision carrying value v reflects every value <= v of its target, so a value coalesced into a
    later decision counts until that decision arrived, not not at all. Returns the latencies and how
    many produced values no delivered decision reflected.
    """
    delivered: dict[str, list[tuple[int, float]]] = {}
    for (target, value), at in received.items():
        delivered.setdefault(target, []).append((value, at))
    first_at: dict[str, list[tuple[int, float]]] = {}
    for target, items in delivered.items():
        items.sort(reverse=True)  # by value, newest first: the earliest arrival of any value >= v
        earliest, suffix = float("inf"), []
        for value, at in items:
            earliest = min(earliest, at)
            suffix.append((value, earliest))
        first_at[target] = suffix[::-1]  # ascending values
    latencies, unseen = [], 0
    for (target, value), sent in produced.items():
        suffix = first_at.get(target, [])
        index = bisect.bisect_left(suffix, (value, float("-inf")))
        if index == len(suffix):
            unseen += 1
        else:
            latencies.append(suffix[index][1] - sent)
    return latencies, unseen


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0
