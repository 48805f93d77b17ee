"""A deployment topic deleted under a worker on a broker where topics do not vanish by themselves.

Configured as Apache Kafka (``kafka.broker_kind = kafka``, on either test broker), the worker gets no
dev-broker recovery: a deleted stats topic is an operator incident. The worker says so on the
alarm topic (``PacingTopicsMissing``, naming the topic) and exits with its own status (3), so a
supervisor sees why and restarts it; the restarted worker creates the topic again, paces, and
clears the alarm.
"""

from __future__ import annotations

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from schemas import decode_alarm
from streams.node.topic_guard import EXIT_TOPICS_MISSING
from tests.integration.pipeline import Pipeline, eventually, stat_records, user_data

pytestmark = pytest.mark.integration

ON_KAFKA = {"PACING_KAFKA__BROKER_KIND": "kafka", "PACING_KAFKA__TOPIC_CHECK_INTERVAL_S": "1"}


async def test_a_deleted_stats_topic_stops_the_worker_with_an_alarm_and_a_restart_paces_again(
        pipeline: Pipeline) -> None:
    await pipeline.start_sink()
    worker = await pipeline.start_worker(**ON_KAFKA)
    await pipeline.produce(stat_records("vq-before", 3))
    await eventually(lambda: "vq-before" in pipeline.emulator.targets, message="a decision before the deletion")

    admin = AIOKafkaAdminClient(bootstrap_servers=pipeline.bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([pipeline.topics.stats])
    finally:
        await admin.close()

    await eventually(lambda: worker.poll() is not None, timeout_s=45, message="the worker stops")
    assert worker.returncode == EXIT_TOPICS_MISSING, (pipeline.tmp / "worker.log").read_text()[-3000:]
    records = await pipeline.read_all(pipeline.topics.alarms, timeout_s=1.0)
    raised = [a for a in (decode_alarm(r.value) for r in records)
              if a.name == "PacingTopicsMissing" and a.state.value == "raised"]
    assert raised and pipeline.topics.stats in raised[-1].message, [a.message for a in raised]

    await pipeline.start_worker(**ON_KAFKA)  # what a supervisor does: the topic is created again at start-up
    await pipeline.produce(stat_records("vq-after", 4))
    await eventually(lambda: "vq-after" in pipeline.emulator.targets
                     and user_data(pipeline.emulator.targets["vq-after"])["readyAgents"] == "4",
                     timeout_s=45, message="the restarted worker paces again")

    async def cleared() -> bool:
        records = await pipeline.read_all(pipeline.topics.alarms, timeout_s=0.5)
        states = [a.state.value for a in (decode_alarm(r.value) for r in records) if a.name == "PacingTopicsMissing"]
        return states[-1:] == ["cleared"]

    await eventually(cleared, timeout_s=20, message="PacingTopicsMissing cleared by the restarted worker")
