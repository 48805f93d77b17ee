"""``pacing feed``: simulated centres that follow the published decisions, reported as stat events."""

from __future__ import annotations

from typing import Any

import pytest

from infra.stat_feed import PROFILES, encode_report, follow_decision, make_targets, report_events
from schemas import ActionTargetDecision, decode_stat_events, decode_stat_records, encode_decision
from streams.engine import PacingSettings
from streams.simulation.contact_centre import ContactCentre
from streams.simulation.policies import EnginePolicy
from streams.simulation.scenario import Scenario

NOW_MS = 1_700_000_000_000


def decision(target_id: str, allowed_offers: int, tenant: str = "acme", state: str = "active",
             admission: float = 1.0, **fields: Any) -> ActionTargetDecision:
    """A published decision with plausible figures."""
    return ActionTargetDecision(**{
        "tenant": tenant, "target_id": target_id, "name": target_id, "state": state,
        "supported_media_types": ["webchat"], "service_level_percentage": 0.8, "service_level_duration_ms": 20_000,
        "short_abandon_threshold": 10, "allowed_offers": allowed_offers, "reactive_admission": admission,
        "ready_agents": 1, "busy_agents": 1, "logged_in_agents": 2, "waiting_interactions": 0,
        "outstanding_offers": 0, "acceptance_rate": 0.3, "algorithm": "SUPER_PROGRESSIVE", "computed_at": NOW_MS,
        "node": "worker-1", **fields})


def test_targets_cycle_through_the_profiles_with_distinct_ids() -> None:
    targets = make_targets(len(PROFILES) + 2, seed=7)
    ids = [t.target_id for t in targets]
    assert ids[:len(PROFILES)] == [p.name for p in PROFILES]
    assert ids[len(PROFILES):] == [f"{PROFILES[0].name}-02", f"{PROFILES[1].name}-02"]
    assert {t.centre.sc.agents for t in targets} == {p.scenario.agents for p in PROFILES}
    with pytest.raises(ValueError, match="at least one target"):
        make_targets(0, seed=7)


def test_warm_up_leaves_a_working_floor_and_the_same_seed_the_same_floor() -> None:
    first, again = make_targets(3, seed=7), make_targets(3, seed=7)
    assert [t.centre.stats() for t in first] == [t.centre.stats() for t in again]
    for target in first:
        stats = target.centre.stats()
        assert stats["busy_agents"] > 0, target.target_id  # the engine paced it during the warm-up
        assert stats["interactions_answered"] > 0
        assert target.policy.decisions == 0


def test_a_centre_makes_the_offers_the_published_decision_allows() -> None:
    target = make_targets(1, seed=7)[0]
    centre, period = target.centre, target.centre.period
    before = centre.stats()["offers_made"]
    centre.advance(centre.now + 3 * period)
    assert centre.stats()["offers_made"] == before  # nothing published yet: no offers

    assert follow_decision({target.target_id: target}, "acme", encode_decision(decision(target.target_id, 7))) \
        == target.target_id
    before = centre.stats()["offers_made"]
    centre.advance(centre.now + 4 * period)
    assert centre.stats()["offers_made"] - before == 4 * 7  # the budget, once per refresh period

    follow_decision({target.target_id: target}, "acme",
                    encode_decision(decision(target.target_id, 7, state="inactive", admission=0.25)))
    before = centre.stats()["offers_made"]
    centre.advance(centre.now + 2 * period)
    assert centre.stats()["offers_made"] == before
    assert centre.admission == 0.25


def test_decisions_of_others_and_unreadable_records_are_skipped() -> None:
    target = make_targets(1, seed=7)[0]
    targets = {target.target_id: target}
    assert follow_decision(targets, "acme", encode_decision(decision("someone-else", 5))) is None
    assert follow_decision(targets, "acme", encode_decision(decision(target.target_id, 5, tenant="other"))) is None
    assert follow_decision(targets, "acme", None) is None
    assert follow_decision(targets, "acme", b"\xc3\x01garbage") is None
    assert target.policy.decisions == 0 and target.policy.allowed_offers == 0


def test_a_centre_stepped_in_pieces_runs_as_one_run() -> None:
    scenario = Scenario(agents=6, acceptance=0.3, reactive_per_hour=40, hours=0.25, warmup_s=300, seed=3)
    whole = ContactCentre(scenario, EnginePolicy(PacingSettings())).run()
    stepped = ContactCentre(scenario, EnginePolicy(PacingSettings()))
    t = 0.0
    while t < scenario.warmup_s + scenario.hours * 3600:
        t += 7.3
        stepped.advance(t)
    stepped.advance(stepped.end)
    assert stepped.run() == whole
    assert stepped.now == stepped.end


@pytest.mark.parametrize("as_json", [False, True])
def test_feed_sends_one_stat_batch_per_target_and_report(as_json: bool) -> None:
    events = report_events(make_targets(3, seed=7), "acme", NOW_MS)
    assert len(events) == 39
    records = encode_report(events, as_json=as_json)
    assert [key for key, _ in records] == [p.name.encode() for p in PROFILES[:3]]
    decoded = [e for _, value in records for e in decode_stat_records([value])[0]]
    assert decoded == events
    assert all(value.startswith(b'{"events":') == as_json for _, value in records)


@pytest.mark.parametrize("as_json", [False, True])
def test_feed_single_sends_one_stat_event_per_record(as_json: bool) -> None:
    events = report_events(make_targets(2, seed=7), "acme", NOW_MS)
    records = encode_report(events, as_json=as_json, single=True)
    assert len(records) == len(events) == 26
    assert decode_stat_events([value for _, value in records]) == events
    assert [key for key, _ in records] == [e.target_id.encode() for e in events]
