"""Every long-running ``pacing`` command stops on SIGINT and on SIGTERM alike, with status 0.

A shell starts a background job (``cmd &``, ``nohup cmd &``) with SIGINT ignored, and its children
inherit that: a command that relied on Python's default Ctrl-C handling then ran on after a SIGINT,
and SIGTERM ended it without its clean-up. Here each command starts with SIGINT ignored, is let get
going (until its output shows it runs), and is then stopped with one signal.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import signal
import struct
import subprocess
import termios
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from infra.broker import die_with_parent, free_port
from schemas import encode_alarm
from schemas.models import Alarm, AlarmState
from streams.runtime.config import Settings, load_settings
from streams.runtime.kafka import client_options
from streams.runtime.topics import ensure_topics, topic_names
from tests.integration.test_cli_options import ROOT, clean_env, pacing_command

pytestmark = pytest.mark.integration

STOP_WITHIN_S = 15

#: Each command's arguments and the output that shows it is running (not still starting up).
#: ``alarms`` prints an alarm the test raised first; ``feed`` has no output of its own, so the test
#: reads its first stat event from the topic instead (None).
COMMANDS: dict[str, tuple[list[str], str | None]] = {
    "alarms": (["alarms", "--from-beginning"], "RAISED"),
    "broker": (["broker", "--port", "0"], "embedded broker ready"),
    "emulator": (["emulator", "--port", "0", "--log-level", "INFO"], "Journey API emulator listening"),
    "feed": (["feed", "--interval", "0.2"], None),
    "run": (["run", "--targets", "1"], "events in"),
    "sink": (["sink", "--log-level", "INFO"], "sink posting to"),
    "top": (["top"], "pacing top"),
    "worker": (["worker"], "[^Worker]: Ready"),
}


def _as_from_a_background_job() -> None:
    """In the child before exec: SIGINT ignored, as a shell starts ``cmd &``; gone with the test."""
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class Command:
    """One ``pacing`` command started with SIGINT ignored; its output (stdout and stderr) kept as it comes.

    ``terminal`` runs it on a pseudo-terminal of 120x40 (``top`` draws with curses).
    """

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path, terminal: bool = False):
        self.output = bytearray()
        if terminal:
            master, slave = pty.openpty()
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
            env = {k: v for k, v in env.items() if k not in ("COLUMNS", "LINES")} | {"TERM": "xterm"}
            self.process = subprocess.Popen([*pacing_command(), *args], env=env, cwd=cwd, stdin=slave,
                                            stdout=slave, stderr=slave, preexec_fn=_as_from_a_background_job)
            os.close(slave)

            def read() -> bytes:
                try:
                    return os.read(master, 65536)
                except OSError:  # EIO: the terminal's last user is gone
                    return b""
            self._close: Callable[[], None] = lambda: os.close(master)
        else:
            self.process = subprocess.Popen([*pacing_command(), *args], env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                            preexec_fn=_as_from_a_background_job)
            stdout = self.process.stdout
            assert stdout is not None
            read, self._close = (lambda: stdout.read1(65536)), stdout.close
        self._reader = threading.Thread(target=self._drain, args=(read,), daemon=True)
        self._reader.start()

    def _drain(self, read: Callable[[], bytes]) -> None:
        while chunk := read():
            self.output += chunk

    def text(self) -> str:
        return self.output.decode(errors="replace")

    def wait_for(self, expected: str, timeout_s: float = 60) -> None:
        """Until ``expected`` appears in the output; fails if the command ends or the time runs out first."""
        deadline = time.monotonic() + timeout_s
        while expected not in self.text():
            assert self.process.poll() is None, f"exited {self.process.returncode} before {expected!r}:\n{self.text()}"
            assert time.monotonic() < deadline, f"no {expected!r} within {timeout_s} s:\n{self.text()}"
            time.sleep(0.1)

    def stop(self, sig: signal.Signals) -> int | None:
        """Send ``sig``; the exit status once the command has ended, None if it still runs after the wait."""
        self.process.send_signal(sig)
        try:
            return self.process.wait(STOP_WITHIN_S)
        except subprocess.TimeoutExpired:
            return None

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._reader.join(5)
        self._close()


async def _raise_alarm(settings: Settings) -> None:
    await ensure_topics(settings)
    producer = AIOKafkaProducer(acks="all", **client_options(settings))
    await producer.start()
    try:
        alarm = Alarm(name="TargetStale", state=AlarmState.RAISED, severity="major", tenant="demo", node="worker-1",
                      scope="vq-1", message="no statistics", timestamp=int(time.time() * 1000))
        await producer.send_and_wait(topic_names(settings).alarms, encode_alarm(alarm), key=b"TargetStale:vq-1")
    finally:
        await producer.stop()


async def _first_stat(settings: Settings, timeout_s: float = 60) -> None:
    await ensure_topics(settings)  # so that the consumer finds the topic, whichever of us creates it first
    consumer = AIOKafkaConsumer(topic_names(settings).stats, group_id=None, auto_offset_reset="earliest",
                                **client_options(settings))
    await consumer.start()
    try:
        await asyncio.wait_for(consumer.getone(), timeout_s)
    finally:
        await consumer.stop()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_long_running_command_stops_on_the_signal_with_sigint_ignored_by_its_parent(
        name: str, sig: signal.Signals, kafka_bootstrap: str, tmp_path: Path) -> None:
    args, running = COMMANDS[name]
    prefix = f"sig-{uuid.uuid4().hex[:8]}"
    env = clean_env(PACING_KAFKA__TOPIC_PREFIX=prefix, PACING_SINK__GROUP_ID=f"{prefix}-sink",
                    PACING_WORKER__DATA_DIR=str(tmp_path / "worker"), PACING_WORKER__WEB_PORT="0",
                    PACING_SINK__WEB_PORT="0", PACING_API__PORT=str(free_port()))  # the worker stops with its API
    if name != "run":  # `run` starts a broker of its own
        env["KAFKA_BOOTSTRAP_SERVERS"] = kafka_bootstrap
    settings = load_settings(kafka={"bootstrap_servers": kafka_bootstrap, "topic_prefix": prefix})
    if name == "alarms":
        asyncio.run(_raise_alarm(settings))
    command = Command(args, env, cwd=ROOT if name != "run" else tmp_path, terminal=name == "top")
    try:
        if running is None:
            asyncio.run(_first_stat(settings))
        else:
            command.wait_for(running)
        status = command.stop(sig)
        assert status is not None, f"pacing {name} still runs {STOP_WITHIN_S} s after {sig.name}:\n{command.text()}"
        assert status == 0, f"pacing {name} exited {status} on {sig.name}:\n{command.text()}"
    finally:
        command.close()
