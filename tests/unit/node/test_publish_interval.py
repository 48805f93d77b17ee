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
from streams.runtime.kafka import consumer_options
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
        definitions = TargetDefinitions(consumer_options(settings), "pacing.targets", settings.tenant)
        self.publisher = DecisionPublisher(settings.tenant, settings.node_id, settings.targets, settings.worker, TOPIC,
                                           definitions, self.metrics, alarms)

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


def staffed(ready: int, at_ms: int, target_id: str = "vq-1", logged_in: int = 10) -> TargetState:
    state = TargetState(target_id)
    for statistic, value in (("logged_in_agents", logged_in), ("ready_agents", ready),
                             ("busy_agents", logged_in - ready)):
        state.apply(statistic, value, at_ms)
    return state


#: A group where one agent more or less ready moves the offers by a few (34 -> 38 -> 42 -> 45): not material.
LARGE = 100


async def test_changes_within_the_interval_are_held_and_the_newest_goes_out_when_it_ends() -> None:
    node = Node(publish_interval_s=5.0)
    state = staffed(ready=5, at_ms=T0, logged_in=LARGE)
    await node.tick(state, T0)
    for second, ready in ((1, 6), (2, 7), (3, 8)):
        state.apply("ready_agents", ready, T0 + second * 1000)
        await node.tick(state, T0 + second * 1000)
    assert [p[0] for p in node.published()] == [5], "small changes inside the interval must wait"
    assert node.publisher.take_due(T0 + 4_999) == []
    assert node.publisher.take_due(T0 + 5_000) == ["vq-1"]
    await node.tick(state, T0 + 5_000)
    assert [p[0] for p in node.published()] == [5, 8], "the newest decision goes out when the interval ends"
    assert node.metrics.decisions_held._value.get() == 1


async def test_agents_becoming_ready_in_a_closed_group_are_published_at_once() -> None:
    node = Node(publish_interval_s=5.0)
    state = staffed(ready=0, at_ms=T0)
    await node.tick(state, T0)
    assert node.published() == [(0, 0, "active")]
    state.apply("ready_agents", 10, T0 + 1_000)
    state.apply("busy_agents", 0, T0 + 1_000)
    await node.tick(state, T0 + 1_000)
    assert node.published()[-1][0] == 10 and node.published()[-1][1] > 0, \
        "free agents must not wait for the publish interval"


async def test_a_large_move_of_the_offers_or_a_resized_group_is_published_at_once() -> None:
    node = Node(publish_interval_s=5.0)
    state = staffed(ready=2, at_ms=T0)  # 4 offers
    await node.tick(state, T0)
    state.apply("ready_agents", 4, T0 + 1_000)
    state.apply("busy_agents", 6, T0 + 1_000)
    await node.tick(state, T0 + 1_000)
    offers = [p[1] for p in node.published()]
    assert len(offers) == 2 and offers[1] >= 2 * offers[0], f"a move of more than half must not wait: {offers}"

    resized = Node(publish_interval_s=5.0)
    group = staffed(ready=5, at_ms=T0, logged_in=LARGE)
    await resized.tick(group, T0)
    group.apply("logged_in_agents", LARGE + 1, T0 + 1_000)  # one agent more of 100: waits for the interval
    group.apply("busy_agents", LARGE - 4, T0 + 1_000)
    await resized.tick(group, T0 + 1_000)
    assert len(resized.published()) == 1
    group.apply("logged_in_agents", LARGE + 20, T0 + 2_000)  # a fifth more: the group was resized
    group.apply("busy_agents", LARGE + 15, T0 + 2_000)
    await resized.tick(group, T0 + 2_000)
    assert len(resized.published()) == 2, "a resized group must not wait"


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
    state = staffed(ready=5, at_ms=T0, logged_in=LARGE)
    await node.tick(state, T0)
    state.apply("ready_agents", 7, T0 + 1_000)
    await node.tick(state, T0 + 1_000)
    state.apply("ready_agents", 5, T0 + 2_000)
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
    state = staffed(ready=5, at_ms=T0, logged_in=LARGE)
    await node.tick(state, T0)
    allowed = node.published()[-1][1]
    assert allowed > 0
    assert state.offers_since(T0 - 1, T0 + 10_000) == allowed  # spread over the 10 s refresh period
    state.apply("ready_agents", 6, T0 + 1_000)
    await node.tick(state, T0 + 1_000)  # held
    assert len(node.published()) == 1
    assert state.offers_since(T0 - 1, T0 + 10_000) == allowed
