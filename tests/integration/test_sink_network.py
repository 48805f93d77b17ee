"""The seed's network path (issue 6, item 9): sink → forward proxy → HTTPS endpoint, TLS verified.

A real forward proxy (proxy.py, started by the test as a child process, with and without Basic
proxy authentication) and the emulator served over HTTPS with a certificate from a test CA
(trustme); the sink trusts that CA through ``sink.ca_file`` with ``verify_tls`` on. A
certificate from another CA is refused; a proxy that is down raises ``PacingRequestsFailed``
and loses nothing.
"""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
import trustme

from connectors.journey_client import Delivered, JourneyClient, OperatorError
from infra.broker import die_with_parent, free_port
from infra.emulator import JourneyEmulator
from schemas import AlarmState
from streams.runtime.config import load_settings
from tests.integration.pipeline import eventually
from tests.integration.sink_harness import SinkRun, decision, endpoint_ready_agents

pytestmark = pytest.mark.integration


class ForwardProxy:
    """proxy.py as a child process on a loopback port; its log tells which tunnels it opened."""

    def __init__(self, tmp: Path, port: int | None = None, basic_auth: str | None = None):
        self.port = port or free_port()
        self.log = tmp / f"proxy-{self.port}.log"
        self.basic_auth = basic_auth
        self._child: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _spawn(self) -> None:
        args = [sys.executable, "-m", "proxy", "--hostname", "127.0.0.1", "--port", str(self.port),
                "--num-workers", "1", "--num-acceptors", "1", "--log-level", "INFO"]
        if self.basic_auth:
            args += ["--basic-auth", self.basic_auth]
        with open(self.log, "ab") as out:
            self._child = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                           preexec_fn=die_with_parent)

    async def start(self) -> None:
        """Start the proxy; returns once it accepts connections."""
        self._spawn()

        async def listening() -> bool:
            assert self._child is not None
            if self._child.poll() is not None:
                raise AssertionError(f"proxy exited: {self.log.read_text()[-2000:]}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                return False
            writer.close()
            return True

        await eventually(listening, timeout_s=20, interval_s=0.05, message="proxy listening")

    def stop(self) -> None:
        if self._child is not None and self._child.poll() is None:
            self._child.terminate()
            try:
                self._child.wait(10)
            except subprocess.TimeoutExpired:
                self._child.kill()
                self._child.wait()
        self._child = None

    def tunnels_to(self, host_port: str) -> bool:
        """Whether the proxy logged a CONNECT tunnel to ``host:port``."""
        return self.log.exists() and f"CONNECT {host_port}" in self.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    """The test certificate authority the sink is told to trust."""
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def server_context(authority: trustme.CA) -> ssl.SSLContext:
    """A server TLS context with a certificate for 127.0.0.1 signed by ``authority``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture
async def https_emulator(ca: trustme.CA) -> AsyncIterator[JourneyEmulator]:
    """The emulator over HTTPS, its certificate signed by the trusted test CA."""
    journey = JourneyEmulator()
    await journey.start(ssl_context=server_context(ca))
    yield journey
    await journey.stop()


@pytest.fixture
def proxies(tmp_path: Path) -> Iterator[list[ForwardProxy]]:
    """Proxies a test starts; all stopped afterwards."""
    started: list[ForwardProxy] = []
    yield started
    for proxy in started:
        proxy.stop()


async def start_proxy(proxies: list[ForwardProxy], tmp: Path, **options: object) -> ForwardProxy:
    proxy = ForwardProxy(tmp, **options)  # type: ignore[arg-type]
    proxies.append(proxy)
    await proxy.start()
    return proxy


def host_port(emulator: JourneyEmulator) -> str:
    return emulator.base_url.split("://", 1)[1]


async def failed_alarm(run: SinkRun, *phrases: str) -> bool:
    transitions = await run.alarms("PacingRequestsFailed")
    return bool(transitions) and transitions[0].state == AlarmState.RAISED and all(
        p in transitions[0].message for p in phrases)


async def nothing_committed(run: SinkRun) -> bool:
    return all(offset == 0 for offset in (await run.committed()).values())


def attempts(run: SinkRun) -> float:
    assert run.sink is not None
    return run.sink.metrics.registry.get_sample_value("sink_request_seconds_count") or 0.0


async def test_sink_delivers_through_a_forward_proxy_over_verified_https(
        kafka_bootstrap: str, https_emulator: JourneyEmulator, ca_file: str, proxies: list[ForwardProxy],
        tmp_path: Path) -> None:
    proxy = await start_proxy(proxies, tmp_path)
    assert https_emulator.base_url.startswith("https://")
    async with SinkRun(kafka_bootstrap, https_emulator,
                       sink={"proxy_url": proxy.url, "ca_file": ca_file, "verify_tls": True}) as run:
        ends = await run.produce(decision(f"vq-{i}", 4) for i in range(5))
        await eventually(lambda: endpoint_ready_agents(https_emulator) == {f"vq-{i}": "4" for i in range(5)},
                         message="delivered through the proxy")
        await eventually(lambda: _committed_at(run, ends), message="committed after delivery")
    # proxy.py logs a tunnel when it closes (the sink's session closed it on the way out).
    await eventually(lambda: proxy.tunnels_to(host_port(https_emulator)), message="the proxy logged the tunnel")


async def _committed_at(run: SinkRun, ends: dict) -> bool:
    return await run.committed() == ends


async def test_proxy_authentication(kafka_bootstrap: str, https_emulator: JourneyEmulator, ca_file: str,
                                    proxies: list[ForwardProxy], tmp_path: Path) -> None:
    proxy = await start_proxy(proxies, tmp_path, basic_auth="pacing:pr0xy-secret")
    tls = {"proxy_url": proxy.url, "ca_file": ca_file}

    # Without credentials the proxy answers 407: an operator error, retried, nothing committed.
    async with SinkRun(kafka_bootstrap, https_emulator, sink=tls) as anonymous:
        await anonymous.produce(decision(f"vq-{i}", 1) for i in range(3))
        await eventually(lambda: attempts(anonymous) >= 3, message="several refused attempts")
        assert await eventually(lambda: failed_alarm(anonymous, "407", proxy.url), message="alarm names 407")
        assert await nothing_committed(anonymous)
        assert https_emulator.requests == [] and https_emulator.targets == {}

    # With sink.proxy_username / proxy_password it goes through.
    async with SinkRun(kafka_bootstrap, https_emulator,
                       sink={**tls, "proxy_username": "pacing", "proxy_password": "pr0xy-secret"}) as run:
        ends = await run.produce(decision(f"vq-{i}", 2) for i in range(3))
        await eventually(lambda: endpoint_ready_agents(https_emulator) == {f"vq-{i}": "2" for i in range(3)},
                         message="delivered through the authenticating proxy")
        await eventually(lambda: _committed_at(run, ends), message="committed after delivery")
    await eventually(lambda: proxy.tunnels_to(host_port(https_emulator)), message="the proxy logged the tunnel")


async def test_certificate_not_signed_by_the_trusted_ca_is_refused(
        kafka_bootstrap: str, ca_file: str, proxies: list[ForwardProxy], tmp_path: Path) -> None:
    impostor = JourneyEmulator()
    await impostor.start(ssl_context=server_context(trustme.CA()))  # another CA: not in ca_file
    try:
        proxy = await start_proxy(proxies, tmp_path)
        async with SinkRun(kafka_bootstrap, impostor, sink={"proxy_url": proxy.url, "ca_file": ca_file}) as run:
            await run.produce(decision(f"vq-{i}", 4) for i in range(3))
            await eventually(lambda: attempts(run) >= 3, message="several refused attempts")
            assert await eventually(lambda: failed_alarm(run, "certificate verify failed"),
                                    message="PacingRequestsFailed names the certificate failure")
            assert await nothing_committed(run)
            assert impostor.requests == [] and impostor.targets == {}
            assert run.sink is not None and run.sink.ledger.pending_count == 3
    finally:
        await impostor.stop()


async def test_proxy_down_raises_the_alarm_and_loses_nothing(
        kafka_bootstrap: str, https_emulator: JourneyEmulator, ca_file: str, proxies: list[ForwardProxy],
        tmp_path: Path) -> None:
    proxy = ForwardProxy(tmp_path)  # its port stays closed until the proxy is started below
    proxies.append(proxy)
    async with SinkRun(kafka_bootstrap, https_emulator, sink={"proxy_url": proxy.url, "ca_file": ca_file}) as run:
        ends = await run.produce(decision(f"vq-{i}", 5) for i in range(6))
        await eventually(lambda: attempts(run) >= 3, message="several failed attempts")
        assert await eventually(lambda: failed_alarm(run, f"via proxy {proxy.url}"),
                                message="PacingRequestsFailed names the proxy")
        assert await nothing_committed(run)

        await proxy.start()
        await eventually(lambda: endpoint_ready_agents(https_emulator) == {f"vq-{i}": "5" for i in range(6)},
                         message="everything delivered once the proxy is back")
        await eventually(lambda: _committed_at(run, ends), message="committed after delivery")
        cleared = await eventually(lambda: _cleared(run), message="PacingRequestsFailed cleared")
        assert [a.state for a in cleared] == [AlarmState.RAISED, AlarmState.CLEARED]


async def _cleared(run: SinkRun) -> list | None:
    transitions = await run.alarms("PacingRequestsFailed")
    return transitions if transitions and transitions[-1].state == AlarmState.CLEARED else None


async def test_client_proxy_credentials_in_the_url_or_options_and_407_over_plain_http(
        https_emulator: JourneyEmulator, emulator: JourneyEmulator, ca_file: str, proxies: list[ForwardProxy],
        tmp_path: Path) -> None:
    proxy = await start_proxy(proxies, tmp_path, basic_auth="pacing:pr0xy-secret")
    target = [{"id": "vq-1", "name": "one", "state": "active", "supportedMediaTypes": ["webchat"],
               "serviceLevel": {"percentage": 0.8, "durationMs": 20000}, "shortAbandonThreshold": 10,
               "description": "", "userData": []}]

    async def post(journey: JourneyEmulator, **sink: object) -> object:
        settings = load_settings(base_auth_url=journey.base_auth_url, base_service_url=journey.base_service_url,
                                 sink={"ca_file": ca_file, **sink})
        async with aiohttp.ClientSession() as http:
            client = JourneyClient(settings.sink, http, auth_url=settings.base_auth_url, bulk_url=settings.bulk_url)
            return await client.post_bulk(target)

    in_url = f"http://pacing:pr0xy-secret@127.0.0.1:{proxy.port}"
    assert isinstance(await post(https_emulator, proxy_url=in_url), Delivered)
    plain = await post(emulator, proxy_url=proxy.url)  # http:// endpoint: the proxy's 407 is the response
    assert isinstance(plain, OperatorError) and plain.status == 407 and "proxy" in plain.reason
    refused = await post(https_emulator, proxy_url=proxy.url, proxy_username="pacing", proxy_password="wrong")
    assert isinstance(refused, OperatorError) and refused.status == 407
    assert "pr0xy-secret" not in refused.reason and "wrong" not in refused.reason
