"""A target's changed decision is published at most once per ``worker.publish_interval_s``.

The publisher runs for real (engine, decision records, Avro encoding, outbox); only the Kafka
producer underneath is the recording stand-in of :mod:`tests.unit.node_doubles`.
"""

from __future__ import annotations

from schemas import decode_decision
from streams.engine import TargetState
from streams.node.decision_publisher import DecisionPublisher
from streams.node.target_definitions import TargetDefinitions
from streams.runtime.alarm_publisher import AlarmPublisher
from streams.runtime.alarms import AlarmBoard
from streams.runtime.metrics import NodeMetrics
from streams.runtime.outbox import Outbox
from tests.unit.node_doubles import T0, RecordingProducer, node_settings

TOPIC = "pacing.actiontargets"


class Node:
    """A publisher wired as a pacing node wires it, sending through a recording producer."""

    def __init__(self, publish_interval_s: float = 5.0, keepalive_s: float = 30.0):
        settings = node_settings(worker={"publish_interval_s": publish_interval_s, "keepalive_s": keepalive_s})
        self.producer = RecordingProducer()
        self.metrics = NodeMetrics()
        alarms = AlarmPublisher(AlarmBoard(settings.tenant, settings.node_id), "pacing.alarms", self.metrics,
                                self.outbox)
        self.publisher = DecisionPublisher(settings, TOPIC, TargetDefinitions(settings), self.metrics, alarms)

    def outbox(self) -> Outbox:
        return Outbox(self.producer, 5.0)

    async def tick(self, state: TargetState, at_ms: int, keepalive: bool = False) -> None:
        outbox = self.outbox()
        await self.publisher.publish(state, at_ms, outbox, keepalive=keepalive)
        await outbox.confirm()

    def published(self) -> list[tuple[int, int, str]]:
        """(ready agents, allowed offers, state) of every decision sent, in order."""
        decisions = [decode_decision(sent.value) for sent in self.producer.to(TOPIC)]
        return [(d.ready_agents, d.allowed_offers, d.state) for d in decisions]


def staffed(ready: int, at_ms: int, target_id: str = "vq-1") -> TargetState:
    state = TargetState(target_id)
    for statistic, value in (("logged_in_agents", 10), ("ready_agents", ready), ("busy_agents", 10 - ready)):
        state.apply(statistic, value, at_ms)
    return state


async def test_changes_within_the_interval_are_held_and_the_newest_goes_out_when_it_ends() -> None:
    node = Node(publish_interval_s=5.0)
    state = staffed(ready=2, at_ms=T0)
    await node.tick(state, T0)
    for second, ready in ((1, 3), (2, 4), (3, 5)):
        state.apply("ready_agents", ready, T0 + second * 1000)
        await node.tick(state, T0 + second * 1000)
    assert [p[0] for p in node.published()] == [2], "changes inside the interval must wait"
    assert node.publisher.take_due(T0 + 4_999) == []
    assert node.publisher.take_due(T0 + 5_000) == ["vq-1"]
    await node.tick(state, T0 + 5_000)
    assert [p[0] for p in node.published()] == [2, 5], "the newest decision goes out when the interval ends"
    assert node.metrics.decisions_held._value.get() == 1


async def test_a_stop_is_published_at_once() -> None:
    node = Node(publish_interval_s=5.0)
    state = staffed(ready=4, at_ms=T0)
    await node.tick(state, T0)
    assert node.published()[0][1] > 0
    for statistic in ("logged_in_agents", "ready_agents", "busy_agents"):
        state.apply(statistic, 0, T0 + 1_000)
    await node.tick(state, T0 + 1_000)
    assert node.published()[-1] == (0, 0, "inactive"), "a target that stops must not wait for the interval"


async def test_a_change_undone_within_the_interval_is_not_published() -> None:
    node = Node(publish_interval_s=5.0)
    state = staffed(ready=2, at_ms=T0)
    await node.tick(state, T0)
    state.apply("ready_agents", 4, T0 + 1_000)
    await node.tick(state, T0 + 1_000)
    state.apply("ready_agents", 2, T0 + 2_000)
    await node.tick(state, T0 + 2_000)
    assert node.publisher.take_due(T0 + 10_000) == []
    assert len(node.published()) == 1


async def test_keepalive_and_a_zero_interval_publish_every_change() -> None:
    node = Node(publish_interval_s=0.0)
    state = staffed(ready=2, at_ms=T0)
    await node.tick(state, T0)
    state.apply("ready_agents", 3, T0 + 100)
    await node.tick(state, T0 + 100)
    assert [p[0] for p in node.published()] == [2, 3]

    held = Node(publish_interval_s=5.0)
    other = staffed(ready=2, at_ms=T0)
    await held.tick(other, T0)
    other.apply("ready_agents", 3, T0 + 100)
    await held.tick(other, T0 + 100, keepalive=True)  # a keepalive pass or a new definition
    assert [p[0] for p in held.published()] == [2, 3]


async def test_what_was_published_is_what_the_state_counts_as_offered() -> None:
    # The engine counts offers made since its (late) statistics from the state's log of
    # published decisions: a held decision was never seen by the platform, so it is not logged.
    node = Node(publish_interval_s=5.0)
    state = staffed(ready=4, at_ms=T0)
    await node.tick(state, T0)
    allowed = node.published()[-1][1]
    assert allowed > 0
    assert state.offers_since(T0 - 1, T0 + 10_000) == allowed  # spread over the 10 s refresh period
    state.apply("ready_agents", 6, T0 + 1_000)
    await node.tick(state, T0 + 1_000)  # held
    assert len(node.published()) == 1
    assert state.offers_since(T0 - 1, T0 + 10_000) == allowed
