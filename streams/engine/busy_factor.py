"""BUSY_FACTOR: keep the expected share of busy agents at the goal, for every algorithm.

At the end of the horizon the group will hold the busy agents that have not finished, the
waiting interactions, the accepts of pending offers and the reactive forecast; new offers may
bring it up to ``goal * agents`` expected busy agents and no further. In steady state that is
exactly the offers that replace the agents finishing within the horizon.
"""

from __future__ import annotations

import math

from streams.engine.admission import first_admission, free_now, reactive_first
from streams.engine.plan import Plan, horizon_s, offer_cap, reactive_forecast, sizing_acceptance
from streams.engine.rates import Observation
from streams.engine.settings import PacingSettings


def busy_factor_plan(obs: Observation, settings: PacingSettings, dual: bool) -> Plan:
    """Offers that bring the expected occupancy to the goal. The goal paces offers, not reactive
    customers: dual forms admit reactive traffic while an agent is free for it."""
    horizon = horizon_s(settings)
    p = sizing_acceptance(obs)
    still_busy = obs.busy * math.exp(-horizon / obs.handle_time_s)
    held = still_busy + obs.waiting + obs.outstanding * p
    room = settings.goal_fraction * obs.agents - held
    reactive = reactive_forecast(obs, settings, dual) * horizon
    offers = min(offer_cap(obs, settings), max(0, math.floor((room - reactive) / p + 1e-9)))
    if not dual:
        return Plan(offers, 1.0)
    if not settings.reactive_first:
        return Plan(offers, free_now(obs, offers))
    admission = first_admission(obs)  # reactive visitors first: no offers while any would be refused
    return Plan(reactive_first(offers, admission), admission)
