"""Failover benchmark: how long a dead worker's targets go without a decision.

``python -m tests.benchmarks.failover`` runs, on the embedded broker (or
``KAFKA_BOOTSTRAP_SERVERS``): two pacing workers, the sink and the Journey API emulator, and a
steady stat feed whose every tick changes each target's ``ready_agents`` (so every batch yields
a new decision). Once both workers decide, one is killed with SIGKILL and the clock runs until
the survivor publishes a decision for the targets that were on the dead one. Each round is a
fresh deployment (own topic prefix); the victim alternates between the first and the second
worker. ``--scenario kill-restart`` starts the killed worker again (same node id and data
directory) ``--restart-after`` seconds after the kill (0: at once, as a supervisor would; about
the session timeout plus a rejoin: while the survivor restores the moved partitions): the moved
targets may then be decided by the survivor or by the restarted worker, whichever gets them. Printed per round and as
min / median / max:

- ``first``: kill → the first decision (``computed_at``) for a moved target by a live worker;
- ``all``: kill → every moved target has one;
- ``endpoint``: kill → the first bulk request carrying a moved target decided by a live worker
  that the emulator received (the sink's linger and batching included);
- ``hb fail`` / ``joined`` / ``ready``: when the survivor's log shows the heartbeat failing
  for the rebalance, the group joined again, and Faust's recovery done ("Worker ready");
- ``rebal.``: group joins of the survivor in the steady minute before the kill besides the
  start-up ones (0 = no spurious rebalance).

``--variant SESSION:HEARTBEAT:REBALANCE`` (seconds; repeatable) measures other values of
``kafka.session_timeout_s``, ``kafka.heartbeat_interval_s`` and ``kafka.rebalance_timeout_s``;
without it the configured defaults are measured. ``--static`` runs the workers with static group
membership (``worker.static_membership``: the node id as ``group.instance.id``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from infra.broker import free_port
from infra.emulator import JourneyEmulator
from schemas import StatEvent, decode_decision, encode_stat_event
from streams.runtime.config import KafkaSettings
from tests.benchmarks.on_broker import run_on_broker
from tests.integration.pipeline import Pipeline, eventually

TARGETS = [f"vq-{i:02d}" for i in range(24)]
NODES = ("node-a", "node-b")
_LOG_TIME = re.compile(r"^\[?(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[,.]\d{3})")


@dataclass
class Round:
    """What one kill showed (seconds after the kill; None = not seen)."""

    victim: str
    moved: int
    scenario: str = "kill"
    first: float | None = None
    all: float | None = None
    endpoint: float | None = None
    heartbeat_failed: float | None = None
    joined: float | None = None
    ready: float | None = None
    steady_rebalances: int = 0
    note: str = ""


@dataclass
class Decisions:
    """Every decision read from the actiontargets topic: (target, node, computed_at seconds)."""

    seen: list[tuple[str, str, float]] = field(default_factory=list)

    def latest_node(self, before_s: float) -> dict[str, str]:
        """Which node decided each target last before ``before_s``."""
        latest: dict[str, tuple[float, str]] = {}
        for target, node, at in self.seen:
            if at < before_s and at >= latest.get(target, (-1.0, ""))[0]:
                latest[target] = (at, node)
        return {target: node for target, (_, node) in latest.items()}

    def first_by(self, nodes: set[str], targets: set[str], after_s: float) -> dict[str, float]:
        """Each target's first decision by one of ``nodes`` computed after ``after_s``."""
        first: dict[str, float] = {}
        for target, by, at in self.seen:
            if by in nodes and target in targets and at > after_s:
                first[target] = min(at, first.get(target, at))
        return first


async def follow_decisions(bootstrap: str, topic: str, into: Decisions) -> None:
    """Read the actiontargets topic from the beginning until cancelled."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=100)
            for records in batch.values():
                for record in records:
                    decision = decode_decision(record.value)
                    into.seen.append((decision.target_id, decision.node, decision.computed_at / 1000))
    finally:
        await consumer.stop()


async def steady_feed(bootstrap: str, topic: str, interval_s: float = 0.25) -> None:
    """Every tick, each target's gauges with a ready_agents that differs from the last tick."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    tick = 0
    try:
        while True:
            now = int(time.time() * 1000)
            ready = 1 + tick % 7
            for target in TARGETS:
                for name, value in (("logged_in_agents", 10), ("ready_agents", ready), ("busy_agents", 10 - ready)):
                    event = StatEvent(tenant="acme", target_id=target, statistic=name, value=value,
                                      timestamp=now, source="failover-bench")
                    await producer.send(topic, encode_stat_event(event), key=target.encode())
            tick += 1
            await asyncio.sleep(interval_s)
    finally:
        await producer.stop()


