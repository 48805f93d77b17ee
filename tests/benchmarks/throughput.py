"""Throughput benchmark (``make bench``): the pacing node side by side with its references, in one run.

Runs on the embedded broker (or ``KAFKA_BOOTSTRAP_SERVERS``) and prints tables in stat events per
second:

- ``codec``: bulk decode of Avro single-object stat events (with validation), in this process.
- The drain table. Per (record format, target count) one backlog is produced once into a fresh
  12-partition stats topic; every contender then drains that same topic from the beginning with a
  consumer group of its own, as a child process of its own, and is timed from the first record it
  received to the last one it finished. Formats: ``single`` (one StatEvent per record) and
  ``batch`` (one StatBatch of the 13 statistics of one target per record). Contenders, run in a
  rotated order in each of ``--rounds`` interleaved rounds:

  - ``worker``: the pacing node (``pacing worker``, this checkout), timed on its
    ``pacing_records_in_total`` counter (``pacing_events_in_total`` while the node has no record
    counter): decode, fold, decide, table write once per target per tick, decisions out;
  - ``worker-stock``: the same node with ``worker.fast_drain = false``, on Faust's own drain loop: the
    A/B of the drain loop :mod:`streams.node.faust_compat` forks (kept only while it wins);
  - ``quix``: Quix Streams, per record: decode with the project's codec, read and write the
    target's state (RocksDB, changelog) (contenders/quix_app.py; its Tansu adjustment:
    contenders/quix_tansu.py);
  - ``faust-count``: a bare Faust agent iterating records and only counting: Faust's own floor;
    ``faust-decode``: the same, decoding each record (contenders/faust_bare.py; not in the default
    set, ``--contenders`` adds it: it doubles Faust's share of the run time);
  - ``getmany``: a raw aiokafka consumer, ``getmany`` + bulk decode: the ceiling (contenders/getmany.py).

  Printed: the median and each round's events/s per contender, and per round the ratios
  worker/quix, worker/faust-count, worker/faust-decode, worker/getmany, and for StatBatch records
  worker/quix on single events at the same target count; ``rejected`` counts records a contender
  refused (a worker that cannot read a format rejects it to the DLQ: its rate then is of refusals).
- Output amplification per format and target count: changelog records (``pacing_flush_targets_sum``)
  and decisions (``pacing_decisions_emitted_total``) the worker wrote per 100,000 events, medians of
  the rounds (read 2.5 x the longer of ``worker.decide_interval_s`` and ``worker.checkpoint_interval_s``
  after the drain, so the last tick's and checkpoint's output is in).
- ``sink``: the sink draining decisions to the emulator in bulk requests (produce + deliver).
- The sustained runs (tests/benchmarks/sustained.py): worker + sink + emulator with a producer at a
  fixed rate over 10,000 targets, StatBatch records then single ones (``--sustained-formats``);
  events/s the worker took, consumer lag, end-to-end latency.
- The API rows (tests/benchmarks/api_load.py): one worker with 10,000 targets under ``wrk`` on
  ``GET /v1/targets/{id}`` and ``reactiveState`` while it paces; requests/s, p50/p99, and the
  worker's events/s with and without the HTTP load (``--api-s``).

The targets the numbers are judged against are printed under each table. The defaults (40,000
single events and 130,000 batched ones per backlog, 3 rounds, two 60 s sustained runs) keep ``make
bench`` near 17 minutes on the 2-core development machine; ``--quick`` runs a small version
(20,000 events, 1 round, a 20 s sustained run at 10,000 events/s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiokafka import AIOKafkaProducer

from infra.broker import die_with_parent, free_port
from infra.emulator import JourneyEmulator
from schemas import STATISTICS, StatEvent, decode_stat_events, encode_stat_event
from streams.engine import TargetState
from streams.node.decisions import decision_record, encode_decision_record
from streams.runtime.collector import tune_for_long_running_service
from streams.runtime.topics import ensure_topics
from tests.benchmarks.on_broker import run_on_broker
from tests.integration.pipeline import ROOT, Pipeline, eventually

STATS = ("ready_agents", "busy_agents", "logged_in_agents", "waiting_interactions", "offers_made", "offers_accepted")
BATCH_STATS = tuple(sorted(STATISTICS))  # one StatBatch: every statistic of one target, 13 events
CONTENDERS = ("worker", "worker-stock", "quix", "faust-count", "faust-decode", "getmany")
DEFAULT_CONTENDERS = ("worker", "worker-stock", "quix", "faust-count", "getmany")
#: The worker contenders: this checkout's node, and the same with Faust's own drain loop (A/B of faust_compat's).
WORKERS = {"worker": {}, "worker-stock": {"PACING_WORKER__FAST_DRAIN": "false"}}
PARTITIONS = 12
WORKER_ENV = {"PACING_KAFKA__STATS_PARTITIONS": str(PARTITIONS), "PACING_WORKER__BATCH_MAX_EVENTS": "5000"}


def stat_payloads(events: int, targets: int) -> list[tuple[bytes, bytes]]:
    """Single-event records: ``events`` StatEvents round-robin over ``targets``, six statistics."""
    now = int(time.time() * 1000)
    out = []
    for i in range(events):
        target = f"vq-{i % targets:05d}"
        event = StatEvent(tenant="acme", target_id=target, statistic=STATS[i % len(STATS)],
                          value=float(i % 17), timestamp=now + i, source="bench")
        out.append((target.encode(), encode_stat_event(event)))
    return out


def batch_payloads(events: int, targets: int) -> list[tuple[bytes, bytes]]:
    """StatBatch records of 13 events (every statistic of one target), round-robin over ``targets``."""
    from schemas import encode_stat_batch

    now = int(time.time() * 1000)
    out = []
    for i in range(events // len(BATCH_STATS)):
        target = f"vq-{i % targets:05d}"
        batch = [StatEvent(tenant="acme", target_id=target, statistic=name, value=float(i % 17),
                           timestamp=now + i, source="bench") for name in BATCH_STATS]
        out.append((target.encode(), encode_stat_batch(batch)))
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


async def scrape_all(port: int) -> dict[str, float]:
    """Every sample of a child's /metrics, summed per metric name (labels dropped)."""
    async with aiohttp.ClientSession() as session, session.get(
        f"http://127.0.0.1:{port}/metrics", timeout=aiohttp.ClientTimeout(total=5)
    ) as response:
        text = await response.text()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            name = name.split("{", 1)[0]
            out[name] = out.get(name, 0.0) + float(value)
    return out


