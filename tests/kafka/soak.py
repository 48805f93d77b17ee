"""The chaos soak: the whole pipeline on three Apache Kafka brokers under a seeded schedule of faults.

``make soak DURATION=1800 [SEED=n]`` (``python -m tests.kafka.soak``) and, for 5 minutes, the test
``tests/kafka/test_soak.py`` in ``make test-kafka``. Three workers (one of them in a network
namespace of its own, reaching the brokers through their advertised EXTERNAL listeners) and the
sink run on a private three-node cluster (every topic replicated 3 times, ``min.insync.replicas``
2); the Journey API emulator is the endpoint. A feed sends one round a second: round ``n`` sets
every target's ready agents to ``n`` (acks=all, resent until acknowledged), so each decision says
which round it reflects.

Faults, one at a time in a seeded order (every kind once before any repeats), with a quiet gap
between them: a worker killed (-9) and restarted; a worker stopped (SIGSTOP) past the group
session timeout, then continued; the namespaced worker's link cut, then healed; the sink killed
(-9) and restarted; a broker killed (-9) and restarted; the endpoint answering 503, 429 or 401
for a while; three targets rejected one by one by the endpoint for a while; poison records on the
stats topic. Afterwards the feed runs on briefly and stops, the pipeline settles, and
:mod:`tests.kafka.soak_check` checks the invariants over the topics and the endpoint's log of
stored entities. A table per fault kind is printed; a failure names the seed that reproduces the
schedule (the timing of a run on a shared machine is not reproducible, the schedule is).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import aiohttp
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from infra.broker import die_with_parent, free_port
from infra.emulator import JourneyEmulator
from infra.kafka_broker import KafkaCluster
from schemas import decode_alarm, decode_decision
from streams.runtime.topics import ensure_topics
from tests.integration.pipeline import ROOT, Pipeline, stat_records, user_data
from tests.kafka.helpers import changelog_topic
from tests.kafka.netns import NetworkNamespace, netns_unavailable_reason
from tests.kafka.soak_check import (
    Decision,
    Report,
    Stored,
    TableEntry,
    Window,
    check,
    format_table,
    table_rows,
)

KINDS = ("worker_kill", "worker_pause", "worker_cut", "sink_kill", "broker_kill", "endpoint_503",
         "endpoint_429", "endpoint_401", "target_reject", "poison")
TARGETS = [f"soak-{i:02d}" for i in range(30)]
LOGGED_IN = 1_000_000  # ready agents = round number stays below it for 11 days
ROUND_EVERY_S = 1.0
GAP_S = (4.0, 8.0)
POISON = [b"\x00\x01not avro", b"{\"not\": \"a stat event\"", b"", b"\xc3\x01" + b"\xff" * 12, b"[1, 2, 3]"]


@dataclass
class Child:
    """One worker or sink process of the soak."""

    name: str
    node_id: str
    command: list[str]
    env: dict[str, str]
    web_host: str
    web_port: int
    process: subprocess.Popen[bytes] | None = None

    def start(self, logs: Path) -> None:
        with open(logs / f"{self.name}.log", "ab") as log:
            self.process = subprocess.Popen(self.command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)

    def signal(self, sig: int) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, sig)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.signal(signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    async def ready(self) -> bool:
        try:
            async with aiohttp.ClientSession() as session, session.get(
                    f"http://{self.web_host}:{self.web_port}/readyz", timeout=aiohttp.ClientTimeout(total=2)) as r:
                return r.status == 200
        except (aiohttp.ClientError, TimeoutError, OSError):
            return False


class Feed:
    """Round ``n`` sets every target's ready agents to ``n``; :attr:`acked` maps rounds to ack times."""

    def __init__(self, bootstrap: str, topic: str):
        self.bootstrap, self.topic = bootstrap, topic
        self.acked: dict[int, float] = {}
        self.resends = 0
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        self._producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=True,
                                          linger_ms=5, request_timeout_ms=15_000)
        await self._producer.start()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        assert self._producer is not None
        number = 0
        while not self._stop.is_set():
            number += 1
            records = [r for t in TARGETS for r in stat_records(t, number, logged_in=LOGGED_IN, tenant="acme")]
            while True:
                try:
                    sent = [await self._producer.send(self.topic, value, key=key) for key, value in records]
                    await asyncio.gather(*sent)
                    break
                except KafkaError:
                    self.resends += 1
                    await asyncio.sleep(0.5)
            self.acked[number] = time.time()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), ROUND_EVERY_S)

    async def poison(self, rng: random.Random) -> int:
        """Undecodable records keyed by real targets, in the stream of good ones."""
        assert self._producer is not None
        sent = [await self._producer.send(self.topic, value, key=rng.choice(TARGETS).encode()) for value in POISON]
        await asyncio.gather(*sent)
        return len(sent)

    async def stop(self) -> int:
        self._stop.set()
        if self._task is not None:
            await self._task
        if self._producer is not None:
            await self._producer.stop()
        return max(self.acked, default=0)


