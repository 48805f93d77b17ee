"""PREDICTIVE_B(_DUAL): queueing-model pacing for large groups.

Erlang A (Erlang C with customer patience, ``queueing.erlang_a_rate``) gives the largest
total arrival rate the group can take at the goal; the reactive forecast is part of that load, and the
rest is the proactive rate: offers per period = (capacity rate - reactive rate) * period / p.
The steady state also says how many interactions the group holds on average (busy plus queued);
the difference between that and what it holds now (busy, waiting, expected accepts of pending
offers) is added at once, so an idle group fills quickly and a queue drains before more is
offered. Offers are rounded to the nearest whole number (rounding down starved groups of
two agents, whose whole steady state holds less than one interaction). The dual form publishes
``admission.reactive_admission``, reactive visitors first (no offers while it is below 1).
"""

from __future__ import annotations

from streams.engine.admission import first_admission, reactive_admission, reactive_first
from streams.engine.plan import Plan, offer_cap, reactive_forecast, sizing_acceptance, steady_capacity
from streams.engine.rates import Observation
from streams.engine.settings import PacingSettings


def predictive_plan(obs: Observation, settings: PacingSettings, dual: bool) -> Plan:
    """Offers (and, dual, reactive admission) for the next period of a large group."""
    steady = steady_capacity(obs, settings)
    period = settings.refresh_period_s
    p = sizing_acceptance(obs)
    capacity_rate = steady.arrival_rate
    deficit = steady.in_system - (obs.busy + obs.waiting + obs.outstanding * p)
    # (min/max as conditional expressions on the cold path: see rates.observe)
    room_rate = capacity_rate - reactive_forecast(obs, settings, dual)
    accepts = (room_rate if room_rate > 0.0 else 0.0) * period + deficit
    offers = round(accepts / p)
    offers = offers if offers > 0 else 0
    cap = offer_cap(obs, settings)
    offers = offers if offers < cap else cap
    admission = 1.0
    if dual:  # reactive visitors first unless the settings say otherwise (admission.reactive_first)
        if settings.reactive_first:
            admission = first_admission(obs)
            offers = reactive_first(offers, admission)
        else:
            admission = reactive_admission(obs, steady, offers)
    return Plan(offers, admission, steady.abandonment, steady.service_level)
