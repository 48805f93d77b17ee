"""Pydantic models mirroring the Avro records in ``schemas/avro``.

Each model has the same field names, order and meaning as the newest Avro
version of its record, so ``model.to_avro_dict()`` can be handed straight to
fastavro and an Avro-decoded dict can be validated with ``Model.model_validate``.
The models carry the validation rules the Avro types cannot express (allowed
statistic names, ranges, finite numbers); the codec runs every decoded record
through them so bad input is rejected with a precise reason instead of
reaching the pacing engine.

All models are frozen (safe to share between tasks) and forbid unknown fields
(a typo in a JSON producer is an error, not silently dropped data).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

__all__ = [
    "ALGORITHMS",
    "COUNTERS",
    "COUNTER_NAMES",
    "GAUGES",
    "MEDIA_TYPES",
    "STATISTICS",
    "ActionTargetDecision",
    "Alarm",
    "AlarmState",
    "AvroModel",
    "MediaType",
    "StatEvent",
    "TargetConfig",
    "describe_validation_error",
    "stat_event_if_valid",
]

#: Point-in-time statistics: the latest value replaces the previous one.
GAUGES: frozenset[str] = frozenset(
    {
        "ready_agents",
        "busy_agents",
        "logged_in_agents",
        "waiting_interactions",
        "outstanding_offers",
        "average_handle_time_s",
    }
)

#: Monotonic running totals: rates are computed from differences between samples. The one list
#: of counter names; its order is the column order of the engine's bucket rows, which is part of
#: the stored state (changelogs, RocksDB): append new counters, never reorder.
COUNTER_NAMES: tuple[str, ...] = (
    "interactions_entered",
    "interactions_answered",
    "answered_within_sl",
    "interactions_abandoned",
    "short_abandoned",
    "offers_made",
    "offers_accepted",
)
COUNTERS: frozenset[str] = frozenset(COUNTER_NAMES)

#: The pacing algorithms a TargetConfig may ask for and an ActionTargetDecision names: the one list
#: (the engine implements them, :mod:`streams.engine.decide`; ``AUTO`` or none chooses by group size).
SUPER_PROGRESSIVE = "SUPER_PROGRESSIVE"
SUPER_PROGRESSIVE_DUAL = "SUPER_PROGRESSIVE_DUAL"
PREDICTIVE_B = "PREDICTIVE_B"
PREDICTIVE_B_DUAL = "PREDICTIVE_B_DUAL"
ALGORITHMS: tuple[str, ...] = (SUPER_PROGRESSIVE, SUPER_PROGRESSIVE_DUAL, PREDICTIVE_B, PREDICTIVE_B_DUAL)

#: Every statistic name a StatEvent may carry.
STATISTICS: frozenset[str] = GAUGES | COUNTERS



class MediaType(StrEnum):
    """Media a target can take offers for (Genesys Cloud ``supportedMediaTypes`` values): the one list."""

    CALLBACK = "callback"
    CALL = "call"
    EMAIL = "email"
    GENERIC = "generic"
    MESSAGING = "messaging"
    SOCIAL = "social"
    WEBCHAT = "webchat"


#: Media types of the Genesys Cloud action-target model, as plain strings.
MEDIA_TYPES: frozenset[str] = frozenset(media.value for media in MediaType)

_MEDIA_TYPES_TEXT = ", ".join(sorted(MEDIA_TYPES))
_INT32_MAX = 2**31 - 1
_INT64_MAX = 2**63 - 1
_MAX_ID_LEN = 255

# Reusable constrained types.
_Tenant = Annotated[str, Field(min_length=1)]
_TargetId = Annotated[str, Field(min_length=1, max_length=_MAX_ID_LEN)]
_Fraction = Annotated[float, Field(ge=0, le=1)]
_Count32 = Annotated[int, Field(ge=0, le=_INT32_MAX)]
_EpochMs = Annotated[int, Field(gt=0, le=_INT64_MAX)]


def _short_repr(value: Any, limit: int = 40) -> str:
    """repr() of ``value`` cut to ``limit`` characters (reasons end up in Kafka headers)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_media_type(value: str) -> str:
    if value not in MEDIA_TYPES:
        raise ValueError(f"{_short_repr(value)} is not one of {_MEDIA_TYPES_TEXT}")
    return value


