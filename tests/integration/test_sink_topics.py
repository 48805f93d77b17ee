"""The sink after its broker restarted on memory storage (issue 6, item 6): topics gone, then back.

A private embedded broker (the session's broker is shared) is killed and started again on the
same port, as empty as Tansu's memory storage leaves it. The sink must notice, answer 503 on
``/readyz``, raise ``PacingTopicsMissing`` naming the topics, recreate them, consume again, clear
the alarm, and deliver a decision produced after the recovery.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time

import aiohttp
import pytest
from aiokafka.structs import TopicPartition

from infra.broker import EmbeddedBroker, free_port
from infra.emulator import JourneyEmulator
from schemas import AlarmState
from tests.integration.pipeline import eventually
from tests.integration.sink_harness import GROUP_PARTITIONS, SinkRun, decision, endpoint_ready_agents

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.environ.get("PACING_TEST_BROKER") == "kafka",
                       reason="restarts its own embedded Tansu broker: the same in both passes, run once"),
]


class ReadinessWatch:
    """Polls ``/readyz`` every 20 ms and keeps each change of status (so a short 503 is seen)."""

    def __init__(self, port: int):
        self.url = f"http://127.0.0.1:{port}/readyz"
        self.statuses: list[int | str] = []
        self._task: asyncio.Task[None] | None = None

    async def _poll(self) -> None:
        async with aiohttp.ClientSession() as session:
            while True:
                try:
                    async with session.get(self.url, timeout=aiohttp.ClientTimeout(total=1)) as response:
                        status: int | str = response.status
                except (aiohttp.ClientError, TimeoutError) as exc:
                    status = type(exc).__name__
                if not self.statuses or self.statuses[-1] != status:
                    self.statuses.append(status)
                await asyncio.sleep(0.02)

    def start(self) -> None:
        self._task = asyncio.create_task(self._poll())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def test_sink_recreates_its_topics_after_a_broker_restart_and_resumes(
        private_broker: EmbeddedBroker, emulator: JourneyEmulator) -> None:
    web_port = free_port()
    run = SinkRun(private_broker.bootstrap_servers, emulator,
                  sink={"web_port": web_port}, kafka={"topic_check_interval_s": 0.2})
    watch = ReadinessWatch(web_port)
    async with run:
        await run.produce([decision("vq-before", 1)])
        await eventually(lambda: endpoint_ready_agents(emulator) == {"vq-before": "1"}, message="first delivery")
        watch.start()
        await eventually(lambda: watch.statuses == [200], interval_s=0.05, message="ready before the restart")

        # Kill the broker and start an empty one on the same address: every topic is gone.
        await asyncio.to_thread(private_broker.stop, 0.5)
        await asyncio.to_thread(private_broker.start)
        restarted = time.monotonic()

        await eventually(lambda: 503 in watch.statuses and watch.statuses[-1] == 200, interval_s=0.05,
                         message="/readyz 503 while the topics are missing, then 200")
        transitions = await eventually(lambda: _cleared(run), message="PacingTopicsMissing raised then cleared")
        assert [a.state for a in transitions] == [AlarmState.RAISED, AlarmState.CLEARED]
        assert run.topics.actiontargets in transitions[0].message and transitions[0].scope.startswith("sink:")

        ends = await run.produce([decision("vq-after", 2)])
        await eventually(lambda: endpoint_ready_agents(emulator).get("vq-after") == "2",
                         message="a decision produced after the recovery reaches the endpoint")
        await eventually(lambda: _committed_at(run, ends), message="offsets committed on the new topic")
        assert time.monotonic() - restarted < 20
    await watch.stop()
    assert watch.statuses[0] == 200 and watch.statuses.index(503) < len(watch.statuses) - 1


async def _cleared(run: SinkRun) -> list | None:
    transitions = await run.alarms("PacingTopicsMissing")
    return transitions if transitions and transitions[-1].state == AlarmState.CLEARED else None


async def _committed_at(run: SinkRun, ends: dict) -> bool:
    # A recreated topic is read from its beginning, which is committed where nothing arrived yet:
    # it overwrites any offset of the lost topic that reached the group.
    beginnings = {TopicPartition(run.topics.actiontargets, p): 0 for p in range(GROUP_PARTITIONS)}
    return await run.committed() == {**beginnings, **ends}
