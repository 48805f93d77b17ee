"""Producers partition as their client does; a target still has exactly one owner.

confluent-kafka (librdkafka) hashes keys with CRC32 by default, the project's tools with Kafka's
murmur2: the same target lands on two partitions. The workers forward events that arrive off
their target's home partition, so decisions for a target come from one worker only.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict

from confluent_kafka import Producer

from schemas import StatEvent, decode_decision, encode_stat_event
from streams.node.partitioning import home_partition
from tests.integration.pipeline import Pipeline, eventually, user_data

TARGETS = [f"vq-{i}" for i in range(16)]


def events(ready: int) -> list[tuple[str, bytes]]:
    now = int(time.time() * 1000)
    values = {"logged_in_agents": 20, "ready_agents": ready, "busy_agents": 20 - ready}
    return [(t, encode_stat_event(StatEvent(tenant="acme", target_id=t, statistic=name, value=value,
                                            timestamp=now, source="test")))
            for t in TARGETS for name, value in values.items()]


def produce_with_librdkafka(pipeline: Pipeline, records: list[tuple[str, bytes]], keyed: bool = True) -> None:
    """confluent-kafka's default partitioner (consistent_random: CRC32 of the key, random without one)."""
    producer = Producer({"bootstrap.servers": pipeline.bootstrap, "linger.ms": 5})
    for target_id, value in records:
        producer.produce(pipeline.topics.stats, value=value, key=target_id.encode() if keyed else None)
    assert producer.flush(30) == 0


async def test_targets_keep_one_owner_whichever_partitioner_the_producer_uses(pipeline: Pipeline) -> None:
    partitions = pipeline.settings.kafka.stats_partitions
    # With CRC32, most of these targets land off their murmur2 home partition.
    from zlib import crc32
    assert sum(crc32(t.encode()) % partitions != home_partition(t, partitions) for t in TARGETS) >= 8

    await pipeline.start_sink()
    worker_env = {"PACING_WORKER__KEEPALIVE_S": "1"}  # keepalives would expose a second owner quickly
    await pipeline.start_worker(PACING_NODE_ID="node-a", **worker_env)
    await pipeline.start_worker(PACING_NODE_ID="node-b", **worker_env)
    started = int(time.time() * 1000)

    # Rounds alternate between the project's murmur2 producer, librdkafka keyed and unkeyed.
    for ready in range(1, 7):
        records = events(ready)
        if ready % 3 == 1:
            await pipeline.produce([(t.encode(), v) for t, v in records])
        else:
            await asyncio.to_thread(produce_with_librdkafka, pipeline, records, keyed=ready % 3 == 2)
        await eventually(lambda r=ready: all(
            t in pipeline.emulator.targets and user_data(pipeline.emulator.targets[t])["readyAgents"] == str(r)
            for t in TARGETS), timeout_s=30, message=f"round {ready} at the endpoint")

    await asyncio.sleep(3)  # several keepalive periods: a second owner would re-publish its older state
    owners: dict[str, set[str]] = defaultdict(set)
    for record in await pipeline.read_all(pipeline.topics.actiontargets, timeout_s=1.0):
        decision = decode_decision(record.value)
        if decision.computed_at >= started:
            owners[decision.target_id].add(decision.node)
    assert {t: nodes for t, nodes in owners.items() if len(nodes) > 1} == {}
    assert {node for nodes in owners.values() for node in nodes} == {"node-a", "node-b"}
    assert all(user_data(pipeline.emulator.targets[t])["readyAgents"] == "6" for t in TARGETS)
    rerouted = [await pipeline.metric(port, "pacing_events_rerouted_total") for port in pipeline.worker_ports]
    assert sum(rerouted) > 0
