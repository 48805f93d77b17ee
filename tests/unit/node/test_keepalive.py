"""Keepalive in-process: which owned targets are re-published, paced inactive when silent, or skipped."""

from __future__ import annotations

from schemas import TargetConfig, decode_alarm, decode_decision, encode_target_config
from streams.node.target_entry import TargetEntry
from streams.runtime import alarms
from tests.unit.node_doubles import T0, TENANT, PublishingParts

KEEPALIVE_S = 30
STALE_AFTER_S = 300


def parts_with(*targets: tuple[str, int, int]) -> PublishingParts:
    """Publishing parts whose table holds ``(target id, partition, received_ms)`` entries."""
    parts = PublishingParts(worker={"keepalive_s": KEEPALIVE_S, "stale_after_s": STALE_AFTER_S})
    for target_id, partition, received_ms in targets:
        entry = TargetEntry.new(target_id, partition, received_ms)
        for statistic, value in (("ready_agents", 3), ("busy_agents", 5), ("logged_in_agents", 8)):
            entry.state.apply(statistic, value, T0)
        parts.store.table.data[target_id] = entry.to_json()
    return parts


async def tick(parts: PublishingParts, owned: set[int], now_ms: int) -> int:
    return await parts.keepalive.run(owned, now_ms, parts.outbox())


def published(parts: PublishingParts) -> list[tuple[str, str]]:
    """(target, state) of every decision published so far."""
    return [(d.target_id, d.state) for d in (decode_decision(r.value)
                                             for r in parts.producer.to(parts.names.actiontargets))]


def alarm_transitions(parts: PublishingParts) -> list[tuple[str, str, str]]:
    return [(a.name, a.scope, a.state.value) for a in (decode_alarm(r.value)
                                                       for r in parts.producer.to(parts.names.alarms))]


async def test_owned_targets_are_published_once_then_again_when_the_keepalive_is_due() -> None:
    parts = parts_with(("a", 0, T0), ("b", 1, T0), ("c", 2, T0))
    assert await tick(parts, {0, 1}, T0 + 1000) == 2
    assert sorted(published(parts)) == [("a", "active"), ("b", "active")]  # never published by this node
    await tick(parts, {0, 1}, T0 + 2000)
    assert len(published(parts)) == 2  # not due yet
    await tick(parts, {0, 1}, T0 + 1000 + KEEPALIVE_S * 1000)
    assert len(published(parts)) == 4
    assert parts.count("pacing_decisions_emitted_total", reason="keepalive") == 2


async def test_a_silent_target_is_paced_inactive_with_one_target_stale_alarm() -> None:
    parts = parts_with(("a", 0, T0), ("b", 0, T0 + 200_000))
    await tick(parts, {0}, T0 + 1000)
    silent = T0 + STALE_AFTER_S * 1000 + 1
    await tick(parts, {0}, silent)
    await tick(parts, {0}, silent + 1000)
    # a went stale (inactive, once); b is fresh and its keepalive was due; the next tick has nothing to do
    assert sorted(published(parts)[2:]) == [("a", "inactive"), ("b", "active")]
    assert alarm_transitions(parts) == [(alarms.TARGET_STALE, "a", "raised")]
    [alarm] = [decode_alarm(r.value) for r in parts.producer.to(parts.names.alarms)]
    assert alarm.observed_value == (silent - T0) / 1000 and alarm.threshold == STALE_AFTER_S


async def test_a_redefined_target_is_published_at_once() -> None:
    parts = parts_with(("a", 0, T0), ("b", 0, T0))
    await tick(parts, {0}, T0 + 1000)
    config = TargetConfig(tenant=TENANT, target_id="b", name="Renamed", supported_media_types=("webchat",))
    parts.definitions.apply(b"b", encode_target_config(config))
    await tick(parts, {0}, T0 + 2000)
    decisions = [decode_decision(r.value) for r in parts.producer.to(parts.names.actiontargets)]
    assert [(d.target_id, d.name) for d in decisions[2:]] == [("b", "Renamed")]


async def test_a_tick_kafka_did_not_take_is_redone_at_the_next_tick() -> None:
    parts = parts_with(("a", 0, T0))
    parts.producer.failing.update({parts.names.actiontargets, parts.names.alarms})
    silent = T0 + STALE_AFTER_S * 1000 + 1
    assert await tick(parts, {0}, silent) == 1  # SendFailed is handled, not raised
    assert parts.count("pacing_send_failures_total") == 1
    assert parts.board.raised == []  # the alarm transition that never reached the topic is undone
    parts.producer.failing.clear()
    await tick(parts, {0}, silent + 1000)
    assert published(parts) == [("a", "inactive")]
    assert alarm_transitions(parts) == [(alarms.TARGET_STALE, "a", "raised")]


async def test_targets_of_partitions_given_away_are_forgotten_and_published_again_when_back() -> None:
    parts = parts_with(("a", 0, T0), ("b", 1, T0))
    await tick(parts, {0, 1}, T0 + 1000)
    await tick(parts, {1}, T0 + 2000)  # partition 0 moved to another node
    assert parts.publisher.last_sent_ms("a") == 0
    await tick(parts, {0, 1}, T0 + 3000)  # and came back: its decision goes out at once
    assert published(parts)[2:] == [("a", "active")]
