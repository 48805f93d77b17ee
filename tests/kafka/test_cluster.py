"""The three-node Apache Kafka cluster of the Kafka tests does what they rely on."""

from __future__ import annotations

import asyncio
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from infra.kafka_broker import KafkaCluster
from streams.dev_broker.detect import detect_broker_kind
from tests.integration.pipeline import eventually


async def _isr(bootstrap: str, topic: str) -> dict[int, list[int]]:
    """In-sync replicas per partition of ``topic``, as the cluster reports them now."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return {p["partition"]: sorted(p["isr"]) for p in described["partitions"]}


async def test_replicated_topic_takes_acks_all_writes_and_reads_them_back(kafka_cluster: KafkaCluster) -> None:
    bootstrap = kafka_cluster.bootstrap_servers
    assert len(bootstrap.split(",")) == 3
    topic = f"smoke-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, 3, 3, topic_configs={"min.insync.replicas": "2"})])
    await admin.close()
    assert await eventually(lambda: _all_in_sync(bootstrap, topic, 3), message="3 in-sync replicas per partition")

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for i in range(30):
            await producer.send(topic, b"value %d" % i, key=b"key %d" % i)
        await producer.flush()
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"smoke-{uuid.uuid4().hex[:6]}",
                                auto_offset_reset="earliest")
    await consumer.start()
    seen: set[bytes] = set()
    try:
        async def all_read() -> bool:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                seen.update(record.value for record in records)
            return len(seen) == 30

        await eventually(all_read, timeout_s=30, message="30 records read back")
    finally:
        await consumer.stop()
    assert await detect_broker_kind({"bootstrap_servers": bootstrap}) == "kafka"


async def test_a_killed_node_leaves_the_quorum_writable_and_catches_up_after_restart(
        kafka_cluster: KafkaCluster) -> None:
    bootstrap = kafka_cluster.bootstrap_servers
    topic = f"kill-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, 3, 3, topic_configs={"min.insync.replicas": "2"})])
    await admin.close()
    await eventually(lambda: _all_in_sync(bootstrap, topic, 3), message="3 in-sync replicas per partition")

    kafka_cluster.kill(2)
    assert not kafka_cluster.alive(2)
    survivors = ",".join(kafka_cluster.node_address(i) for i in (0, 1))
    producer = AIOKafkaProducer(bootstrap_servers=survivors, acks="all", request_timeout_ms=30000)
    await producer.start()
    try:
        # acks=all with min.insync.replicas=2: accepted once the dead node is out of the ISR.
        await asyncio.gather(*[await producer.send(topic, b"while node 3 is down %d" % i) for i in range(10)])
    finally:
        await producer.stop()
    isr = await _isr(survivors, topic)
    assert all(3 not in replicas and len(replicas) == 2 for replicas in isr.values()), isr

    await asyncio.to_thread(kafka_cluster.restart, 2)
    assert kafka_cluster.running
    await eventually(lambda: _all_in_sync(bootstrap, topic, 3), timeout_s=60,
                     message="the restarted node back in every ISR")


async def _all_in_sync(bootstrap: str, topic: str, replicas: int) -> bool:
    try:
        isr = await _isr(bootstrap, topic)
    except Exception:  # metadata not there yet
        return False
    return bool(isr) and all(len(nodes) == replicas for nodes in isr.values())
