"""The HTTP contract of ``POST {base_service_url}v2/journey/actiontargets/bulk`` — one place.

Genesys Cloud documents the operation ("Perform bulk upsert of action targets", permission
``journey:actiontarget:add``, response type ``EnrichedActionTargetBulkResult``) and the
``ActionTarget`` model, but has not published the request body schema. This module is therefore
the single statement of what the sink sends and what it accepts back; the local emulator
validates against the same classes, so the two cannot drift apart.

Request (what we send)::

    POST /api/v2/journey/actiontargets/bulk
    Authorization: Bearer <access_token>
    Content-Type: application/json

    {"entities": [                                   # 1 .. 10,000 entities
      {"id": "vq-chat-sales",                        # non-empty; the upsert key
       "name": "Sales chat",                         # non-empty
       "state": "active",                            # active | inactive | deleted
       "supportedMediaTypes": ["webchat"],           # non-empty, see MediaType
       "serviceLevel": {"percentage": 0.8,           # 0..1
                        "durationMs": 20000},        # >= 0
       "shortAbandonThreshold": 10,                  # >= 0 (seconds, as in Genesys Cloud)
       "description": "",
       "userData": [{"key": "allowedOffers", "value": "4"}, ...]}   # values are strings
    ]}

Unknown fields are rejected (``extra="forbid"``) on the request side: an extra field is a bug
in our own serialisation, and the emulator reports it as a validation error.

Response (what we accept)::

    200 {"results": [{"id": "vq-chat-sales", "success": true, "entity": {...}},
                     {"id": "vq-bad", "success": false,
                      "error": {"status": 400, "code": "invalid.value", "message": "..."}}],
         "errorCount": 1, "errorIndexes": [1]}

``errorIndexes`` are positions in the request's ``entities``. The echoed ``entity`` may carry
the read-only fields Genesys Cloud adds (``selfUri``, ``createdDate``, ``modifiedDate``) and,
being the server's word rather than ours, tolerates fields we do not know; a body that does not
match :class:`BulkActionTargetsResponse` is what raises ``PacingResponseValidationError``.

Token (``POST {base_auth_url}``, OAuth2 client credentials) answers :class:`TokenResponse`.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from schemas.models import MediaType

MAX_BULK_ENTITIES = 10_000
"""Most entities one bulk request may carry (the classic Pacing Server's per-node ceiling)."""


class ActionTargetState(StrEnum):
    """Lifecycle of an action target; ``deleted`` is how a target is withdrawn by upsert."""

    ACTIVE = "active"
    INACTIVE = "inactive"
    DELETED = "deleted"


class _Strict(BaseModel):
    """Our own request-side shapes: an unknown field is an error, never silently dropped."""

    model_config = ConfigDict(extra="forbid")


class UserDataItem(_Strict):
    """One pacing figure carried to the engagement platform; values are always strings."""

    key: str = Field(min_length=1)
    value: str


class ServiceLevel(_Strict):
    """The service level offers are throttled towards: ``percentage`` within ``durationMs``."""

    percentage: float = Field(ge=0.0, le=1.0)
    durationMs: int = Field(ge=0)


class ActionTarget(_Strict):
    """One pacing target as sent to the bulk endpoint (Genesys Cloud ``ActionTarget``)."""

    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    state: ActionTargetState
    supportedMediaTypes: list[MediaType] = Field(min_length=1)
    serviceLevel: ServiceLevel
    shortAbandonThreshold: int = Field(ge=0)
    description: str = ""
    userData: list[UserDataItem] = Field(default_factory=list)


class EnrichedActionTarget(ActionTarget):
    """An ActionTarget as the server echoes it: plus read-only fields, unknown ones ignored.

    A subclass of :class:`ActionTarget`, so code that reads ``result.entity.id`` works either way;
    it exists so that a real Genesys response (which adds ``selfUri`` and timestamps) is not
    mistaken for a malformed one.
    """

    model_config = ConfigDict(extra="ignore")

    selfUri: str | None = None
    createdDate: str | None = None
    modifiedDate: str | None = None


class BulkError(BaseModel):
    """Why one entity (or a whole request) failed, in the Genesys error shape."""

    status: int
    code: str
    message: str


class BulkResult(BaseModel):
    """The outcome for one entity of the request, in request order."""

    id: str
    success: bool
    entity: EnrichedActionTarget | None = None
    error: BulkError | None = None


class BulkActionTargetsResponse(BaseModel):
    """The 200 answer: one result per entity plus the failed positions."""

    results: list[BulkResult]
    errorCount: int = Field(ge=0)
    errorIndexes: list[int]


class TokenResponse(BaseModel):
    """The OAuth2 client-credentials answer; ``expires_in`` is in whole seconds."""

    access_token: str = Field(min_length=1)
    token_type: str = "bearer"
    expires_in: int = Field(ge=0)


__all__ = [
    "MAX_BULK_ENTITIES",
    "ActionTarget",
    "ActionTargetState",
    "BulkActionTargetsResponse",
    "BulkError",
    "BulkResult",
    "EnrichedActionTarget",
    "MediaType",
    "ServiceLevel",
    "TokenResponse",
    "UserDataItem",
]
