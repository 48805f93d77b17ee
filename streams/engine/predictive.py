"""PREDICTIVE_B(_DUAL): queueing-model pacing for large groups.

Erlang C with the patience corrections (``queueing.erlang_c_load``) gives the largest total
arrival rate the group can take at the goal; the reactive forecast is part of that load, and the
rest is the proactive rate: offers per period = (capacity rate − reactive rate) × period / p.
The steady state also says how many interactions the group holds on average (busy plus queued);
the difference between that and what it holds now (busy, waiting, expected accepts of pending
offers) is added at once, so an idle group fills quickly and a queue drains before more is
offered. The dual form publishes the share of the reactive forecast that still fits.
"""

from __future__ import annotations

import math

from streams.engine.plan import Plan, offer_cap, reactive_forecast, sizing_acceptance
from streams.engine.queueing import erlang_c_load
from streams.engine.rates import Observation
from streams.engine.settings import PacingSettings


def predictive_plan(obs: Observation, settings: PacingSettings, dual: bool) -> Plan:
    """Offers (and, dual, reactive admission) for the next period of a large group."""
    steady = erlang_c_load(
        obs.agents, float(round(obs.handle_time_s)), float(round(obs.patience_s)),
        settings.short_abandon_threshold_s, settings.service_level_duration_ms / 1000,
        settings.goal_fraction, settings.service_level_percentage if settings.enforce_service_level else 0.0,
    )
    period = settings.refresh_period_s
    p = sizing_acceptance(obs)
    capacity_rate = steady.load / obs.handle_time_s
    deficit = steady.load + steady.queue_length - (obs.busy + obs.waiting + obs.outstanding * p)
    accepts = max(0.0, capacity_rate - reactive_forecast(obs, settings, dual)) * period + deficit
    offers = min(offer_cap(obs, settings), max(0, math.floor(accepts / p)))
    admission = 1.0
    if dual and obs.reactive_rate > 0:
        room = capacity_rate * period + deficit
        admission = round(min(1.0, max(0.0, room / (obs.reactive_rate * period))), 2)
    return Plan(offers, admission, steady.abandonment, steady.service_level)
