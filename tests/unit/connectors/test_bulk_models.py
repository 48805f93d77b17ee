"""The bulk API contract models accept what Genesys documents and refuse everything else."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import ValidationError

from connectors.bulk_models import (
    ActionTarget,
    ActionTargetState,
    BulkActionTargetsResponse,
    BulkResult,
    EnrichedActionTarget,
    MediaType,
    TokenResponse,
)


def valid_target(**overrides: Any) -> dict[str, Any]:
    """A complete, valid ActionTarget as JSON, with optional top-level overrides."""
    target: dict[str, Any] = {
        "id": "vq-chat-sales",
        "name": "Sales chat",
        "state": "active",
        "supportedMediaTypes": ["webchat", "callback"],
        "serviceLevel": {"percentage": 0.8, "durationMs": 20000},
        "shortAbandonThreshold": 10,
        "description": "pacing target for sales chat",
        "userData": [{"key": "allowedOffers", "value": "4"}],
    }
    target.update(overrides)
    return target


def test_valid_target_round_trips_with_camel_case_names() -> None:
    target = ActionTarget.model_validate(valid_target())
    assert target.state is ActionTargetState.ACTIVE
    assert target.supportedMediaTypes == [MediaType.WEBCHAT, MediaType.CALLBACK]
    assert target.model_dump(mode="json") == valid_target()


def test_optional_fields_default() -> None:
    body = valid_target()
    del body["description"], body["userData"]
    target = ActionTarget.model_validate(body)
    assert target.description == ""
    assert target.userData == []


def test_every_media_type_and_state_is_accepted() -> None:
    media = ["callback", "call", "email", "generic", "messaging", "social", "webchat"]
    assert [member.value for member in MediaType] == media
    for state in ("active", "inactive", "deleted"):
        ActionTarget.model_validate(valid_target(state=state, supportedMediaTypes=media))


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("id",), ""),
        (("name",), ""),
        (("state",), "paused"),
        (("supportedMediaTypes",), []),
        (("supportedMediaTypes",), ["fax"]),
        (("serviceLevel", "percentage"), 1.01),
        (("serviceLevel", "percentage"), -0.1),
        (("serviceLevel", "durationMs"), -1),
        (("shortAbandonThreshold",), -1),
        (("userData",), [{"key": "allowedOffers", "value": 4}]),
        (("userData",), [{"key": "", "value": "4"}]),
        (("userData",), [{"key": "allowedOffers"}]),
    ],
)
def test_each_constraint_is_enforced(path: tuple[str, ...], value: Any) -> None:
    body = valid_target()
    parent = body
    for part in path[:-1]:
        parent = parent[part]
    parent[path[-1]] = value
    with pytest.raises(ValidationError) as info:
        ActionTarget.model_validate(body)
    assert info.value.errors()[0]["loc"][: len(path)] == path


@pytest.mark.parametrize(
    "field",
    ["id", "name", "state", "supportedMediaTypes", "serviceLevel", "shortAbandonThreshold"],
)
def test_required_fields(field: str) -> None:
    body = valid_target()
    del body[field]
    with pytest.raises(ValidationError, match=field):
        ActionTarget.model_validate(body)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda body: body.update(selfUri="/api/v2/journey/actiontargets/x"),
        lambda body: body["serviceLevel"].update(unit="s"),
        lambda body: body["userData"][0].update(type="string"),
    ],
)
def test_unknown_fields_are_rejected_on_the_request_side(mutate: Any) -> None:
    body = copy.deepcopy(valid_target())
    mutate(body)
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        ActionTarget.model_validate(body)


def test_response_accepts_the_genesys_result_shape_and_read_only_fields() -> None:
    echoed = valid_target(selfUri="/api/v2/journey/actiontargets/vq-chat-sales",
                          createdDate="2024-01-01T00:00:00.000Z", version=3)
    body = {
        "results": [
            {"id": "vq-chat-sales", "success": True, "entity": echoed},
            {"id": "vq-bad", "success": False,
             "error": {"status": 400, "code": "invalid.value", "message": "name: too short"}},
        ],
        "errorCount": 1,
        "errorIndexes": [1],
    }
    response = BulkActionTargetsResponse.model_validate(body)
    entity = response.results[0].entity
    assert isinstance(entity, EnrichedActionTarget) and isinstance(entity, ActionTarget)
    assert entity.selfUri.endswith("/vq-chat-sales")
    assert response.results[1].error is not None
    assert response.results[1].error.code == "invalid.value"


@pytest.mark.parametrize(
    "body",
    [
        {"results": "not-a-list", "errorCount": "several"},
        {"results": [], "errorCount": -1, "errorIndexes": []},
        {"results": [], "errorCount": 0},
        {"results": [{"success": True}], "errorCount": 0, "errorIndexes": []},
        {"results": [{"id": "x", "success": False, "error": {"status": 500}}],
         "errorCount": 1, "errorIndexes": [0]},
    ],
)
def test_malformed_responses_fail(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        BulkActionTargetsResponse.model_validate(body)


def test_bulk_result_entity_and_error_are_optional() -> None:
    assert BulkResult(id="x", success=True).entity is None


def test_token_response() -> None:
    token = TokenResponse.model_validate({"access_token": "abc", "expires_in": 3600})
    assert token.token_type == "bearer"
    with pytest.raises(ValidationError):
        TokenResponse.model_validate({"access_token": "", "expires_in": 3600})
    with pytest.raises(ValidationError):
        TokenResponse.model_validate({"access_token": "abc", "expires_in": -1})
