"""A broker restarted on memory storage comes back empty; workers and sink notice, recover and resume.

The test runs its own embedded broker (the session's is shared) and restarts it on the same port.
The deployment has 6 stats partitions, not the broker's auto-create default, so topics that
clients auto-create after the restart are wrong and must be recreated.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from infra.broker import EmbeddedBroker
from infra.emulator import JourneyEmulator
from schemas import decode_alarm
from tests.integration.pipeline import Pipeline, eventually, stat_records, user_data

pytestmark = pytest.mark.skipif(os.environ.get("PACING_TEST_BROKER") == "kafka",
                                reason="restarts its own embedded Tansu broker: the same in both passes, run once")


async def test_worker_and_sink_recover_from_a_broker_that_lost_every_topic(
    private_broker: EmbeddedBroker, emulator: JourneyEmulator, tmp_path: Path
) -> None:
    pipeline = Pipeline(private_broker.bootstrap_servers, emulator, tmp_path, PACING_KAFKA__STATS_PARTITIONS="6",
                        PACING_KAFKA__TOPIC_CHECK_INTERVAL_S="1", PACING_SINK__TOPIC_CHECK_INTERVAL_S="1")
    try:
        await pipeline.start_worker_and_sink(worker={"PACING_NODE_ID": "worker-1"}, sink={"PACING_NODE_ID": "sink-1"})
        worker_port, sink_port = pipeline.worker_ports[0], pipeline.sink_ports[0]
        await pipeline.produce(stat_records("vq-before", 3))
        await eventually(lambda: "vq-before" in emulator.targets, message="a decision before the restart")

        private_broker.stop()
        await asyncio.to_thread(private_broker.start)
        await eventually(lambda: _not(pipeline.ready(worker_port)), timeout_s=30, interval_s=0.1,
                         message="the worker reports not ready")

        alarms = await eventually(lambda: _topic_alarms(pipeline, lambda found: any(
            a.state.value == "raised" and a.scope == "worker-1" for a in found)), timeout_s=30,
            message="PacingTopicsMissing raised by the worker")
        raised = next(a for a in alarms if a.state.value == "raised" and a.scope == "worker-1")
        # Which topics the worker finds lost depends on who repaired first (the sink recreates the
        # public ones); the table's changelog is the worker's alone.
        assert "the cluster lost topics" in raised.message and "target-state-changelog" in raised.message

        await eventually(lambda: pipeline.ready(worker_port), timeout_s=30, message="the worker ready again")
        await eventually(lambda: pipeline.ready(sink_port), timeout_s=30, message="the sink ready again")
        assert await _partitions(pipeline, pipeline.topics.stats) == 6

        await pipeline.produce(stat_records("vq-after", 4))
        await eventually(lambda: "vq-after" in emulator.targets
                         and user_data(emulator.targets["vq-after"])["readyAgents"] == "4",
                         timeout_s=30, message="a decision after the restart at the endpoint")
        found = await eventually(lambda: _topic_alarms(pipeline, lambda alarms: any(
            x.state.value == "cleared" and x.scope == "worker-1" for x in alarms)), timeout_s=30,
            message="the worker's PacingTopicsMissing cleared")
        assert [x.state.value for x in found if x.scope == "worker-1"] == ["raised", "cleared"]
        # The sink raises its own only if it finds topics lost before the worker recreated them all;
        # whatever it raised it clears.
        sink_states = [x.state.value for x in await _topic_alarms(pipeline, lambda _: True)
                       if x.scope == "sink:sink-1"]
        assert sink_states in ([], ["raised", "cleared"]), sink_states

        # A worker started now is not stuck restoring a changelog that vanished.
        await pipeline.start_worker()
    finally:
        pipeline.stop()


async def _not(check) -> bool:
    return not await check


async def _topic_alarms(pipeline: Pipeline, accept) -> list | None:
    try:
        records = await pipeline.read_all(pipeline.topics.alarms, timeout_s=0.5)
    except Exception:
        return None
    found = [decode_alarm(r.value) for r in records if r.key.decode().startswith("PacingTopicsMissing:")]
    return found if accept(found) else None


async def _partitions(pipeline: Pipeline, topic: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=pipeline.bootstrap)
    await admin.start()
    try:
        return len((await admin.describe_topics([topic]))[0]["partitions"])
    finally:
        await admin.close()
