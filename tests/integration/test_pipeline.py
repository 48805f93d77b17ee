"""End to end on the real broker: stat events in, bulk requests at the emulator out."""

from __future__ import annotations

import json
import time

from schemas import StatEvent, decode_decision, encode_stat_event
from streams.engine import TargetState
from tests.integration.pipeline import Pipeline, eventually, user_data
from tests.unit.node.decision_models import build_decision


def stat_events(tenant: str, target_id: str, stats: dict[str, float], media: str = "webchat") -> list[StatEvent]:
    now = int(time.time() * 1000)
    return [StatEvent(tenant=tenant, target_id=target_id, statistic=name, value=value, timestamp=now,
                      source="test", media_type=media) for name, value in stats.items()]


def expected_decision(pipeline: Pipeline, events: list[StatEvent]):
    state = TargetState(events[0].target_id)
    for e in events:
        state.apply(e.statistic, e.value, e.timestamp, e.media_type)
    settings = pipeline.settings
    return build_decision(settings.tenant, "test", state, settings.targets, int(time.time() * 1000))


STAFFED = {"logged_in_agents": 8, "ready_agents": 5, "busy_agents": 3, "waiting_interactions": 1,
           "outstanding_offers": 0, "offers_made": 100, "offers_accepted": 25}
UNSTAFFED = {"logged_in_agents": 0, "ready_agents": 0, "busy_agents": 0, "waiting_interactions": 2}


async def test_avro_and_json_events_reach_the_endpoint_as_pacing_figures(pipeline: Pipeline) -> None:
    await pipeline.start_worker_and_sink()
    avro_events = stat_events("acme", "vq-avro", STAFFED)
    json_events = stat_events("acme", "vq-json", UNSTAFFED, media="callback")
    await pipeline.produce([(e.target_id.encode(), encode_stat_event(e)) for e in avro_events])
    await pipeline.produce([(e.target_id.encode(), json.dumps(e.model_dump(mode="json")).encode())
                            for e in json_events])

    expected = expected_decision(pipeline, avro_events)

    def both_delivered():
        # The first decision may come from the first of the statistics alone (a new target is decided
        # at once); a later change of a few offers follows within worker.publish_interval_s.
        targets = pipeline.emulator.targets
        return targets if {"vq-avro", "vq-json"} <= targets.keys() and all(
            user_data(targets[t])["readyAgents"] == str(int(s["ready_agents"]))
            for t, s in (("vq-avro", STAFFED), ("vq-json", UNSTAFFED))) and (
            user_data(targets["vq-avro"])["allowedOffers"] == str(expected.allowed_offers)) else None

    targets = await eventually(both_delivered, message="both targets at the endpoint, fully decided")
    staffed, unstaffed = targets["vq-avro"], targets["vq-json"]
    figures = user_data(staffed)
    assert staffed.state.value == "active" and expected.state == "active"
    assert figures["allowedOffers"] == str(expected.allowed_offers) and expected.allowed_offers > 0
    assert figures["readyAgents"] == "5" and figures["waitingInteractions"] == "1"
    assert figures["acceptanceRate"] == "0.2500"
    assert [m.value for m in staffed.supportedMediaTypes] == ["webchat"]
    assert staffed.serviceLevel.percentage == 0.8 and staffed.serviceLevel.durationMs == 20000
    assert unstaffed.state.value == "inactive"
    assert user_data(unstaffed)["allowedOffers"] == "0"
    assert [m.value for m in unstaffed.supportedMediaTypes] == ["callback"]
    # The decisions topic holds the same figures, keyed by target id.
    records = await pipeline.read_all(pipeline.topics.actiontargets)
    latest = {r.key.decode(): decode_decision(r.value) for r in records}
    assert latest["vq-avro"].allowed_offers == expected.allowed_offers


