"""Decision records: defaults, per-target definitions, staleness."""

from __future__ import annotations

import gc

from streams.engine import TargetState
from streams.node.decisions import pacing_settings, target_settings
from streams.runtime.config import TargetDefaults, load_settings
from tests.unit.node.decision_models import build_decision, decision_fingerprint


def staffed() -> TargetState:
    state = TargetState("vq-1")
    for i, (name, value) in enumerate({"logged_in_agents": 10, "ready_agents": 4, "busy_agents": 6,
                                       "waiting_interactions": 0}.items()):
        state.apply(name, value, 1_000 + i)
    return state


def test_definition_overrides_defaults() -> None:
    defaults = load_settings().targets
    settings = pacing_settings(defaults, {"optimization_goal": 5.0, "short_abandon_threshold": 4,
                                          "algorithm": None, "name": "ignored here"})
    assert settings.optimization_goal == 5.0
    assert settings.short_abandon_threshold_s == 4
    assert settings.refresh_period_s == defaults.refresh_period_s


def test_record_carries_definition_and_figures() -> None:
    defaults = load_settings().targets
    now = 2_000
    decision = build_decision("acme", "n1", staffed(), defaults, now,
                              {"name": "Sales", "supported_media_types": ["callback"], "short_abandon_threshold": 4})
    assert (decision.name, decision.supported_media_types, decision.short_abandon_threshold) == (
        "Sales", ("callback",), 4)
    assert decision.ready_agents == 4 and decision.logged_in_agents == 10
    assert decision.computed_at == now and decision.node == "n1"


def test_stale_target_is_inactive_with_no_offers() -> None:
    defaults = load_settings().targets
    decision = build_decision("acme", "n1", staffed(), defaults, 2_000, stale=True)
    assert decision.state == "inactive" and decision.allowed_offers == 0
    assert decision.figures["stale"] == "true"


def test_fingerprint_ignores_time_and_node() -> None:
    defaults = load_settings().targets
    first = build_decision("acme", "n1", staffed(), defaults, 2_000)
    later = build_decision("acme", "n2", staffed(), defaults, 2_500)
    assert decision_fingerprint(first) == decision_fingerprint(later)


def test_each_settings_object_gets_its_own_cached_engine_settings() -> None:
    """The settings cache must not hand a new settings object a dead one's entry.

    CPython reuses a collected object's id, so a cache keyed by id(defaults) alone gave a later
    settings object the engine settings cached for an earlier one (a few iterations in).
    """
    for i in range(30):
        settings = load_settings(targets={"refresh_period_s": 10.0 + i})
        assert target_settings(settings.targets, None).refresh_period_s == 10.0 + i, f"settings object {i}"
        del settings
        gc.collect()


def test_the_configured_reactive_first_reaches_the_engine_and_a_definition_overrides_it() -> None:
    offers_first = TargetDefaults(reactive_first=False)
    assert pacing_settings(offers_first).reactive_first is False
    assert pacing_settings(TargetDefaults()).reactive_first is True
    assert pacing_settings(offers_first, {"reactive_first": True}).reactive_first is True