async def scrape(port: int, name: str) -> float:
    return (await scrape_all(port)).get(name, 0.0)


# -- the drain table --------------------------------------------------------------------------


@dataclass
class Backlog:
    """One produced stats topic: a format and target count, and what is on it."""

    fmt: str
    targets: int
    records: int
    events: int
    pipeline: Pipeline

    @property
    def label(self) -> str:
        return f"{self.fmt}/{self.targets:,}"


@dataclass
class Drain:
    """One contender's drain of one backlog in one round."""

    contender: str
    round: int
    events: int = 0
    records: int = 0
    seconds: float = 0.0
    rejected: int = 0
    note: str = ""
    changelog: float | None = None  # worker only: per 100,000 events
    decisions: float | None = None

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Results:
    drains: dict[str, list[Drain]] = field(default_factory=dict)  # backlog label → drains

    def add(self, backlog: Backlog, drain: Drain) -> None:
        self.drains.setdefault(backlog.label, []).append(drain)

    def of(self, label: str, contender: str) -> list[Drain]:
        return [d for d in self.drains.get(label, []) if d.contender == contender]


async def build_backlog(bootstrap: str, emulator: JourneyEmulator, tmp: Path, fmt: str, targets: int,
                        events: int) -> Backlog:
    pipeline = Pipeline(bootstrap, emulator, tmp, **WORKER_ENV)
    records = stat_payloads(events, targets) if fmt == "single" else batch_payloads(events, targets)
    await ensure_topics(pipeline.settings)
    await produce_all(bootstrap, pipeline.topics.stats, records)
    per_record = 1 if fmt == "single" else len(BATCH_STATS)
    return Backlog(fmt, targets, len(records), len(records) * per_record, pipeline)


