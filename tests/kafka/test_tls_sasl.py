"""Worker, sink and the ``pacing`` CLI on a TLS + SASL (SCRAM-SHA-512) listener of Apache Kafka.

A private single-node Kafka gets a second client listener, ``SASL_SSL``, with a server
certificate issued by a test CA (``trustme``, written as a PEM key store) and SCRAM-SHA-512 as
the only mechanism; the user is created with Kafka's own ``kafka-configs`` tool (over the
PLAINTEXT listener, which stays for inter-broker, controller and admin traffic on loopback).
The pipeline's processes know only the SASL_SSL address and take the documented ``kafka.*``
options from a configuration file (``security_protocol``, ``sasl_mechanism``, ``sasl_username``,
``sasl_password``, ``ssl_cafile``):

- the sink starts (creating the deployment's topics over SASL_SSL) and delivers a decision to
  the endpoint; ``pacing produce`` writes a JSON stat event; both authenticated as the user;
- the whole pipeline (worker included) carries a stat event typed into ``pacing produce`` to the
  endpoint, every process authenticated as the user;
- ``pacing worker`` with a wrong password stops at start-up with exit code 1 and one line on
  stderr that names the authentication failure (no traceback).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from aiokafka import AIOKafkaProducer
from cryptography.hazmat.primitives import serialization

from infra.broker import free_port
from infra.emulator import JourneyEmulator
from infra.kafka_broker import KafkaCluster, java_command
from streams.engine import TargetState
from streams.node.decisions import decision_record, encode_decision_record
from tests.integration.pipeline import ROOT, Pipeline, eventually, read_topic, user_data

USER, PASSWORD = "pacing-svc", "s3cret-scram-password"


class SaslSslKafka(KafkaCluster):
    """One node with a SASL_SSL client listener beside the launcher's PLAINTEXT one."""

    def __init__(self, tls_dir: Path, **kwargs: object):
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        key = serialization.load_pem_private_key(cert.private_key_pem.bytes(), None).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        keystore, self.ca_file = tls_dir / "broker-keystore.pem", tls_dir / "ca.pem"
        # Kafka's PEM key store: the unencrypted PKCS#8 key, then the certificate chain.
        keystore.write_bytes(key + b"".join(pem.bytes() for pem in cert.cert_chain_pems))
        ca.cert_pem.write_to_path(str(self.ca_file))
        super().__init__(nodes=1, overrides={
            "sasl.enabled.mechanisms": "SCRAM-SHA-512",
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config":
                "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            "listener.name.sasl_ssl.ssl.keystore.type": "PEM",
            "listener.name.sasl_ssl.ssl.keystore.location": str(keystore),
        }, **kwargs)  # type: ignore[arg-type]
        self.sasl_port = free_port(self.host)

    @property
    def sasl_ssl_servers(self) -> str:
        """``host:port`` of the SASL_SSL listener."""
        return f"{self.host}:{self.sasl_port}"

    def node_properties(self, index: int) -> dict[str, str]:
        properties = super().node_properties(index)
        for key in ("listeners", "advertised.listeners"):
            properties[key] += f",SASL_SSL://{self.sasl_ssl_servers}"
        return properties


@pytest.fixture(scope="module")
def secured_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SaslSslKafka]:
    """The SASL_SSL node, with the SCRAM user created by ``kafka-configs``."""
    tls_dir = tmp_path_factory.mktemp("tls")
    with SaslSslKafka(tls_dir, data_dir=tmp_path_factory.mktemp("kafka-sasl-ssl")) as cluster:
        created = subprocess.run(java_command(
            "org.apache.kafka.tools.ConfigCommand", "--bootstrap-server", cluster.bootstrap_servers, "--alter",
            "--add-config", f"SCRAM-SHA-512=[iterations=4096,password={PASSWORD}]",
            "--entity-type", "users", "--entity-name", USER), capture_output=True, text=True, timeout=60)
        assert created.returncode == 0, created.stderr
        yield cluster


def config_file(path: Path, cluster: SaslSslKafka) -> Path:
    """The documented ``kafka.*`` options for the SASL_SSL listener, as an operator writes them."""
    path.write_text(f"""
[kafka]
security_protocol = "SASL_SSL"
sasl_mechanism = "SCRAM-SHA-512"
sasl_username = "{USER}"
sasl_password = "{PASSWORD}"
ssl_cafile = "{cluster.ca_file}"
""")
    return path


async def run_pacing(pipeline: Pipeline, *args: str, stdin: bytes = b"", timeout_s: float = 60,
                     **env: str) -> tuple[int, str]:
    """``pacing <args>`` with the deployment's environment; its exit code and stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "infra.cli", *args, cwd=ROOT, env={**pipeline.env, **env},
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        _, err = await asyncio.wait_for(process.communicate(stdin), timeout_s)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(f"pacing {' '.join(args)} did not finish within {timeout_s}s") from None
    assert process.returncode is not None
    return process.returncode, err.decode(errors="replace")


def authenticated(text: str) -> bool:
    """Whether aiokafka logged a successful SCRAM-SHA-512 login as the test's user."""
    return f"Authenticated as {USER} via SCRAM-SHA-512" in text


