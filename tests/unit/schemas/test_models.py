"""Validation rules of the record models and their one-line error descriptions."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from pydantic import ValidationError

from schemas import (
    AVRO_DIR,
    COUNTERS,
    GAUGES,
    MEDIA_TYPES,
    STATISTICS,
    ActionTargetDecision,
    Alarm,
    AlarmState,
    StatEvent,
    TargetConfig,
    describe_validation_error,
)


def stat(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "tenant": "acme",
        "target_id": "target-1",
        "statistic": "ready_agents",
        "value": 4.0,
        "timestamp": 1_700_000_000_000,
        "source": "test",
    }
    data.update(overrides)
    return data


def reason(model: type, data: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    return describe_validation_error(info.value)


def test_statistic_sets() -> None:
    assert {
        "ready_agents",
        "busy_agents",
        "logged_in_agents",
        "waiting_interactions",
        "outstanding_offers",
        "average_handle_time_s",
    } == GAUGES
    assert {
        "interactions_entered",
        "interactions_answered",
        "answered_within_sl",
        "interactions_abandoned",
        "short_abandoned",
        "offers_made",
        "offers_accepted",
    } == COUNTERS
    assert not GAUGES & COUNTERS
    assert STATISTICS == GAUGES | COUNTERS
    assert {"callback", "call", "email", "generic", "messaging", "social", "webchat"} == MEDIA_TYPES


def test_stat_event_valid() -> None:
    event = StatEvent.model_validate(stat(statistic="offers_made", media_type="webchat"))
    assert event.media_type == "webchat"
    assert StatEvent.model_validate(stat(value=0)).value == 0.0
    assert StatEvent.model_validate(stat(target_id="x" * 255)).target_id == "x" * 255


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"value": -1}, "value must be >= 0"),
        ({"value": math.nan}, "value must be finite"),
        ({"value": math.inf}, "value must be finite"),
        ({"statistic": "bogus"}, "statistic 'bogus' is not a known statistic"),
        ({"tenant": ""}, "tenant must not be empty"),
        ({"target_id": ""}, "target_id must not be empty"),
        ({"target_id": "x" * 256}, "target_id must be at most 255 characters"),
        ({"timestamp": 0}, "timestamp must be > 0"),
        (
            {"media_type": "fax"},
            "media_type 'fax' is not one of call, callback, email, generic, messaging, social, webchat",
        ),
        ({"extra": 1}, "unexpected field extra"),
    ],
)
def test_stat_event_rejections(overrides: dict[str, Any], expected: str) -> None:
    assert reason(StatEvent, stat(**overrides)) == expected


def test_missing_field_and_error_count() -> None:
    data = stat()
    del data["source"]
    assert reason(StatEvent, data) == "source is required"
    assert reason(StatEvent, stat(value=-1, timestamp=0)) == "value must be >= 0 (+1 more)"


def test_models_are_frozen() -> None:
    event = StatEvent.model_validate(stat())
    with pytest.raises(ValidationError):
        event.value = 3.0  # type: ignore[misc]


def decision(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "tenant": "acme",
        "target_id": "target-1",
        "name": "Sales",
        "state": "active",
        "supported_media_types": ["call"],
        "service_level_percentage": 0.8,
        "service_level_duration_ms": 20_000,
        "short_abandon_threshold": 5,
        "allowed_offers": 3,
        "reactive_admission": 1.0,
        "ready_agents": 2,
        "busy_agents": 5,
        "logged_in_agents": 7,
        "waiting_interactions": 0,
        "outstanding_offers": 1,
        "acceptance_rate": 0.5,
        "algorithm": "erlang-c",
        "computed_at": 1_700_000_000_000,
        "node": "node-1",
    }
    data.update(overrides)
    return data


def test_decision_rules() -> None:
    d = ActionTargetDecision.model_validate(decision())
    assert d.description == ""
    assert d.figures == {}
    assert d.to_avro_dict()["supported_media_types"] == ["call"]
    assert reason(ActionTargetDecision, decision(state="on")) == ("state must be 'active' or 'inactive'")
    assert reason(ActionTargetDecision, decision(reactive_admission=1.5)) == ("reactive_admission must be <= 1")
    assert reason(ActionTargetDecision, decision(allowed_offers=-1)) == ("allowed_offers must be >= 0")
    assert reason(ActionTargetDecision, decision(supported_media_types=["call", "fax"])) == (
        "supported_media_types 'fax' is not one of call, callback, email, generic, messaging, social, webchat"
    )


def test_alarm_state_enum() -> None:
    alarm = Alarm(
        name="PacingRequestsFailed",
        state=AlarmState.RAISED,
        severity="major",
        tenant="acme",
        node="node-1",
        scope="sink",
        message="3 failures",
        timestamp=1,
    )
    assert alarm.state == "raised"
    assert alarm.to_avro_dict()["state"] == "raised"
    assert type(alarm.to_avro_dict()["state"]) is str
    assert Alarm.model_validate(alarm.to_avro_dict()) == alarm
    data = alarm.model_dump()
    data["state"] = "up"
    assert reason(Alarm, data) == "state must be 'raised' or 'cleared'"


def test_target_config_defaults_and_rules() -> None:
    config = TargetConfig(tenant="acme", target_id="t", name="Sales", supported_media_types=())
    assert config.service_level_percentage is None
    assert config.description == ""
    data = config.model_dump()
    data["proactive_ratio"] = -0.1
    assert reason(TargetConfig, data) == "proactive_ratio must be >= 0"


@pytest.mark.parametrize("model", [StatEvent, ActionTargetDecision, Alarm, TargetConfig])
def test_models_mirror_newest_avro_schema(model: type) -> None:
    """Field names and order equal the newest schema version of the record."""
    files = sorted(
        AVRO_DIR.glob("*.avsc"),
        key=lambda p: int(p.name.rsplit(".v", 1)[1].split(".")[0]),
    )
    newest = None
    for path in files:
        schema = json.loads(path.read_text())
        if schema["name"] == model.__name__:
            newest = schema
    assert newest is not None
    assert newest["namespace"] == "com.pacing"
    assert [f["name"] for f in newest["fields"]] == list(model.model_fields)
