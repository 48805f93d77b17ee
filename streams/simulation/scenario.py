"""A contact-centre scenario to simulate, and what one simulation measured.

The simulator's *truth* (handle time, patience, response time, acceptance) deliberately differs
from the engine's priors (``PacingSettings``: 300 s handle time, 60 s patience, 5 s response,
acceptance 0.3): the engine must learn the centre from its statistics, not be told it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from schemas.models import COUNTERS, STATISTICS
from streams.engine import PacingSettings

#: What a ``Step`` may change during a run.
STEPPABLE = ("acceptance", "reactive_per_hour", "handle_time_s", "agents")
PATIENCE_DISTRIBUTIONS = ("exponential", "lognormal")


@dataclass(frozen=True)
class Step:
    """From ``at_s`` (seconds since the simulation started, warm-up included) on, ``quantity``
    takes ``value``: acceptance drift, reactive surges, handle-time shifts, agents logging off."""

    at_s: float
    quantity: str
    value: float

    def __post_init__(self) -> None:
        if self.quantity not in STEPPABLE:
            raise ValueError(f"a step changes one of {STEPPABLE}, not {self.quantity!r}")
        if self.at_s < 0 or self.value < 0 or not math.isfinite(self.value):
            raise ValueError(f"a step needs a time and value >= 0, got at {self.at_s} value {self.value}")
        if self.quantity == "acceptance" and self.value > 1:
            raise ValueError(f"acceptance is a probability, got {self.value}")


@dataclass(frozen=True)
class CounterReset:
    """At ``at_s`` the named counters restart from 0 (an ACD restart may reset only its own)."""

    at_s: float
    counters: tuple[str, ...] = tuple(sorted(COUNTERS))

    def __post_init__(self) -> None:
        unknown = set(self.counters) - COUNTERS
        if unknown or not self.counters:
            raise ValueError(f"a reset names counters of {sorted(COUNTERS)}, got {self.counters}")


@dataclass(frozen=True)
class StatFaults:
    """How the statistics reach the policy: late, lost, twice, or with counters restarting.

    Every refresh period the centre measures each statistic (timestamped at that moment); each
    event is delivered ``delay_s`` plus uniform(0, ``delay_jitter_s``) later, plus the extra
    ``lagging`` delay of its statistic (one counter lagging behind the others); it is lost with
    probability ``loss``, and with probability ``duplication`` delivered once more, up to three
    refresh periods after the first copy.
    """

    delay_s: float = 0.0
    delay_jitter_s: float = 0.0
    lagging: tuple[tuple[str, float], ...] = ()
    loss: float = 0.0
    duplication: float = 0.0
    resets: tuple[CounterReset, ...] = ()
    #: > 0: events reach the policy in bursts, about this many seconds apart (each gap uniform in
    #: 0.5-1.5x), everything due since the last burst at once and in random order (a bridge that
    #: batches its sends); 0: each event as soon as it is due.
    burst_s: float = 0.0

    def __post_init__(self) -> None:
        if self.delay_s < 0 or self.delay_jitter_s < 0 or any(lag < 0 for _, lag in self.lagging) \
                or self.burst_s < 0:
            raise ValueError("statistics delays must be >= 0")
        unknown = {name for name, _ in self.lagging} - STATISTICS
        if unknown:
            raise ValueError(f"lagging names unknown statistics {sorted(unknown)}")
        if not 0 <= self.loss < 1 or not 0 <= self.duplication <= 1:
            raise ValueError(f"loss must be in [0, 1) and duplication in [0, 1], got {self.loss}, {self.duplication}")

    def delay_of(self, statistic: str) -> float:
        """The fixed part of the delay of ``statistic``'s events (jitter excluded)."""
        return self.delay_s + sum(lag for name, lag in self.lagging if name == statistic)

    @property
    def perfect(self) -> bool:
        """True when every statistic arrives at once, exactly once, with no reset."""
        return not (self.delay_s or self.delay_jitter_s or self.lagging or self.loss or self.duplication
                    or self.resets or self.burst_s)


@dataclass(frozen=True)
class ReactiveBursts:
    """Reactive arrivals in bursts: a two-state Markov-modulated Poisson process. Quiet spells
    last an exponential time (mean ``quiet_mean_s``), bursts a uniform ``min_s``-``max_s``; during
    a burst the reactive rate is ``factor`` times the scenario's (steps still set the base)."""

    factor: float = 3.0
    min_s: float = 120.0
    max_s: float = 600.0
    quiet_mean_s: float = 1800.0

    def __post_init__(self) -> None:
        if self.factor < 0 or not 0 < self.min_s <= self.max_s or self.quiet_mean_s <= 0:
            raise ValueError(f"bursts need factor >= 0, 0 < min_s <= max_s and a quiet mean > 0, got {self}")


