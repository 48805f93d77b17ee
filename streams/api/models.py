"""The Pacing REST API's requests and answers as pydantic models: the one source of the OpenAPI document.

Queries are validated by these models (a wrong parameter is a 400 naming it); answers are built as
plain dicts of the same shape (no validation cost per request) and checked against these models by
the tests and by Schemathesis through the document. A target definition is the ``pacing.targets``
record itself, :class:`schemas.TargetConfig`, so the API and the topic accept exactly the same.
The two Genesys Web Engagement resources keep GWE's camelCase names (``reactiveState``,
``channelCapacity``); everything else uses the records' snake_case names.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.models import MEDIA_TYPES, TargetConfig

__all__ = [
    "CHANNEL_ALIASES",
    "Channel",
    "ChannelCapacity",
    "DecisionView",
    "DefinitionAccepted",
    "FieldProblem",
    "GroupsQuery",
    "ListQuery",
    "Problem",
    "ReactiveState",
    "TargetConfig",
    "TargetPage",
    "TargetView",
]

MAX_GROUPS = 100
MAX_PAGE = 1000
DEFAULT_PAGE = 100
MAX_ID_LEN = 255

#: GWE's channel names and the media type each stands for; every media type is a channel too.
CHANNEL_ALIASES: dict[str, str] = {"chat": "webchat", "webcallback": "callback"}

Channel = StrEnum("Channel", {name: name for name in sorted(MEDIA_TYPES | set(CHANNEL_ALIASES))})
Channel.__doc__ = "A media type, or GWE's channel name for one (chat = webchat, webcallback = callback)."

_TargetId = Annotated[str, Field(min_length=1, max_length=MAX_ID_LEN)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ListQuery(_Model):
    """``GET /v1/targets``: targets whose id starts with ``prefix``, in id order, a page at a time."""

    prefix: str = Field("", max_length=MAX_ID_LEN, description="only target ids that start with this")
    limit: int = Field(DEFAULT_PAGE, ge=1, le=MAX_PAGE, description="most targets in one page")
    cursor: str | None = Field(None, min_length=1, max_length=1024,
                               description="next_cursor of the previous page (opaque)")


class GroupsQuery(_Model):
    """``reactiveState`` and ``channelCapacity``: one channel, some groups (target ids) or all of them."""

    channel: Channel = Field(description="media type, or GWE's chat / webcallback")
    groups: list[_TargetId] = Field(default_factory=list, max_length=MAX_GROUPS,
                                    description="target ids (repeat the parameter); none = every target")


class DecisionView(_Model):
    """A target's newest published decision, as every worker read it from ``pacing.actiontargets``."""

    name: str
    state: Literal["active", "inactive"]
    supported_media_types: list[str]
    allowed_offers: int = Field(ge=0, description="offers allowed for the next refresh period")
    reactive_admission: float = Field(ge=0, le=1, description="probability that a reactive engagement is admitted")
    algorithm: str
    acceptance_rate: float = Field(ge=0, le=1, description="measured share of offers accepted")
    abandonment_pct: float | None = Field(description="measured abandoned share of interactions, %")
    service_level_pct: float | None = Field(description="measured share answered within the service level, %")
    ready_agents: int = Field(ge=0)
    busy_agents: int = Field(ge=0)
    logged_in_agents: int = Field(ge=0)
    waiting_interactions: int = Field(ge=0)
    outstanding_offers: int = Field(ge=0)
    service_level_percentage: float = Field(ge=0, le=1)
    service_level_duration_ms: int = Field(ge=0)
    node: str = Field(description="the worker that owns the target and decided")
    partition: int = Field(ge=0, description="the target's home partition of pacing.stats")
    computed_at: int = Field(description="when it was decided, ms since the epoch")
    age_s: float = Field(description="seconds since computed_at, on this worker's clock")
    figures: dict[str, str] = Field(description="the engine's figures, as in the bulk request's userData")


class TargetView(_Model):
    """One target: its newest decision (none before its first one) and its definition (none: the defaults)."""

    target_id: _TargetId
    decision: DecisionView | None
    definition: TargetConfig | None


class TargetPage(_Model):
    """A page of targets in target-id order; ``next_cursor`` asks for the next one (null: this is the last)."""

    items: list[TargetView]
    next_cursor: str | None


class ReactiveState(_Model):
    """GWE's Reactive State: the probability that a new reactive engagement should be allowed.

    Over several groups: the mean of their reactive admission weighted by their logged-in agents;
    an inactive group, or a group without a decision yet, adds no weight; no weight at all is 0.
    """

    reactiveState: float = Field(ge=0, le=1)
    channel: str
    groupsCounted: int = Field(ge=0, description="groups with an active decision for the channel")
    groupsWithoutDecision: list[str] = Field(description="named groups with no decision yet")


class ChannelCapacity(_Model):
    """GWE's Channel Capacity: agents free to take a new interaction (ready minus waiting, summed)."""

    channelCapacity: int = Field(ge=0)
    channel: str
    groupsCounted: int = Field(ge=0, description="groups with an active decision for the channel")
    groupsWithoutDecision: list[str] = Field(description="named groups with no decision yet")


class DefinitionAccepted(_Model):
    """A definition written to ``pacing.targets`` and acknowledged by Kafka; every worker applies it shortly."""

    target_id: str
    operation: Literal["put", "delete"]
    topic: str


class FieldProblem(_Model):
    """One thing wrong with a request: where, and why."""

    field: str
    reason: str


class Problem(_Model):
    """An RFC 9457 problem detail (``application/problem+json``)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    type: str = "about:blank"
    title: str
    status: int = Field(ge=400, le=599)
    detail: str
    instance: str | None = None
    errors: list[FieldProblem] | None = None
