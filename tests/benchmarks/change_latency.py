"""Material-change latency (a row of ``make bench``): a change that matters, produced → the endpoint holds it.

An idle pipeline (one worker, the sink, the emulator; the configured defaults but the partition
count) paces ``--targets`` targets (default 36), each seeded with 10 agents logged in and none ready,
and delivered. Then, one target every ``--spacing-s`` seconds, a snapshot (logged-in, ready and busy
agents) opens the target — ready agents 0 → 10 — and, once every target is open, closes it again
(10 → 0). Each snapshot is produced with confluent-kafka (librdkafka's own partitioner, so most
records take the worker's forwarding hop, as from any outside producer); the emulator's
``on_stored`` hook notes when a bulk request first delivered the target's new ready agents.

Printed: p50 / p95 / max per direction and over both, and how many changes never arrived within
``--timeout-s``. Judged against: p95 ≤ 1.0 s.

    python -m tests.benchmarks.change_latency [--targets 36] [--spacing-s 0.3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from infra.emulator import JourneyEmulator
from schemas import StatEvent, encode_stat_event
from streams.runtime.topics import ensure_topics
from tests.benchmarks.on_broker import run_on_broker
from tests.integration.pipeline import Pipeline, eventually

LOGGED_IN = 10
#: Test-harness settings of tests/integration/pipeline.py dropped here, so the configured defaults run.
HARNESS_ONLY = ("PACING_WORKER__BATCH_WITHIN_S", "PACING_SINK__LINGER_MS", "PACING_SINK__COMMIT_INTERVAL_S")
TARGET_P95_S = 1.0


def snapshot(target_id: str, ready: int) -> list[bytes]:
    """The agents' gauges of one target now, as a bridge would send them: logged in, ready, busy."""
    now_ms = int(time.time() * 1000)
    values = {"logged_in_agents": LOGGED_IN, "ready_agents": ready, "busy_agents": LOGGED_IN - ready}
    return [encode_stat_event(StatEvent(tenant="acme", target_id=target_id, statistic=name, value=value,
                                        timestamp=now_ms, source="latency-bench")) for name, value in values.items()]


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile of ``values`` (nearest rank); NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class OutsideProducer:
    """confluent-kafka (librdkafka), a client this project did not write, partitioning as it does."""

    def __init__(self, bootstrap: str, partitioner: str = "consistent_random"):
        from confluent_kafka import Producer

        self._producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "partitioner": partitioner})

    def send(self, topic: str, key: bytes, values: list[bytes]) -> None:
        for value in values:
            self._producer.produce(topic, value=value, key=key)
        self._producer.poll(0)

    def close(self) -> None:
        self._producer.flush(10)


async def measure(bootstrap: str, emulator: JourneyEmulator, tmp: Path, *, targets: int, spacing_s: float,
                  timeout_s: float, env: dict[str, str] | None = None, partitioner: str = "consistent_random"
                  ) -> dict[str, list[float] | int]:
    """Latencies (s) of opening and closing each target; ``missed``: changes never delivered in time.

    ``env``: settings for the worker and the sink (``PACING_…`` variables) on top of the defaults.
    """
    pipeline = Pipeline(bootstrap, emulator, tmp)
    for key in HARNESS_ONLY:
        pipeline.env.pop(key, None)
    pipeline.env.update(env or {})
    names = [f"cl-{i:03d}" for i in range(targets)]
    delivered: dict[tuple[str, int], float] = {}
    decided: dict[tuple[str, int], float] = {}  # the decision's computedAt

    def on_stored(entity: Any) -> None:
        data = {item.key: item.value for item in entity.userData}
        ready = data.get("readyAgents")
        if entity.id.startswith("cl-") and ready is not None and ready.isdigit() and (entity.id, int(ready)) \
                not in delivered:
            delivered[(entity.id, int(ready))] = time.time()
            decided[(entity.id, int(ready))] = datetime.fromisoformat(data["computedAt"]).timestamp()

    emulator.on_stored = on_stored
    producer = OutsideProducer(bootstrap, partitioner)
    try:
        await ensure_topics(pipeline.settings)
        await pipeline.start_sink()
        await pipeline.start_worker()
        topic = pipeline.topics.stats
        for name in names:
            producer.send(topic, name.encode(), snapshot(name, 0))
        await eventually(lambda: all((name, 0) in delivered for name in names), timeout_s=60,
                         message="every seeded target delivered")
        results: dict[str, list[float] | int] = {"open": [], "close": [], "decided": [], "missed": 0}
        for direction, ready in (("open", LOGGED_IN), ("close", 0)):
            produced: dict[str, float] = {}
            for name in names:
                delivered.pop((name, ready), None)
                produced[name] = time.time()
                producer.send(topic, name.encode(), snapshot(name, ready))
                await asyncio.sleep(spacing_s)
            with contextlib.suppress(AssertionError):  # what did not arrive in time counts as missed
                await eventually(lambda ready=ready: all((name, ready) in delivered for name in names),
                                 timeout_s=timeout_s,
                                 interval_s=0.1, message="every change delivered")
            latencies = results[direction]
            assert isinstance(latencies, list)
            for name in names:
                at = delivered.get((name, ready))
                if at is None:
                    results["missed"] = int(results["missed"]) + 1
                else:
                    latencies.append(at - produced[name])
                    decided_in = results["decided"]
                    assert isinstance(decided_in, list)
                    decided_in.append(decided[(name, ready)] - produced[name])
        return results
    finally:
        producer.close()
        pipeline.stop()
        emulator.on_stored = None


