"""The worker's API process (streams/node/api_process.py): served beside the worker, not inside it.

Real processes and sockets, no broker: the API listens and answers ``/healthz`` before it has read
anything (``/readyz`` and the readiness pipe are covered with a broker in
tests/integration/test_api_process.py).
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from infra.broker import free_port
from streams.node.api_process import start_api_process
from streams.runtime.config import Settings, load_settings
from tests.unit.api.api_doubles import TOKENS, WRITE_TOKEN

ROOT = Path(__file__).resolve().parents[3]
HOLD_S = 3.0


def _settings(port: int | None = None) -> Settings:
    return load_settings(api={"host": "127.0.0.1", "port": port or free_port()})


def _hold_the_interpreter(seconds: float) -> None:
    """What a long C call of the pacing loop does: keep this process's interpreter lock, here for ``seconds``."""
    ctypes.PyDLL(None).usleep(int(seconds * 1_000_000))  # a PyDLL call does not release the lock


async def _status(url: str) -> int:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status


_CLIENT = """
import sys, time, urllib.request
print("ready", flush=True)
time.sleep(0.5)  # by then the worker holds its interpreter
asked = time.time()
with urllib.request.urlopen(sys.argv[1], timeout=30) as response:
    print(response.status, asked, time.time(), flush=True)
"""


async def test_the_api_answers_while_the_workers_interpreter_is_held() -> None:
    settings = _settings()
    api = await start_api_process(settings, lambda: True)
    try:
        url = f"http://127.0.0.1:{settings.api.port}/healthz"
        assert await _status(url) == 200
        # Blocking on purpose: this process (the worker) is busy while a client asks its API process.
        client = subprocess.Popen([sys.executable, "-c", _CLIENT, url], stdout=subprocess.PIPE, text=True)  # noqa: ASYNC220
        assert client.stdout is not None and client.stdout.readline().strip() == "ready"
        held_from = time.time()
        _hold_the_interpreter(HOLD_S)
        held_until = time.time()
        status, asked, answered = client.communicate(timeout=30)[0].split()
        assert status == "200"
        assert held_from < float(asked), "the client asked before the hold: the test proves nothing"
        # Answered during the hold: an API in a thread of this process would answer only after it.
        assert float(answered) < held_until, f"answered {float(answered) - held_until:.2f} s after the hold"
    finally:
        await api.stop()


async def test_stop_ends_the_api_process_and_frees_its_port() -> None:
    settings = _settings()
    api = await start_api_process(settings, lambda: True)
    pid = api.pid
    assert pid is not None and pid != os.getpid()
    await api.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with socket.socket() as again:
        again.bind(("127.0.0.1", settings.api.port))


async def test_an_api_process_that_ends_unasked_is_started_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("streams.node.api_process.RESTART_DELAY_S", 0.2)
    settings = _settings()
    api = await start_api_process(settings, lambda: True)
    try:
        first = api.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)  # a crash, an OOM kill
        url = f"http://127.0.0.1:{settings.api.port}/healthz"
        deadline = time.monotonic() + 60
        while api.pid == first or not await _answers(url):
            assert time.monotonic() < deadline, "the API process was not started again within 60 s"
            await asyncio.sleep(0.2)
        assert api.pid != first
    finally:
        await api.stop()


async def _answers(url: str) -> bool:
    try:
        return await _status(url) == 200
    except aiohttp.ClientError:
        return False


async def test_a_port_in_use_stops_the_start_naming_the_option() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=rf"api.host/api.port: cannot listen on 127.0.0.1:{port}"):
            await start_api_process(_settings(port), lambda: True)


_WORKER = """
import asyncio, sys
from streams.node.api_process import start_api_process
from streams.runtime.config import load_settings

async def main():
    api = await start_api_process(load_settings(api={"host": "127.0.0.1", "port": int(sys.argv[1])}), lambda: True)
    print(api.pid, flush=True)
    await asyncio.sleep(600)

asyncio.run(main())
"""


def test_a_killed_worker_takes_its_api_process_with_it() -> None:
    port = free_port()
    worker = subprocess.Popen([sys.executable, "-c", _WORKER, str(port)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert worker.stdout is not None
        api_pid = int(worker.stdout.readline())
        assert asyncio.run(_status(f"http://127.0.0.1:{port}/healthz")) == 200
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        deadline = time.monotonic() + 20
        while _alive(api_pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(api_pid), "the API process outlived its killed worker"
    finally:
        worker.kill()
        worker.wait(10)


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie, ended but not yet reaped by init, counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


async def test_a_definition_write_while_kafka_is_unreachable_answers_503() -> None:
    settings = load_settings(kafka={"bootstrap_servers": f"127.0.0.1:{free_port()}"},  # nobody listens there
                             api={"host": "127.0.0.1", "port": free_port(), "tokens": TOKENS})
    api = await start_api_process(settings, lambda: True)
    try:
        async with aiohttp.ClientSession() as http, http.put(
                f"http://127.0.0.1:{settings.api.port}/v1/targets/vq-1/definition",
                json={"name": "Sales chat", "supported_media_types": ["webchat"]},
                headers={"Authorization": f"Bearer {WRITE_TOKEN}"}) as response:
            assert response.status == 503, await response.text()
            assert response.content_type == "application/problem+json"
    finally:
        await api.stop()
