"""The API row of ``make bench``: one worker with 10,000 targets answers HTTP while it keeps pacing.

A worker (12 partitions, batches of 5,000, its API on a loopback port) is seeded with 10,000 targets
(every one decided, every decision read by its API). Then three phases of the same length, each
with the sustained run's producer (tests/benchmarks/rate_producer.py) sending StatBatch records at
a fixed rate over those targets:
1. no HTTP load: the events/s the worker takes (``pacing_events_in_total``) - pacing alone;
2. ``wrk`` (Debian's, a load generator this project did not write) on ``GET /v1/targets/{id}``,
   a random one of the 10,000 ids per request;
3. ``wrk`` on ``GET /v1/pacing/reactiveState?channel=chat``, consolidated over every target.
4. and 5. the same two at the target's rate: wrk's connections each wait :data:`PACED_DELAY_MS`
   between an answer and their next request, so that :data:`PACED_CONNECTIONS` of them ask about
   2,000 requests/s (``wrk`` cannot hold an exact open-loop rate; ``wrk2`` is not in Debian).
Per HTTP phase: requests/s, latency p50 / p99 (wrk's ``--latency``), non-2xx answers, and the events/s
the worker took meanwhile. Target: >= 2,000 requests/s with p99 <= 20 ms while it keeps pacing. The
saturating phases (16 connections asking as fast as answered) show how many requests/s it serves;
their latency is mostly each request's wait behind the 15 others in flight. The paced phases show
the latency a client sees at the target's rate; the verdict is theirs, with the rate they reached.
Skipped, with the reason, where ``wrk`` is not installed (``apt-get install wrk``).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from infra.broker import die_with_parent, free_port
from infra.emulator import JourneyEmulator
from schemas import StatEvent, encode_stat_event
from streams.runtime.topics import ensure_topics
from tests.integration.pipeline import ROOT, Pipeline, eventually

HARNESS_ONLY = ("PACING_WORKER__BATCH_WITHIN_S", "PACING_SINK__LINGER_MS", "PACING_SINK__COMMIT_INTERVAL_S")
TARGET_RPS = 2_000
TARGET_P99_MS = 20.0
CONNECTIONS = 16
PACED_CONNECTIONS = 26
PACED_DELAY_MS = 10  # 26 connections / (10 ms + 1.5-2.5 ms per answer and timer slack) = 2,080-2,260 requests/s

_TARGETS_SCRIPT = """
math.randomseed(7)
request = function()
  return wrk.format("GET", string.format("/v1/targets/sv-%05d", math.random(0, {last})))
end
"""
_PACED = """
delay = function()
  return math.random(0, 2 * {delay})
