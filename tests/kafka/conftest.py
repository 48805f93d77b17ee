"""Fixtures of the Apache Kafka tests: a three-node KRaft cluster for the session.

Every test in this folder is marked ``kafka`` and runs only in the Kafka pass of the suite
(``make test-kafka``, which sets ``PACING_TEST_BROKER=kafka``): the default pass (``make test``)
reports them as skipped, and so does any pass on a machine without Java (or without Maven and a
resolved cache), each time with the reason. The cluster (:class:`infra.kafka_broker.KafkaCluster`)
starts on first use; its data and node logs stay under pytest's temporary folder for a post-mortem.

A test that kills or restarts a node (``kafka_cluster.kill(i)``, ``restart(i)``) leaves the cluster
with all nodes running and in sync when it ends, for the next test; from async code call the
blocking methods with ``asyncio.to_thread``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from infra.emulator import JourneyEmulator
from infra.kafka_broker import KafkaCluster, kafka_unavailable_reason
from tests.integration.pipeline import Pipeline

KAFKA_TESTS = Path(__file__).resolve().parent


def kafka_skip_reason() -> str | None:
    """Why this pass does not run the Apache Kafka tests, or None when it does."""
    if os.environ.get("PACING_TEST_BROKER") != "kafka":
        return "Apache Kafka tests run in `make test-kafka` (PACING_TEST_BROKER=kafka), not on the default broker"
    return kafka_unavailable_reason()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark this folder's tests ``kafka`` (and ``integration``); skip them, with the reason, where
    they cannot or should not run."""
    reason = kafka_skip_reason()
    for item in items:
        if KAFKA_TESTS in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.kafka)
            item.add_marker(pytest.mark.integration)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def kafka_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    """Three Apache Kafka nodes (each broker + controller), internal topics replicated 3 times."""
    reason = kafka_skip_reason()
    if reason:
        pytest.skip(reason)
    with KafkaCluster(nodes=3, data_dir=tmp_path_factory.mktemp("kafka-3-nodes")) as cluster:
        yield cluster


@pytest.fixture
async def cluster_pipeline(kafka_cluster: KafkaCluster, emulator: JourneyEmulator,
                           tmp_path: Path) -> AsyncIterator[Pipeline]:
    """An isolated deployment (own topic prefix) on the three-node cluster, its topics replicated
    three times; its children are stopped after the test."""
    deployment = Pipeline(kafka_cluster.bootstrap_servers, emulator, tmp_path,
                          PACING_KAFKA__REPLICATION_FACTOR="3")
    yield deployment
    deployment.stop()
