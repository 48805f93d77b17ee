"""Where the dev brokers listen: every port from one base port, local and advertised addresses apart.

The running brokers are tested in tests/kafka/test_dev_cluster.py (Apache Kafka, a node killed and
restarted, a client in another network namespace) and tests/integration/test_broker_addresses.py
(Tansu); here, what they are configured with, and the options that stop ``pacing broker`` first.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.cli import cmd_broker, parse_args
from infra.kafka_broker import KafkaCluster, port_layout


def test_three_nodes_take_every_port_from_the_base_port(tmp_path: Path) -> None:
    cluster = KafkaCluster(nodes=3, port=19092, data_dir=tmp_path)
    assert cluster.ports == [19092, 19093, 19094]
    assert cluster.controller_ports == [19095, 19096, 19097]
    assert cluster.bootstrap_servers == "127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094"
    node_3 = cluster.node_properties(2)
    assert node_3["listeners"] == "PLAINTEXT://127.0.0.1:19094,CONTROLLER://127.0.0.1:19097"
    assert node_3["controller.quorum.voters"] == "1@127.0.0.1:19095,2@127.0.0.1:19096,3@127.0.0.1:19097"
    assert cluster.external_servers is None


def test_an_advertised_host_adds_an_external_listener_and_keeps_the_local_one(tmp_path: Path) -> None:
    cluster = KafkaCluster(nodes=3, port=19092, data_dir=tmp_path, advertised_host="10.20.30.1")
    assert cluster.external_ports == [19098, 19099, 19100]
    node_2 = cluster.node_properties(1)
    assert node_2["listeners"] == ("PLAINTEXT://127.0.0.1:19093,CONTROLLER://127.0.0.1:19096,"
                                   "EXTERNAL://0.0.0.0:19099")
    assert node_2["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19093,EXTERNAL://10.20.30.1:19099"
    assert node_2["listener.security.protocol.map"].endswith(",EXTERNAL:PLAINTEXT")
    assert node_2["inter.broker.listener.name"] == "PLAINTEXT"  # replication stays on loopback
    assert cluster.bootstrap_servers.startswith("127.0.0.1:19092,")
    assert cluster.external_servers == "10.20.30.1:19098,10.20.30.1:19099,10.20.30.1:19100"
    bound = KafkaCluster(nodes=1, port=19092, data_dir=tmp_path, advertised_host="10.20.30.1",
                         listen_host="10.20.30.1")
    assert bound.node_properties(0)["listeners"].endswith(",EXTERNAL://10.20.30.1:19094")


def test_free_ports_are_all_distinct_without_a_base_port(tmp_path: Path) -> None:
    cluster = KafkaCluster(nodes=3, data_dir=tmp_path, advertised_host="10.20.30.1")
    assert len(set(cluster.ports + cluster.controller_ports + cluster.external_ports)) == 9


def test_the_layout_is_three_blocks_of_one_port_per_node() -> None:
    assert port_layout(1, 9092, external=True) == {("client", 0): 9092, ("controller", 0): 9093,
                                                   ("external", 0): 9094}
    with pytest.raises(ValueError, match="past 65535"):
        KafkaCluster(nodes=3, port=65531)
    with pytest.raises(ValueError, match="wildcard"):
        KafkaCluster(nodes=1, host="0.0.0.0")


@pytest.mark.parametrize(("argv", "named"), [
    (["broker", "--host", "0.0.0.0"], "--host 0.0.0.0"),
    (["broker", "--advertised-host", "0.0.0.0"], "--advertised-host 0.0.0.0"),
    (["broker", "--listen-host", "10.1.1.1"], "--listen-host applies with --advertised-host"),
    (["broker", "--restart-dead"], "--restart-dead applies to --kind kafka only"),
    (["broker", "--kind", "kafka", "--nodes", "3", "--port", "65534"], "--port 65534"),
])
def test_options_that_do_not_fit_stop_the_broker_naming_the_option(
        argv: list[str], named: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("infra.kafka_broker.kafka_unavailable_reason", lambda: None)
    assert cmd_broker(parse_args(argv)) == 2
    assert named in capsys.readouterr().err
