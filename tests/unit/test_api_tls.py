"""HTTPS of the API with a certificate from a test CA (trustme), and the settings that stop start-up."""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

import aiohttp
import pytest
import trustme

from streams.runtime.config import ConfigError, load_settings
from tests.unit.api_doubles import definition, serve_api


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def certificate(ca: trustme.CA, tmp_path: Path) -> tuple[str, str]:
    issued = ca.issue_cert("127.0.0.1", "localhost")
    cert, key = tmp_path / "api.pem", tmp_path / "api.key"
    issued.private_key_pem.write_to_path(str(key))
    cert.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    return str(cert), str(key)


async def test_https_with_the_configured_certificate(ca: trustme.CA, certificate: tuple[str, str],
                                                     caplog: pytest.LogCaptureFixture) -> None:
    cert, key = certificate
    caplog.set_level(logging.INFO)
    api = await serve_api(cert_file=cert, key_file=key)
    try:
        assert api.url.startswith("https://127.0.0.1:")
        assert "without TLS" not in caplog.text
        api.definitions.apply(b"vq-1", definition("vq-1"))
        trusting = ssl.create_default_context()
        ca.configure_trust(trusting)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{api.url}/v1/targets/vq-1", ssl=trusting) as response:
                assert response.status == 200 and (await response.json())["target_id"] == "vq-1"
            with pytest.raises(aiohttp.ClientConnectorCertificateError):  # a client that does not trust the CA
                await http.get(f"{api.url}/healthz", ssl=ssl.create_default_context())
            with pytest.raises(aiohttp.ClientError):  # plain HTTP to the HTTPS port
                await http.get(api.url.replace("https://", "http://") + "/healthz")
    finally:
        await api.stop()


async def test_plain_http_warns_once_at_start_up(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    api = await serve_api()
    try:
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert warnings == [f"Pacing REST API on {api.url} without TLS: set api.cert_file and api.key_file for HTTPS"]
    finally:
        await api.stop()


def test_wrong_tls_and_token_options_stop_start_up_naming_the_option(certificate: tuple[str, str],
                                                                     tmp_path: Path) -> None:
    cert, key = certificate
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello")
    tokens = tmp_path / "tokens"
    tokens.write_text("# access name token\nwrite ops write-token-0123456789abcdef\nwrite only-two\n")
    cases = [
        ({"cert_file": cert}, "option 'api' needs both cert_file and key_file"),
        ({"cert_file": str(tmp_path / "missing.pem"), "key_file": key}, "option 'api.cert_file'"),
        ({"cert_file": str(not_pem), "key_file": key}, "do not load as a PEM certificate"),
        ({"cert_file": cert, "key_file": cert}, "do not load as a PEM certificate"),
        ({"tokens": [{"name": "ops", "token": "short"}]}, "option 'api.tokens.0.token' must be at least 16"),
        ({"tokens": [{"name": "ops", "token": "x" * 20, "access": "admin"}]}, "option 'api.tokens.0.access'"),
        ({"tokens_file": str(tokens)}, "line 3: expected ACCESS NAME TOKEN"),
        ({"port": 70000}, "option 'api.port'"),
        ({"colour": "red"}, "option 'api.colour'"),
    ]
    for options, message in cases:
        with pytest.raises(ConfigError) as raised:
            load_settings(api=options)
        assert message in str(raised.value), (options, str(raised.value))
        assert "0123456789abcdef" not in str(raised.value)


def test_a_token_file_adds_its_tokens(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("# access name token\nwrite ops write-token-0123456789abcdef\n\n"
                      "read dash read-token-0123456789\n")
    settings = load_settings(api={"tokens_file": str(tokens), "tokens": [{"name": "ci", "token": "c" * 16}]})
    assert [(t.name, t.access) for t in settings.api.all_tokens()] == [("ci", "read"), ("ops", "write"),
                                                                      ("dash", "read")]
    assert "0123456789abcdef" not in repr(settings)


async def test_a_port_in_use_names_the_option() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=rf"api.host/api.port: cannot listen on 127.0.0.1:{port}"):
            await serve_api(port=port)