async def drain_worker(backlog: Backlog, round_no: int, timeout_s: float, contender: str = "worker") -> Drain:
    """``pacing worker`` with an app id (so consumer group and changelog) of its own, timed on its counters.

    ``contender``: ``worker``, or ``worker-stock`` for the same node on Faust's own drain loop.
    """
    pipeline = backlog.pipeline
    port = free_port()
    app_id = f"bench-{round_no}-{uuid.uuid4().hex[:6]}"
    child = pipeline.spawn(f"worker-{app_id}", "worker", PACING_WORKER__WEB_PORT=str(port),
                           PACING_WORKER__APP_ID=app_id, PACING_WORKER__DATA_DIR=str(pipeline.tmp / app_id),
                           **WORKERS[contender])
    drain = Drain(contender, round_no)
    per_record = backlog.events // backlog.records
    try:
        counter: str | None = None

        async def taken() -> float:
            nonlocal counter
            if child.poll() is not None:
                raise RuntimeError(f"worker exited with {child.returncode}: {pipeline.log_tail(f'worker-{app_id}')}")
            try:
                metrics = await scrape_all(port)
            except (aiohttp.ClientError, TimeoutError):
                return 0.0
            if counter is None and "pacing_events_in_total" in metrics:
                # records if the node counts them; else its event counter, which counts records until
                # the node reads StatBatches (and then events: handled below)
                counter = ("pacing_records_in_total" if "pacing_records_in_total" in metrics
                           else "pacing_events_in_total")
            return metrics.get(counter or "", 0.0)

        deadline = time.monotonic() + timeout_s
        while (first := await taken()) <= 0:
            if time.monotonic() > deadline:
                raise RuntimeError("the worker took no record")
            await asyncio.sleep(0.1)
        started = time.perf_counter()
        units = backlog.records
        if counter == "pacing_events_in_total" and per_record > 1 and first > backlog.records:
            units = backlog.events  # no record counter, and the event counter counts batch items
        last, last_change = first, time.monotonic()
        while last < units:
            await asyncio.sleep(0.1)
            now = await taken()
            if now > last:
                last, last_change = now, time.monotonic()
            elif time.monotonic() - last_change > 30 or time.monotonic() > deadline:
                drain.note = f"stalled at {last:,.0f} of {units:,}"
                break
        seconds = time.perf_counter() - started
        done = (last - first) / units  # the share of the backlog taken while the clock ran
        drain.records = int(done * backlog.records)
        drain.events = int(done * backlog.events)
        drain.seconds = seconds
        worker = pipeline.settings.worker  # the last tick's and checkpoint's output
        settle_s = max(float(worker.decide_interval_s), float(getattr(worker, "checkpoint_interval_s", 0)))
        await asyncio.sleep(2.5 * settle_s)
        metrics = await scrape_all(port)
        drain.rejected = int(metrics.get("pacing_events_rejected_total", 0.0))
        per_100k = 100_000 / backlog.events
        drain.changelog = metrics.get("pacing_flush_targets_sum", 0.0) * per_100k
        drain.decisions = metrics.get("pacing_decisions_emitted_total", 0.0) * per_100k
        if counter == "pacing_events_in_total" and per_record > 1 and units == backlog.records:
            drain.note = drain.note or "no record counter: timed on pacing_events_in_total as records"
        if drain.rejected:
            drain.note = f"{drain.note}; " if drain.note else ""
            drain.note += f"{drain.rejected:,} rejected (DLQ): a rate of refusals"
        if drain.note:
            drain.note = f"r{round_no}: {drain.note}"
    finally:
        child.terminate()
        try:
            child.wait(15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    return drain


async def drain_child(backlog: Backlog, contender: str, round_no: int, timeout_s: float) -> Drain:
    """A contender module as a child process; its one JSON line says what it drained and how fast."""
    module, extra = {
        "quix": ("quix_app", []),
        "faust-count": ("faust_bare", []),
        "faust-decode": ("faust_bare", ["--decode"]),
        "getmany": ("getmany", []),
    }[contender]
    group = f"{backlog.pipeline.prefix}.{contender}-{round_no}-{uuid.uuid4().hex[:6]}"
    state_dir = backlog.pipeline.tmp / group
    log_path = backlog.pipeline.tmp / f"{group}.log"
    args = [sys.executable, "-m", f"tests.benchmarks.contenders.{module}", "--bootstrap", backlog.pipeline.bootstrap,
            "--topic", backlog.pipeline.topics.stats, "--group", group, "--records", str(backlog.records),
            "--format", backlog.fmt, "--partitions", str(PARTITIONS), "--state-dir", str(state_dir), *extra]
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(*args, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=log,
                                                    stdin=asyncio.subprocess.DEVNULL, preexec_fn=die_with_parent)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return Drain(contender, round_no, note=f"timed out after {timeout_s:.0f}s (log: {log_path})")
    for line in out.decode(errors="replace").splitlines():
        start = line.find('{"contender"')
        if start >= 0:
            report = json.loads(line[start:])
            events = report["events"]
            if contender == "faust-count":  # decodes nothing: its records stand for the events they hold
                events = report["records"] * backlog.events // backlog.records
            return Drain(contender, round_no, events=events, records=report["records"],
                         seconds=report["seconds"], rejected=report["rejected"])
    tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-5:])
    return Drain(contender, round_no, note=f"exit {proc.returncode}, no report: {tail}")


