"""The commands a person runs: `pacing run` end to end, the broker stopping cleanly, and one line
(no traceback) when Kafka cannot be reached."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PACING_", "KAFKA_"))}
    env["PYTHONPATH"] = str(ROOT)
    return env


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]


def _descendants(pid: int) -> set[int]:
    children: set[int] = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            child = int(stat.parent.name)
            children |= {child} | _descendants(child)
    return children


def _role(pid: int) -> str:
    """What a descendant of `pacing run` is: tansu, or the pacing subcommand it runs."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return "?"
    if "infra.cli" in argv and argv.index("infra.cli") + 1 < len(argv):
        return argv[argv.index("infra.cli") + 1]
    return "broker" if argv and Path(argv[0]).name.startswith("tansu") and "broker" in argv else "?"


def _wait_until(condition: Callable[[], bool], timeout_s: float, interval_s: float = 0.1) -> bool:
    """Poll ``condition`` until it holds or ``timeout_s`` passes; whether it held."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)
    return True


def test_pacing_run_delivers_decisions_and_stops_everything(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "infra.cli", "run", "--duration", "25", "--targets", "6"],
        cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    expected = {"broker", "emulator", "worker", "sink", "feed"}
    started: dict[int, str] = {}

    def all_started() -> bool:
        started.update({pid: _role(pid) for pid in _descendants(process.pid) if pid not in started})
        return expected <= set(started.values()) or process.poll() is not None

    _wait_until(all_started, timeout_s=60)
    output, _ = process.communicate(timeout=90)
    assert process.returncode == 0, output
    lines = [line for line in output.splitlines() if "events in" in line]
    assert lines, output
    last = lines[-1]
    assert re.search(r"endpoint holds\s+6 targets", last), last
    assert int(re.search(r"bulk ok\s+(\d+)", last).group(1)) > 0
    assert int(re.search(r"events in\s+([\d,]+)", last).group(1).replace(",", "")) > 0
    assert "stopped." in output
    assert re.search(r"^REST API http://127\.0\.0\.1:\d+ ", output, re.M), output  # where the worker's API listens
    assert expected <= set(started.values()), started
    # `run` has returned, so each of its children must already be gone or on its way out.
    _wait_until(lambda: not any(_alive(pid) for pid in started), timeout_s=5)
    assert not [pid for pid in started if _alive(pid)]
    assert (tmp_path / "var/run/worker.log").exists()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_broker_command_leaves_no_orphan(sig: signal.Signals) -> None:
    process = subprocess.Popen([sys.executable, "-m", "infra.cli", "broker", "--port", "0"], env=_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert "embedded broker ready" in process.stdout.readline() + process.stdout.readline()
    brokers = _descendants(process.pid)
    assert brokers
    process.send_signal(sig)
    process.wait(15)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(pid) for pid in brokers):
        time.sleep(0.1)
    assert not [pid for pid in brokers if _alive(pid)]


def _closed_port() -> int:
    """A loopback port nothing listens on (bound once, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("command", ["worker", "sink", "produce", "feed", "alarms"])
def test_unreachable_kafka_is_one_line_naming_the_address(command: str) -> None:
    address = f"127.0.0.1:{_closed_port()}"
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "infra.cli", command, "--bootstrap-servers", address],
        env=_env(), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
    )
    elapsed = time.monotonic() - started
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert lines[0] == (f"pacing {command}: cannot reach Kafka at {address} (kafka.bootstrap_servers): "
                        "connection refused")
    assert elapsed < 15, elapsed


def test_silent_kafka_address_gives_up_after_the_connect_timeout() -> None:
    # Accepts TCP connections and never answers: what a firewall or a hung broker looks like.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "infra.cli", "worker", "--bootstrap-servers", address],
            env={**_env(), "PACING_KAFKA__CONNECT_TIMEOUT_S": "2"}, stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=60,
        )
        elapsed = time.monotonic() - started
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0
    assert lines == [f"pacing worker: cannot reach Kafka at {address} (kafka.bootstrap_servers): "
                     "no answer within 2 s (kafka.connect_timeout_s)"], result.stderr
    assert 2 <= elapsed < 10, elapsed