@dataclass(frozen=True)
class Scenario:
    """One agent group and its traffic. Times in seconds, rates per hour.

    Handle times are lognormal (mean ``handle_time_s``, coefficient of variation
    ``handle_time_cv``), customer patience exponential or lognormal (mean ``patience_s``,
    cv ``patience_cv`` for lognormal), the visitor's answer to an offer comes after an
    exponential delay (mean ``response_s``) and is "yes" with probability ``acceptance``.
    ``handle_time_modes`` ((share, mean), ...) makes handle times a mixture of lognormals, each
    with cv ``handle_time_cv`` (bimodal handle times; ``handle_time_s`` is then their mean).
    Reactive interactions arrive as a Poisson process, or in ``bursts``. ``steps`` change acceptance, reactive
    rate, handle time or logged-in agents during the run; ``faults`` spoil the statistics.
    The offers of a period are made at the times the policy asks, each moved towards a uniformly
    random moment of the period by ``offer_jitter`` (0: exactly as asked, 1: at random).
    Statistics are measured over ``hours`` after a ``warmup_s`` in which the engine's rates fill up.
    """

    agents: int
    acceptance: float
    reactive_per_hour: float = 0.0
    handle_time_s: float = 360.0
    handle_time_cv: float = 0.8
    patience_s: float = 45.0
    patience_distribution: str = "exponential"
    patience_cv: float = 1.0
    response_s: float = 8.0
    offer_jitter: float = 0.0
    hours: float = 1.0
    warmup_s: float = 1800.0
    seed: int = 1
    steps: tuple[Step, ...] = ()
    faults: StatFaults = field(default_factory=StatFaults)
    settings: PacingSettings = field(default_factory=PacingSettings)
    bursts: ReactiveBursts | None = None
    handle_time_modes: tuple[tuple[float, float], ...] = ()

    def __post_init__(self) -> None:
        if self.handle_time_modes:
            shares = [share for share, _ in self.handle_time_modes]
            if min(shares) < 0 or abs(sum(shares) - 1) > 1e-9 or min(m for _, m in self.handle_time_modes) <= 0:
                raise ValueError(f"handle time modes are (share, mean > 0) with shares adding to 1, "
                                 f"got {self.handle_time_modes}")
            if abs(sum(share * mean for share, mean in self.handle_time_modes) - self.handle_time_s) > 1e-6 * \
                    self.handle_time_s or any(step.quantity == "handle_time_s" for step in self.steps):
                raise ValueError("with handle time modes, handle_time_s is their mean and is not stepped")
        if self.agents < 1:
            raise ValueError(f"a group has at least one agent, got {self.agents}")
        if not 0 <= self.acceptance <= 1:
            raise ValueError(f"acceptance is a probability, got {self.acceptance}")
        if min(self.handle_time_s, self.patience_s, self.response_s) <= 0:
            raise ValueError("handle time, patience and response time must be > 0")
        if self.patience_distribution not in PATIENCE_DISTRIBUTIONS:
            raise ValueError(f"patience is one of {PATIENCE_DISTRIBUTIONS}, not {self.patience_distribution!r}")
        if not 0 <= self.offer_jitter <= 1:
            raise ValueError(f"offer_jitter is in [0, 1], got {self.offer_jitter}")
        if self.reactive_per_hour < 0 or self.hours <= 0 or self.warmup_s < 0:
            raise ValueError("reactive rate and warm-up must be >= 0, hours > 0")

    @property
    def reactive_load(self) -> float:
        """The share of the group's capacity the reactive traffic alone would take (at the start)."""
        return self.reactive_per_hour * self.handle_time_s / 3600 / max(1, self.agents)

    def value_at(self, quantity: str, time_s: float) -> float:
        """The value of a steppable quantity at ``time_s``: the last step at or before it, else the base."""
        value = float(getattr(self, quantity))
        for step in sorted(self.steps, key=lambda s: s.at_s):
            if step.quantity == quantity and step.at_s <= time_s:
                value = step.value
        return value


