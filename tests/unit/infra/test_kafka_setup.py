"""The project's Apache Kafka set-up: one source of broker settings, options."""

from __future__ import annotations

import re
from pathlib import Path

from infra.kafka_broker import SERVER_PROPERTIES, KafkaCluster, broker_settings, kafka_version, new_cluster_id

COMPOSE = Path(__file__).resolve().parents[3] / "infra" / "docker-compose.yml"
PER_NODE = {"node.id", "listeners", "advertised.listeners", "controller.quorum.voters", "log.dirs"}


def _compose_kafka_service() -> str:
    """The text of the ``kafka`` service in infra/docker-compose.yml (no YAML parser needed)."""
    text = COMPOSE.read_text()
    start = text.index("\n  kafka:\n")
    end = text.index("\n  worker:", start)
    return text[start:end]


def test_compose_runs_the_pinned_kafka_with_the_shared_settings_file() -> None:
    kafka = _compose_kafka_service()
    assert re.search(rf"image: apache/kafka:{re.escape(kafka_version())}\s", kafka)
    assert "- ./kafka/server.properties:/mnt/shared/config/server.properties:ro" in kafka
    # The environment adds only per-node values: nothing that would shadow the shared file.
    names = re.findall(r"^\s+KAFKA_(\w+):", kafka, flags=re.MULTILINE)
    keys = {name.lower().replace("_", ".") for name in names}
    assert keys and keys <= PER_NODE, keys - PER_NODE


def test_settings_scale_internal_topics_with_the_cluster_and_take_overrides() -> None:
    single = broker_settings(1)
    assert single["auto.create.topics.enable"] == "false"
    assert single["log.cleaner.enable"] == "true"
    assert single["group.initial.rebalance.delay.ms"] == "0"
    assert single["offsets.topic.replication.factor"] == "1" and single["min.insync.replicas"] == "1"
    trio = broker_settings(3, {"log.segment.bytes": 16384, "log.cleaner.enable": True})
    assert trio["offsets.topic.replication.factor"] == "3"
    assert trio["transaction.state.log.replication.factor"] == "3"
    assert trio["transaction.state.log.min.isr"] == "2"
    assert trio["min.insync.replicas"] == "1"  # topics that need 2 say so themselves
    assert trio["log.segment.bytes"] == "16384" and trio["log.cleaner.enable"] == "true"
    assert not PER_NODE & set(broker_settings(3))
    assert SERVER_PROPERTIES.is_file()


def test_each_node_gets_its_identity_and_a_quorum_of_all(tmp_path: Path) -> None:
    cluster = KafkaCluster(nodes=3, data_dir=tmp_path)
    node = cluster.node_properties(1)
    assert node["node.id"] == "2"
    assert node["advertised.listeners"] == f"PLAINTEXT://{cluster.node_address(1)}"
    assert node["controller.quorum.voters"].count("@") == 3
    assert len(cluster.bootstrap_servers.split(",")) == 3
    assert len(set(cluster.ports + cluster.controller_ports)) == 6
    assert len(new_cluster_id()) == 22