async def test_bad_events_go_to_the_dlq_with_a_reason_and_good_ones_still_flow(pipeline: Pipeline) -> None:
    await pipeline.start_worker_and_sink()
    invalid = json.dumps({"tenant": "acme", "target_id": "vq-1", "statistic": "ready_agents",
                          "value": -3, "timestamp": int(time.time() * 1000), "source": "t"}).encode()
    foreign = stat_events("globex", "vq-1", {"ready_agents": 4})[0]
    good = stat_events("acme", "vq-after", {"ready_agents": 3, "logged_in_agents": 3})
    await pipeline.produce([
        (b"vq-1", b"\x00\x01 definitely not a stat event"),
        (b"vq-1", invalid),
        (b"vq-1", encode_stat_event(foreign)),
        *[(b"vq-after", encode_stat_event(e)) for e in good],
    ])
    await eventually(lambda: "vq-after" in pipeline.emulator.targets, message="the good target delivered")

    async def three_rejections():
        records = await pipeline.read_all(pipeline.topics.stats_dlq, timeout_s=0.5)
        return records if len(records) >= 3 else None

    records = await eventually(three_rejections, message="three DLQ records")
    reasons = [dict(r.headers)["error"].decode() for r in records]
    assert records[0].value == b"\x00\x01 definitely not a stat event"
    assert "not Avro single-object or JSON" in reasons[0]
    assert "value" in reasons[1] and ">= 0" in reasons[1]
    assert "globex" in reasons[2] and "acme" in reasons[2]
    assert "vq-1" not in pipeline.emulator.targets
    assert user_data(pipeline.emulator.targets["vq-after"])["readyAgents"] == "3"


async def test_target_definition_change_reaches_the_endpoint_without_restart(pipeline: Pipeline) -> None:
    # The longest keepalive allowed: the redefinition must arrive well before a keepalive would carry it.
    await pipeline.start_worker_and_sink(worker={"PACING_WORKER__KEEPALIVE_S": "30"})
    await pipeline.produce([(e.target_id.encode(), encode_stat_event(e))
                            for e in stat_events("acme", "vq-def", STAFFED)])
    first = await eventually(lambda: pipeline.emulator.targets.get("vq-def"), message="target at the endpoint")
    assert first.name == "vq-def" and first.serviceLevel.percentage == 0.8

    definition = {"tenant": "acme", "target_id": "vq-def", "name": "Sales chat",
                  "supported_media_types": ["webchat", "callback"], "service_level_percentage": 0.9,
                  "service_level_duration_ms": 30000}
    await pipeline.produce([(b"vq-def", json.dumps(definition).encode())], topic=pipeline.topics.targets)

    def redefined():
        entity = pipeline.emulator.targets.get("vq-def")
        return entity if entity is not None and entity.name == "Sales chat" else None

    entity = await eventually(redefined, timeout_s=15.0, message="the new definition at the endpoint")
    assert entity.serviceLevel.percentage == 0.9 and entity.serviceLevel.durationMs == 30000
    assert [m.value for m in entity.supportedMediaTypes] == ["webchat", "callback"]


async def test_a_restarted_worker_publishes_defined_names_from_its_first_decision(pipeline: Pipeline) -> None:
    # Many definitions ahead of ours, and statistics already waiting: the worker must read the
    # definitions to their end before its first decision, or vq-named would go out as "vq-named".
    def definition(target_id: str, name: str) -> tuple[bytes, bytes]:
        return target_id.encode(), json.dumps({"tenant": "acme", "target_id": target_id, "name": name,
                                               "supported_media_types": ["webchat"]}).encode()

    definitions = [definition(f"vq-other-{i}", f"Other {i}") for i in range(3000)]
    definitions.append(definition("vq-named", "Billing chat"))
    await pipeline.produce(definitions, topic=pipeline.topics.targets)
    await pipeline.produce([(e.target_id.encode(), encode_stat_event(e))
                            for e in stat_events("acme", "vq-named", STAFFED)])
    await pipeline.start_worker()

    async def first_decision():
        records = await pipeline.read_all(pipeline.topics.actiontargets, timeout_s=0.5)
        return records[0] if records else None

    decision = decode_decision((await eventually(first_decision, message="a first decision")).value)
    assert decision.target_id == "vq-named" and decision.name == "Billing chat"
