"""Compaction really happens on ``pacing.targets`` and ``pacing.actiontargets``, and a restarted
worker and sink still see the latest value per key; a deleted target stays deleted.

A private single-node Apache Kafka whose defaults make every topic the deployment creates roll a
segment every 200 ms and whose log cleaner runs eagerly (``log.roll.ms``,
``log.cleaner.min.cleanable.ratio``, ``log.cleaner.delete.retention.ms``,
``log.cleaner.backoff.ms``; the product has no option for topic configurations, and the session
cluster keeps Kafka's defaults). Every target gets several definitions and several decisions;
one target is then deleted (a null value on ``pacing.targets``). The test waits until the
cleaner has removed the superseded records -- read from the beginning, each definition key holds
only its latest value, the deleted target no value at all, and no decision older than the latest
round is left -- then stops worker and sink and shows:

- a sink started afresh (new consumer group, empty endpoint) delivers exactly the latest
  decision of every target from the compacted topic;
- a restarted worker (memory store: its table comes back from the compacted changelog) decides
  with the latest definition's name, and with the defaults for the deleted target (its name is
  its id).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from infra.emulator import JourneyEmulator
from infra.kafka_broker import KafkaCluster
from schemas import TargetConfig, decode_decision, decode_target_config, encode_target_config
from streams.node.partitioning import home_partition
from tests.integration.pipeline import Pipeline, eventually, stat_records, user_data
from tests.kafka.helpers import changelog_topic

TARGETS = [f"vq-c-{i}" for i in range(6)]
DELETED = "vq-deleted"
VERSIONS = 6
CLEANER = {
    "log.roll.ms": 200,  # segment.ms of every new topic: the cleaner never touches the active segment
    "log.cleaner.min.cleanable.ratio": 0.01,  # min.cleanable.dirty.ratio
    "log.cleaner.delete.retention.ms": 100,  # delete.retention.ms: how long a tombstone stays readable
    "log.cleaner.backoff.ms": 100,  # the cleaner looks for work ten times a second
    "log.cleaner.dedupe.buffer.size": 16 * 1024 * 1024,
}


@pytest.fixture(scope="module")
def compacting_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    """One Apache Kafka node with small segments and an eager log cleaner."""
    with KafkaCluster(nodes=1, data_dir=tmp_path_factory.mktemp("kafka-compaction"), overrides=CLEANER) as cluster:
        yield cluster


@pytest.fixture
async def second_emulator() -> AsyncIterator[JourneyEmulator]:
    """An empty endpoint for the sink started afresh."""
    journey = JourneyEmulator()
    await journey.start()
    yield journey
    await journey.stop()


def definition(target_id: str, name: str) -> tuple[bytes, bytes]:
    return target_id.encode(), encode_target_config(TargetConfig(
        tenant="acme", target_id=target_id, name=name, supported_media_types=["webchat"]))


async def read_from_start(bootstrap: str, topic: str, partitions: int) -> tuple[list, int]:
    """Every record on ``topic`` now, and the sum of its partitions' end offsets (what was written)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        records = []
        while any([await consumer.position(tp) < ends[tp] for tp in tps]):
            for part in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(part)
    finally:
        await consumer.stop()
    return records, sum(ends.values())


def endpoint_holds(emulator: JourneyEmulator, expected: dict[str, tuple[str, int]]) -> bool:
    """Whether the endpoint holds, per target, this (name, ready agents) and no other target."""
    targets = emulator.targets
    return set(targets) == set(expected) and all(
        (targets[t].name, int(user_data(targets[t])["readyAgents"])) == want for t, want in expected.items())


async def test_compacted_topics_keep_the_latest_value_per_key_for_a_restarted_worker_and_sink(
        compacting_cluster: KafkaCluster, emulator: JourneyEmulator, second_emulator: JourneyEmulator,
        tmp_path: Path) -> None:
    bootstrap = compacting_cluster.bootstrap_servers
    pipeline = Pipeline(bootstrap, emulator, tmp_path, PACING_WORKER__KEEPALIVE_S="1")
    try:
        await _run(pipeline, second_emulator)
    finally:
        pipeline.stop()