async def run_drains(backlogs: Sequence[Backlog], contenders: Sequence[str], rounds: int, timeout_s: float) -> Results:
    results = Results()
    for round_no in range(1, rounds + 1):
        order = list(contenders[round_no - 1:]) + list(contenders[:round_no - 1])  # rotated: nobody always first
        for backlog in backlogs:
            for contender in order:
                started = time.monotonic()
                if contender in WORKERS:
                    drain = await drain_worker(backlog, round_no, timeout_s, contender)
                else:
                    drain = await drain_child(backlog, contender, round_no, timeout_s)
                results.add(backlog, drain)
                print(f"  round {round_no} {backlog.label:>12} {contender:<13} {drain.rate:>10,.0f} events/s"
                      f"  ({drain.events:,} events in {drain.seconds:.2f}s; {time.monotonic() - started:.0f}s with "
                      f"start-up){'  ' + drain.note if drain.note else ''}", flush=True)
    return results


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if a > 0 and b > 0 else "-"


def drain_table(backlogs: Sequence[Backlog], contenders: Sequence[str], results: Results, rounds: int) -> list[str]:
    lines = []
    head = f"{'records/targets':<16} {'contender':<13} | {'median':>9} | " + " | ".join(
        f"{'round ' + str(r):>9}" for r in range(1, rounds + 1)) + " | rejected | note"
    lines += [head, "-" * len(head)]
    for backlog in backlogs:
        for contender in contenders:
            drains = sorted(results.of(backlog.label, contender), key=lambda d: d.round)
            rates = [d.rate for d in drains if d.rate > 0]
            notes = "; ".join(sorted({d.note for d in drains if d.note}))
            lines.append(f"{backlog.label:<16} {contender:<13} | {_median(rates):>9,.0f} | "
                         + " | ".join(f"{d.rate:>9,.0f}" for d in drains)
                         + f" | {max((d.rejected for d in drains), default=0):>8,} | {notes}")
    lines.append("")
    lines.append("per-round ratios (worker / other):")
    pairs = [c for c in contenders if c != "worker"]
    head = f"{'records/targets':<16} {'ratio':<28} | " + " | ".join(
        f"{'round ' + str(r):>8}" for r in range(1, rounds + 1)) + " | median"
    lines += [head, "-" * len(head)]
    for backlog in backlogs:
        workers = {d.round: d.rate for d in results.of(backlog.label, "worker")}
        comparisons = [(f"worker / {c}", backlog.label, c) for c in pairs]
        if backlog.fmt == "batch":
            comparisons.append(("worker / quix on single", f"single/{backlog.targets:,}", "quix"))
        for name, label, contender in comparisons:
            if "worker" not in contenders or contender not in contenders:
                continue
            others = {d.round: d.rate for d in results.of(label, contender)}
            ratios = [_ratio(workers.get(r, 0.0), others.get(r, 0.0)) for r in range(1, rounds + 1)]
            numeric = [float(x) for x in ratios if x != "-"]
            lines.append(f"{backlog.label:<16} {name:<28} | " + " | ".join(f"{x:>8}" for x in ratios)
                         + f" | {_median(numeric):.2f}")
    lines += ["", "targets: single: worker >= 0.8x faust-count and >= 0.25x quix; batch: worker >= 1.0x quix on",
              "single and >= 0.35x quix on the same batched records (per round)."]
    return lines