def report(results: dict[str, list[float] | int], targets: int) -> list[str]:
    """The table of ``make bench``'s latency row."""
    rows = [f"material-change latency, produced (confluent-kafka) -> endpoint holds it, idle pipeline, "
            f"{targets} targets",
            f"{'change':<18} | {'n':>3} | {'p50 s':>6} | {'p95 s':>6} | {'max s':>6}",
            f"{'-' * 18}-+-----+--------+--------+-------"]
    both: list[float] = []
    for direction, label in (("open", "ready 0 -> 10"), ("close", "ready 10 -> 0")):
        values = results[direction]
        assert isinstance(values, list)
        both += values
        rows.append(f"{label:<18} | {len(values):>3} | {percentile(values, 0.5):>6.2f} | "
                    f"{percentile(values, 0.95):>6.2f} | {max(values, default=float('nan')):>6.2f}")
    rows.append(f"{'both':<18} | {len(both):>3} | {percentile(both, 0.5):>6.2f} | "
                f"{percentile(both, 0.95):>6.2f} | {max(both, default=float('nan')):>6.2f}")
    decided = results["decided"]
    assert isinstance(decided, list)
    rows.append(f"{'(of which decided)':<18} | {len(decided):>3} | {percentile(decided, 0.5):>6.2f} | "
                f"{percentile(decided, 0.95):>6.2f} | {max(decided, default=float('nan')):>6.2f}")
    verdict = "met" if percentile(both, 0.95) <= TARGET_P95_S and not results["missed"] else "NOT met"
    rows.append(f"target: p95 <= {TARGET_P95_S:.1f} s, none missed ({results['missed']} missed): {verdict}; "
                f"mean {statistics.fmean(both) if both else float('nan'):.2f} s")
    return rows


async def run(bootstrap: str, emulator: JourneyEmulator, tmp: Path, *, targets: int = 36, spacing_s: float = 0.3,
              timeout_s: float = 15.0, env: dict[str, str] | None = None, partitioner: str = "consistent_random"
              ) -> list[str]:
    """Measure and return the printed rows (``make bench`` calls this with its broker and emulator)."""
    return report(await measure(bootstrap, emulator, tmp, targets=targets, spacing_s=spacing_s,
                                timeout_s=timeout_s, env=env, partitioner=partitioner), targets)


async def _main(bootstrap: str, args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="pacing-latency-") as tmp_name:
        emulator = JourneyEmulator(max_recorded_bodies=0)
        await emulator.start()
        try:
            rows = await run(bootstrap, emulator, Path(tmp_name), targets=args.targets, spacing_s=args.spacing_s,
                             timeout_s=args.timeout_s, env=dict(item.split("=", 1) for item in args.env),
                             partitioner=args.partitioner)
        finally:
            await emulator.stop()
    print("\n".join(rows))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=36)
    parser.add_argument("--spacing-s", type=float, default=0.3)
    parser.add_argument("--timeout-s", type=float, default=15.0)
    parser.add_argument("--partitioner", default="consistent_random",
                        help="librdkafka's partitioner (murmur2_random: Kafka's, no forwarding hop)")
    parser.add_argument("--env", nargs="*", default=[], metavar="PACING_X=VALUE",
                        help="settings for the worker and the sink on top of the defaults (experiments)")
    arguments = parser.parse_args()
    run_on_broker(lambda bootstrap: _main(bootstrap, arguments))