@dataclass
class Soak:
    """One run: its seed, duration, folder, and everything it started."""

    duration_s: float
    seed: int
    workdir: Path
    rng: random.Random = field(init=False)
    windows: list[Window] = field(default_factory=list)
    stored: list[Stored] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    poison_sent: int = 0

    kinds: tuple[str, ...] = KINDS

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def say(self, text: str) -> None:
        line = f"{datetime.now().strftime('%H:%M:%S')} soak: {text}"
        print(line, flush=True)
        with open(self.workdir / "soak.log", "a") as log:
            log.write(line + "\n")

    # -- set-up ------------------------------------------------------------------------------------------

    async def run(self) -> tuple[Report, list[tuple[str, ...]]]:
        self.workdir.mkdir(parents=True, exist_ok=True)
        reason = netns_unavailable_reason()
        self.namespace = None if reason else NetworkNamespace().create()
        if reason:
            self.notes.append(f"no worker network cut: {reason}")
        self.cluster = KafkaCluster(nodes=3, data_dir=self.workdir / "kafka", heap="256m",
                                    advertised_host=self.namespace.host_address if self.namespace else None,
                                    listen_host=self.namespace.host_address if self.namespace else "0.0.0.0")
        self.emulator = JourneyEmulator()
        self.children: dict[str, Child] = {}
        try:
            await asyncio.to_thread(self.cluster.start, 180.0)
            await self.emulator.start()
            self.emulator.on_stored = self._on_stored
            return await self._run_pipeline()
        finally:
            for child in self.children.values():
                child.stop()
            await self.emulator.stop()
            await asyncio.to_thread(self.cluster.stop)
            if self.namespace is not None:
                self.namespace.delete()

    def _on_stored(self, entity: object) -> None:
        data = user_data(entity)
        computed = int(datetime.fromisoformat(data["computedAt"]).timestamp() * 1000)
        self.stored.append(Stored(entity.id, int(data["readyAgents"]), computed, data["node"], time.time()))

    def _child(self, name: str, role: str, env: dict[str, str], in_namespace: bool = False) -> Child:
        port = free_port()
        web = {"worker": "PACING_WORKER__WEB_PORT", "sink": "PACING_SINK__WEB_PORT"}[role]
        command = [sys.executable, "-m", "infra.cli", role]
        host = "127.0.0.1"
        env = {**self.pipeline.env, "PACING_NODE_ID": name, web: str(port), **env}
        if in_namespace:
            assert self.namespace is not None and self.cluster.external_servers is not None
            command = self.namespace.command(*command)
            host = self.namespace.address
            env["KAFKA_BOOTSTRAP_SERVERS"] = self.cluster.external_servers
        if role == "worker":
            env["PACING_WORKER__DATA_DIR"] = str(self.workdir / name)
        child = Child(name, name, command, env, host, port)
        self.children[name] = child
        return child

    async def _start(self, child: Child, timeout_s: float = 90.0) -> None:
        child.start(self.workdir)
        deadline = time.monotonic() + timeout_s
        while not await child.ready():
            if child.process is not None and child.process.poll() is not None:
                raise AssertionError(f"{child.name} exited with {child.process.returncode}; see "
                                     f"{self.workdir / (child.name + '.log')}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{child.name} not ready within {timeout_s}s")
            await asyncio.sleep(0.5)

    async def _run_pipeline(self) -> tuple[Report, list[tuple[str, ...]]]:
        self.pipeline = Pipeline(self.cluster.bootstrap_servers, self.emulator, self.workdir,
                                 PACING_KAFKA__REPLICATION_FACTOR="3", PACING_KAFKA__MIN_INSYNC_REPLICAS="2",
                                 PACING_KAFKA__STATS_PARTITIONS="6")
        await ensure_topics(self.pipeline.settings)
        workers = [self._child("worker-a", "worker", {}), self._child("worker-b", "worker", {}),
                   self._child("worker-c", "worker", {}, in_namespace=self.namespace is not None)]
        for worker in workers:
            await self._start(worker)
        await self._start(self._child("sink", "sink", {}))
        self.workers = workers
        self.feed = Feed(self.cluster.bootstrap_servers, self.pipeline.topics.stats)
        await self.feed.start()
        await self._until(lambda: len(self.emulator.targets) == len(TARGETS), 90, "every target at the endpoint")
        self.say(f"seed {self.seed}: pipeline up (3 brokers, {len(workers)} workers, sink, {len(TARGETS)} targets); "
                 f"faults for {self.duration_s:.0f}s")
        await self._faults()
        self.say("faults over; the feed runs on 15s, then the pipeline settles")
        await asyncio.sleep(15)
        last = await self.feed.stop()

        def settled() -> bool:
            targets = self.emulator.targets
            return len(targets) == len(TARGETS) and all(
                int(user_data(e)["readyAgents"]) == last for e in targets.values())

        if not await self._until(settled, 120, f"every target at round {last} at the endpoint", fail=False):
            self.notes.append(f"not every target reached round {last} at the endpoint within 120s")
        await self._until(self._alarms_cleared, 120, "every alarm cleared", fail=False)
        return await self._check()

    async def _until(self, condition: Callable[[], bool | Awaitable[bool]], timeout_s: float, what: str,
                     fail: bool = True) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            result = condition()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return True
            await asyncio.sleep(0.5)
        if fail:
            raise AssertionError(f"soak (seed {self.seed}): no {what} within {timeout_s}s")
        self.say(f"no {what} within {timeout_s}s")
        return False

    async def _alarms_cleared(self) -> bool:
        history, _ = await self._alarms()
        return not any(states[-1] == "raised" for states in history.values())

    async def _alarms(self) -> tuple[dict[tuple[str, str], list[str]], list[tuple[float, str]]]:
        history: dict[tuple[str, str], list[str]] = {}
        raised: list[tuple[float, str]] = []
        for record in await read_to_end(self.cluster.bootstrap_servers, self.pipeline.topics.alarms):
            alarm = decode_alarm(record.value)
            history.setdefault((alarm.name, alarm.scope), []).append(alarm.state.value)
            if alarm.state.value == "raised":
                raised.append((alarm.timestamp / 1000, f"{alarm.name}[{alarm.scope}]"))
        return history, raised

    # -- faults ------------------------------------------------------------------------------------------

    async def _faults(self) -> None:
        kinds = [k for k in self.kinds if k != "worker_cut" or self.namespace is not None]
        order: list[str] = []
        ends_at = time.monotonic() + self.duration_s
        while time.monotonic() < ends_at:
            if not order:
                order = list(kinds)
                self.rng.shuffle(order)
            kind = order.pop(0)
            started = time.time()
            subject = await getattr(self, f"_fault_{kind}")()
            self.windows.append(Window(kind, started, time.time(), subject))
            self.say(f"{kind} {subject}: {time.time() - started:.1f}s")
            await asyncio.sleep(self.rng.uniform(*GAP_S))

    async def _fault_worker_kill(self) -> str:
        worker = self.rng.choice(self.workers)
        worker.kill()
        await asyncio.sleep(self.rng.uniform(3, 10))
        await self._start(worker)
        return worker.node_id

    async def _fault_worker_pause(self) -> str:
        worker = self.rng.choice(self.workers)
        worker.signal(signal.SIGSTOP)
        await asyncio.sleep(self.rng.choice((20.0, 30.0, 45.0)))
        worker.signal(signal.SIGCONT)
        return worker.node_id

    async def _fault_worker_cut(self) -> str:
        assert self.namespace is not None
        self.namespace.cut()
        try:
            await asyncio.sleep(self.rng.uniform(20, 35))
        finally:
            self.namespace.heal()
        return self.workers[2].node_id

    async def _fault_sink_kill(self) -> str:
        sink = self.children["sink"]
        sink.kill()
        await asyncio.sleep(self.rng.uniform(2, 6))
        await self._start(sink)
        return "sink"

    async def _fault_broker_kill(self) -> str:
        index = self.rng.randrange(3)
        await asyncio.to_thread(self.cluster.kill, index)
        await asyncio.sleep(self.rng.uniform(10, 20))
        await asyncio.to_thread(self.cluster.restart, index, 120.0)
        return f"node {self.cluster.node_id(index)}"

    async def _endpoint_window(self, **fault: object) -> str:
        self.emulator.faults.set(**fault)
        try:
            await asyncio.sleep(self.rng.uniform(8, 15))
        finally:
            self.emulator.faults.clear()
        return ""

    async def _fault_endpoint_503(self) -> str:
        return await self._endpoint_window(status=503, retry_after=1)

    async def _fault_endpoint_429(self) -> str:
        return await self._endpoint_window(status=429, retry_after=1)

    async def _fault_endpoint_401(self) -> str:
        return await self._endpoint_window(status=401)

    async def _fault_target_reject(self) -> str:
        rejected = sorted(self.rng.sample(TARGETS, 3))
        await self._endpoint_window(fail_target_ids=rejected)
        return ",".join(rejected)

    async def _fault_poison(self) -> str:
        sent = await self.feed.poison(self.rng)
        self.poison_sent += sent
        return f"{sent} records"

    # -- the check ---------------------------------------------------------------------------------------

    async def _check(self) -> tuple[Report, list[tuple[str, ...]]]:
        bootstrap = self.cluster.bootstrap_servers
        decisions = []
        for record in await read_to_end(bootstrap, self.pipeline.topics.actiontargets):
            if record.value is None:
                continue
            decision = decode_decision(record.value)
            decisions.append(Decision(decision.target_id, decision.ready_agents, decision.computed_at,
                                      decision.node, record.partition, record.offset, record.timestamp / 1000))
        table = []
        for record in await read_to_end(bootstrap, changelog_topic(self.pipeline)):
            if record.value is None:
                continue
            value = json.loads(record.value)
            state = value["state"]
            ready = state["gauges"].get("ready_agents")
            table.append(TableEntry(json.loads(record.key), None if ready is None else int(ready),
                                    int(state["gauge_ts"].get("ready_agents", 0)), record.partition, record.offset,
                                    record.timestamp / 1000, int(value.get("epoch", 0)),
                                    int(value.get("written_ms", 0))))
        history, raised = await self._alarms()
        dead_letters = len(await read_to_end(bootstrap, self.pipeline.topics.stats_dlq))
        inputs = {"targets": TARGETS, "acked": self.feed.acked, "decisions": decisions, "stored": self.stored,
                  "table": table, "alarms": history, "windows": self.windows, "alarm_times": raised,
                  "poison_sent": self.poison_sent, "dead_letters": dead_letters}
        save_records(self.workdir / "soak-records.json", inputs)
        report = check(**inputs)
        return report, table_rows(report, self.windows)