def _check_media_types(value: tuple[str, ...]) -> tuple[str, ...]:
    for media_type in value:
        _check_media_type(media_type)
    return value


_MediaTypes = Annotated[tuple[str, ...], AfterValidator(_check_media_types)]


class AvroModel(BaseModel):
    """Base of the record models: frozen, no extra fields, no NaN/inf floats."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    def to_avro_dict(self) -> dict[str, Any]:
        """Return a dict fastavro can write with this record's newest schema."""
        return self.model_dump()



class StatEvent(AvroModel):
    """One statistic value for one pacing target at one instant (topic ``pacing.stats``).

    Gauges (``GAUGES``) are current values; counters (``COUNTERS``) are running
    totals that only grow, so the engine derives rates from successive samples.
    """

    tenant: _Tenant
    target_id: _TargetId
    statistic: str
    value: float = Field(ge=0)
    timestamp: _EpochMs
    source: str
    media_type: str | None = None

    @field_validator("statistic")
    @classmethod
    def _known_statistic(cls, value: str) -> str:
        if value not in STATISTICS:
            raise ValueError(f"{_short_repr(value)} is not a known statistic")
        return value

    @field_validator("media_type")
    @classmethod
    def _known_media_type(cls, value: str | None) -> str | None:
        return None if value is None else _check_media_type(value)


# --- the StatEvent fast path ---------------------------------------------------------------
#
# ``StatEvent.model_validate(data, strict=True)`` costs a few microseconds per event, and the pacing
# node validates every event it reads. :func:`stat_event_if_valid` does the same for the common
# case (a plain dict of plain values that is valid) several times faster: it checks exactly the
# rules above by hand and builds the instance without pydantic. Anything it is not sure about
# (a rule broken, a str subclass, a non-ASCII tenant or target id, an integer too large to be exact
# as a float...) returns None, and the caller asks pydantic, which gives the answer and the reason. So
# it only ever changes speed, never the outcome: tests/unit/schemas/test_codec_fuzz.py checks that on
# generated dicts. Change it together with StatEvent's fields and validators.

_STAT_EVENT_FIELDS = ("tenant", "target_id", "statistic", "value", "timestamp", "source", "media_type")
_STAT_EVENT_ALL = frozenset(_STAT_EVENT_FIELDS)
_STAT_EVENT_REQUIRED = _STAT_EVENT_ALL - {"media_type"}
_MAX_FINITE = 1.7976931348623157e308
_MAX_EXACT_INT = 2**53  # ints up to here are exact as floats: pydantic's conversion and float() agree
_new_object = object.__new__
_set_slot = object.__setattr__


def _stat_event_unchecked(
    tenant: str, target_id: str, statistic: str, value: float, timestamp: int, source: str,
    media_type: str | None, fields_set: set[str],
) -> StatEvent:
    """A StatEvent from values already known to be valid: what ``model_validate`` would build.

    The same ``__dict__`` (field order, types), fields set, no extra and no private values, so
    it compares, hashes, dumps and copies like a validated instance. About 1 µs instead of 5.

    The one place that writes pydantic's private instance slots (``__pydantic_fields_set__``,
    ``__pydantic_extra__``, ``__pydantic_private__``): :func:`stat_event_if_valid` and the
    hand-written Avro reader (:mod:`schemas.fast.stat_reader`) build every StatEvent they accept
    here. ``StatEvent.model_construct`` is the public way, but measured on
    ``python -m tests.benchmarks.stat_decode`` it more than doubles the cost of a 13-event Avro
    StatBatch (1.70 -> 3.70 µs per event, medians of 3 alternating runs on the shared machine)
    and adds half to a single StatEvent (4.1 -> 6.3 µs). Those slots are pydantic 2's, so
    pyproject.toml pins ``pydantic<3``, and tests/unit/schemas/test_pydantic_compat.py fails if they
    change: check them there before raising the pin.
    """
    event = _new_object(StatEvent)
    _set_slot(event, "__dict__", {
        "tenant": tenant, "target_id": target_id, "statistic": statistic, "value": value,
        "timestamp": timestamp, "source": source, "media_type": media_type,
    })
    _set_slot(event, "__pydantic_fields_set__", fields_set)
    _set_slot(event, "__pydantic_extra__", None)
    _set_slot(event, "__pydantic_private__", None)
    return event


