"""The `pacing` command's options as a person types them, run as the real console script.

Options go before or after the subcommand; `--bootstrap-servers` beats the environment, which
beats the configuration file; an option that is wrong or does not apply is an error naming it.
Where a command would connect to Kafka, the addresses are closed loopback ports: the one-line
"cannot reach Kafka at …" error shows which address won, without a broker.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def pacing_command() -> list[str]:
    """The installed ``pacing`` console script of this interpreter's environment (else ``python -m infra.cli``)."""
    script = Path(sys.executable).parent / "pacing"
    if script.exists():
        return [str(script)]
    found = shutil.which("pacing")
    return [found] if found else [sys.executable, "-m", "infra.cli"]


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any PACING_/KAFKA_ setting of the caller, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PACING_", "KAFKA_"))}
    env["PYTHONPATH"] = str(ROOT)
    return {**env, **extra}


def run_pacing(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*pacing_command(), *args], env=env or clean_env(), cwd=ROOT, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout)


def closed_address() -> str:
    """``127.0.0.1:<port>`` where nothing listens (bound once, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


def unreachable_line(command: str, address: str) -> str:
    return f"pacing {command}: cannot reach Kafka at {address} (kafka.bootstrap_servers): connection refused"


def config_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "pacing.toml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("placement", ["before", "after"])
def test_config_and_bootstrap_servers_work_before_or_after_the_subcommand(placement: str, tmp_path: Path) -> None:
    in_file = closed_address()
    config = config_file(tmp_path, f'[kafka]\nbootstrap_servers = "{in_file}"\n')
    options = ["--config", config]
    args = [*options, "worker"] if placement == "before" else ["worker", *options]
    result = run_pacing(*args)
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip() == unreachable_line("worker", in_file)

    typed = closed_address()
    options = ["--bootstrap-servers", typed]
    args = [*options, "alarms"] if placement == "before" else ["alarms", *options]
    result = run_pacing(*args)
    assert result.stderr.strip() == unreachable_line("alarms", typed)


@pytest.mark.parametrize("given", ["command line", "PACING_ environment", "KAFKA_ environment", "file"])
def test_command_line_beats_environment_beats_file(given: str, tmp_path: Path) -> None:
    addresses = {level: closed_address() for level in ("command line", "PACING_ environment", "KAFKA_ environment",
                                                        "file")}
    config = config_file(tmp_path, f'[kafka]\nbootstrap_servers = "{addresses["file"]}"\n')
    levels = list(addresses)
    present = levels[levels.index(given):]  # the level under test and every lower one
    env = clean_env()
    if "PACING_ environment" in present:
        env["PACING_KAFKA__BOOTSTRAP_SERVERS"] = addresses["PACING_ environment"]
    if "KAFKA_ environment" in present:
        env["KAFKA_BOOTSTRAP_SERVERS"] = addresses["KAFKA_ environment"]
    args = ["produce", "--config", config]
    if "command line" in present:
        args += ["--bootstrap-servers", addresses["command line"]]
    result = run_pacing(*args, env=env)
    assert result.returncode == 1
    assert result.stderr.strip() == unreachable_line("produce", addresses[given])


def test_a_misspelt_reporter_stops_the_command_naming_it(tmp_path: Path) -> None:
    config = config_file(tmp_path, '[metrics.reporter.lgo]\nenabled = true\nlogFrequency = "1min"\n')
    result = run_pacing("sink", "--config", config, "--bootstrap-servers", closed_address())
    assert result.returncode == 2
    assert result.stderr.strip() == ("pacing sink: invalid configuration: option 'metrics.reporter' has an unknown "
                                     "reporter 'lgo' (reporters: log, console, messageServer)")


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["worker", "--bootstrap-server", "127.0.0.1:9"], "unrecognized arguments: --bootstrap-server 127.0.0.1:9"),
        (["sink", "--confg", "x.toml"], "unrecognized arguments: --confg x.toml"),
        (["emulator", "--bootstrap-servers", "127.0.0.1:9"],
         "--bootstrap-servers does not apply to emulator: it uses no Kafka"),
        (["--bootstrap-servers", "127.0.0.1:9", "simulate"],
         "--bootstrap-servers does not apply to simulate: it uses no Kafka"),
        (["simulate", "--config", "x.toml"], "--config does not apply to simulate: it reads no configuration"),
        (["run", "--bootstrap-servers", "127.0.0.1:9"],
         "--bootstrap-servers does not apply to run: it starts its own embedded broker"),
        (["worker", "--log-level", "loud"], "--log-level loud: not a level"),
    ],
    ids=["misspelt", "abbreviated-wrongly", "emulator-kafka", "simulate-kafka", "simulate-config", "run-kafka",
         "level"],
)
def test_a_wrong_option_is_an_error_naming_it(args: list[str], error: str) -> None:
    result = run_pacing(*args)
    command = next(a for a in args if not a.startswith("-") and ":" not in a and not a.endswith(".toml"))
    assert result.returncode == 2
    assert f"pacing {command}: error: {error}" in result.stderr.splitlines()[-1], result.stderr
    assert "Traceback" not in result.stderr


def test_simulate_runs_with_log_level_before_the_subcommand() -> None:
    result = run_pacing("--log-level", "WARNING", "simulate", "--agents", "2", "--hours", "0.05", "--warmup", "60")
    assert result.returncode == 0, result.stderr
    assert "AUTO -> SUPER_PROGRESSIVE" in result.stdout


@pytest.mark.parametrize("source", ["option", "environment"])
def test_broker_listens_where_the_clients_connect(source: str) -> None:
    address = closed_address()
    args, env = ["broker"], clean_env()
    if source == "option":
        args = ["--bootstrap-servers", address, *args]
    else:
        env["PACING_KAFKA__BOOTSTRAP_SERVERS"] = address
    process = subprocess.Popen([*pacing_command(), *args], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        ready = ""
        for _ in range(20):  # log lines come first
            ready = process.stdout.readline()
            if ready.startswith("embedded broker ready:") or not ready:
                break
        assert ready.strip() == f"embedded broker ready: KAFKA_BOOTSTRAP_SERVERS={address}"
        host, _, port = address.rpartition(":")
        socket.create_connection((host, int(port)), timeout=5).close()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(15)
