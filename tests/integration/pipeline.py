"""Test harness for the real pipeline: worker and sink as child processes, the emulator in-process.

Each test gets its own topic prefix, so tests never see each other's records on the shared
session broker.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from infra.broker import die_with_parent, free_port
from infra.emulator import JourneyEmulator
from streams.runtime.compacted_topic import read_to_the_end
from streams.runtime.config import Settings, load_settings
from streams.runtime.topics import TopicNames, ensure_topics

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]


async def eventually(check: Callable[[], Awaitable[T] | T], timeout_s: float = 30.0, interval_s: float = 0.2,
                     message: str = "condition") -> T:
    """Poll ``check`` until it returns something truthy; fail with ``message`` after the timeout."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {message}; last value: {last!r}")


async def read_topic(bootstrap: str, topic: str, timeout_s: float = 2.0) -> list[Any]:
    """Every record currently on ``topic``: read from the beginning, no group.

    Reading stops once every partition is read up to the high watermark its last fetch reported
    (the fetch's, not ListOffsets': Tansu under-reports the latter, see
    :mod:`streams.dev_broker.end_offsets`), or after ``timeout_s`` -- a topic that does not exist, or
    whose last offsets are gone (compaction), is read for the whole ``timeout_s``.
    """
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                                enable_auto_commit=False, fetch_max_wait_ms=50)
    await consumer.start()
    records: list[Any] = []
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for part in (await consumer.getmany(timeout_ms=100)).values():
                records.extend(part)
            if await read_to_the_end(consumer):
                break
    finally:
        await consumer.stop()
    return records




def stat_records(target_id: str, ready: int, logged_in: int = 10, tenant: str = "acme") -> list[tuple[bytes, bytes]]:
    """Keyed Avro stat events of one target, now: logged-in, ready and busy agents."""
    from schemas import StatEvent, encode_stat_event

    now = int(time.time() * 1000)
    values = {"logged_in_agents": logged_in, "ready_agents": ready, "busy_agents": logged_in - ready}
    return [(target_id.encode(), encode_stat_event(StatEvent(
        tenant=tenant, target_id=target_id, statistic=name, value=value, timestamp=now, source="test")))
        for name, value in values.items()]


