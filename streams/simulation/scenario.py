"""A contact-centre scenario to simulate, and what one simulation measured."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from streams.engine import PacingSettings


@dataclass(frozen=True)
class Scenario:
    """One agent group and its traffic. Times in seconds, rates per hour.

    Handle times are lognormal (mean ``handle_time_s``, coefficient of variation
    ``handle_time_cv``), customer patience exponential (mean ``patience_s``), the visitor's
    answer to an offer comes after an exponential delay (mean ``response_s``) and is "yes" with
    probability ``acceptance``. Reactive interactions arrive as a Poisson process. Statistics
    are measured over ``hours`` after a ``warmup_s`` in which the engine's rates fill up.
    """

    agents: int
    acceptance: float
    reactive_per_hour: float = 0.0
    handle_time_s: float = 300.0
    handle_time_cv: float = 0.8
    patience_s: float = 60.0
    response_s: float = 5.0
    hours: float = 1.0
    warmup_s: float = 1800.0
    seed: int = 1
    settings: PacingSettings = field(default_factory=PacingSettings)

    @property
    def reactive_load(self) -> float:
        """The share of the group's capacity the reactive traffic alone would take."""
        return self.reactive_per_hour * self.handle_time_s / 3600 / max(1, self.agents)


@dataclass(frozen=True)
class SimulationResult:
    """What one run measured (interactions that entered after the warm-up)."""

    policy: str
    offers: int
    accepted: int
    reactive: int
    reactive_blocked: int
    answered: int
    answered_in_sl: int
    abandoned: int
    short_abandoned: int
    busy_agent_s: float
    agent_s: float
    measured_s: float
    abandonment_se: float
    algorithms: dict[str, int] = field(default_factory=dict)

    @property
    def handled(self) -> int:
        """Answered plus counted (not short) abandons: the denominator of both rates."""
        return self.answered + self.abandoned

    @property
    def abandonment(self) -> float:
        """Abandoned (not short) / handled."""
        return self.abandoned / self.handled if self.handled else 0.0

    @property
    def service_level(self) -> float:
        """Answered within the service-level time / handled."""
        return self.answered_in_sl / self.handled if self.handled else 1.0

    @property
    def occupancy(self) -> float:
        """Share of agent time spent handling interactions."""
        return self.busy_agent_s / self.agent_s if self.agent_s else 0.0

    @property
    def offers_per_hour(self) -> float:
        """Offers made per measured hour."""
        return self.offers * 3600 / self.measured_s if self.measured_s else 0.0

    @property
    def blocked_share(self) -> float:
        """Share of reactive interactions refused by the published admission probability."""
        total = self.reactive + self.reactive_blocked
        return self.reactive_blocked / total if total else 0.0


def lognormal_parameters(mean: float, cv: float) -> tuple[float, float]:
    """(mu, sigma) of the lognormal with this mean and coefficient of variation."""
    sigma2 = math.log(1 + cv * cv)
    return math.log(mean) - sigma2 / 2, math.sqrt(sigma2)
