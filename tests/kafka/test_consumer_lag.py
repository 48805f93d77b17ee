"""The workers' ``pacing_consumer_lag`` gauges agree with the lag Kafka's own tool reports.

What is compared: ``kafka-consumer-groups --describe`` (``ConsumerGroupCommand``) reports, per
partition of the workers' group, LAG = log end offset - committed offset. The worker's gauge is
the partition's high watermark (the log end, as its last fetch saw it) minus the next offset the
agent takes to process. The two differ by the events the agent has taken but whose offsets are
not committed yet: at most what arrives within one decision tick (``worker.decide_interval_s``)
plus Faust's commit interval, and by sampling at different instants. So they are compared where
both are settled, with no tolerance (exactly equal, per partition):

- while a backlog waits: the agent is held at a gate (:mod:`tests.kafka.gated_worker`; a real
  worker cannot be paused) and a known number of events is produced to each partition: gauge,
  Kafka's LAG and the number produced are the same per partition;
- after the backlog is processed (gate open): both 0 on every partition.

During a drain the two are not compared: neither is sampled atomically with the other.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import aiohttp
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from infra.broker import free_port
from infra.kafka_broker import KafkaCluster
from schemas import StatEvent, encode_stat_event
from streams.node.partitioning import home_partition
from tests.integration.pipeline import Pipeline, eventually
from tests.kafka.helpers import admin_client, run_kafka_tool, worker_app_id

CONSUMER_GROUPS = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"
BACKLOG = {0: 7, 1: 19, 2: 31, 3: 43}
"""Events produced to each of the four stats partitions while the agent is held."""


def targets_by_partition(partitions: int) -> dict[int, str]:
    """One target id whose home partition is p, for every partition p."""
    found: dict[int, str] = {}
    i = 0
    while len(found) < partitions:
        found.setdefault(home_partition(f"vq-lag-{i}", partitions), f"vq-lag-{i}")
        i += 1
    return found


def events(target_id: str, count: int) -> list[tuple[bytes, bytes]]:
    """``count`` stat events of one target (ready agents 1..count)."""
    now = int(time.time() * 1000)
    return [(target_id.encode(), encode_stat_event(StatEvent(
        tenant="acme", target_id=target_id, statistic="ready_agents", value=i, timestamp=now + i, source="test")))
        for i in range(1, count + 1)]


async def gauges(port: int) -> dict[int, int]:
    """``pacing_consumer_lag`` per partition from the worker's /metrics."""
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/metrics") as response:
        text = await response.text()
    return {int(m.group(1)): int(float(m.group(2)))
            for m in re.finditer(r'^pacing_consumer_lag\{partition="(\d+)"\} (\S+)$', text, re.MULTILINE)}


async def committed_lag(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int | None]:
    """Log end - committed offset per partition, from the admin API (cheap, for polling)."""
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    async with admin_client(bootstrap) as admin:
        committed = await admin.list_consumer_group_offsets(group, partitions=tps)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    return {tp.partition: ends[tp] - committed[tp].offset if tp in committed and committed[tp].offset >= 0 else None
            for tp in tps}


async def kafka_reported_lag(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """LAG per partition of ``topic`` as ``kafka-consumer-groups --describe --group`` prints it."""
    run = await run_kafka_tool(CONSUMER_GROUPS, "--bootstrap-server", bootstrap, "--describe", "--group", group)
    assert run.returncode == 0, run.stderr
    lines = [line.split() for line in run.text.splitlines() if line.strip()]
    header = next(fields for fields in lines if fields[:2] == ["GROUP", "TOPIC"])
    column = {name: header.index(name) for name in ("TOPIC", "PARTITION", "LAG")}
    return {int(fields[column["PARTITION"]]): int(fields[column["LAG"]])
            for fields in lines if fields[column["TOPIC"]] == topic}


async def test_worker_lag_gauges_match_kafka_consumer_groups_during_a_backlog_and_after(
        kafka_cluster: KafkaCluster, cluster_pipeline: Pipeline, tmp_path: Path) -> None:
    pipeline = cluster_pipeline
    bootstrap = kafka_cluster.bootstrap_servers
    stats, partitions = pipeline.topics.stats, pipeline.settings.kafka.stats_partitions
    group = worker_app_id(pipeline)
    gate = tmp_path / "gate"
    port = free_port()
    worker = pipeline.spawn("worker", module="tests.kafka.gated_worker", PACING_NODE_ID="node-1",
                            PACING_TEST_GATE=str(gate), PACING_WORKER__WEB_PORT=str(port),
                            PACING_WORKER__KEEPALIVE_S="1.5")  # timer (and gauge) every 0.5 s

    async def ready() -> bool:
        assert worker.poll() is None, pipeline.log_tail("worker")
        return await pipeline.ready(port)

    await eventually(ready, timeout_s=45, message="worker ready")
    owners = targets_by_partition(partitions)

    # Every partition read and committed once: the gauge has a position on each.
    await pipeline.produce([record for target in owners.values() for record in events(target, 1)])

    async def caught_up() -> bool:
        lag = await committed_lag(bootstrap, group, stats, partitions)
        return set(lag.values()) == {0} and await gauges(port) == dict.fromkeys(range(partitions), 0)

    await eventually(caught_up, timeout_s=45, message="first events processed and committed")

    gate.touch()
    await pipeline.produce([record for p, count in BACKLOG.items() for record in events(owners[p], count)])

    async def backlog_settled() -> bool:
        return (await gauges(port) == BACKLOG
                and await committed_lag(bootstrap, group, stats, partitions) == BACKLOG)

    await eventually(backlog_settled, timeout_s=30, message=f"gauges and committed lag at {BACKLOG}")
    reported = await kafka_reported_lag(bootstrap, group, stats)
    held = await gauges(port)
    assert reported == held == BACKLOG

    gate.unlink()
    await eventually(caught_up, timeout_s=45, message="backlog processed and committed")
    reported = await kafka_reported_lag(bootstrap, group, stats)
    drained = await gauges(port)
    assert reported == drained == dict.fromkeys(range(partitions), 0)