def save_records(path: Path, inputs: dict) -> None:
    """What the checker read, as JSON, for ``--recheck`` (after a change to the checker or to
    :data:`~tests.kafka.soak_check.KNOWN_FAILING`)."""
    def plain(value: object) -> object:
        if dataclasses.is_dataclass(value):
            return dataclasses.asdict(value)
        if isinstance(value, dict):
            return [[list(k) if isinstance(k, tuple) else k, plain(v)] for k, v in value.items()]
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        return value

    path.write_text(json.dumps({name: plain(value) for name, value in inputs.items()}))


def recheck(path: Path) -> tuple[Report, list[tuple[str, ...]]]:
    """The checker over a run's saved records (``soak-records.json``)."""
    saved = json.loads(path.read_text())
    windows = [Window(**w) for w in saved["windows"]]
    report = check(saved["targets"], {int(k): v for k, v in saved["acked"]},
                   [Decision(**d) for d in saved["decisions"]], [Stored(**d) for d in saved["stored"]],
                   [TableEntry(**d) for d in saved["table"]], {tuple(k): v for k, v in saved["alarms"]},
                   windows, [tuple(a) for a in saved["alarm_times"]], saved["poison_sent"], saved["dead_letters"])
    return report, table_rows(report, windows)


async def read_to_end(bootstrap: str, topic: str, timeout_s: float = 60.0) -> list:
    """Every record of ``topic`` up to its end offsets now (no group, nothing committed)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in (consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = [TopicPartition(topic, p) for p in (consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: list = []
        deadline = time.monotonic() + timeout_s
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            if time.monotonic() > deadline:
                raise AssertionError(f"could not read {topic} to its end within {timeout_s}s")
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(batch)
        return records
    finally:
        await consumer.stop()


def summary(soak: Soak, report: Report, rows: list[tuple[str, ...]]) -> str:
    """What a run prints at the end: the table, the figures, every failing violation (and the known ones)."""
    lines = [f"soak seed {soak.seed}, {soak.duration_s:.0f}s of faults: {report.rounds} rounds of {len(TARGETS)} "
             f"targets acknowledged, {report.decisions} decisions, {report.stored} entities stored by the endpoint, "
             f"{report.table_entries} table entries, {soak.feed.resends} feed resends",
             format_table(rows)]
    lines += [f"note: {note}" for note in soak.notes]
    known = [v for v in report.violations if v.known]
    if known:
        lines.append(f"{len(known)} known violation(s) (not failing the run):")
        lines += [f"  {v.invariant} {v.target}: {v.detail} -- {v.known}" for v in known[:20]]
    failures = report.failures
    if failures:
        lines.append(f"{len(failures)} VIOLATION(S); reproduce the schedule with "
                     f"`make soak DURATION={soak.duration_s:.0f} SEED={soak.seed}`:")
        lines += [f"  {v.invariant} {v.target}: {v.detail}" for v in failures[:40]]
    return "\n".join(lines)


async def soak(duration_s: float, seed: int, workdir: Path,
               kinds: tuple[str, ...] = KINDS) -> tuple[Soak, Report, str]:
    """Run one soak; returns it, the checker's report and the printed summary."""
    run = Soak(duration_s, seed, workdir, kinds=kinds)
    report, rows = await run.run()
    text = summary(run, report, rows)
    (workdir / "soak-summary.txt").write_text(text + "\n")
    return run, report, text