class Pipeline:
    """One isolated deployment on the shared broker: settings, env and child processes."""

    def __init__(self, bootstrap: str, emulator: JourneyEmulator, tmp: Path, **env: str):
        self.prefix = f"t{uuid.uuid4().hex[:10]}"
        self.bootstrap = bootstrap
        self.emulator = emulator
        self.tmp = tmp
        self.env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "PACING_TENANT": "acme",
            "PACING_KAFKA__TOPIC_PREFIX": self.prefix,
            # The sink's group of this deployment alone: another test's sink (killed, or running at the
            # same time on a shared broker) never joins it, so no rebalance waits for a stranger.
            "PACING_SINK__GROUP_ID": f"{self.prefix}.sink",
            "PACING_KAFKA__STATS_PARTITIONS": "4",
            "PACING_BASE_AUTH_URL": emulator.base_auth_url,
            "PACING_BASE_SERVICE_URL": emulator.base_service_url,
            "PACING_WORKER__DATA_DIR": str(tmp / "worker"),
            "PACING_WORKER__BATCH_WITHIN_S": "0.05",
            "PACING_SINK__LINGER_MS": "100",
            "PACING_SINK__RETRY_INITIAL_BACKOFF_S": "0.2",
            "PACING_SINK__RETRY_MAX_BACKOFF_S": "1",
            "PACING_SINK__COMMIT_INTERVAL_S": "0.5",
            **env,
        }
        self.env.pop("PACING_CONFIG", None)
        self.children: list[subprocess.Popen[bytes]] = []
        self.worker_ports: list[int] = []
        self.sink_ports: list[int] = []
        self._topics_ensured = False

    @property
    def settings(self) -> Settings:
        """The settings the children see (read from the same environment)."""
        saved = dict(os.environ)
        try:
            os.environ.update({k: v for k, v in self.env.items() if k.startswith(("PACING_", "KAFKA_"))})
            return load_settings()
        finally:
            os.environ.clear()
            os.environ.update(saved)

    @property
    def topics(self) -> TopicNames:
        """This deployment's topic names."""
        return TopicNames.for_prefix(self.prefix)

    def spawn(self, name: str, *args: str, module: str = "infra.cli",
              wrap: Callable[[list[str]], list[str]] | None = None, **env: str) -> subprocess.Popen[bytes]:
        """Start ``pacing <args>`` (or another ``module``) as a child; its output goes to ``<tmp>/<name>.log``.

        ``wrap`` turns the command line into the one run (e.g. inside a network namespace).
        """
        log = open(self.tmp / f"{name}.log", "ab")
        argv = [sys.executable, "-m", module, *args]
        # Each child its own REST API port: two workers of one test must not both ask for 6080.
        env = {"PACING_API__PORT": str(free_port()), "PACING_API__HOST": "127.0.0.1", **env}
        child = subprocess.Popen(
            wrap(argv) if wrap else argv, cwd=ROOT, env={**self.env, **env},
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent,
        )
        log.close()
        self.children.append(child)
        return child

    async def start_worker(self, faulty: bool = False, **env: str) -> subprocess.Popen[bytes]:
        """A pacing node, returned once it owns partitions (its /readyz answers 200).

        ``faulty`` runs it with the fault injection of :mod:`tests.integration.faulty_worker`.
        """
        port = free_port()
        self.worker_ports.append(port)
        if faulty:
            child = self.spawn("worker", module="tests.integration.faulty_worker", PACING_WORKER__WEB_PORT=str(port),
                               **env)
        else:
            child = self.spawn("worker", "worker", PACING_WORKER__WEB_PORT=str(port), **env)
        await self._wait_ready(child, port, "worker")
        return child

    async def metric(self, port: int, name: str) -> float:
        """The sum of a Prometheus metric's samples on a child's /metrics."""
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/metrics") as response:
            text = await response.text()
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith((f"{name} ", f"{name}{{")))

    async def start_sink(self, **env: str) -> subprocess.Popen[bytes]:
        """A sink, returned once it owns partitions."""
        port = free_port()
        self.sink_ports.append(port)
        child = self.spawn("sink", "sink", PACING_SINK__WEB_PORT=str(port), **env)
        await self._wait_ready(child, port, "sink")
        return child

    async def start_worker_and_sink(self, worker: dict[str, str] | None = None, sink: dict[str, str] | None = None
                                    ) -> tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]]:
        """A worker and a sink started side by side, as ``pacing run`` starts them; returned once both
        are ready. Their consumer groups join at the same time (each join waits about 3 s on Tansu)."""
        started = await asyncio.gather(self.start_worker(**(worker or {})), self.start_sink(**(sink or {})))
        return started[0], started[1]

    async def _wait_ready(self, child: subprocess.Popen[bytes], port: int, name: str) -> None:
        async def ready() -> bool:
            if child.poll() is not None:
                raise AssertionError(f"{name} exited with {child.returncode}: {self.log_tail(name)}")
            return await self.ready(port)

        await eventually(ready, timeout_s=45, message=f"{name} ready")

    async def ready(self, port: int) -> bool:
        """Whether the child serving ``port`` answers /readyz with 200."""
        try:
            async with aiohttp.ClientSession() as session, session.get(
                f"http://127.0.0.1:{port}/readyz", timeout=aiohttp.ClientTimeout(total=1)
            ) as response:
                return response.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    def log_tail(self, name: str, lines: int = 30) -> str:
        """The end of a child's log, for failure messages."""
        path = self.tmp / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def stop(self) -> None:
        """Terminate every child (SIGTERM, then SIGKILL)."""
        for child in self.children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in self.children:
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()

    async def produce(self, records: list[tuple[bytes | None, bytes]], topic: str | None = None) -> None:
        """Send raw records with a plain aiokafka producer (Kafka's murmur2 partitioner), all at once.

        The deployment's topics are created first, as a worker's start-up would: a cluster that
        does not auto-create topics (Apache Kafka in ``make test-kafka``, most production ones)
        refuses records for a topic that does not exist yet.
        """
        if not self._topics_ensured and (topic is None or topic.startswith(f"{self.prefix}.")):
            await ensure_topics(self.settings)
            self._topics_ensured = True
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=5)
        await producer.start()
        try:
            sent = [await producer.send(topic or self.topics.stats, value, key=key) for key, value in records]
            await asyncio.gather(*sent)
        finally:
            await producer.stop()

    async def read_all(self, topic: str, timeout_s: float = 2.0) -> list[Any]:
        """Every record currently on ``topic`` (read from the beginning, no group)."""
        return await read_topic(self.bootstrap, topic, timeout_s)


def user_data(entity: Any) -> dict[str, str]:
    """An emulator-stored entity's userData as a dict."""
    return {item.key: item.value for item in entity.userData}