def amplification_floor(backlog: Backlog) -> float:
    """Output records per 100,000 events that no worker can go below on ``backlog``: each target's
    state written once and its decision published once."""
    return 2 * backlog.targets * 100_000 / backlog.events


def amplification_table(backlogs: Sequence[Backlog], results: Results) -> list[str]:
    lines = [f"{'records/targets':<16} | {'changelog':>10} | {'decisions':>10} | {'total':>10} | {'floor':>8} | "
             "per 100,000 events (worker, median of rounds)", "-" * 100]
    for backlog in backlogs:
        drains = [d for d in results.of(backlog.label, "worker") if d.changelog is not None]
        if not drains:
            continue
        changelog = _median([d.changelog or 0.0 for d in drains])
        decisions = _median([d.decisions or 0.0 for d in drains])
        total = changelog + decisions
        lines.append(f"{backlog.label:<16} | {changelog:>10,.0f} | {decisions:>10,.0f} | {total:>10,.0f} | "
                     f"{amplification_floor(backlog):>8,.0f} |")
    lines += ["target: at 2,000 targets <= 5,000 output records (changelog + decisions) per 100,000 events.",
              "floor: one changelog record and one decision per target of the backlog, normalised like the rest",
              "(a backlog of fewer events per target has a higher floor)."]
    return lines


# -- the sink row -----------------------------------------------------------------------------


async def bench_sink(pipeline: Pipeline, targets: int, updates: int) -> float:
    settings = pipeline.settings
    records = []
    for i in range(targets * updates):
        state = TargetState(f"vq-{i % targets:05d}")
        state.apply("ready_agents", float(i % 9), 1)
        record = decision_record("acme", "bench", state, settings.targets, int(time.time() * 1000))
        records.append((state.target_id.encode(), encode_decision_record(record)))  # as a node publishes it
    before = len(pipeline.emulator.targets)
    await pipeline.start_sink(PACING_SINK__BATCH_MAX_ENTITIES="2000")
    started = time.perf_counter()
    await produce_all(pipeline.bootstrap, pipeline.topics.actiontargets, records)
    await eventually(lambda: len(pipeline.emulator.targets) >= before + targets, timeout_s=600, interval_s=0.05,
                     message="sink delivered every target")
    return len(records) / (time.perf_counter() - started)


# -- main -------------------------------------------------------------------------------------


def _print_table(rows: list[tuple[str, str, str]]) -> None:
    width = max(len(r[0]) for r in rows)
    print(f"\n{'job':<{width}} | {'rate':>10} | unit")
    print(f"{'-' * width}-+-{'-' * 10}-+------------")
    for job, rate, unit in rows:
        print(f"{job:<{width}} | {rate:>10} | {unit}")


