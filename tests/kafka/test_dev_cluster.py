"""``pacing broker --kind kafka --nodes 3`` as a developer runs it: it outlives a node's death.

- A node killed with SIGKILL is named on the command's error stream (id, address, how it ended);
  the command and the other two nodes keep running and take acks=all writes to a topic replicated
  three times; ``restart 2`` typed on standard input brings node 2 back on its ports and data, and
  SIGUSR1 to the command does the same for every dead node.
- With ``--restart-dead`` a killed node comes back by itself.
- Every port (clients and controllers, all nodes) follows from ``--port``.
- With ``--advertised-host`` a client in another network namespace (which cannot reach this one's
  loopback) produces through the EXTERNAL listeners, while local clients keep bootstrapping from
  and being sent to 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiokafka import AIOKafkaClient, AIOKafkaProducer
from aiokafka.admin import NewTopic

from tests.integration.pipeline import ROOT, read_topic
from tests.kafka.helpers import admin_client
from tests.kafka.netns import NetworkNamespace, netns_unavailable_reason

READY_S = 120.0


def free_port_block(count: int) -> int:
    """A base port whose next ``count`` ports nobody listens on now."""
    for _ in range(200):
        base = random.randrange(20_000, 60_000 - count)
        sockets = []
        try:
            for port in range(base, base + count):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("0.0.0.0", port))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise AssertionError(f"no {count} free consecutive ports")


@dataclass
class BrokerCommand:
    """A running ``pacing broker --kind kafka`` child: its ready line, node lines and error lines."""

    process: asyncio.subprocess.Process
    ready: str = ""
    nodes: dict[int, dict[str, str]] = field(default_factory=dict)
    said: list[str] = field(default_factory=list)

    async def start(self) -> None:
        assert self.process.stdout is not None
        while True:
            line = (await asyncio.wait_for(self.process.stdout.readline(), READY_S)).decode()
            if not line:
                raise AssertionError(f"pacing broker ended before it was ready: {self.said}")
            if line.startswith("Apache Kafka"):
                self.ready = line.strip()
            match = re.match(r"node (\d+): (.*)", line)
            if match:
                self.nodes[int(match[1])] = dict(part.strip().rsplit(" ", 1)
                                                 for part in match[2].split(","))
                if len(self.nodes) == 3:
                    return

    async def said_line(self, pattern: str, timeout_s: float = 90.0) -> str:
        """The next ``pacing broker: …`` line on stderr matching ``pattern``."""
        assert self.process.stderr is not None

        async def next_match() -> str:
            while True:
                line = (await self.process.stderr.readline()).decode()
                if not line:
                    raise AssertionError(f"pacing broker ended; it said: {self.said}")
                if line.startswith("pacing broker:"):
                    self.said.append(line.strip())
                    if re.search(pattern, line):
                        return line.strip()

        return await asyncio.wait_for(next_match(), timeout_s)

    def pid(self, node_id: int) -> int:
        return int(self.nodes[node_id]["pid"])


@pytest.fixture
async def spawn_broker() -> AsyncIterator:
    """Start ``pacing broker --kind kafka --nodes 3 <args>``; stopped (SIGTERM) after the test."""
    started: list[BrokerCommand] = []

    async def spawn(*args: str) -> BrokerCommand:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "infra.cli", "broker", "--kind", "kafka", "--nodes", "3", *args, cwd=ROOT,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PACING_KAFKA_HEAP": "256m"})
        command = BrokerCommand(process)
        started.append(command)
        await command.start()
        return command

    yield spawn
    for command in started:
        if command.process.returncode is None:
            command.process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(command.process.wait(), 60)


async def registered_brokers(bootstrap: str) -> dict[int, str]:
    """Node id -> advertised host:port, from a metadata request to ``bootstrap``."""
    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    await client.bootstrap()
    try:
        metadata = await client.fetch_all_metadata()
        return {b.nodeId: f"{b.host}:{b.port}" for b in metadata.brokers()}
    finally:
        await client.close()


async def write_acks_all(bootstrap: str, topic: str, value: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", request_timeout_ms=20_000)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value)
    finally:
        await producer.stop()


async def replicated_topic(bootstrap: str, name: str) -> None:
    async with admin_client(bootstrap) as admin:
        await admin.create_topics([NewTopic(name, 1, 3, topic_configs={"min.insync.replicas": "2"})])


async def test_a_killed_node_is_named_the_others_serve_and_it_restarts_on_request(spawn_broker) -> None:
    base = free_port_block(6)
    broker = await spawn_broker("--port", str(base))
    local = ",".join(f"127.0.0.1:{base + i}" for i in range(3))
    assert broker.ready.endswith(f"KAFKA_BOOTSTRAP_SERVERS={local}")
    for node_id in (1, 2, 3):
        assert broker.nodes[node_id]["client"] == f"127.0.0.1:{base + node_id - 1}"
        assert broker.nodes[node_id]["controller"] == f"127.0.0.1:{base + 2 + node_id}"
    await replicated_topic(local, "dev-cluster")

    os.kill(broker.pid(2), signal.SIGKILL)
    died = await broker.said_line("node 2 .* died")
    assert died.startswith(f"pacing broker: Kafka node 2 (127.0.0.1:{base + 1}) died: killed by SIGKILL; "
                           "nodes 1, 3 keep running (the controller quorum holds); type `restart 2`")
    assert broker.process.returncode is None
    survivors = f"127.0.0.1:{base},127.0.0.1:{base + 2}"
    await write_acks_all(survivors, "dev-cluster", b"while node 2 is dead")

    assert broker.process.stdin is not None
    broker.process.stdin.write(b"restart 2\n")
    await broker.process.stdin.drain()
    await broker.said_line("Kafka node 2 is back", timeout_s=120)
    assert set(await registered_brokers(f"127.0.0.1:{base + 1}")) == {1, 2, 3}
    assert [r.value for r in await read_topic(f"127.0.0.1:{base + 1}", "dev-cluster")] == [b"while node 2 is dead"]

    # SIGUSR1 restarts every dead node too (for a command running in the background).
    os.kill(broker.pid(1), signal.SIGKILL)
    await broker.said_line(f"Kafka node 1 \\(127.0.0.1:{base}\\) died")
    broker.process.send_signal(signal.SIGUSR1)
    await broker.said_line("Kafka node 1 is back", timeout_s=120)
    assert set(await registered_brokers(f"127.0.0.1:{base}")) == {1, 2, 3}

    broker.process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(broker.process.wait(), 60) == 0


_CLIENT_IN_NAMESPACE = """
import asyncio, sys
from aiokafka import AIOKafkaClient, AIOKafkaProducer
async def main(bootstrap, loopback, topic):
    client = AIOKafkaClient(bootstrap_servers=loopback, request_timeout_ms=2000)
    try:
        await client.bootstrap()
        print("loopback reachable")
    except Exception:
        print("loopback unreachable")
    finally:
        await client.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", request_timeout_ms=20000)
    await producer.start()
    await producer.send_and_wait(topic, b"from another namespace")
    await producer.stop()
    print("produced")
