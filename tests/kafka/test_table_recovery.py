"""Table recovery on Apache Kafka is complete without the Tansu end-offset probe.

Tansu answers ListOffsets(latest) with the base offset of the last record batch + 1, so the
workers confirm end offsets by fetch there (:mod:`streams.dev_broker.end_offsets`). Apache Kafka answers
with the offset after the last record; the workers detect it (``kafka.broker_kind = "auto"``)
and recover their table up to the offsets it reports, with no probe.
"""

from __future__ import annotations

import signal
import time
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition

from infra.kafka_broker import KafkaCluster
from tests.integration.pipeline import Pipeline, eventually
from tests.integration.test_scaling import TARGETS, decisions_since, events


async def test_list_offsets_reports_the_offset_after_the_last_record_of_a_batch(kafka_cluster: KafkaCluster) -> None:
    bootstrap = kafka_cluster.bootstrap_servers
    topic = f"end-offsets-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, 1, 3)])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    for i in range(7):
        await producer.send_and_wait(topic, b"single %d" % i, partition=0)
    batch = producer.create_batch()
    for i in range(5):
        batch.append(key=None, value=b"batched %d" % i, timestamp=None)
    await (await producer.send_batch(batch, topic, partition=0))
    await producer.stop()

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        reported = await consumer.end_offsets([TopicPartition(topic, 0)])
    finally:
        await consumer.stop()
    assert reported[TopicPartition(topic, 0)] == 12  # what the probe has to find on Tansu (which says 8)


async def test_survivor_recovers_a_killed_workers_table_completely_without_the_probe(
        cluster_pipeline: Pipeline) -> None:
    pipeline = cluster_pipeline
    first = await pipeline.start_worker(PACING_NODE_ID="node-a")
    # Several statistics per target in one send: the changelog gets multi-record batches, the
    # case in which Tansu's end offsets fall short.
    await pipeline.produce(events({"logged_in_agents": 10, "ready_agents": 4, "busy_agents": 6,
                                   "offers_made": 200, "offers_accepted": 20}))

    async def every_target_decided() -> bool:
        return len(await decisions_since(pipeline, 0)) == len(TARGETS)

    await eventually(every_target_decided, timeout_s=45, message="node-a decided every target")

    await pipeline.start_worker(PACING_NODE_ID="node-b")
    shared_since = int(time.time() * 1000)
    await pipeline.produce(events({"ready_agents": 5}))

    async def both_nodes_decide() -> bool:
        latest = await decisions_since(pipeline, shared_since)
        return len(latest) == len(TARGETS) and {d.node for d in latest.values()} == {"node-a", "node-b"}

    await eventually(both_nodes_decide, timeout_s=60, message="targets split between two nodes")

    first.send_signal(signal.SIGKILL)
    first.wait(10)
    killed = int(time.time() * 1000)
    await pipeline.produce(events({"ready_agents": 3}))

    async def survivor_decides_all() -> dict[str, object] | None:
        latest = await decisions_since(pipeline, killed)
        return latest if len(latest) == len(TARGETS) and all(
            d.node == "node-b" and d.ready_agents == 3 for d in latest.values()) else None

    survived = await eventually(survivor_decides_all, timeout_s=60, message="node-b took over every target")
    # node-a's learnt state (acceptance rate from its counters, logged-in agents) came with the table.
    assert {round(d.acceptance_rate, 2) for d in survived.values()} == {0.1}
    assert all(d.logged_in_agents == 10 for d in survived.values())

    # Both workers (one log) asked the cluster, found Apache Kafka, and probed nothing.
    log = (pipeline.tmp / "worker.log").read_text(errors="replace")
    assert "is Apache Kafka" in log, pipeline.log_tail("worker")
    assert "corrected by fetch probe" not in log
