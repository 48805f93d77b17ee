"""The topic guard (streams/node/topic_guard.py): a vanished topic alarms once and stops the worker,
a cluster that does not answer does not."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from streams.node.topic_guard import TopicGuard, TopicsMissing


class Recorder:
    def __init__(self, problems: list[str] | Exception, alarm_hangs: bool = False):
        self.problems = problems
        self.alarm_hangs = alarm_hangs
        self.alarms: list[list[str]] = []
        self.clears: list[str] = []
        self.stops: list[BaseException] = []

    async def find(self) -> list[str]:
        if isinstance(self.problems, Exception):
            raise self.problems
        return self.problems

    async def alarm(self, lost: list[str]) -> None:
        self.alarms.append(lost)
        if self.alarm_hangs:
            await asyncio.sleep(3600)

    async def clear(self, message: str) -> bool:
        self.clears.append(message)
        return True

    async def stop(self, reason: BaseException) -> None:
        self.stops.append(reason)

    def guard(self, mark: Path) -> TopicGuard:
        return TopicGuard(self.find, self.alarm, self.clear, self.stop, mark)


async def test_topics_in_place_change_nothing(tmp_path: Path) -> None:
    recorder = Recorder([])
    guard = recorder.guard(tmp_path / "mark")
    await guard.check()
    assert (guard.lost, recorder.alarms, recorder.clears, recorder.stops) == ([], [], [], [])


async def test_a_missing_topic_alarms_then_stops_the_worker_once_and_its_restart_clears_the_alarm(
        tmp_path: Path) -> None:
    mark = tmp_path / "node-1" / "topics-missing"
    recorder = Recorder(["pacing.stats missing"])
    guard = recorder.guard(mark)
    await guard.check()
    assert (guard.lost, recorder.alarms, recorder.stops) == ([], [], []), "one check is not enough"
    await guard.check()
    await guard.check()
    assert guard.lost == ["pacing.stats missing"]
    assert recorder.alarms == [["pacing.stats missing"]]
    [reason] = recorder.stops
    assert isinstance(reason, TopicsMissing) and "pacing.stats missing" in str(reason)

    recorder.problems = []  # the restarted worker created the topic again
    restarted = recorder.guard(mark)
    await restarted.check()
    await restarted.check()
    assert recorder.clears == ["topics back in place after: pacing.stats missing"]
    assert not mark.exists()


async def test_a_cluster_that_does_not_answer_is_not_a_lost_topic(tmp_path: Path) -> None:
    recorder = Recorder(ConnectionError("broker away"))
    guard = recorder.guard(tmp_path / "mark")
    await guard.check()
    assert (guard.lost, recorder.alarms, recorder.stops) == ([], [], [])


async def test_the_worker_stops_even_when_the_alarm_cannot_be_published(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("streams.node.topic_guard.ALARM_TIMEOUT_S", 0.05)
    recorder = Recorder(["pacing.alarms missing"], alarm_hangs=True)
    guard = recorder.guard(tmp_path / "mark")
    await guard.check()
    await guard.check()
    assert len(recorder.stops) == 1


async def test_a_problem_seen_once_then_gone_does_not_stop_the_worker(tmp_path: Path) -> None:
    recorder = Recorder(["pacing.stats has 1 partitions, expected 4"])  # a restarting broker's answer
    guard = recorder.guard(tmp_path / "mark")
    await guard.check()
    recorder.problems = []
    await guard.check()
    recorder.problems = ["pacing.stats has 1 partitions, expected 4"]
    await guard.check()
    assert (guard.lost, recorder.stops) == ([], [])
