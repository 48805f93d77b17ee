"""The worker's Pacing REST API, served by a process of its own (:class:`ApiProcess`).

Why a process, not a thread of the worker: in one process the API and the pacing loop share one
interpreter lock and one garbage collector. Measured on the API benchmark
(``python -m tests.benchmarks.api_load``, 10,000 targets, 10,000 events/s, 2026-12-07, load 7):
with the API in a thread, the pacing thread held the lock 43 % of the time (py-spy ``--gil``), and
the worker's collections over its pacing state stopped every thread for up to 60 ms (a young
collection) and 140 ms (a middle one) of CPU time (``gc.callbacks`` with ``time.thread_time``); a
1 ms sleep in the worker woke with p99 11-13 ms against 3 ms in an idle process beside it, and
``wrk`` measured p99 74-106 ms. A process of its own has its own lock and its own small heap, and
the operating system schedules it beside the pacing loop instead of behind it.

What the API needs from the worker is small, so the process reads the rest itself: the decisions
from ``pacing.actiontargets`` (as before) and the definitions from ``pacing.targets`` (its own
:class:`~streams.node.target_definitions.TargetDefinitions`), and it writes definitions with its
own producer (created at the first write). The worker's readiness reaches it over a pipe, sent
whenever it changes; the pipe also ends the API when the worker is gone, even killed (the process
sees the pipe close). Ports, health checks and shutdown are unchanged for operators: the worker
starts its API process, waits until it listens (start-up fails with the API's own error, e.g. a
port in use), and stops it when it stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import multiprocessing
import signal
import time
from collections.abc import Callable, Mapping
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from aiokafka import AIOKafkaProducer

from streams.api.server import run_api
from streams.node.target_definitions import TargetDefinitions
from streams.runtime.config import Settings
from streams.runtime.kafka import client_options, consumer_options
from streams.runtime.outbox import AIOKafkaTransport, Outbox
from streams.runtime.topics import topic_names

log = logging.getLogger(__name__)

#: How often the worker looks whether its readiness changed (a change is sent to the API at once).
READINESS_EVERY_S = 0.1
#: How long the worker waits for its API process to listen (it imports, then joins nothing: seconds).
START_TIMEOUT_S = 60.0
#: How long a stopping API process may take before it is killed.
STOP_TIMEOUT_S = 10.0
#: The wait before restarting an API process that ended unasked, doubled up to the maximum while
#: restarts keep failing or the process keeps ending sooner than that maximum after its start.
RESTART_DELAY_S = 1.0
RESTART_DELAY_MAX_S = 30.0
_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"  # the one `pacing` sets up (infra/cli.py)


class ApiProcess:
    """The worker's side of its API process: start it, tell it the worker's readiness, stop it."""

    def __init__(self, settings: Settings, ready: Callable[[], bool]):
        self.settings = settings
        self._ready = ready
        self._conn: Connection | None = None
        self._process: BaseProcess | None = None
        self._mirror: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        """The API process's id (None before it started)."""
        return None if self._process is None else self._process.pid

    async def start(self) -> None:
        """Start the API process; returns once it listens (raises what kept it from listening).

        From then on the worker mirrors its readiness to it and, should it end unasked (killed,
        crashed), starts it again with backoff: the worker goes on pacing meanwhile, and the load
        balancer's health check on the API port takes this worker out until the API is back.
        """
        await self._spawn()
        self._mirror = asyncio.create_task(self._supervise())

    async def _spawn(self) -> None:
        context = multiprocessing.get_context("spawn")  # a fork would copy the worker's threads' locks
        self._conn, child_end = context.Pipe()
        self._process = context.Process(target=serve_in_process, args=(self.settings, child_end),
                                        name="pacing-api", daemon=True)
        self._process.start()
        child_end.close()
        try:
            outcome = await asyncio.to_thread(self._first_message)
        except BaseException:
            await self._end_process()
            raise
        if isinstance(outcome, BaseException):
            await self._end_process()
            raise outcome

    def _first_message(self) -> object:
        assert self._conn is not None and self._process is not None
        if not self._conn.poll(START_TIMEOUT_S):
            raise TimeoutError(f"the API process did not listen within {START_TIMEOUT_S:.0f} s")
        try:
            return self._conn.recv()
        except EOFError:
            self._process.join(1)
            raise RuntimeError(f"the API process ended before it listened (exit code {self._process.exitcode})"
                               ) from None

    async def _supervise(self) -> None:
        delay = RESTART_DELAY_S
        while True:
            started = time.monotonic()
            await self._send_readiness()
            if time.monotonic() - started >= RESTART_DELAY_MAX_S:
                delay = RESTART_DELAY_S  # it had served a good while: this is not a crash loop
            log.error("the API process ended (exit code %s); starting it again in %.0f s",
                      self._process and self._process.exitcode, delay)
            await self._end_process()
            while True:
                await asyncio.sleep(delay)
                delay = min(delay * 2, RESTART_DELAY_MAX_S)
                try:
                    await self._spawn()
                except Exception as exc:
                    log.error("could not start the API process again (%s); next try in %.0f s", exc, delay)
                    continue
                log.info("the API process is serving again (pid %s)", self.pid)
                break

    async def _send_readiness(self) -> None:
        """Send the worker's readiness whenever it changes; returns when the API process has ended."""
        assert self._conn is not None and self._process is not None
        sent: bool | None = None
        while self._process.is_alive():
            ready = self._ready()
            if ready != sent:
                try:
                    self._conn.send(ready)
                except OSError:  # the API process is gone
                    return
                sent = ready
            await asyncio.sleep(READINESS_EVERY_S)

    async def stop(self) -> None:
        """Stop the API process (SIGTERM, then SIGKILL after :data:`STOP_TIMEOUT_S`); returns once it ended."""
        if self._mirror is not None:
            self._mirror.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._mirror
            self._mirror = None
        await self._end_process()

    async def _end_process(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        process = self._process
        if process is not None and process.is_alive():
            process.terminate()
            await asyncio.to_thread(process.join, STOP_TIMEOUT_S)
            if process.is_alive():
                process.kill()
                await asyncio.to_thread(process.join, 1)


async def start_api_process(settings: Settings, ready: Callable[[], bool]) -> ApiProcess:
    """Start the worker's API in a process of its own (see the module docstring); returns once it listens.

    ``ready`` is the worker's readiness (its ``/readyz`` on the API port also waits for the API's
    own reading of the decisions and definitions).
    """
    api = ApiProcess(settings, ready)
    await api.start()
    return api


def serve_in_process(settings: Settings, conn: Connection) -> None:
    """The API process's entry point: serve until SIGTERM or until the worker's end of the pipe closes.

    SIGINT is ignored: a Ctrl-C reaches the whole process group, and the worker stops its API itself
    once it has stopped pacing.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.INFO, format=_LOG_FORMAT)
    asyncio.run(_serve(settings, conn))


async def _serve(settings: Settings, conn: Connection) -> None:
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    worker_ready = False

    def on_message() -> None:
        nonlocal worker_ready
        try:
            while conn.poll():
                worker_ready = bool(conn.recv())
        except (EOFError, OSError):  # the worker is gone (stopped, or killed)
            loop.remove_reader(conn.fileno())
            stopping.set()

    loop.add_reader(conn.fileno(), on_message)
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    definitions = TargetDefinitions(consumer_options(settings), topic_names(settings).targets, settings.tenant)
    producer = _DefinitionProducer(client_options(settings), settings.worker.send_timeout_s)
    await definitions.start()
    try:
        await run_api(settings, definitions, producer.send, lambda: worker_ready and definitions.caught_up,
                      lambda: conn.send(None), stopping, read=_freeze_what_was_read)
    except OSError as exc:  # cannot listen: the worker stops, saying which option to change
        conn.send(OSError(exc.errno, exc.strerror or str(exc)))
    finally:
        await producer.stop()
        await definitions.stop()


def _freeze_what_was_read() -> None:
    """Once every decision was read: collect, then move what lives on (the directory's entries, the
    modules) out of the collector's reach, so that a full collection of the API process walks only
    what changed since (measured before: 44-69 ms of CPU per full collection at 10,000 targets)."""
    gc.collect()
    gc.freeze()


class _DefinitionProducer:
    """The API process's writes to ``pacing.targets``: one producer, started at the first write."""

    def __init__(self, options: Mapping[str, Any], send_timeout_s: float):
        self._options = options
        self._send_timeout_s = send_timeout_s
        self._producer: AIOKafkaProducer | None = None
        self._starting = asyncio.Lock()

    async def send(self, topic: str, key: bytes, value: bytes | None) -> None:
        """Write one record; return once Kafka acknowledged it (raises SendFailed if not)."""
        async with self._starting:
            if self._producer is None:
                producer = AIOKafkaProducer(acks="all", **self._options)
                try:
                    await producer.start()
                except BaseException:  # Kafka unreachable: this write fails (503), the next one tries again
                    await producer.stop()
                    raise
                self._producer = producer
        outbox = Outbox(AIOKafkaTransport(self._producer), self._send_timeout_s)
        await outbox.send(topic, key, value)
        await outbox.confirm()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