asyncio.run(main(*sys.argv[1:]))
"""


async def _produce_from(namespace: NetworkNamespace, bootstrap: str, loopback: str, topic: str) -> str:
    process = await asyncio.create_subprocess_exec(
        *namespace.command(sys.executable, "-c", _CLIENT_IN_NAMESPACE, bootstrap, loopback, topic), cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 90)
    assert process.returncode == 0, err.decode()[-2000:]
    return out.decode()


@pytest.mark.skipif(netns_unavailable_reason() is not None, reason=str(netns_unavailable_reason()))
async def test_restart_dead_brings_a_node_back_and_other_namespaces_use_the_advertised_address(
        spawn_broker) -> None:
    base = free_port_block(9)
    with NetworkNamespace() as namespace:
        broker = await spawn_broker("--port", str(base), "--advertised-host", namespace.host_address,
                                    "--listen-host", namespace.host_address, "--restart-dead")
        local = ",".join(f"127.0.0.1:{base + i}" for i in range(3))
        external = ",".join(f"{namespace.host_address}:{base + 6 + i}" for i in range(3))
        assert broker.ready.endswith(f"KAFKA_BOOTSTRAP_SERVERS={local}; other hosts: {external}")
        assert broker.nodes[3]["external"] == f"{namespace.host_address}:{base + 8}"
        # Local clients are sent to loopback; clients of the external listener to the advertised address.
        assert await registered_brokers(local) == {i: f"127.0.0.1:{base + i - 1}" for i in (1, 2, 3)}
        assert await registered_brokers(external) == {i: f"{namespace.host_address}:{base + 5 + i}"
                                                      for i in (1, 2, 3)}
        await replicated_topic(local, "from-outside")
        said = await _produce_from(namespace, external, local, "from-outside")
        assert said.split() == ["loopback", "unreachable", "produced"]

        os.kill(broker.pid(3), signal.SIGKILL)
        died = await broker.said_line("node 3 .* died")
        assert "restarting it in 1s" in died
        await broker.said_line("Kafka node 3 is back", timeout_s=120)
        assert set(await registered_brokers(f"127.0.0.1:{base + 2}")) == {1, 2, 3}
        await _produce_from(namespace, f"{namespace.host_address}:{base + 8}", local, "from-outside")
        assert [r.value for r in await read_topic(local, "from-outside")] == [b"from another namespace"] * 2
