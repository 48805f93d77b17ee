"""What every algorithm returns, and the rules they share (capacity ceiling, reactive reserve)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from streams.engine.queueing import SteadyState, erlang_a_rate
from streams.engine.rates import Observation
from streams.engine.settings import PacingSettings

#: Offers are sized with at least this acceptance rate, so p → 0 never asks for infinite offers.
MIN_ACCEPTANCE = 0.01


@dataclass(frozen=True, init=False)
class Plan:
    """An algorithm's answer for the next refresh period.

    Frozen, with its own ``__init__`` (the generated one's parameters): it stores the fields in one
    call, not one ``object.__setattr__`` each, as a cold decision's interpreter time counts."""

    offers: int
    admission: float = 1.0
    predicted_abandonment: float | None = None
    predicted_service_level: float | None = None

    def __init__(self, offers: int, admission: float = 1.0, predicted_abandonment: float | None = None,
                 predicted_service_level: float | None = None) -> None:
        self.__dict__.update(offers=offers, admission=admission, predicted_abandonment=predicted_abandonment,
                             predicted_service_level=predicted_service_level)


def sizing_acceptance(obs: Observation) -> float:
    """The acceptance rate offers are sized with."""
    p = obs.acceptance  # (min/max as conditional expressions on the cold path: see rates.observe)
    p = p if p > MIN_ACCEPTANCE else MIN_ACCEPTANCE
    return p if p < 1.0 else 1.0


def offer_cap(obs: Observation, settings: PacingSettings) -> int:
    """The most offers any algorithm may allow: ``max_offers_per_agent`` per agent, and never
    more expected accepts in one period than there are agents in the group."""
    agents = obs.ready + obs.busy  # (obs.agents without the property call: see Observation.agents)
    most = settings.max_offers_per_agent * agents
    cap = math.floor(agents / sizing_acceptance(obs) + 1e-9)
    cap = cap if cap < most else most  # (min/max as conditional expressions: see rates.observe)
    return cap if cap > 0 else 0


def reactive_forecast(obs: Observation, settings: PacingSettings, dual: bool) -> float:
    """Reactive arrivals per second to plan for: the observed rate; in dual modes at least the
    ``1 - proactive_ratio`` share of the group's capacity is kept for them."""
    if not dual:
        return obs.reactive_rate
    floor = reactive_floor(obs.ready + obs.busy, obs.handle_time_s, settings)  # (obs.agents)
    return floor if floor > obs.reactive_rate else obs.reactive_rate


def reactive_floor(agents: int, handle_s: float, settings: PacingSettings) -> float:
    """The dual forms' reserve for reactive traffic: the ``1 - proactive_ratio`` share of the
    capacity of ``agents`` agents at ``handle_s`` seconds per interaction, per second."""
    ratio = settings.proactive_ratio  # (min/max as conditional expressions: see rates.observe)
    ratio = ratio if ratio > 0.0 else 0.0
    return (1 - (ratio if ratio < 1.0 else 1.0)) * agents / handle_s


def horizon_s(settings: PacingSettings) -> float:
    """How far ahead one decision reaches: the period, plus the time its last offers take to be answered."""
    return settings.refresh_period_s + settings.offer_response_s


def logged_in_capacity(obs: Observation, settings: PacingSettings) -> SteadyState:
    """``steady_capacity`` of the whole logged-in group (AUTO's choice looks at it)."""
    return _capacity(obs.logged_in, obs.handle_time_s, obs.patience_s, settings)


def steady_capacity(obs: Observation, settings: PacingSettings) -> SteadyState:
    """Erlang A at the largest arrival rate the group takes within the goal (and service level),
    abandons counted as ``settings.counted_short_s`` says."""
    return _capacity(obs.ready + obs.busy, obs.handle_time_s, obs.patience_s, settings)  # (obs.agents)


def _capacity(agents: int, handle_s: float, patience_s: float, settings: PacingSettings) -> SteadyState:
    return erlang_a_rate(
        agents, float(round(handle_s)), float(round(patience_s)),
        settings.counted_short_s, settings.service_level_duration_ms / 1000,
        settings.goal_fraction, settings.service_level_percentage if settings.enforce_service_level else 0.0,
    )