def main(argv: list[str] | None = None) -> int:
    """``python -m tests.kafka.soak --duration S [--seed N] [--workdir DIR]``: exit 1 on a violation."""
    parser = argparse.ArgumentParser(prog="python -m tests.kafka.soak", description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=300.0, help="seconds of faults (0: 300)")
    parser.add_argument("--seed", type=int, default=None, help="the fault schedule's seed (default: random)")
    parser.add_argument("--workdir", type=Path, default=None, help="logs and data (default: a new temporary folder)")
    parser.add_argument("--recheck", type=Path, metavar="FILE",
                        help="run only the checker over a run's soak-records.json and print its table")
    parser.add_argument("--only", metavar="KIND,…", default=",".join(KINDS),
                        help=f"these fault kinds only (default: all of {', '.join(KINDS)})")
    args = parser.parse_args(argv)
    kinds = tuple(k.strip() for k in args.only.split(",") if k.strip())
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown or not kinds:
        parser.error(f"--only {args.only}: not fault kinds: {', '.join(unknown) or '(none)'}")
    if args.recheck:
        report, rows = recheck(args.recheck)
        print(format_table(rows))
        for v in report.violations:
            print(f"  {'known: ' if v.known else 'VIOLATION: '}{v.invariant} {v.target}: {v.detail}")
        return 1 if report.failures else 0
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # a killed broker is the point, not news
    seed = args.seed if args.seed is not None else random.randrange(1_000_000)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="pacing-soak-"))
    print(f"soak: seed {seed}, logs in {workdir}", flush=True)
    _, report, text = asyncio.run(soak(args.duration or 300.0, seed, workdir, kinds))
    print(text, flush=True)
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