def stat_event_line(target_id: str, ready: int) -> bytes:
    """One JSON stat event, as typed into ``pacing produce``."""
    return json.dumps({"tenant": "acme", "target_id": target_id, "statistic": "ready_agents", "value": ready,
                       "timestamp": int(time.time() * 1000), "source": "console",
                       "media_type": "webchat"}).encode() + b"\n"


async def test_sink_and_cli_work_over_sasl_ssl(secured_kafka: SaslSslKafka, emulator: JourneyEmulator,
                                               tmp_path: Path) -> None:
    """The sink (creating the topics, consuming, committing) and ``pacing produce`` over SASL_SSL;
    the test's own clients use the PLAINTEXT listener to write a decision and read the event back."""
    config = config_file(tmp_path / "pacing.toml", secured_kafka)
    pipeline = Pipeline(secured_kafka.sasl_ssl_servers, emulator, tmp_path)
    plaintext = secured_kafka.bootstrap_servers
    try:
        await pipeline.start_sink(PACING_CONFIG=str(config), PACING_NODE_ID="sink-1")
        # produce logs at WARNING by default (its output is the point): INFO shows the login.
        code, err = await run_pacing(pipeline, "--config", str(config), "produce", "--key", "vq-cli",
                                     "--log-level", "INFO", stdin=stat_event_line("vq-cli", 4))
        assert code == 0, err
        assert authenticated(err)
        (record,) = await read_topic(plaintext, pipeline.topics.stats)
        assert record.key == b"vq-cli" and json.loads(record.value)["value"] == 4

        state = TargetState("vq-sink")
        now = int(time.time() * 1000)
        for name, value in (("logged_in_agents", 6), ("ready_agents", 2), ("busy_agents", 4)):
            state.apply(name, value, now, "webchat")
        record = decision_record("acme", "node-x", state, pipeline.settings.targets, now)
        producer = AIOKafkaProducer(bootstrap_servers=plaintext, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(pipeline.topics.actiontargets, encode_decision_record(record), key=b"vq-sink")
        finally:
            await producer.stop()
        await eventually(lambda: "vq-sink" in emulator.targets
                         and user_data(emulator.targets["vq-sink"])["readyAgents"] == "2",
                         timeout_s=30, message="the decision delivered by the SASL_SSL sink")
        assert authenticated((tmp_path / "sink.log").read_text())
    finally:
        pipeline.stop()


async def test_worker_sink_and_cli_work_over_sasl_ssl(secured_kafka: SaslSslKafka, emulator: JourneyEmulator,
                                                      tmp_path: Path) -> None:
    """The whole pipeline on the SASL_SSL listener: a stat event typed into ``pacing produce``
    reaches the endpoint through the worker and the sink."""
    config = config_file(tmp_path / "pacing.toml", secured_kafka)
    pipeline = Pipeline(secured_kafka.sasl_ssl_servers, emulator, tmp_path)
    try:
        await pipeline.start_worker(PACING_CONFIG=str(config), PACING_NODE_ID="node-1")
        await pipeline.start_sink(PACING_CONFIG=str(config), PACING_NODE_ID="sink-1")
        code, err = await run_pacing(pipeline, "--config", str(config), "produce", "--key", "vq-tls",
                                     stdin=stat_event_line("vq-tls", 4))
        assert code == 0, err
        await eventually(lambda: "vq-tls" in emulator.targets
                         and user_data(emulator.targets["vq-tls"])["readyAgents"] == "4",
                         timeout_s=30, message="the stat event at the endpoint")
        for name in ("worker", "sink"):
            assert authenticated((tmp_path / f"{name}.log").read_text()), name
    finally:
        pipeline.stop()


async def test_a_wrong_password_stops_worker_start_up_with_one_line(secured_kafka: SaslSslKafka,
                                                                   emulator: JourneyEmulator, tmp_path: Path) -> None:
    config = config_file(tmp_path / "pacing.toml", secured_kafka)
    pipeline = Pipeline(secured_kafka.sasl_ssl_servers, emulator, tmp_path)
    code, err = await run_pacing(pipeline, "--config", str(config), "worker",
                                 PACING_KAFKA__SASL_PASSWORD="not-the-password")
    lines = err.strip().splitlines()
    assert code == 1, err
    assert len(lines) == 1, err
    assert lines[0].startswith("pacing worker: ") and "invalid credentials" in lines[0], lines[0]
    assert "kafka.sasl_password" in lines[0], lines[0]  # the line names the options to check
    assert "Traceback" not in err