def log_events(path: Path) -> list[tuple[float, str]]:
    """(epoch seconds, line) for each timestamped line of a worker log."""
    events = []
    for line in path.read_text(errors="replace").splitlines():
        match = _LOG_TIME.match(line)
        if match:
            stamp = datetime.strptime(match.group(1).replace(",", "."), "%Y-%m-%d %H:%M:%S.%f")
            events.append((stamp.timestamp(), line))
    return events


def first_after(events: list[tuple[float, str]], after_s: float, *needles: str) -> float | None:
    """Seconds from ``after_s`` to the first log line holding any of ``needles``."""
    for at, line in events:
        if at >= after_s and any(needle in line for needle in needles):
            return at - after_s
    return None


_JOINED = ("Joined group",)
_HEARTBEAT_FAILED = ("Heartbeat failed",)
_READY = ("Recovery]: Worker ready",)


async def one_round(bootstrap: str, tmp: Path, env: dict[str, str], victim_index: int,
                    steady_s: float, timeout_s: float, restart: bool = False, restart_after_s: float = 0.0) -> Round:
    """Start two workers and a sink, feed, kill one worker (and start it again), measure; stop everything."""
    emulator = JourneyEmulator(max_recorded_bodies=10_000)
    await emulator.start()
    pipeline = Pipeline(bootstrap, emulator, tmp, **env)
    decisions = Decisions()
    tasks: list[asyncio.Task[None]] = []
    try:
        workers = {}
        for node in NODES:
            port = free_port()
            workers[node] = pipeline.spawn(node, "worker", PACING_NODE_ID=node, PACING_WORKER__WEB_PORT=str(port))
            await pipeline._wait_ready(workers[node], port, node)
        await pipeline.start_sink()
        tasks.append(asyncio.create_task(steady_feed(bootstrap, pipeline.topics.stats)))
        tasks.append(asyncio.create_task(follow_decisions(bootstrap, pipeline.topics.actiontargets, decisions)))

        def both_deciding() -> bool:
            recent = decisions.latest_node(time.time() + 1)
            return len(recent) == len(TARGETS) and set(recent.values()) == set(NODES)

        await eventually(both_deciding, timeout_s=90, message="both workers deciding")
        steady_from = time.time()
        await asyncio.sleep(steady_s)  # a steady period: no rebalance should happen in it

        victim, survivor = NODES[victim_index], NODES[1 - victim_index]
        before = decisions.latest_node(time.time())
        moved = {target for target, node in before.items() if node == victim}
        killed_at = time.time()
        workers[victim].send_signal(signal.SIGKILL)
        workers[victim].wait(10)
        live = {survivor}
        if restart:  # as a supervisor would: same node id, same data directory
            await asyncio.sleep(max(0.0, killed_at + restart_after_s - time.time()))
            workers[victim] = pipeline.spawn(victim, "worker", PACING_NODE_ID=victim,
                                             PACING_WORKER__WEB_PORT=str(free_port()))
            live.add(victim)
        result = Round(victim=victim, moved=len(moved), scenario="kill-restart" if restart else "kill")

        def all_moved() -> bool:
            return len(decisions.first_by(live, moved, killed_at)) == len(moved)

        with contextlib.suppress(AssertionError):
            await eventually(all_moved, timeout_s=timeout_s, interval_s=0.05, message="survivor decided all")
        firsts = decisions.first_by(live, moved, killed_at)
        if firsts:
            result.first = min(firsts.values()) - killed_at
        if len(firsts) == len(moved):
            result.all = max(firsts.values()) - killed_at
        with contextlib.suppress(AssertionError):
            await eventually(lambda: _endpoint_first(emulator, live, moved, killed_at) is not None,
                             timeout_s=10, interval_s=0.05, message="delivered")
        result.endpoint = _endpoint_first(emulator, live, moved, killed_at)

        events = log_events(tmp / f"{survivor}.log")
        result.heartbeat_failed = first_after(events, killed_at, *_HEARTBEAT_FAILED)
        result.joined = first_after(events, killed_at, *_JOINED)
        result.ready = first_after(events, killed_at, *_READY)
        result.steady_rebalances = sum(
            1 for at, line in events if steady_from <= at < killed_at and any(n in line for n in _JOINED))
        if first_after(events, killed_at, "wait_empty: Waiting for tasks") is not None and result.ready is None:
            result.note = "survivor stuck revoking: Faust waits for acks of a batch it gave up on"
        elif result.all is None:
            result.note = f"not every moved target decided within {timeout_s:g} s"
        return result
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        pipeline.stop()
        await emulator.stop()


def _endpoint_first(emulator: JourneyEmulator, live: set[str], moved: set[str], after_s: float) -> float | None:
    """Seconds from ``after_s`` to the first bulk request holding a moved target decided by a live worker."""
    for request in emulator.requests:
        if request.received_at <= after_s or request.status != 200 or not isinstance(request.body, dict):
            continue
        for entity in request.body.get("entities", []):
            data = {item["key"]: item["value"] for item in entity.get("userData", [])}
            if entity.get("id") in moved and data.get("node") in live:
                return request.received_at - after_s
    return None


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:5.1f}"