def stat_event_if_valid(data: object) -> StatEvent | None:
    """``StatEvent.model_validate(data, strict=True)`` when ``data`` is a plainly valid dict, else None.

    None means "not decided here": call pydantic, which accepts (an unusual but valid input) or
    raises the ValidationError that names the problem. Never raises itself.
    """
    if type(data) is not dict:
        return None
    keys = data.keys()
    if keys != _STAT_EVENT_ALL and keys != _STAT_EVENT_REQUIRED:
        return None
    tenant = data["tenant"]
    target_id = data["target_id"]
    statistic = data["statistic"]
    value = data["value"]
    timestamp = data["timestamp"]
    source = data["source"]
    media_type = data.get("media_type")
    if type(value) is not float:
        if type(value) is not int or not 0 <= value <= _MAX_EXACT_INT:
            return None
        value = float(value)
    if not (
        type(tenant) is str and tenant and tenant.isascii()  # pydantic refuses lone surrogates in constrained str
        and type(target_id) is str and 0 < len(target_id) <= _MAX_ID_LEN and target_id.isascii()
        and type(statistic) is str and statistic in STATISTICS
        and 0.0 <= value <= _MAX_FINITE  # also false for NaN
        and type(timestamp) is int and 0 < timestamp <= _INT64_MAX
        and type(source) is str
        and (media_type is None or (type(media_type) is str and media_type in MEDIA_TYPES))
    ):
        return None
    return _stat_event_unchecked(tenant, target_id, statistic, value, timestamp, source, media_type, set(keys))


class ActionTargetDecision(AvroModel):
    """Pacing decision for one target, emitted by a pacing node (topic ``pacing.actiontargets``).

    This is the internal record; the sink maps it onto the Genesys Cloud
    ActionTarget JSON (``userData`` carries the pacing figures).
    """

    tenant: _Tenant
    target_id: _TargetId
    name: str
    state: Literal["active", "inactive"]
    supported_media_types: _MediaTypes
    service_level_percentage: _Fraction
    service_level_duration_ms: int = Field(ge=0, le=_INT64_MAX)
    short_abandon_threshold: _Count32
    description: str = ""
    allowed_offers: _Count32
    reactive_admission: _Fraction
    ready_agents: _Count32
    busy_agents: _Count32
    logged_in_agents: _Count32
    waiting_interactions: _Count32
    outstanding_offers: _Count32
    acceptance_rate: _Fraction
    algorithm: str
    computed_at: _EpochMs
    node: str
    figures: dict[str, str] = Field(default_factory=dict)
    #: The computing node's ownership epoch (its group generation at assignment); 0 before epochs.
    owner_epoch: int = Field(0, ge=0, le=_INT64_MAX)

    def to_avro_dict(self) -> dict[str, Any]:
        """Return a dict fastavro can write (tuples become lists, the map a plain dict)."""
        data = self.model_dump()
        data["supported_media_types"] = list(self.supported_media_types)
        return data


class AlarmState(StrEnum):
    """Alarm transition: raised once when the condition starts, cleared once when it ends."""

    RAISED = "raised"
    CLEARED = "cleared"


class Alarm(AvroModel):
    """Alarm raise / clear event (topic ``pacing.alarms``, key = name + scope)."""

    name: str = Field(min_length=1)
    state: AlarmState
    severity: str
    tenant: str
    node: str
    scope: str
    message: str
    observed_value: float | None = None
    threshold: float | None = None
    timestamp: _EpochMs

    def to_avro_dict(self) -> dict[str, Any]:
        """Return a dict fastavro can write (the enum as its symbol string)."""
        data = self.model_dump()
        data["state"] = self.state.value
        return data


