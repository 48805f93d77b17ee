"""SUPER_PROGRESSIVE(_DUAL): exact small-group pacing over one decision horizon.

Lines-per-agent pacing (offers ≈ free agents / p) made safe with ``horizon.Horizon``, which
follows everything arriving in the next refresh period (plus the visitors' response time, plus
a tail for reactive traffic) slice by slice and prices each queue position.

A decision is charged what its offers add: expected (not short) abandons of everyone - its
own accepts, pending ones, reactive arrivals - with ``n`` offers minus those with none. The
allowed offers are the largest ``n`` whose charge stays within the goal share of their own
expected accepts (``n · p``), and, when the service level is enforced, whose extra abandons plus
late answers stay within ``1 - service_level`` of them. Charging increments counts every
accept once; an earlier version that compared all costs with all arrivals of the horizon let
pending accepts and reactive arrivals - counted again by the next decision - dilute the cost
of new offers, and overshot a 3 % goal by half with reactive traffic.

Reactive traffic gets a reserve: ``reactive_reserve`` agents are kept free for it and count as
taken when the offers are sized (without it a 5-agent group with a quarter of its capacity in
reactive traffic reached 4.5 % abandonment). The dual form also publishes
``admission.reactive_admission``, reactive visitors first (no offers while it is below 1).
"""

from __future__ import annotations

import math
from functools import lru_cache

from streams.engine.admission import first_admission, free_now, reactive_admission, reactive_first
from streams.engine.horizon import exact_for
from streams.engine.kernels import kernels as _kernels
from streams.engine.plan import Plan, offer_cap, reactive_floor, sizing_acceptance, steady_capacity
from streams.engine.rates import Observation
from streams.engine.settings import PacingSettings

_GRID = 0.05
#: The grid's points exp(k x _GRID), to four significant digits, for k from _GRID_LOW to
#: _GRID_HIGH (3e-7 to 5e8: every handle time, patience, acceptance and reactive rate a target
#: has): constants built once at import, not a cache (they hold no target's numbers). Looking a
#: point up saves a cold decision four float formattings and parsings; the few values outside
#: are computed the same way.
_GRID_LOW, _GRID_HIGH = -300, 400
_GRID_POINTS = tuple(float(f"{math.exp(k * _GRID):.4g}") for k in range(_GRID_LOW, _GRID_HIGH + 1))


def progressive_plan(obs: Observation, settings: PacingSettings, dual: bool) -> Plan:
    """Offers (and, dual, reactive admission) for the next period of a small group."""
    handle_s = _quantised(obs.handle_time_s)
    acceptance = sizing_acceptance(obs)
    plan = _plan(
        obs.ready, obs.busy, obs.waiting, obs.outstanding,
        _quantised(acceptance), handle_s, _quantised(obs.patience_s),
        _reactive_per_hour(obs, settings, dual, handle_s),
        settings.refresh_period_s, settings.offer_response_s,
        settings.counted_short_s, settings.service_level_duration_ms / 1000,
        settings.goal_fraction,
        settings.service_level_percentage if settings.enforce_service_level else None,
        offer_cap(obs, settings),
        exact_for(obs.logged_in, acceptance),
    )
    if dual:
        # Reactive visitors first: the admission counts no invitation, and no offers are made while
        # it is below 1 (reactive_first False: the offers take their agents first).
        offers = plan.offers
        if settings.reactive_first:
            admission = first_admission(obs)
            offers = reactive_first(offers, admission)
        else:
            # An agent free and unpromised admits everyone (1.0 whatever Erlang A says): only
            # otherwise is the group's steady state needed.
            admission = 1.0 if free_now(obs, offers) >= 1.0 else \
                reactive_admission(obs, steady_capacity(obs, settings), offers)
        # (the constructor, not dataclasses.replace: a cold decision's interpreter time counts)
        plan = Plan(offers, admission, plan.predicted_abandonment, plan.predicted_service_level)
    return plan


