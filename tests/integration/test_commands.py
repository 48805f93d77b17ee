"""The commands a person runs: `pacing run` end to end, and the broker stopping cleanly."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
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


def test_pacing_run_delivers_decisions_and_stops_everything(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "infra.cli", "run", "--duration", "25", "--targets", "6"],
        cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    time.sleep(8)
    started = _descendants(process.pid)
    output, _ = process.communicate(timeout=90)
    assert process.returncode == 0, output
    lines = [line for line in output.splitlines() if "events in" in line]
    assert lines, output
    last = lines[-1]
    assert re.search(r"endpoint holds\s+6 targets", last), last
    assert int(re.search(r"bulk ok\s+(\d+)", last).group(1)) > 0
    assert int(re.search(r"events in\s+([\d,]+)", last).group(1).replace(",", "")) > 0
    assert "stopped." in output
    assert len(started) >= 5  # broker, emulator, worker, sink, feed
    time.sleep(0.5)
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
