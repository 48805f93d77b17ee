"""Topics deleted and created again by another process before the sink notices (issue 18, item 2).

A worker's topic watch (or an operator) may recreate the topics first: the sink's topic check then
never finds them missing, yet its consumer's positions, the offsets it has yet to commit and the
group's committed offsets all belong to the old topic. No offset of the old topic may be committed
to the new one, and no record of the new topic may be skipped: every decision's final value
reaches the endpoint. On both brokers: Apache Kafka answers the consumer's fetch past the new log's
end with OffsetOutOfRange and the sink starts the log again (connectors.sink_topics); Tansu answers
nothing, and the dev broker's topic recovery notices the log's end below the sink's position
(streams.dev_broker.sink_topics).
"""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from infra.emulator import JourneyEmulator
from streams.runtime.topics import repair_topics, topic_specs
from tests.integration.pipeline import eventually
from tests.integration.sink_harness import GROUP_PARTITIONS, SinkRun, decision, endpoint_ready_agents

pytestmark = pytest.mark.integration

NEVER = 3600.0  # a topic check interval the test outlasts: the sink never finds the topics missing
OLD = 40  # decisions before: about 20 per partition, so the old offsets lie past the new topic's first records


async def _delete_and_recreate(run: SinkRun) -> None:
    """Every topic of the sink's deployment deleted, gone, then created again (as a worker's repair does)."""
    names = [spec.name for spec in topic_specs(run.settings)]
    admin = AIOKafkaAdminClient(bootstrap_servers=run.bootstrap)
    await admin.start()
    try:
        await admin.delete_topics(names)

        async def gone() -> bool:
            return not set(names) & set(await admin.list_topics())

        await eventually(gone, interval_s=0.05, message="the topics deleted")
    finally:
        await admin.close()
    await repair_topics(run.settings)


async def test_topics_recreated_before_the_sink_notices_skip_no_record_and_get_no_old_offset(
        kafka_bootstrap: str, emulator: JourneyEmulator) -> None:
    # The session's broker: only this test's own (prefixed) topics are deleted.
    run = SinkRun(kafka_bootstrap, emulator, kafka={"topic_check_interval_s": NEVER})
    topic = run.topics.actiontargets
    async with run:
        old_ends = await run.produce([decision(f"t-{i}", 1) for i in range(OLD)])
        await eventually(lambda: len(emulator.targets) == OLD, message="the decisions before delivered")
        await eventually(lambda: _committed(run, old_ends), message="their offsets committed")

        await _delete_and_recreate(run)
        # A few decisions first: the new topic's ends stay below the old offsets, so an old offset
        # committed now would lie past every record of the new topic.
        few = await run.produce([decision(f"t-{i}", 2) for i in range(4)])
        await eventually(lambda: all(endpoint_ready_agents(emulator)[f"t-{i}"] == "2" for i in range(4)),
                         timeout_s=20, message="the first decisions after the recreation delivered")
        for _ in range(10):  # over several commit intervals: never an offset past the new topic's end
            committed = await run.committed()
            assert all(offset <= few.get(tp, 0) for tp, offset in committed.items()), (
                f"an offset of the old topic ({old_ends}) committed to the new one (ends {few}): {committed}")
            await asyncio.sleep(0.1)

        # Then every target again, past the old offsets: none may be skipped.
        ends = await run.produce([decision(f"t-{i}", 3) for i in range(OLD)])
        await eventually(lambda: all(endpoint_ready_agents(emulator)[f"t-{i}"] == "3" for i in range(OLD)),
                         timeout_s=20, message="every final value at the endpoint")
        await eventually(lambda: _committed(run, ends), message="the new topic's offsets committed")
    assert max(old_ends.values()) > min(few.values()), "the old offsets lay past the new topic's first records"
    assert {tp.partition for tp in ends} == set(range(GROUP_PARTITIONS)) and topic


async def _committed(run: SinkRun, ends: dict[TopicPartition, int]) -> bool:
    committed = await run.committed()
    return all(committed.get(tp) == end for tp, end in ends.items())