async def _run(pipeline: Pipeline, second_emulator: JourneyEmulator) -> None:
    bootstrap, topics = pipeline.bootstrap, pipeline.topics
    everyone = [*TARGETS, DELETED]
    worker = await pipeline.start_worker(PACING_NODE_ID="node-1")
    sink = await pipeline.start_sink(PACING_NODE_ID="sink-1")

    # Several versions of every definition and several decisions per target, one round at a time.
    for version in range(1, VERSIONS + 1):
        await pipeline.produce([definition(t, f"{t} v{version}") for t in everyone], topic=topics.targets)
        await pipeline.produce([r for t in everyone for r in stat_records(t, version)])
        await eventually(lambda v=version: endpoint_holds(pipeline.emulator, {t: (f"{t} v{v}", v) for t in everyone}),
                         timeout_s=30, message=f"round {version} at the endpoint")
    await pipeline.produce([(DELETED.encode(), None)], topic=topics.targets)  # type: ignore[list-item]
    latest = {t: (f"{t} v{VERSIONS}", VERSIONS) for t in TARGETS} | {DELETED: (DELETED, VERSIONS)}
    await eventually(lambda: endpoint_holds(pipeline.emulator, latest), timeout_s=30,
                     message="the deleted target decided with the defaults (name = id)")

    # One filler definition per partition, rewritten while waiting: the segments holding the last
    # versions roll, and the cleaner can reach them.
    partitions = pipeline.settings.kafka.stats_partitions
    fillers = {home_partition(f"vq-filler-{i}", partitions): f"vq-filler-{i}" for i in range(64)}
    assert len(fillers) == partitions
    rewrites = 0

    async def definitions_compacted() -> tuple[int, int] | None:
        nonlocal rewrites
        rewrites += 1
        await pipeline.produce([definition(f, f"filler {rewrites}") for f in fillers.values()], topic=topics.targets)
        records, written = await read_from_start(bootstrap, topics.targets, partitions)
        by_key: dict[str, list] = {}
        for record in records:
            by_key.setdefault(record.key.decode(), []).append(record.value)
        kept = all([decode_target_config(v).name for v in by_key.get(t, [])] == [f"{t} v{VERSIONS}"] for t in TARGETS)
        return (len(records), written) if kept and DELETED not in by_key else None

    kept, written = await eventually(definitions_compacted, timeout_s=45, interval_s=0.3,
                                     message="pacing.targets compacted: one value per key, the deleted one gone")
    assert kept < written

    async def decisions_compacted() -> tuple[int, int] | None:
        records, written = await read_from_start(bootstrap, topics.actiontargets, partitions)
        decisions = [decode_decision(r.value) for r in records]
        current = {d.target_id for d in decisions if (d.name, d.ready_agents) == latest[d.target_id]}
        old = [d for d in decisions if (d.name, d.ready_agents) != latest[d.target_id]]
        return (len(records), written) if current == set(everyone) and not old else None

    # Keepalives (every second) go on writing the latest decisions; only older ones can go.
    kept_decisions, written_decisions = await eventually(
        decisions_compacted, timeout_s=45, message="pacing.actiontargets compacted: no superseded decision left")
    assert kept_decisions < written_decisions

    table_records, table_written = await read_from_start(bootstrap, changelog_topic(pipeline), partitions)
    table_kept = len(table_records)

    for child in (worker, sink):
        child.send_signal(signal.SIGTERM)
    for child in (worker, sink):
        await asyncio.to_thread(child.wait, 20)

    # A sink starting afresh (new group, empty endpoint) reads the compacted topic from its start.
    await pipeline.start_sink(PACING_NODE_ID="sink-2", PACING_SINK__GROUP_ID=f"{pipeline.prefix}.fresh-sink",
                              PACING_BASE_AUTH_URL=second_emulator.base_auth_url,
                              PACING_BASE_SERVICE_URL=second_emulator.base_service_url)
    await eventually(lambda: endpoint_holds(second_emulator, latest), timeout_s=30,
                     message="the fresh sink delivered the latest decision of every target")

    # A restarted worker restores its table from the compacted changelog and reads the compacted
    # definitions: its first decisions (keepalives of the restored state) carry the latest names.
    await pipeline.start_worker(PACING_NODE_ID="node-2")
    await pipeline.produce([r for t in everyone for r in stat_records(t, VERSIONS + 1)])
    after_restart = {t: (name, VERSIONS + 1) for t, (name, _) in latest.items()}
    await eventually(lambda: endpoint_holds(second_emulator, after_restart), timeout_s=45,
                     message="the restarted worker's decisions (latest names, defaults for the deleted target)")
    restarted = [decode_decision(r.value) for r in await pipeline.read_all(topics.actiontargets, timeout_s=1.0)]
    assert {(d.target_id, d.name) for d in restarted if d.node == "node-2"} == {
        (t, name) for t, (name, _) in latest.items()}
    print(f"\ncompaction: pacing.targets {kept} of {written} records left, pacing.actiontargets "
          f"{kept_decisions} of {written_decisions}, the table's changelog {table_kept} of {table_written}; "
          f"{rewrites} filler rounds")
