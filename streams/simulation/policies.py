"""Who decides the offers in a simulation: the engine, or one of the two baselines.

Every refresh period the simulator hands a policy the stat events that arrived since the last
period (the same names, values and measurement timestamps a Stat Server bridge would send; late,
lost or duplicated when the scenario says so) and gets back when to make offers during the
period and the reactive admission probability.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from typing import Protocol

from streams.engine import PacingSettings, TargetState, decide

#: Simulated time 0 as an event timestamp (14 Nov 2023): stat events carry realistic epoch times.
EPOCH_MS = 1_700_000_000_000

#: One stat event: (statistic, value, simulated time it was measured at, seconds).
StatEvent = tuple[str, float, float]


class Policy(Protocol):
    """Decides the offers of one refresh period."""

    name: str

    def plan(self, events: list[StatEvent], now_s: float, period_s: float) -> tuple[list[float], float]:
        """Offer times within [now, now + period) and the reactive admission probability, given
        the stat events delivered since the previous period."""
        ...


def spread(count: int, now_s: float, period_s: float) -> list[float]:
    """``count`` offer times evenly spread over the period."""
    return [now_s + (i + 0.5) * period_s / count for i in range(count)]


class EnginePolicy:
    """The pacing engine, driven exactly as a pacing node drives it: stat events → state → decide.

    Each stat event keeps the timestamp of its measurement; the decision is made at the
    simulated now. With ``replay_stale`` every period also re-sends the previous period's events
    (late) and the current ones twice, as an at-least-once pipeline may; the decisions must not
    change.
    """

    def __init__(self, settings: PacingSettings, target_id: str = "sim", replay_stale: bool = False):
        self.settings = settings
        self.name = settings.algorithm or "AUTO"
        self.state = TargetState(target_id)
        self.replay_stale = replay_stale
        self.algorithms: Counter[str] = Counter()
        self._previous: list[tuple[str, float, int]] = []

    def plan(self, events: list[StatEvent], now_s: float, period_s: float) -> tuple[list[float], float]:
        """Fold the delivered events into the target's state and ask the engine."""
        now_ms = EPOCH_MS + round(now_s * 1000)
        stamped = [(name, value, EPOCH_MS + round(measured_s * 1000)) for name, value, measured_s in events]
        for name, value, ts in stamped:
            self.state.apply(name, value, ts, "webchat")
        if self.replay_stale:
            for name, value, ts in [*self._previous, *stamped]:
                self.state.apply(name, value, ts, "webchat")
            self._previous = stamped
        decision = decide(self.state, self.settings, now_ms)
        self.state.record_offers(now_ms, decision.allowed_offers, period_s)  # as a node does after publishing
        self.algorithms[decision.algorithm] += 1
        return spread(decision.allowed_offers, now_s, period_s), decision.reactive_admission


class ReadyPolicy:
    """Baseline "offer whenever an agent is ready": lines-per-agent with no safety margin,
    (ready - waiting) / p - outstanding offers per period, with the true (initial) acceptance
    rate and the newest value of each gauge that has arrived (late statistics hurt it too)."""

    name = "ready/p"

    def __init__(self, acceptance: float):
        self.acceptance = acceptance
        self._gauges: dict[str, tuple[float, float]] = {}  # statistic -> (measured at, value)

    def plan(self, events: list[StatEvent], now_s: float, period_s: float) -> tuple[list[float], float]:
        """Fill the ready agents that nothing waiting or outstanding will take."""
        for name, value, measured_s in events:
            if measured_s > self._gauges.get(name, (-math.inf, 0.0))[0]:
                self._gauges[name] = (measured_s, value)
        ready, waiting, outstanding = (self._gauges.get(name, (0.0, 0.0))[1]
                                       for name in ("ready_agents", "waiting_interactions", "outstanding_offers"))
        count = max(0, math.floor((ready - waiting) / max(self.acceptance, 0.01)) - int(outstanding))
        return spread(count, now_s, period_s), 1.0


class ConstantRatePolicy:
    """Baseline: offers as a Poisson process at a constant rate, blind to the statistics.

    Offer i is made at S_i / rate with S_i a fixed unit-rate sequence, so runs at different
    rates share their randomness (common random numbers) and the search below is smooth.
    """

    def __init__(self, offers_per_hour: float, seed: int):
        self.name = "constant"
        self.rate = offers_per_hour / 3600
        self._rng = random.Random(f"{seed}:constant-offers")
        self._next = self._rng.expovariate(1.0)

    def plan(self, events: list[StatEvent], now_s: float, period_s: float) -> tuple[list[float], float]:
        """The Poisson offer times that fall in this period (the statistics are ignored)."""
        times: list[float] = []
        if self.rate <= 0:
            return times, 1.0
        end = now_s + period_s
        while self._next / self.rate < end:
            times.append(self._next / self.rate)
            self._next += self._rng.expovariate(1.0)
        return times, 1.0
