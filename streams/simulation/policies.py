"""Who decides the offers in a simulation: the engine, or one of the two baselines.

Every refresh period the simulator hands a policy the target's statistics (the same names and
values a Stat Server bridge would send) and gets back when to make offers during the period and
the reactive admission probability.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from typing import Protocol

from streams.engine import PacingSettings, TargetState, decide

#: Simulated time 0 as an event timestamp (14 Nov 2023): stat events carry realistic epoch times.
EPOCH_MS = 1_700_000_000_000


class Policy(Protocol):
    """Decides the offers of one refresh period."""

    name: str

    def plan(self, stats: dict[str, float], now_s: float, period_s: float) -> tuple[list[float], float]:
        """Offer times within [now, now + period) and the reactive admission probability."""
        ...


def spread(count: int, now_s: float, period_s: float) -> list[float]:
    """``count`` offer times evenly spread over the period."""
    return [now_s + (i + 0.5) * period_s / count for i in range(count)]


class EnginePolicy:
    """The pacing engine, driven exactly as a pacing node drives it: stat events → state → decide.

    With ``replay_stale`` every period also re-sends the previous period's events (late) and
    the current ones twice, as an at-least-once pipeline may; the decisions must not change.
    """

    def __init__(self, settings: PacingSettings, target_id: str = "sim", replay_stale: bool = False):
        self.settings = settings
        self.name = settings.algorithm or "AUTO"
        self.state = TargetState(target_id)
        self.replay_stale = replay_stale
        self.algorithms: Counter[str] = Counter()
        self._previous: list[tuple[str, float, int]] = []

    def plan(self, stats: dict[str, float], now_s: float, period_s: float) -> tuple[list[float], float]:
        now_ms = EPOCH_MS + round(now_s * 1000)
        events = [(name, value, now_ms) for name, value in stats.items()]
        for name, value, ts in events:
            self.state.apply(name, value, ts, "webchat")
        if self.replay_stale:
            for name, value, ts in [*self._previous, *events]:
                self.state.apply(name, value, ts, "webchat")
            self._previous = events
        decision = decide(self.state, self.settings, now_ms)
        self.algorithms[decision.algorithm] += 1
        return spread(decision.allowed_offers, now_s, period_s), decision.reactive_admission


class ReadyPolicy:
    """Baseline "offer whenever an agent is ready": lines-per-agent with no safety margin,
    (ready - waiting) / p - outstanding offers per period, with the true acceptance rate."""

    name = "ready/p"

    def __init__(self, acceptance: float):
        self.acceptance = acceptance

    def plan(self, stats: dict[str, float], now_s: float, period_s: float) -> tuple[list[float], float]:
        free = stats["ready_agents"] - stats["waiting_interactions"]
        count = max(0, math.floor(free / max(self.acceptance, 0.01)) - int(stats["outstanding_offers"]))
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

    def plan(self, stats: dict[str, float], now_s: float, period_s: float) -> tuple[list[float], float]:
        times: list[float] = []
        if self.rate <= 0:
            return times, 1.0
        end = now_s + period_s
        while self._next / self.rate < end:
            times.append(self._next / self.rate)
            self._next += self._rng.expovariate(1.0)
        return times, 1.0