def _reactive_per_hour(obs: Observation, settings: PacingSettings, dual: bool, handle_s: float) -> float:
    """The reactive forecast for the cache key: the observed rate on the 5 % grid, and the dual
    forms' capacity floor, ``(1 - proactive_ratio) x agents / handle time``, from the quantised
    handle time but not itself quantised. The floor grows with the agents, so a 5 % grid made one
    more ready agent cross a grid line: 160 agents, all capacity kept reactive, planned for 9,414
    reactive interactions an hour and 161 for 9,897, and got 40 offers instead of 43."""
    observed = _quantised(obs.reactive_rate * 3600)
    if not dual:
        return observed
    # reactive_forecast's floor at handle_s (ready + busy: obs.agents without the property call)
    floor = reactive_floor(obs.ready + obs.busy, handle_s, settings)
    floor = round((floor if floor > 0.0 else 0.0) * 3600, 6)  # (min/max as conditional expressions: see rates.observe)
    return floor if floor > observed else observed


def _quantised(value: float) -> float:
    """``value`` on a 5 % logarithmic grid: estimates that differ by noise share a cached plan."""
    if value <= 0:
        return 0.0
    k = round(math.log(value) / _GRID)
    if _GRID_LOW <= k <= _GRID_HIGH:
        return _GRID_POINTS[k - _GRID_LOW]
    return float(f"{math.exp(k * _GRID):.4g}")


@lru_cache(maxsize=16384)
def _plan(ready: int, busy: int, waiting: int, outstanding: int, p: float, handle_s: float,
          patience_s: float, reactive_per_hour: float, period_s: float, response_s: float, short_s: float,
          sl_s: float, goal: float, service_level: float | None, cap: int, exact: bool) -> Plan:
    """The plan for one (quantised) situation; cached, since the same situations recur.

    One kernel call (``_kernels.progressive_plan``) does what follows, and
    tests/unit/engine/test_engine_reference.py checks it against these steps written with the Python
    classes: price the queue positions of ``ready + busy`` agents (``position_costs``, 2 x agents
    + 60 positions); keep ``reactive_reserve`` agents free when there is reactive traffic (the
    first queue position's abandon chance is its price); follow the horizon (``horizon.Horizon``)
    from ``ready - waiting`` free agents; guess the lines-per-agent count - free agents now, plus
    those finishing in the horizon, minus the reserve and the accepts and reactive arrivals to
    come, over ``p``; then search n in 2-3 batches (``_kernels.progressive_search``: margins fall
    as n grows past the free agents, and n = 0 keeps the goal): the first spreads around the
    guess; then each tries where the chord between the best good and the first bad count crosses
    zero, where the tangents at known neighbouring pairs do, and the middle of the bracket
    (without a bad count yet it doubles), until a good n and a bad n + 1 are known. The largest
    good n is the one whose added abandons (and, with the service level, abandons + late
    answers) fit the goal share of its own accepts, sized with the reserve taken off the ready
    agents; its costs are taken from where the group actually starts, over everything arriving:
    ``(offers + outstanding) x p`` accepts and the reactive arrivals of the horizon and its tail.
    (As Python, those steps cost a cold decision ~25,000 instructions more than this call.)
    """
    offers, abandonment, service_level_figure = _kernels.progressive_plan(
        ready, busy, waiting, outstanding, p, handle_s, patience_s, reactive_per_hour, period_s, response_s,
        short_s, sl_s, goal, -1.0 if service_level is None else service_level, cap, exact)
    return Plan(offers, 1.0, abandonment, service_level_figure)


def reactive_reserve(agents: int, reactive_rate: float, handle_s: float, queued_abandon: float, goal: float) -> int:
    """Agents to keep free for reactive traffic: the fewest whose exhaustion is rare enough.

    While proactive offers keep ``k`` agents free, the free count is a birth-death chain:
    reactive arrivals take one (rate λ), finishing agents return one (rate (agents - f)/handle).
    A reactive arrival that finds none free queues and abandons with ``queued_abandon``; the
    reserve is the smallest k (up to all agents) with P(none free) * queued_abandon ≤ goal.
    """
    if reactive_rate <= 0 or queued_abandon <= goal:
        return 0
    weight = total = 1.0
    for k in range(1, agents + 1):
        weight *= (agents - k + 1) / handle_s / reactive_rate
        total += weight  # the running sum of the weights, as sum() of the list gave
        if queued_abandon / total <= goal:
            return k
    return agents
