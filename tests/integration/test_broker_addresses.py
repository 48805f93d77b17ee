"""``pacing broker --advertised-host`` (the embedded Tansu broker) serves another network namespace.

A client in a namespace of its own (which cannot reach this one's loopback) produces through the
advertised address, and a local client bootstrapping from 127.0.0.1 reads the record back. Tansu
has one listener: it binds every interface and advertises the given address, so local clients keep
their loopback bootstrap and are then sent to that address, one of this machine's own.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import pytest

from infra.broker import free_port
from tests.integration.pipeline import ROOT, read_topic
from tests.kafka.netns import NetworkNamespace, netns_unavailable_reason

_PRODUCE = """
import asyncio, sys
from aiokafka import AIOKafkaProducer
async def main(bootstrap, topic):
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    await producer.start()
    await producer.send_and_wait(topic, b"from another namespace")
    await producer.stop()
asyncio.run(main(*sys.argv[1:]))
"""


@pytest.mark.skipif(netns_unavailable_reason() is not None, reason=str(netns_unavailable_reason()))
async def test_the_embedded_broker_serves_another_namespace_at_its_advertised_address() -> None:
    port = free_port()
    with NetworkNamespace() as namespace:
        broker = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "infra.cli", "broker", "--port", str(port), "--advertised-host",
            namespace.host_address, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
            env={k: v for k, v in os.environ.items() if not k.endswith("BOOTSTRAP_SERVERS")})
        try:
            assert broker.stdout is not None
            ready = (await asyncio.wait_for(broker.stdout.readline(), 30)).decode().strip()
            assert ready == (f"embedded broker ready: KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:{port}; "
                             f"other hosts: {namespace.host_address}:{port}")
            produce = await asyncio.create_subprocess_exec(
                *namespace.command(sys.executable, "-c", _PRODUCE, f"{namespace.host_address}:{port}", "outside"),
                cwd=ROOT, stderr=asyncio.subprocess.PIPE)
            _, err = await asyncio.wait_for(produce.communicate(), 60)
            assert produce.returncode == 0, err.decode()[-2000:]
            assert [r.value for r in await read_topic(f"127.0.0.1:{port}", "outside")] == [b"from another namespace"]
        finally:
            broker.send_signal(signal.SIGTERM)
            await asyncio.wait_for(broker.wait(), 30)
