"""From a target's state to the decision for the next refresh period.

``decide`` observes the target (``rates.observe``), picks the algorithm (configured, or by group
size), handles the ordinary edge cases itself and leaves the sizing to the algorithm:

- stale (no event for ``stale_after_s`` of event time) or nobody logged in → inactive, no offers;
- no agent ready or busy, or a queue at least as long as the group → active, no offers, and in
  dual modes no reactive admission either;
- otherwise the algorithm's plan (every algorithm stays within ``plan.offer_cap``), and for the
  abandonment goal at least one offer for an idle agent with nothing waiting or outstanding -
  not in a dual form with reactive visitors first (``reactive_first``: an idle agent the plan
  keeps free is the reactive visitors' reserve; forcing the offer made a 3-agent group at
  acceptance 0.7 with 25 % reactive load lose 10-18 % of its customers, issue 20), nor in one
  that keeps the whole group for reactive traffic (``proactive_ratio`` 0).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from streams.engine.busy_factor import busy_factor_plan
from streams.engine.plan import Plan, logged_in_capacity, offer_cap
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

#: A dual form with reactive visitors first gets the one offer for an idle agent only while this
#: many are ready: the last free agent is the reactive visitors' reserve.
IDLE_DUAL_READY = 3
#: AUTO picks a dual algorithm once the counters have seen this many reactive interactions.
AUTO_DUAL_REACTIVE = 3.0

_PLANS: dict[str, Callable[[Observation, PacingSettings, bool], Plan]] = {
    SUPER_PROGRESSIVE: progressive_plan,
    SUPER_PROGRESSIVE_DUAL: progressive_plan,
    PREDICTIVE_B: predictive_plan,
    PREDICTIVE_B_DUAL: predictive_plan,
}


@dataclass(frozen=True, init=False)
class PacingDecision:
    """What the engagement platform may do for one target during the next refresh period.

    Frozen, with its own ``__init__`` (the generated one's parameters): it stores the fields in one
    call, not one ``object.__setattr__`` each, as a cold decision's interpreter time counts."""

    allowed_offers: int
    reactive_admission: float
    active: bool
    algorithm: str
    acceptance_rate: float
    figures: dict[str, str] = field(default_factory=dict)

    def __init__(self, allowed_offers: int, reactive_admission: float, active: bool, algorithm: str,
                 acceptance_rate: float, figures: dict[str, str] | None = None) -> None:
        self.__dict__.update(allowed_offers=allowed_offers, reactive_admission=reactive_admission, active=active,
                             algorithm=algorithm, acceptance_rate=acceptance_rate,
                             figures={} if figures is None else figures)


def choose_algorithm(configured: str | None, obs: Observation, settings: PacingSettings) -> str:
    """The configured algorithm, or for AUTO (None, "", "AUTO" or unknown) one by group size and
    predicted occupancy, in its dual form for a target that takes reactive traffic (its counters
    have seen some: a window would miss the few reactive interactions of a small group).

    A group larger than ``auto_large_group`` gets ``PREDICTIVE_B`` only where Erlang A at the goal
    keeps it at least ``auto_predictive_occupancy`` busy: below, the Poisson model leaves capacity
    unused that ``SUPER_PROGRESSIVE`` fills within the goal (the plain split at 30/31 agents was a
    cliff: 97 % occupancy at 30 agents, 86-89 % at 31-40). The choice depends on the logged-in
    group, not on who is ready, so it does not flip as agents become ready."""
    if configured in ALGORITHMS:
        return configured
    dual = obs.reactive_seen >= AUTO_DUAL_REACTIVE
    if obs.logged_in > settings.auto_large_group and _predictive_occupancy(obs, settings) \
            >= settings.auto_predictive_occupancy:
        return PREDICTIVE_B_DUAL if dual else PREDICTIVE_B
    return SUPER_PROGRESSIVE_DUAL if dual else SUPER_PROGRESSIVE


def _predictive_occupancy(obs: Observation, settings: PacingSettings) -> float:
    """The share of the logged-in group Erlang A keeps busy at the largest rate within the goal."""
    if settings.auto_predictive_occupancy <= 0 or settings.optimizes_busy_factor:
        return 1.0  # the plain size split (BUSY_FACTOR paces every algorithm the same way)
    steady = logged_in_capacity(obs, settings)
    return steady.arrival_rate * (1 - steady.abandonment) * obs.handle_time_s / obs.logged_in


def idle_with_nothing_pending(obs: Observation) -> bool:
    """An agent is ready, nobody waits and no offer is outstanding: one offer cannot make anyone
    wait (its one accept finds the free agent), so the target gets at least that one. Without it
    a one-agent group at acceptance below 0.2 got no offer for 40 simulated hours: the horizon
    model charged one offer more than the goal allows, and without offers the acceptance
    estimate never moved."""
    return obs.ready >= 1 and obs.waiting == 0 and obs.outstanding == 0


def decide(state: TargetState, settings: PacingSettings, now_ms: int) -> PacingDecision:
    """Allowed proactive offers for the next period; pure and deterministic."""
    obs = observe(state, settings, now_ms)
    algorithm = choose_algorithm(settings.algorithm, obs, settings)
    dual = algorithm.endswith("_DUAL")
    stale = settings.stale_after_s > 0 and now_ms - state.last_event_ms > settings.stale_after_s * 1000
    busy_factor = settings.optimizes_busy_factor  # (read once: a property call costs an interpreter frame)
    if stale or obs.waiting >= obs.ready + obs.busy:  # (obs.agents) also nobody ready or busy: 0 >= 0
        plan = Plan(0, 0.0 if dual else 1.0)
    elif busy_factor:
        plan = busy_factor_plan(obs, settings, dual)
    else:
        plan = _PLANS[algorithm](obs, settings, dual)
        if plan.offers == 0 and idle_with_nothing_pending(obs) and not (dual and (
                settings.proactive_ratio <= 0 or (settings.reactive_first and obs.ready < IDLE_DUAL_READY))):
            plan = replace(plan, offers=min(1, offer_cap(obs, settings)))
    # (positional: keywords to a class's __init__ cost a dict per call)
    return PacingDecision(plan.offers, plan.admission, not stale and obs.logged_in > 0, algorithm,
                          round(obs.acceptance, 4), _figures(obs, plan, settings, stale, busy_factor))


def _figures(obs: Observation, plan: Plan, settings: PacingSettings, stale: bool,
             busy_factor: bool) -> dict[str, str]:
    """Extra userData figures, rounded so that noise alone does not change the decision
    (``busy_factor``: ``settings.optimizes_busy_factor``, which ``decide`` has read already)."""
    figures = {
        "freeAgents": str(free if (free := obs.ready - obs.waiting) > 0 else 0),  # max(0, free) without the call
        "handleTimeS": _whole(obs.handle_time_s),
        "patienceS": _whole(obs.patience_s),
        "reactiveArrivalsPerHour": _whole(obs.reactive_rate * 3600),
        "refreshPeriodS": f"{settings.refresh_period_s:g}",
        "optimizationTarget": BUSY_FACTOR if busy_factor else ABANDONMENT_RATE,
        "optimizationGoal": f"{settings.optimization_goal:g}",
    }
    if plan.predicted_abandonment is not None:
        figures["predictedAbandonmentPct"] = f"{100 * plan.predicted_abandonment:.1f}"
    if plan.predicted_service_level is not None:
        figures["predictedServiceLevelPct"] = _whole(100 * plan.predicted_service_level)
    if obs.abandonment is not None:
        figures["abandonmentPct"] = f"{100 * obs.abandonment:.1f}"
    if obs.abandonment_excluding_short is not None:
        figures["abandonmentExcludingShortPct"] = f"{100 * obs.abandonment_excluding_short:.1f}"
    if obs.service_level is not None:
        figures["serviceLevelPct"] = _whole(100 * obs.service_level)
    if stale:
        figures["stale"] = "true"
    return figures


def _whole(value: float) -> str:
    """``f"{value:.0f}"``, the same text: through round() where that is exact and cheaper (a
    positive value below 1e15: round() rounds half to even on the binary value, as the format
    does), formatted otherwise (zero, negatives and -0.0 keep the format's sign, NaN and inf its
    words)."""
    return str(round(value)) if 0.0 < value < 1e15 else f"{value:.0f}"
