"""From a target's state to the decision for the next refresh period.

First formula: lines-per-agent progressive pacing (domain.md §6):
offers = floor((ready − waiting − outstanding) / p), where p is the offer acceptance rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from streams.engine.state import TargetState


@dataclass(frozen=True)
class PacingSettings:
    """How one target is paced (defaults come from configuration, overrides from pacing.targets)."""

    algorithm: str = "SUPER_PROGRESSIVE"
    optimization_target: str = "ABANDONMENT_RATE"
    optimization_goal: float = 3.0
    proactive_ratio: float = 1.0
    acceptance_prior: float = 0.3
    max_offers_per_agent: int = 10


@dataclass(frozen=True)
class PacingDecision:
    """What the engagement platform may do for one target during the next refresh period."""

    allowed_offers: int
    reactive_admission: float
    active: bool
    algorithm: str
    acceptance_rate: float
    figures: dict[str, str] = field(default_factory=dict)


def acceptance_rate(state: TargetState, prior: float) -> float:
    """Offer acceptance rate from the counters, the prior until offers were made."""
    made = state.counters.get("offers_made", 0.0)
    accepted = state.counters.get("offers_accepted", 0.0)
    if made <= 0:
        return prior
    return min(1.0, max(0.0, accepted / made))


def decide(state: TargetState, settings: PacingSettings, now_ms: int) -> PacingDecision:
    """Allowed proactive offers for the next period; never negative, zero without free agents."""
    ready = state.gauge("ready_agents")
    waiting = state.gauge("waiting_interactions")
    outstanding = state.gauge("outstanding_offers")
    p = acceptance_rate(state, settings.acceptance_prior)
    free = ready - waiting - outstanding
    if free <= 0:
        offers = 0
    else:
        cap = settings.max_offers_per_agent * free
        offers = int(min(cap, math.floor(free / max(p, 1e-6))))
    return PacingDecision(
        allowed_offers=offers,
        reactive_admission=1.0 if ready > waiting else 0.0,
        active=offers > 0,
        algorithm=settings.algorithm,
        acceptance_rate=round(p, 4),
    )