@dataclass(frozen=True)
class SimulationResult:
    """What one run (or several pooled runs) measured: interactions that entered after the warm-up.

    Abandonment is reported both ways: ``abandonment`` counts every abandon (the goal is judged
    on it), ``abandonment_genesys`` excludes the short ones as Genesys does. ``batch_entered`` /
    ``batch_abandoned`` are per time-batch counts (all abandons) for the batch-means standard error.
    """

    policy: str
    offers: int
    accepted: int
    reactive: int
    #: Reactive visitors turned away by the published admission probability: lost customers.
    reactive_blocked: int
    answered: int
    answered_in_sl: int
    abandoned: int
    short_abandoned: int
    busy_agent_s: float
    agent_s: float
    measured_s: float
    batch_entered: tuple[int, ...] = ()
    batch_abandoned: tuple[int, ...] = ()
    longest_unserved_idle_s: float = 0.0
    algorithms: dict[str, int] = field(default_factory=dict)
    runs: int = 1
    #: Reactive visitors refused per time batch (the batches of ``batch_entered``).
    batch_refused: tuple[int, ...] = ()

    @property
    def handled(self) -> int:
        """Answered plus counted (not short) abandons: the Genesys denominator."""
        return self.answered + self.abandoned

    @property
    def entered(self) -> int:
        """Every interaction that ended (answered or abandoned, short ones included)."""
        return self.answered + self.abandoned + self.short_abandoned

    @property
    def abandonment(self) -> float:
        """Every abandon / every interaction: what the goal is judged on."""
        return (self.abandoned + self.short_abandoned) / self.entered if self.entered else 0.0

    @property
    def lost(self) -> float:
        """Lost customers / every customer who came: abandons (short ones included) and refused
        reactive visitors over interactions plus refused visitors. The benchmark's criterion: a
        group must not meet its goal by turning customers away."""
        came = self.entered + self.reactive_blocked
        return (self.abandoned + self.short_abandoned + self.reactive_blocked) / came if came else 0.0

    @property
    def lost_se(self) -> float:
        """Batch-means standard error of ``lost``."""
        refused = self.batch_refused or (0,) * len(self.batch_entered)
        return batch_means_se(tuple(map(sum, zip(self.batch_entered, refused, strict=True))),
                              tuple(map(sum, zip(self.batch_abandoned, refused, strict=True))))

    @property
    def abandonment_genesys(self) -> float:
        """Abandoned (not short) / handled: the Genesys figure, short abandons excluded."""
        return self.abandoned / self.handled if self.handled else 0.0

    @property
    def abandonment_se(self) -> float:
        """Batch-means standard error of ``abandonment`` (runs are autocorrelated)."""
        return batch_means_se(self.batch_entered, self.batch_abandoned)

    @property
    def service_level(self) -> float:
        """Answered within the service-level time / handled."""
        return self.answered_in_sl / self.handled if self.handled else 1.0

    @property
    def occupancy(self) -> float:
        """Share of logged-in agent time spent handling interactions."""
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


def pool(results: list[SimulationResult]) -> SimulationResult:
    """Several runs (seeds) of one policy as one result: counts and times summed, batches joined."""
    if not results:
        raise ValueError("nothing to pool")
    first = results[0]
    algorithms: dict[str, int] = {}
    for r in results:
        for name, count in r.algorithms.items():
            algorithms[name] = algorithms.get(name, 0) + count
    return SimulationResult(
        policy=first.policy,
        offers=sum(r.offers for r in results),
        accepted=sum(r.accepted for r in results),
        reactive=sum(r.reactive for r in results),
        reactive_blocked=sum(r.reactive_blocked for r in results),
        answered=sum(r.answered for r in results),
        answered_in_sl=sum(r.answered_in_sl for r in results),
        abandoned=sum(r.abandoned for r in results),
        short_abandoned=sum(r.short_abandoned for r in results),
        busy_agent_s=sum(r.busy_agent_s for r in results),
        agent_s=sum(r.agent_s for r in results),
        measured_s=sum(r.measured_s for r in results),
        batch_entered=tuple(b for r in results for b in r.batch_entered),
        batch_abandoned=tuple(b for r in results for b in r.batch_abandoned),
        batch_refused=tuple(b for r in results for b in (r.batch_refused or (0,) * len(r.batch_entered))),
        longest_unserved_idle_s=max(r.longest_unserved_idle_s for r in results),
        algorithms=algorithms,
        runs=sum(r.runs for r in results),
    )


def batch_means_se(entered: tuple[int, ...], abandoned: tuple[int, ...]) -> float:
    """Standard error of an abandonment rate from batch means (batches with no interaction skipped)."""
    rates = [a / n for a, n in zip(abandoned, entered, strict=True) if n]
    if len(rates) < 2:
        return 0.0
    mean = sum(rates) / len(rates)
    variance = sum((r - mean) ** 2 for r in rates) / (len(rates) - 1)
    return math.sqrt(variance / len(rates))


def lognormal_parameters(mean: float, cv: float) -> tuple[float, float]:
    """(mu, sigma) of the lognormal with this mean and coefficient of variation."""
    sigma2 = math.log(1 + cv * cv)
    return math.log(mean) - sigma2 / 2, math.sqrt(sigma2)