async def main(bootstrap: str, args: argparse.Namespace) -> None:
    from tests.benchmarks import sustained

    began = time.monotonic()
    contenders = [c for c in CONTENDERS if c in args.contenders]
    rows = [("codec: decode + validate Avro stat events",
             f"{bench_codec([v for _, v in stat_payloads(args.events, 2_000)]):,.0f}", "events/s")]
    with tempfile.TemporaryDirectory(prefix="pacing-bench-") as tmp_name:
        tmp = Path(tmp_name)
        emulator = JourneyEmulator(max_recorded_bodies=0)
        await emulator.start()
        backlogs: list[Backlog] = []
        results = Results()
        try:
            if args.rounds > 0 and contenders:
                for fmt in args.formats:
                    for targets in args.targets:
                        events = args.events if fmt == "single" else args.batch_events
                        backlogs.append(await build_backlog(bootstrap, emulator, tmp, fmt, targets, events))
                print(f"backlogs produced ({time.monotonic() - began:.0f}s): "
                      + ", ".join(f"{b.label} = {b.records:,} records, {b.events:,} events" for b in backlogs),
                      flush=True)
                results = await run_drains(backlogs, contenders, args.rounds, args.timeout)
            sink_pipeline = Pipeline(bootstrap, emulator, tmp, **WORKER_ENV)
            try:
                rate = await bench_sink(sink_pipeline, 2_000, 3)
                rows.append(("sink: 6,000 decisions for 2,000 targets (produce + deliver)", f"{rate:,.0f}",
                             "decisions/s"))
            finally:
                sink_pipeline.stop()
            from tests.benchmarks import change_latency

            latency_lines = await change_latency.run(bootstrap, emulator, tmp)
            sustained_lines: list[str] = []
            if args.sustained_s > 0:
                for fmt in args.sustained_formats:
                    print(f"sustained run: {fmt} records, {args.sustained_rate:,} events/s for {args.sustained_s:.0f}s "
                          f"over {args.sustained_targets:,} targets ...", flush=True)
                    sustained_lines += await sustained.run(bootstrap, emulator, tmp, fmt=fmt, rate=args.sustained_rate,
                                                           duration_s=args.sustained_s, targets=args.sustained_targets,
                                                           worker_env=WORKER_ENV)
            api_lines: list[str] = []
            if args.api_s > 0:
                from tests.benchmarks import api_load

                print(f"api run: 10,000 targets, {args.api_s:.0f}s per row ...", flush=True)
                api_lines = await api_load.run(bootstrap, emulator, tmp, seconds=args.api_s, worker_env=WORKER_ENV)
        finally:
            for backlog in backlogs:
                backlog.pipeline.stop()
            await emulator.stop()
    _print_table(rows)
    if backlogs:
        print(f"\ndrain: events/s, first record to last, {args.rounds} interleaved round(s), 12 partitions, "
              f"one backlog per format/targets read by every contender")
        print("\n".join(drain_table(backlogs, contenders, results, args.rounds)))
        if "worker" in contenders:
            print("\noutput amplification")
            print("\n".join(amplification_table(backlogs, results)))
    print("\n".join(["", *latency_lines]))
    if sustained_lines:
        print("\n".join(["", *sustained_lines]))
    if api_lines:
        print("\n".join(["", *api_lines]))
    print(f"\nbenchmark runtime: {time.monotonic() - began:.0f}s")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="a small run: 20,000 events, 1 round, a 20 s sustained run (other options still apply)")
    parser.add_argument("--events", type=int, default=None, help="events per single-event backlog (default 40,000)")
    parser.add_argument("--batch-events", type=int, default=None,
                        help="events per StatBatch backlog (default 130,000 = 10,000 records of 13)")
    parser.add_argument("--targets", type=int, nargs="+", default=[200, 2_000])
    parser.add_argument("--formats", nargs="+", choices=("single", "batch"), default=["single", "batch"])
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 3; 0 = no drain table)")
    parser.add_argument("--contenders", nargs="+", choices=CONTENDERS, default=list(DEFAULT_CONTENDERS),
                        help=f"default: {' '.join(DEFAULT_CONTENDERS)} (faust-decode doubles Faust's share of the run)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds one drain may take, start-up included")
    parser.add_argument("--sustained-s", type=float, default=None,
                        help="sustained run's duration (default 60; 0 = none)")
    parser.add_argument("--sustained-rate", type=int, default=10_000, help="sustained run's events/s")
    parser.add_argument("--sustained-targets", type=int, default=10_000)
    parser.add_argument("--sustained-formats", nargs="+", choices=("single", "batch"), default=["batch", "single"])
    parser.add_argument("--api-s", type=float, default=None,
                        help="each row of the API run (tests/benchmarks/api_load.py; default 20, 0 = none)")
    args = parser.parse_args(argv)
    quick = args.quick
    args.events = args.events or (20_000 if quick else 40_000)
    args.batch_events = args.batch_events or (52_000 if quick else 130_000)
    args.rounds = args.rounds if args.rounds is not None else (1 if quick else 3)
    args.sustained_s = args.sustained_s if args.sustained_s is not None else (20.0 if quick else 60.0)
    args.api_s = args.api_s if args.api_s is not None else (10.0 if quick else 20.0)
    return args


if __name__ == "__main__":
    arguments = parse_args()
    # The harness (producers' bookkeeping, the emulator, the latency tracker) shares the machine's
    # two cores with the worker: the services' collector settings keep its own collections from
    # taking CPU the worker would otherwise have (streams/runtime/collector.py).
    tune_for_long_running_service()
    run_on_broker(lambda bootstrap: main(bootstrap, arguments))