def _summary(values: list[float | None]) -> str:
    seen = sorted(v for v in values if v is not None)
    if not seen:
        return "-"
    missing = f" ({len(values) - len(seen)} missing)" if len(seen) < len(values) else ""
    return f"{seen[0]:.1f} / {statistics.median(seen):.1f} / {seen[-1]:.1f}{missing}"


async def main(bootstrap: str, variants: list[tuple[float, float, float]], rounds: int, steady_s: float,
               timeout_s: float, scenarios: list[str], static: bool, restart_after_s: float = 0.0) -> None:
    header = (f"{'session:heartbeat:rebalance':>27} | {'scenario':>12} | {'round':>5} | {'victim':>6} |"
              f" {'moved':>5} | {'first':>5} |"
              f" {'all':>5} | {'endpoint':>8} | {'hb fail':>7} | {'joined':>6} | {'ready':>7} | rebal. | note")
    print(header, flush=True)
    print("-" * len(header), flush=True)
    summaries = []
    for (session, heartbeat, rebalance), scenario in [(v, s) for v in variants for s in scenarios]:
        env = {"PACING_KAFKA__SESSION_TIMEOUT_S": str(session), "PACING_KAFKA__HEARTBEAT_INTERVAL_S": str(heartbeat),
               "PACING_KAFKA__REBALANCE_TIMEOUT_S": str(rebalance), "PACING_WORKER__KEEPALIVE_S": "30",
               "PACING_WORKER__STATIC_MEMBERSHIP": "true" if static else "false"}
        results = []
        name = f"{session:g}:{heartbeat:g}:{rebalance:g}{' static' if static else ''}"
        if scenario == "kill-restart" and restart_after_s:
            name += f" +{restart_after_s:g}s"
        for index in range(rounds):
            with tempfile.TemporaryDirectory() as tmp:
                result = await one_round(bootstrap, Path(tmp), env, index % 2, steady_s, timeout_s,
                                         restart=scenario == "kill-restart", restart_after_s=restart_after_s)
            results.append(result)
            print(f"{name:>27} | {scenario:>12} | {index + 1:>5} | {result.victim:>6} | {result.moved:>5} |"
                  f" {_cell(result.first)} |"
                  f" {_cell(result.all)} | {_cell(result.endpoint):>8} | {_cell(result.heartbeat_failed):>7} |"
                  f" {_cell(result.joined):>6} | {_cell(result.ready):>7} | {result.steady_rebalances:>6} |"
                  f" {result.note}", flush=True)
        summaries.append((f"{name} {scenario}", results))
    print(f"\nseconds from kill -9 to ..., min / median / max over the rounds (load average {_load()})")
    for name, results in summaries:
        print(f"  {name}: first moved target decided {_summary([r.first for r in results])};"
              f" all moved targets {_summary([r.all for r in results])};"
              f" at the endpoint {_summary([r.endpoint for r in results])};"
              f" spurious rebalances in the steady periods: {sum(r.steady_rebalances for r in results)};"
              f" rounds that never recovered: {sum(1 for r in results if r.first is None)}")


def _load() -> str:
    with open("/proc/loadavg") as loadavg:
        return " ".join(loadavg.read().split()[:3])


def _variant(text: str) -> tuple[float, float, float]:
    session, heartbeat, rebalance = (float(part) for part in text.split(":"))
    return session, heartbeat, rebalance


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--variant", type=_variant, action="append",
                        help="SESSION:HEARTBEAT:REBALANCE seconds (repeatable); default: the configured defaults")
    parser.add_argument("--steady", type=float, default=20.0, help="seconds of steady feed before the kill")
    parser.add_argument("--timeout", type=float, default=60.0, help="give up on a round after this long")
    parser.add_argument("--scenario", choices=["kill", "kill-restart"], action="append",
                        help="kill -9 only, or kill -9 and start the worker again at once (repeatable; default both)")
    parser.add_argument("--restart-after", type=float, default=0.0,
                        help="kill-restart: seconds between the kill and the start of the worker again")
    parser.add_argument("--static", action="store_true",
                        help="static group membership (worker.static_membership: group.instance.id = node id)")
    args = parser.parse_args()
    defaults = KafkaSettings()
    chosen = args.variant or [(defaults.session_timeout_s, defaults.heartbeat_interval_s, defaults.rebalance_timeout_s)]
    scenarios = args.scenario or ["kill", "kill-restart"]
    run_on_broker(lambda bootstrap: main(bootstrap, chosen, args.rounds, args.steady, args.timeout, scenarios,
                                         args.static, args.restart_after))
    sys.exit(0)
