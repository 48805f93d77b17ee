"""SUPER_PROGRESSIVE(_DUAL): exact small-group pacing over one decision horizon.

Lines-per-agent pacing (offers ≈ free agents / p) made safe. Over the horizon (refresh period
plus the visitors' response time) the interactions that will need an agent are the waiting
ones, the accepts of pending and of new offers (binomial), and — when forecast — reactive
arrivals (Poisson); the agents that can take them are the ready ones plus the busy ones that
finish within the horizon (binomial). Whatever exceeds them queues, and a queued interaction at
position ``j`` abandons or is answered late with the chances of ``queueing.position_costs``.

The allowed offers are the largest number whose expected (not short) abandons stay within the
goal share of the interactions the horizon handles — and, when the service level is enforced,
whose abandons plus late answers stay within ``1 - service_level``. Every count is a whole
number and every distribution exact, which is what small groups need; the dual form also finds
the reactive admission probability that keeps the goal when the queue is already too long.
"""

from __future__ import annotations

import math
from functools import lru_cache

from streams.engine.distributions import Pmf, binomial, poisson
from streams.engine.plan import Plan, horizon_s, offer_cap, reactive_forecast, sizing_acceptance
from streams.engine.queueing import QueueCosts, position_costs
from streams.engine.rates import Observation
from streams.engine.settings import PacingSettings

_ADMISSION_STEPS = 6


def progressive_plan(obs: Observation, settings: PacingSettings, dual: bool) -> Plan:
    """Offers (and, dual, reactive admission) for the next period of a small group."""
    horizon = horizon_s(settings)
    return _plan(
        obs.ready, obs.busy, obs.waiting, obs.outstanding,
        round(sizing_acceptance(obs), 3),
        round(obs.handle_time_s), round(obs.patience_s),
        round(reactive_forecast(obs, settings, dual) * horizon, 2),
        round(obs.reactive_rate * horizon, 2) if dual else None,
        horizon, settings.short_abandon_threshold_s, settings.service_level_duration_ms / 1000,
        settings.goal_fraction,
        settings.service_level_percentage if settings.enforce_service_level else None,
        offer_cap(obs, settings),
    )


@lru_cache(maxsize=8192)
def _plan(ready: int, busy: int, waiting: int, outstanding: int, p: float, handle_s: float,
          patience_s: float, reactive: float, dual_reactive: float | None, horizon: float,
          short_s: float, sl_s: float, goal: float, service_level: float | None, cap: int) -> Plan:
    agents = ready + busy
    finishing = binomial(busy, 1 - math.exp(-horizon / handle_s)).negated()
    known = binomial(outstanding, p).plus(finishing).shifted(waiting - ready)
    costs = position_costs(agents, float(handle_s), float(patience_s), short_s, sl_s, 2 * agents + 60)
    horizon_model = _Horizon(known.plus(poisson(reactive)), costs, p, goal, service_level,
                             waiting + outstanding * p + reactive)
    offers = horizon_model.most_offers(cap)
    admission = 1.0
    if dual_reactive is not None and dual_reactive > 0 and not horizon_model.keeps_goal(0):
        admission = _admission(known, costs, p, goal, service_level, waiting + outstanding * p, dual_reactive)
    abandon, bad, handled = horizon_model.expected(offers)
    return Plan(offers, admission, abandon / handled if handled > 0 else 0.0,
                1 - bad / handled if handled > 0 else 1.0)


def _admission(known: Pmf, costs: QueueCosts, p: float, goal: float, service_level: float | None,
               base: float, reactive: float) -> float:
    """The largest share of the reactive forecast that keeps the goal with no offers (bisection)."""
    if not _Horizon(known, costs, p, goal, service_level, base).keeps_goal(0):
        return 0.0
    low, high = 0.0, 1.0
    for _ in range(_ADMISSION_STEPS):
        mid = (low + high) / 2
        if _Horizon(known.plus(poisson(reactive * mid)), costs, p, goal, service_level,
                    base + reactive * mid).keeps_goal(0):
            low = mid
        else:
            high = mid
    return round(low, 2)


class _Horizon:
    """Expected costs of making ``n`` offers given everything else the horizon holds."""

    def __init__(self, background: Pmf, costs: QueueCosts, p: float, goal: float,
                 service_level: float | None, background_mean: float):
        self.background = background
        self.costs = costs
        self.p = p
        self.goal = goal
        self.service_level = service_level
        self.background_mean = background_mean
        self._by_accepts: dict[int, tuple[float, float]] = {}

    def _given_accepts(self, accepts: int) -> tuple[float, float]:
        """Expected (abandons, abandons + late answers) when the new offers bring ``accepts``."""
        cached = self._by_accepts.get(accepts)
        if cached is None:
            abandon = bad = 0.0
            start = self.background.offset + accepts
            for i, prob in enumerate(self.background.probs):
                queue = start + i
                if queue > 0 and prob:
                    a, late = self.costs.at(queue)
                    abandon += prob * a
                    bad += prob * (a + late)
            cached = self._by_accepts[accepts] = (abandon, bad)
        return cached

    def expected(self, offers: int) -> tuple[float, float, float]:
        """Expected abandons, abandons + late answers, and interactions handled, for ``offers``."""
        accepts = binomial(offers, self.p)
        abandon = bad = 0.0
        for k, prob in enumerate(accepts.probs):
            a, b = self._given_accepts(accepts.offset + k)
            abandon += prob * a
            bad += prob * b
        return abandon, bad, self.background_mean + offers * self.p

    def keeps_goal(self, offers: int) -> bool:
        """True when ``offers`` keep the abandonment goal (and the service level, if enforced)."""
        abandon, bad, handled = self.expected(offers)
        if abandon > self.goal * handled + 1e-12:
            return False
        return self.service_level is None or bad <= (1 - self.service_level) * handled + 1e-12

    def most_offers(self, cap: int) -> int:
        """The largest n ≤ cap that keeps the goal (costs grow with n, so bisection finds it)."""
        if cap <= 0 or not self.keeps_goal(0):
            return 0
        if self.keeps_goal(cap):
            return cap
        low, high = 0, cap
        while high - low > 1:
            mid = (low + high) // 2
            if self.keeps_goal(mid):
                low = mid
            else:
                high = mid
        return low
