"""From a target's state and pacing settings to the published decision record."""

from __future__ import annotations

import dataclasses
from typing import Any

from schemas import ActionTargetDecision
from streams.config import TargetDefaults
from streams.engine import PacingDecision, PacingSettings, TargetState, decide

# Fields that do not make a decision "different" when they alone change: the time, the node,
# and the engine's extra figures (rates drift a little on every tick; they ride along with the
# next change or keepalive instead of flooding the sink).
_VOLATILE = frozenset({"computed_at", "node", "figures"})
_SETTINGS_FIELDS = frozenset(f.name for f in dataclasses.fields(PacingSettings))


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
        # Staleness is the node's call, on arrival time (worker.stale_after_s): an ACD clock
        # that runs behind ours must not turn every target off.
        "stale_after_s": 0.0,
    }
    overrides = dict(overrides or {})
    if "short_abandon_threshold" in overrides:  # TargetConfig's name for it
        overrides["short_abandon_threshold_s"] = overrides.pop("short_abandon_threshold")
    values.update({k: v for k, v in overrides.items() if v is not None})
    return PacingSettings(**{k: v for k, v in values.items() if k in _SETTINGS_FIELDS and v is not None})


def build_decision(
    tenant: str,
    node: str,
    state: TargetState,
    defaults: TargetDefaults,
    now_ms: int,
    definition: dict[str, Any] | None = None,
    stale: bool = False,
) -> ActionTargetDecision:
    """The decision record for one target; a stale target is published inactive with no offers."""
    definition = definition or {}
    settings = pacing_settings(defaults, definition)
    result: PacingDecision = decide(state, settings, now_ms)
    media = definition.get("supported_media_types") or (
        [state.media_type] if state.media_type else list(defaults.supported_media_types)
    )
    active = result.active and not stale
    figures = dict(result.figures)
    if stale:
        figures["stale"] = "true"
    return ActionTargetDecision(
        tenant=tenant,
        target_id=state.target_id,
        name=definition.get("name") or state.target_id,
        state="active" if active else "inactive",
        supported_media_types=list(media),
        service_level_percentage=_first(definition.get("service_level_percentage"),
                                        defaults.service_level_percentage),
        service_level_duration_ms=_first(definition.get("service_level_duration_ms"),
                                         defaults.service_level_duration_ms),
        short_abandon_threshold=_first(definition.get("short_abandon_threshold"),
                                       defaults.short_abandon_threshold_s),
        description=definition.get("description") or "",
        allowed_offers=result.allowed_offers if active else 0,
        reactive_admission=result.reactive_admission,
        ready_agents=int(state.gauge("ready_agents")),
        busy_agents=int(state.gauge("busy_agents")),
        logged_in_agents=int(state.gauge("logged_in_agents")),
        waiting_interactions=int(state.gauge("waiting_interactions")),
        outstanding_offers=int(state.gauge("outstanding_offers")),
        acceptance_rate=result.acceptance_rate,
        algorithm=result.algorithm,
        computed_at=now_ms,
        node=node,
        figures=figures,
    )


def _first(value: Any, default: Any) -> Any:
    return default if value is None else value


def decision_fingerprint(decision: ActionTargetDecision) -> dict[str, Any]:
    """The parts of a decision whose change must be published at once."""
    fingerprint = {k: v for k, v in decision.model_dump(mode="json").items() if k not in _VOLATILE}
    fingerprint["acceptance_rate"] = round(decision.acceptance_rate, 3)
    fingerprint["reactive_admission"] = round(decision.reactive_admission, 3)
    return fingerprint
