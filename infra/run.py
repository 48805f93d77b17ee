"""``pacing run`` / ``make run``: the whole pipeline on the embedded broker, with live progress.

Starts the broker, the Journey API emulator, one pacing node, the sink and the stat feed as
child processes (logs in ``var/run/``), prints one progress line every two seconds — events
in, decisions out, bulk requests and their outcome, alarms — and stops everything, children
first and the broker last, on Ctrl-C, SIGTERM or after ``duration_s``.

The feed (:mod:`infra.stat_feed`) simulates a handful of agent groups that make the offers the
published decisions allow, so the decisions have consequences; every refresh period the run
prints the current decision of each target (the table ``pacing top`` keeps live on a screen).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from infra.broker import EmbeddedBroker, die_with_parent, free_port
from infra.console import format_alarm
from infra.top import Board, follow_topics, target_table
from streams.api.server import api_url
from streams.runtime.config import Settings, load_settings
from streams.runtime.metrics_reporter import flatten
from streams.runtime.topics import topic_names

LOG_DIR = Path("var/run")


@dataclass
class Child:
    """One child process of the pipeline."""

    name: str
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None

    def start(self, env: dict[str, str]) -> None:
        log = open(LOG_DIR / f"{self.name}.log", "wb")
        self.process = subprocess.Popen(
            self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True, preexec_fn=die_with_parent,
        )
        log.close()

    def stop(self, timeout_s: float = 8.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@dataclass
class Progress:
    """Figures scraped from the children for the progress line."""

    started: float = field(default_factory=time.monotonic)
    last_events: float = 0.0
    last_at: float = field(default_factory=time.monotonic)
    alarms: list[str] = field(default_factory=list)


async def _scrape(session: aiohttp.ClientSession, url: str) -> dict[str, float]:
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=1)) as response:
            text = await response.text()
    except (aiohttp.ClientError, TimeoutError):
        return {}
    return flatten(text_string_to_metric_families(text))


def _sum(figures: dict[str, float], prefix: str) -> int:
    return int(sum(v for k, v in figures.items() if k.startswith(prefix)))


async def _emulator_targets(session: aiohttp.ClientSession, base: str) -> int | None:
    try:
        async with session.get(f"{base}/emulator/targets", timeout=aiohttp.ClientTimeout(total=1)) as r:
            return len(await r.json())
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return None


async def _follow_alarms(bootstrap: str, topic: str, progress: Progress) -> None:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest")
    await consumer.start()
    try:
        async for record in consumer:
            line = format_alarm(record.value or b"")
            progress.alarms.append(line)
            print(f"  ALARM {line}", flush=True)
    finally:
        await consumer.stop()


async def _report(progress: Progress, ports: dict[str, int], emulator_base: str) -> None:
    async with aiohttp.ClientSession() as session:
        while True:
            await asyncio.sleep(2)
            worker = await _scrape(session, f"http://127.0.0.1:{ports['worker']}/metrics")
            sink = await _scrape(session, f"http://127.0.0.1:{ports['sink']}/metrics")
            targets = await _emulator_targets(session, emulator_base)
            now = time.monotonic()
            events = _sum(worker, "pacing_events_in_total")
            rate = (events - progress.last_events) / max(1e-6, now - progress.last_at)
            progress.last_events, progress.last_at = events, now
            print(
                f"[{now - progress.started:6.0f}s] events in {events:>8,} ({rate:6,.0f}/s)"
                f" | rejected {_sum(worker, 'pacing_events_rejected_total'):>4}"
                f" | decisions {_sum(worker, 'pacing_decisions_emitted_total'):>6,}"
                f" | bulk ok {_sum(sink, 'sink_requests_total{outcome=success}'):>4}"
                f" failed {_sum(sink, 'sink_requests_total') - _sum(sink, 'sink_requests_total{outcome=success}'):>3}"
                f" | delivered {_sum(sink, 'sink_entities_delivered_total'):>6,}"
                f" | endpoint holds {targets if targets is not None else '?':>3} targets"
                f" | alarms {len(progress.alarms)}",
                flush=True,
            )


async def _tell(board: Board, every_s: float) -> None:
    """Every ``every_s`` (a refresh period), the decision each target is pacing by now."""
    while True:
        await asyncio.sleep(every_s)
        if not board.targets:
            continue
        width = shutil.get_terminal_size((120, 40)).columns - 2
        print(f"  decisions in force at {time.strftime('%H:%M:%S')}"
              " (OFFERS per refresh period, PEND offers awaiting an answer):", flush=True)
        for _, line in target_table(board, width, int(time.time() * 1000)):
            print(f"  {line}", flush=True)


async def _supervise(children: list[Child], duration_s: float, settings: Settings,
                     ports: dict[str, int], emulator_base: str) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    progress = Progress()
    board = Board()
    tasks = [asyncio.create_task(_report(progress, ports, emulator_base)),
             asyncio.create_task(_follow_alarms(settings.kafka.bootstrap_servers, topic_names(settings).alarms,
                                                progress)),
             asyncio.create_task(follow_topics(settings, board, asyncio.Event())),
             asyncio.create_task(_tell(board, max(10.0, settings.targets.refresh_period_s)))]
    deadline = time.monotonic() + duration_s if duration_s else None
    code = 0
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
            if deadline and time.monotonic() >= deadline:
                break
            dead = [c for c in children if c.process and c.process.poll() is not None]
            if dead:
                for c in dead:
                    print(f"{c.name} exited with code {c.process.returncode}; see {LOG_DIR / (c.name + '.log')}",
                          file=sys.stderr)
                code = 1
                break
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
    return code


def run_pipeline(config: str | None, duration_s: float = 0, targets: int = 5) -> int:
    """Run broker, emulator, worker, sink and feed until Ctrl-C or ``duration_s``; returns an exit code."""
    settings = load_settings(config)  # fail fast on a wrong option, before starting anything
    logging.getLogger("aiokafka").setLevel(logging.WARNING)  # the progress line is the output here
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    broker = EmbeddedBroker(log_path=LOG_DIR / "broker.log")
    print("starting the embedded broker …", flush=True)
    broker.start()
    ports = {"emulator": free_port(), "worker": free_port(), "sink": free_port(), "api": free_port()}
    emulator_base = f"http://127.0.0.1:{ports['emulator']}"
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "PACING_BASE_AUTH_URL": f"{emulator_base}/oauth/token",
        "PACING_BASE_SERVICE_URL": f"{emulator_base}/api/",
        "PACING_WORKER__WEB_PORT": str(ports["worker"]),
        "PACING_SINK__WEB_PORT": str(ports["sink"]),
        "PACING_API__PORT": str(ports["api"]),
        "PACING_WORKER__KEEPALIVE_S": os.environ.get("PACING_WORKER__KEEPALIVE_S", "30"),
    }
    env.pop("PACING_KAFKA__BOOTSTRAP_SERVERS", None)
    pacing = [sys.executable, "-m", "infra.cli"]
    children = [
        Child("emulator", [*pacing, "emulator", "--port", str(ports["emulator"])]),
        Child("worker", [*pacing, "worker"]),
        Child("sink", [*pacing, "sink"]),
        Child("feed", [*pacing, "feed", "--targets", str(targets)]),
    ]
    print(f"broker {broker.bootstrap_servers} | emulator {emulator_base} | worker metrics :{ports['worker']}"
          f" | sink metrics :{ports['sink']} | logs in {LOG_DIR}/", flush=True)
    api = api_url(settings.api, "127.0.0.1", ports["api"])
    print(f"REST API {api} (docs/api.md): curl {api}/v1/targets, or pacing targets list --url {api}", flush=True)
    print(f"watch it live in another terminal: pacing top --bootstrap-servers {broker.bootstrap_servers}",
          flush=True)
    try:
        for child in children:
            child.start(env)
        kafka = settings.kafka.model_copy(update={"bootstrap_servers": broker.bootstrap_servers})
        local = settings.model_copy(update={"kafka": kafka})  # this run's own clients: the embedded broker
        code = asyncio.run(_supervise(children, duration_s, local, ports, emulator_base))
    finally:
        print("stopping …", flush=True)
        for child in reversed(children):
            child.stop()
        broker.stop()
        print("stopped.", flush=True)
    return code
