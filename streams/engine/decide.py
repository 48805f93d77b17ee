"""From a target's state to the decision for the next refresh period.

``decide`` observes the target (``rates.observe``), picks the algorithm (configured, or by group
size), handles the ordinary edge cases itself and leaves the sizing to the algorithm:

- stale (no event for ``stale_after_s`` of event time) or nobody logged in → inactive, no offers;
- no agent ready or busy, or a queue at least as long as the group → active, no offers, and in
  dual modes no reactive admission either;
- otherwise the algorithm's plan (every algorithm stays within ``plan.offer_cap``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from streams.engine.busy_factor import busy_factor_plan
from streams.engine.plan import Plan
from streams.engine.predictive import predictive_plan
from streams.engine.progressive import progressive_plan
from streams.engine.rates import Observation, observe
from streams.engine.settings import (
    ABANDONMENT_RATE,
    ALGORITHMS,
    BUSY_FACTOR,
    PREDICTIVE_B,
    PREDICTIVE_B_DUAL,
    SUPER_PROGRESSIVE,
    SUPER_PROGRESSIVE_DUAL,
    PacingSettings,
)
from streams.engine.state import TargetState

#: AUTO picks a dual algorithm once the counters have seen this many reactive interactions.
AUTO_DUAL_REACTIVE = 3.0

_PLANS: dict[str, Callable[[Observation, PacingSettings, bool], Plan]] = {
    SUPER_PROGRESSIVE: progressive_plan,
    SUPER_PROGRESSIVE_DUAL: progressive_plan,
    PREDICTIVE_B: predictive_plan,
    PREDICTIVE_B_DUAL: predictive_plan,
}


@dataclass(frozen=True)
class PacingDecision:
    """What the engagement platform may do for one target during the next refresh period."""

    allowed_offers: int
    reactive_admission: float
    active: bool
    algorithm: str
    acceptance_rate: float
    figures: dict[str, str] = field(default_factory=dict)


def choose_algorithm(configured: str | None, obs: Observation, settings: PacingSettings) -> str:
    """The configured algorithm, or for AUTO (None, "", "AUTO" or unknown) one by group size, in
    its dual form for a target that takes reactive traffic (its counters have seen some: a
    window would miss the few reactive interactions of a small group)."""
    if configured in ALGORITHMS:
        return configured
    large = obs.logged_in > settings.auto_large_group
    dual = obs.reactive_seen >= AUTO_DUAL_REACTIVE
    if large:
        return PREDICTIVE_B_DUAL if dual else PREDICTIVE_B
    return SUPER_PROGRESSIVE_DUAL if dual else SUPER_PROGRESSIVE


def decide(state: TargetState, settings: PacingSettings, now_ms: int) -> PacingDecision:
    """Allowed proactive offers for the next period; pure and deterministic."""
    obs = observe(state, settings, now_ms)
    algorithm = choose_algorithm(settings.algorithm, obs, settings)
    dual = algorithm.endswith("_DUAL")
    stale = settings.stale_after_s > 0 and now_ms - state.last_event_ms > settings.stale_after_s * 1000
    if stale or obs.waiting >= obs.agents:  # also nobody ready or busy: 0 >= 0
        plan = Plan(0, 0.0 if dual else 1.0)
    elif settings.optimizes_busy_factor:
        plan = busy_factor_plan(obs, settings, dual)
    else:
        plan = _PLANS[algorithm](obs, settings, dual)
    return PacingDecision(
        allowed_offers=plan.offers,
        reactive_admission=plan.admission,
        active=not stale and obs.logged_in > 0,
        algorithm=algorithm,
        acceptance_rate=round(obs.acceptance, 4),
        figures=_figures(obs, plan, settings, stale),
    )


def _figures(obs: Observation, plan: Plan, settings: PacingSettings, stale: bool) -> dict[str, str]:
    """Extra userData figures, rounded so that noise alone does not change the decision."""
    figures = {
        "freeAgents": str(max(0, obs.ready - obs.waiting)),
        "handleTimeS": f"{obs.handle_time_s:.0f}",
        "patienceS": f"{obs.patience_s:.0f}",
        "reactiveArrivalsPerHour": f"{obs.reactive_rate * 3600:.0f}",
        "refreshPeriodS": f"{settings.refresh_period_s:g}",
        "optimizationTarget": BUSY_FACTOR if settings.optimizes_busy_factor else ABANDONMENT_RATE,
        "optimizationGoal": f"{settings.optimization_goal:g}",
    }
    if plan.predicted_abandonment is not None:
        figures["predictedAbandonmentPct"] = f"{100 * plan.predicted_abandonment:.1f}"
    if plan.predicted_service_level is not None:
        figures["predictedServiceLevelPct"] = f"{100 * plan.predicted_service_level:.0f}"
    if obs.abandonment is not None:
        figures["abandonmentPct"] = f"{100 * obs.abandonment:.1f}"
    if obs.service_level is not None:
        figures["serviceLevelPct"] = f"{100 * obs.service_level:.0f}"
    if stale:
        figures["stale"] = "true"
    return figures