end
"""


@dataclass
class WrkResult:
    """What wrk printed: requests/s, latency percentiles (ms), answers that were not 2xx/3xx."""

    requests_per_s: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    requests: int


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def parse_wrk(text: str) -> WrkResult:
    """The figures of ``wrk --latency`` output."""
    def latency(percent: str) -> float:
        match = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)
        if not match:
            raise ValueError(f"no {percent}% latency in wrk's output:\n{text}")
        return float(match.group(1)) * _UNITS_MS[match.group(2)]

    rps = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
    total = re.search(r"^\s+(\d+) requests in", text, re.M)
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if not rps or not total:
        raise ValueError(f"unexpected wrk output:\n{text}")
    failed = int(non_2xx.group(1)) if non_2xx else 0
    if errors:
        failed += sum(int(n) for n in errors.groups())
    return WrkResult(float(rps.group(1)), latency("50"), latency("99"), failed, int(total.group(1)))


async def _wrk(url: str, seconds: float, script: Path | None, connections: int) -> WrkResult:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:.0f}s", "--latency", "--timeout", "2s"]
    if script is not None:
        argv += ["-s", str(script)]
    process = await asyncio.create_subprocess_exec(*argv, url, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.STDOUT, preexec_fn=die_with_parent)
    out, _ = await process.communicate()
    return parse_wrk(out.decode())


async def _events_in(port: int) -> float:
    from tests.benchmarks.throughput import scrape

    return await scrape(port, "pacing_events_in_total")


async def _phase(pipeline: Pipeline, bootstrap: str, tmp: Path, port: int, *, rate: int, seconds: float,
                 targets: int, load: tuple[str, Path | None, int] | None) -> tuple[float, WrkResult | None]:
    """One phase: the producer at ``rate`` for ``seconds``, with ``wrk`` on ``load`` (url, script,
    connections) meanwhile."""
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.benchmarks.rate_producer", "--bootstrap", bootstrap,
        "--topic", pipeline.topics.stats, "--format", "batch", "--rate", str(rate), "--duration", str(seconds),
        "--targets", str(targets), "--times", str(tmp / "api-phase.times"), cwd=ROOT,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, preexec_fn=die_with_parent)
    assert child.stdin is not None and child.stdout is not None
    if (await asyncio.wait_for(child.stdout.readline(), 300)).strip() != b"ready":
        raise RuntimeError("the producer did not start")
    base = await _events_in(port)
    child.stdin.write(b"go\n")
    await child.stdin.drain()
    wrk = None if load is None else asyncio.ensure_future(_wrk(load[0], seconds - 1, load[1], load[2]))
    report = json.loads(await child.stdout.readline())
    await child.wait()
    taken = await _events_in(port) - base
    return taken / float(report["seconds"]), (await wrk if wrk is not None else None)


async def run(bootstrap: str, emulator: JourneyEmulator, tmp: Path, *, targets: int = 10_000, rate: int = 10_000,
              seconds: float = 20.0, worker_env: dict[str, str] | None = None) -> list[str]:
    """The API rows: pacing alone, then under HTTP load on one target and on reactiveState."""
    if shutil.which("wrk") is None:
        return ["api: skipped: wrk is not installed (apt-get install wrk)"]
    pipeline = Pipeline(bootstrap, emulator, tmp, **(worker_env or {}))
    for key in HARNESS_ONLY:
        pipeline.env.pop(key, None)
    api_port = free_port()
    api = f"http://127.0.0.1:{api_port}"
    script = tmp / "api-targets.lua"
    script.write_text(_TARGETS_SCRIPT.replace("{last}", str(targets - 1)))
    paced_script = tmp / "api-targets-paced.lua"
    paced_script.write_text(script.read_text() + _PACED.replace("{delay}", str(PACED_DELAY_MS)))
    paced_state = tmp / "api-state-paced.lua"
    paced_state.write_text(_PACED.replace("{delay}", str(PACED_DELAY_MS)))
    try:
        await ensure_topics(pipeline.settings)
        await pipeline.start_worker(PACING_API__PORT=str(api_port), PACING_API__HOST="127.0.0.1")
        port = pipeline.worker_ports[-1]
        now_ms = int(time.time() * 1000)
        names = [f"sv-{i:05d}" for i in range(targets)]
        await pipeline.produce([(name.encode(), encode_stat_event(StatEvent(
            tenant="acme", target_id=name, statistic=statistic, value=value, timestamp=now_ms, source="bench")))
            for name in names for statistic, value in (("logged_in_agents", 10.0), ("ready_agents", 3.0))])

        async def all_decided() -> bool:
            try:
                async with aiohttp.ClientSession() as http, http.get(
                        f"{api}/v1/pacing/channelCapacity", params={"channel": "chat"}) as response:
                    return response.status == 200 and (await response.json())["groupsCounted"] >= targets
            except aiohttp.ClientConnectionError:  # the worker's API process is not listening yet
                return False

        await eventually(all_decided, timeout_s=240, interval_s=1.0, message="every target decided and served")
        state_url = f"{api}/v1/pacing/reactiveState?channel=chat"
        phases = {"alone": None, "one": (api, script, CONNECTIONS), "state": (state_url, None, CONNECTIONS),
                  "one_paced": (api, paced_script, PACED_CONNECTIONS),
                  "state_paced": (state_url, paced_state, PACED_CONNECTIONS)}
        results = {name: await _phase(pipeline, bootstrap, tmp, port, rate=rate, seconds=seconds, targets=targets,
                                      load=load) for name, load in phases.items()}
    finally:
        pipeline.stop()

    def row(label: str, phase: str, verdict: bool) -> str:
        taken, result = results[phase]
        assert result is not None
        met = "met" if (result.requests_per_s >= TARGET_RPS and result.p99_ms <= TARGET_P99_MS
                        and not result.non_2xx) else "NOT met"
        return (f"  {label:<48} {result.requests_per_s:>7,.0f} req/s  p50 {result.p50_ms:5.2f} ms  "
                f"p99 {result.p99_ms:6.2f} ms  {result.non_2xx} failed of {result.requests:,}; worker took "
                f"{taken:,.0f} events/s meanwhile" + (f"; target: {met}" if verdict else ""))

    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return [
        f"api: 1 worker, {targets:,} targets, wrk -t1 for {seconds - 1:.0f}s per row, while a producer asks "
        f"{rate:,} events/s (StatBatch records); load average {load}",
        f"  {'pacing alone (no HTTP load)':<48} worker took {results['alone'][0]:,.0f} events/s",
        row(f"GET /v1/targets/{{id}}, {CONNECTIONS} conn. flat out", "one", False),
        row(f"GET /v1/pacing/reactiveState, {CONNECTIONS} conn. flat out", "state", False),
        row(f"GET /v1/targets/{{id}}, {PACED_CONNECTIONS} conn. paced", "one_paced", True),
        row(f"GET /v1/pacing/reactiveState, {PACED_CONNECTIONS} conn. paced", "state_paced", True),
        f"  target: >= {TARGET_RPS:,} requests/s with p99 <= {TARGET_P99_MS:.0f} ms while it keeps pacing "
        f"(paced: each connection waits {PACED_DELAY_MS} ms between an answer and its next request)",
    ]


async def main(bootstrap: str, seconds: float, targets: int, rate: int) -> None:
    """``python -m tests.benchmarks.api_load``: the API rows alone."""
    import tempfile

    from tests.benchmarks.throughput import WORKER_ENV

    with tempfile.TemporaryDirectory(prefix="pacing-api-bench-") as tmp_name:
        emulator = JourneyEmulator(max_recorded_bodies=0)
        await emulator.start()
        try:
            lines = await run(bootstrap, emulator, Path(tmp_name), targets=targets, rate=rate, seconds=seconds,
                              worker_env=WORKER_ENV)
        finally:
            await emulator.stop()
    print("\n".join(lines))


if __name__ == "__main__":
    import argparse

    from tests.benchmarks.on_broker import run_on_broker

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="each phase's length")
    parser.add_argument("--targets", type=int, default=10_000)
    parser.add_argument("--rate", type=int, default=10_000, help="the producer's events/s in every phase")
    args = parser.parse_args()
    run_on_broker(lambda bootstrap: main(bootstrap, args.seconds, args.targets, args.rate))
