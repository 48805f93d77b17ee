"""DecisionPublisher in-process: what is published, when, and what a failure leaves behind."""

from __future__ import annotations

from typing import Any

import pytest

import streams.node.decision_publisher as decision_publisher
from schemas import TargetConfig, decode_alarm, decode_decision, encode_target_config
from streams.engine import TargetState
from streams.runtime import alarms
from streams.runtime.outbox import SendFailed
from tests.unit.node_doubles import T0, TENANT, PublishingParts

KEEPALIVE_S = 30


def state(target_id: str = "vq-1", ready: float = 3.0, at_ms: int = T0) -> TargetState:
    target = TargetState(target_id)
    for statistic, value in (("ready_agents", ready), ("busy_agents", 5), ("logged_in_agents", 8 + ready),
                             ("waiting_interactions", 2)):
        target.apply(statistic, value, at_ms)
    return target


async def publish(parts: PublishingParts, target: TargetState, now_ms: int, **options: Any) -> None:
    outbox = parts.outbox()
    await parts.publisher.publish(target, now_ms, outbox, keepalive=options.pop("keepalive", False), **options)
    await outbox.confirm()


def decisions(parts: PublishingParts) -> list[Any]:
    return [decode_decision(record.value) for record in parts.producer.to(parts.names.actiontargets)]


async def test_a_decision_is_published_once_until_it_changes() -> None:
    parts = PublishingParts(worker={"keepalive_s": KEEPALIVE_S})
    target = state()
    await publish(parts, target, T0 + 1000)
    await publish(parts, target, T0 + 2000)  # same inputs: nothing new to say
    target.apply("ready_agents", 10, T0 + 1500)
    later = T0 + 1000 + KEEPALIVE_S * 1000  # past any publish interval (holding is tested in test_publish_interval)
    await publish(parts, target, later)
    sent = parts.producer.to(parts.names.actiontargets)
    assert [record.key for record in sent] == [b"vq-1", b"vq-1"]
    first, second = decisions(parts)
    assert (first.tenant, first.target_id, first.state, first.ready_agents) == (TENANT, "vq-1", "active", 3)
    assert second.ready_agents == 10 and second.allowed_offers > first.allowed_offers
    assert parts.count("pacing_decisions_emitted_total", reason="changed") == 2
    assert parts.publisher.last_sent_ms("vq-1") == later


async def test_an_unchanged_decision_is_repeated_only_when_a_keepalive_is_due() -> None:
    parts = PublishingParts(worker={"keepalive_s": KEEPALIVE_S})
    target = state()
    await publish(parts, target, T0)
    await publish(parts, target, T0 + KEEPALIVE_S * 1000 - 1, keepalive=True)  # not yet due
    await publish(parts, target, T0 + KEEPALIVE_S * 1000, keepalive=True)
    assert len(decisions(parts)) == 2
    assert parts.count("pacing_decisions_emitted_total", reason="keepalive") == 1


async def test_a_decision_kafka_did_not_take_is_published_again() -> None:
    parts = PublishingParts()
    parts.producer.failing.add(parts.names.actiontargets)
    outbox = parts.outbox()
    await parts.publisher.publish(state(), T0, outbox, keepalive=False)
    with pytest.raises(SendFailed):
        await outbox.confirm()
    assert parts.publisher.last_sent_ms("vq-1") == 0  # not remembered as published
    parts.producer.failing.clear()
    await publish(parts, state(), T0 + 1)
    assert len(decisions(parts)) == 1 and parts.count("pacing_decisions_emitted_total", reason="changed") == 1


async def test_a_stale_target_is_published_inactive_without_offers() -> None:
    parts = PublishingParts()
    await publish(parts, state(), T0, stale=True)
    [decision] = decisions(parts)
    assert (decision.state, decision.allowed_offers, decision.figures.get("stale")) == ("inactive", 0, "true")


async def test_the_targets_definition_names_it_and_sets_its_service_level() -> None:
    parts = PublishingParts()
    config = TargetConfig(tenant=TENANT, target_id="vq-1", name="Sales callbacks", supported_media_types=("call",),
                          service_level_percentage=0.9, service_level_duration_ms=15_000)
    parts.definitions.apply(b"vq-1", encode_target_config(config))
    await publish(parts, state(), T0)
    [decision] = decisions(parts)
    assert decision.name == "Sales callbacks" and decision.supported_media_types == ("call",)
    assert (decision.service_level_percentage, decision.service_level_duration_ms) == (0.9, 15_000)


async def test_an_engine_failure_costs_that_target_only_and_is_alarmed_until_it_decides_again(
        monkeypatch: pytest.MonkeyPatch) -> None:
    parts = PublishingParts()
    real = decision_publisher.decision_record

    def failing_for_vq1(tenant: str, node: str, target: TargetState, *args: Any, **kwargs: Any) -> dict[str, Any]:
        if target.target_id == "vq-1":
            raise ArithmeticError("no solution")
        return real(tenant, node, target, *args, **kwargs)

    monkeypatch.setattr(decision_publisher, "decision_record", failing_for_vq1)
    for _ in range(2):
        await publish(parts, state("vq-1"), T0)
    await publish(parts, state("vq-2"), T0)
    assert [d.target_id for d in decisions(parts)] == ["vq-2"]
    assert parts.count("pacing_decision_errors_total") == 2
    raised = [decode_alarm(record.value) for record in parts.producer.to(parts.names.alarms)]
    assert [(a.name, a.scope, a.state.value) for a in raised] == [(alarms.PACING_DECISION_FAILED, "vq-1", "raised")]
    assert "ArithmeticError: no solution" in raised[0].message

    monkeypatch.setattr(decision_publisher, "decision_record", real)
    await publish(parts, state("vq-1"), T0 + 1)
    cleared = decode_alarm(parts.producer.to(parts.names.alarms)[-1].value)
    assert (cleared.name, cleared.scope, cleared.state.value) == (alarms.PACING_DECISION_FAILED, "vq-1", "cleared")
    assert [d.target_id for d in decisions(parts)] == ["vq-2", "vq-1"]


async def test_targets_no_longer_owned_are_forgotten() -> None:
    parts = PublishingParts()
    for target_id in ("vq-1", "vq-2"):
        await publish(parts, state(target_id), T0)
    parts.publisher.forget_except({"vq-2"})
    assert (parts.publisher.last_sent_ms("vq-1"), parts.publisher.last_sent_ms("vq-2")) == (0, T0)
    await publish(parts, state("vq-1"), T0 + 1)  # taken over again: published at once, unchanged or not
    assert [d.target_id for d in decisions(parts)] == ["vq-1", "vq-2", "vq-1"]