class TargetConfig(AvroModel):
    """Pacing target definition (topic ``pacing.targets``, compacted; a null value deletes it).

    Optional fields left as ``None`` mean "use the deployment's default".
    """

    tenant: _Tenant
    target_id: _TargetId
    name: str
    supported_media_types: _MediaTypes
    service_level_percentage: float | None = Field(default=None, ge=0, le=1)
    service_level_duration_ms: int | None = Field(default=None, ge=0, le=_INT64_MAX)
    short_abandon_threshold: int | None = Field(default=None, ge=0, le=_INT32_MAX)
    algorithm: str | None = None
    optimization_target: str | None = None
    optimization_goal: float | None = None
    proactive_ratio: float | None = Field(default=None, ge=0, le=1)
    description: str = ""

    def to_avro_dict(self) -> dict[str, Any]:
        """Return a dict fastavro can write (tuples become lists)."""
        data = self.model_dump()
        data["supported_media_types"] = list(self.supported_media_types)
        return data


def _loc_text(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            part = str(part)
            if len(part) > 40 or not part.isprintable():  # an unknown key from a producer: quote it, short
                part = _short_repr(part)
            text += f".{part}" if text else part
    return text or "record"


def _num(value: Any) -> str:
    """Render a constraint bound: ``0`` rather than ``0.0``."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# pydantic error type -> phrase; ``{loc}`` is the field, the rest come from the error's context.
_ERROR_TEMPLATES = {
    "missing": "{loc} is required",
    "extra_forbidden": "unexpected field {loc}",
    "finite_number": "{loc} must be finite",
    "greater_than_equal": "{loc} must be >= {ge}",
    "greater_than": "{loc} must be > {gt}",
    "less_than_equal": "{loc} must be <= {le}",
    "less_than": "{loc} must be < {lt}",
    "string_too_long": "{loc} must be at most {max_length} characters",
    "literal_error": "{loc} must be {expected}",
    "enum": "{loc} must be {expected}",
    "string_type": "{loc} must be a string",
    "string_unicode": "{loc} must be valid Unicode (no lone surrogates)",
    "float_type": "{loc} must be a number",
    "float_parsing": "{loc} must be a number",
    "int_type": "{loc} must be an integer",
    "int_parsing": "{loc} must be an integer",
    "int_from_float": "{loc} must be an integer",
}


def _error_text(error: Any, name: Callable[[tuple[int | str, ...]], str] = _loc_text) -> str:
    """One pydantic error as a short phrase, e.g. ``value must be >= 0``."""
    loc = name(tuple(error.get("loc", ())))
    kind = error.get("type", "")
    ctx = error.get("ctx") or {}
    template = _ERROR_TEMPLATES.get(kind)
    if template is not None:
        return template.format(loc=loc, **{k: _num(v) for k, v in ctx.items()})
    if kind == "string_too_short" and ctx.get("min_length") == 1:
        return f"{loc} must not be empty"
    if kind == "value_error":
        message = str(error.get("msg", ""))
        return f"{loc} {message.removeprefix('Value error, ')}"
    return f"{loc}: {error.get('msg', 'invalid')}"


def describe_validation_error(
    exc: ValidationError, *, every: bool = False, name: Callable[[tuple[int | str, ...]], str] = _loc_text
) -> str:
    """Summarise a pydantic ValidationError in one short line: the one place that does it.

    Used for DLQ ``error`` headers, logs, configuration errors, the sink's invalid-response
    reason and the emulator's 400s, so it names the field and the rule (``value must be >= 0``,
    ``statistic 'x' is not a known statistic``) rather than pydantic's multi-line report. Only
    the first error is spelled out (``(+N more)``) unless ``every``: then all, ``; ``-separated.
    ``name`` turns an error's location into the words for it (default ``a.b[2].c``).
    """
    errors = exc.errors(include_url=False, include_input=False)
    if not errors:
        return "invalid"
    if every:
        return "; ".join(_error_text(error, name) for error in errors)
    text = _error_text(errors[0], name)
    if len(errors) > 1:
        text += f" (+{len(errors) - 1} more)"
    return text
