"""From a target's state and pacing settings to the published decision record.

The node builds decisions as plain Avro-shaped dicts (:func:`decision_record`) and encodes them
as such (:func:`encode_decision_record`): a pydantic model per target per tick cost more than the
engine's decision itself. Nothing in the product needs the model form; the tests build it
(``tests/unit/node/decision_models.py``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from schemas import ActionTargetDecision, encode_decision_fields
from streams.engine import PacingDecision, PacingSettings, TargetState, decide
from streams.runtime.config import TargetDefaults

# Fields whose change alone does not make a decision "different": the time, the node, and the
# engine's extra figures (rates drift a little on every tick; they ride along with the next change
# or keepalive instead of flooding the sink). Rates count only rounded.
_VOLATILE = frozenset({"computed_at", "node", "figures", "acceptance_rate", "reactive_admission"})
_FINGERPRINT_FIELDS = tuple(name for name in ActionTargetDecision.model_fields if name not in _VOLATILE)
_SETTINGS_FIELDS = frozenset(f.name for f in dataclasses.fields(PacingSettings))
_ENGINE_INPUTS = _SETTINGS_FIELDS | {"short_abandon_threshold"}  # TargetConfig's name for the threshold
_GAUGES = ("ready_agents", "busy_agents", "logged_in_agents", "waiting_interactions", "outstanding_offers")
#: Settings per (defaults, definition): a target's definition changes rarely, its decision every tick.
#: Keyed by id(defaults), which is cheap where hashing the model's values is not (once per decision);
#: each entry keeps its defaults object, so that id cannot be reused by another object while cached.
_SETTINGS_CACHE: dict[tuple[int, tuple[tuple[str, Any], ...]], tuple[TargetDefaults, PacingSettings]] = {}
_SETTINGS_CACHE_MAX = 65_536


def pacing_settings(defaults: TargetDefaults, overrides: dict[str, Any] | None = None) -> PacingSettings:
    """Engine settings for one target: configured defaults, then the target's own definition."""
    values: dict[str, Any] = {
        "algorithm": defaults.algorithm,
        "optimization_target": defaults.optimization_target,
        "optimization_goal": defaults.optimization_goal,
        "proactive_ratio": defaults.proactive_ratio,
        "acceptance_prior": defaults.acceptance_prior,
        "service_level_percentage": defaults.service_level_percentage,
        "service_level_duration_ms": defaults.service_level_duration_ms,
        "short_abandon_threshold_s": defaults.short_abandon_threshold_s,
        "refresh_period_s": defaults.refresh_period_s,
        "rate_window_s": defaults.rate_window_s,
        "count_short_abandons": defaults.count_short_abandons,
        "auto_predictive_occupancy": defaults.auto_predictive_occupancy,
        "reactive_first": defaults.reactive_first,
        # Staleness is the node's call, on arrival time (worker.stale_after_s): an ACD clock
        # that runs behind ours must not turn every target off.
        "stale_after_s": 0.0,
    }
    overrides = dict(overrides or {})
    if "short_abandon_threshold" in overrides:  # TargetConfig's name for it
        overrides["short_abandon_threshold_s"] = overrides.pop("short_abandon_threshold")
    values.update({k: v for k, v in overrides.items() if v is not None})
    return PacingSettings(**{k: v for k, v in values.items() if k in _SETTINGS_FIELDS and v is not None})


def target_settings(defaults: TargetDefaults, definition: dict[str, Any] | None) -> PacingSettings:
    """The engine settings of one target (configured defaults, then its definition), cached."""
    return _cached_settings(defaults, definition or {})


def _cached_settings(defaults: TargetDefaults, definition: dict[str, Any]) -> PacingSettings:
    # Keyed by the definition fields the engine reads (scalars; media types and names are not).
    key = (id(defaults), tuple(sorted((k, v) for k, v in definition.items() if k in _ENGINE_INPUTS)))
    entry = _SETTINGS_CACHE.get(key)
    if entry is None or entry[0] is not defaults:
        if len(_SETTINGS_CACHE) >= _SETTINGS_CACHE_MAX:
            _SETTINGS_CACHE.clear()
        entry = _SETTINGS_CACHE[key] = (defaults, pacing_settings(defaults, definition))
    return entry[1]


def decision_record(
    tenant: str,
    node: str,
    state: TargetState,
    defaults: TargetDefaults,
    now_ms: int,
    definition: dict[str, Any] | None = None,
    stale: bool = False,
    owner_epoch: int = 0,
) -> dict[str, Any]:
    """The decision for one target as the Avro record's fields; a stale target is inactive with no offers.

    ``owner_epoch`` is the deciding node's ownership epoch (:mod:`streams.node.ownership`).
    """
    definition = definition or {}
    result: PacingDecision = decide(state, _cached_settings(defaults, definition), now_ms)
    media = definition.get("supported_media_types") or (
        [state.media_type] if state.media_type else list(defaults.supported_media_types)
    )
    active = result.active and not stale
    figures = dict(result.figures)
    if stale:
        figures["stale"] = "true"
    gauges = state.gauges
    record = {
        "tenant": tenant,
        "target_id": state.target_id,
        "name": definition.get("name") or state.target_id,
        "state": "active" if active else "inactive",
        "supported_media_types": list(media),
        "service_level_percentage": _first(definition.get("service_level_percentage"),
                                           defaults.service_level_percentage),
        "service_level_duration_ms": _first(definition.get("service_level_duration_ms"),
                                            defaults.service_level_duration_ms),
        "short_abandon_threshold": int(_first(definition.get("short_abandon_threshold"),
                                              defaults.short_abandon_threshold_s)),
        "description": definition.get("description") or "",
        "allowed_offers": result.allowed_offers if active else 0,
        "reactive_admission": float(result.reactive_admission),
        "acceptance_rate": float(result.acceptance_rate),
        "algorithm": result.algorithm,
        "computed_at": now_ms,
        "node": node,
        "figures": figures,
        "owner_epoch": owner_epoch,
    }
    for gauge in _GAUGES:
        record[gauge] = int(gauges.get(gauge, 0.0))
    return record


def encode_decision_record(record: dict[str, Any]) -> bytes:
    """A decision record as Avro single-object bytes, as :func:`schemas.encode_decision` writes the model."""
    return encode_decision_fields(record)


def _first(value: Any, default: Any) -> Any:
    return default if value is None else value


def record_fingerprint(record: dict[str, Any]) -> tuple[Any, ...]:
    """The parts of a decision whose change must be published at once (rates rounded to 3 decimals)."""
    return (*(record[name] for name in _FINGERPRINT_FIELDS),
            round(record["acceptance_rate"], 3), round(record["reactive_admission"], 3))
