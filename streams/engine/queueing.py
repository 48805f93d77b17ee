"""Queueing formulas with customer patience: what happens to an interaction that has to wait.

Model: ``agents`` agents, exponential handle times with mean ``handle_s``, FIFO queue,
exponential patience with mean ``patience_s``. An abandon within ``short_s`` seconds is short
and does not count (numerator or denominator); an answer after ``sl_s`` seconds misses the
service level. Two views:

- ``position_costs``: for an interaction that finds ``j`` others ahead of it in the queue with
  every agent busy — the chance it abandons (not short) and the chance it is answered late.
  Its virtual wait is a sum of exponential stages (rate agents/handle + i/patience while ``i``
  are ahead), approximated by a gamma distribution with the same mean and stage count.
- ``erlang_a_rate``: the steady state for Poisson arrivals — Erlang C (domain.md §6) extended
  with exponential patience, i.e. Erlang A — and the largest arrival rate that keeps an
  abandonment goal and a service level. (Plain Erlang C ignores abandonment, needs load < agents
  and made PREDICTIVE_B ten points of occupancy too cautious at 50 agents.)

Both are cached on their (rounded) arguments: decide() calls them for every changed target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

_EXACT_STAGES = 60
_NEGLIGIBLE_LOG_WEIGHT = math.log(1e-12)


@dataclass(frozen=True)
class QueueCosts:
    """Cumulative costs of a queue of length z: expected counted (not short) abandons, late
    answers and abandons of any length among its z interactions."""

    agents: int
    abandon: tuple[float, ...]
    late: tuple[float, ...]
    lost: tuple[float, ...]

    def at(self, length: int) -> tuple[float, float]:
        """Expected (abandons, late answers) among ``length`` queued interactions."""
        if length <= 0:
            return 0.0, 0.0
        last = len(self.abandon) - 1
        if length <= last:
            return self.abandon[length], self.late[length]
        extra = length - last  # beyond the table every further position costs like the last one
        return (
            self.abandon[last] + extra * (self.abandon[last] - self.abandon[last - 1]),
            self.late[last] + extra * (self.late[last] - self.late[last - 1]),
        )


@lru_cache(maxsize=256)  # a 200-agent table is ~44 KB: at most ~11 MB
def position_costs(agents: int, handle_s: float, patience_s: float, short_s: float, sl_s: float,
                   positions: int) -> QueueCosts:
    """Cumulative abandon, late-answer and any-abandon chances of queue positions 0..positions-1."""
    service = agents / handle_s
    gamma = 1.0 / patience_s
    abandon, late, lost = [0.0], [0.0], [0.0]
    mean_wait = 0.0
    keep_short = math.exp(-gamma * short_s)
    for j in range(positions):
        mean_wait += 1.0 / (service + j * gamma)
        stages = j + 1
        rate = stages / mean_wait
        served_share = (rate / (rate + gamma)) ** stages
        waits_past_short = _gamma_tail(stages, rate * short_s)
        abandon_j = keep_short * waits_past_short - served_share * _gamma_tail(stages, (rate + gamma) * short_s)
        late_j = served_share * _gamma_tail(stages, (rate + gamma) * sl_s)
        abandon.append(abandon[-1] + max(0.0, abandon_j))
        late.append(late[-1] + max(0.0, late_j))
        lost.append(lost[-1] + 1 - served_share)
    return QueueCosts(agents, tuple(abandon), tuple(late), tuple(lost))


def _gamma_tail(stages: int, x: float) -> float:
    """P(Gamma(stages, 1) > x) = P(Poisson(x) < stages); Wilson-Hilferty for many stages."""
    if x <= 0:
        return 1.0
    if stages <= _EXACT_STAGES:
        term = math.exp(-x)
        total = term
        for i in range(1, stages):
            term *= x / i
            total += term
        return min(1.0, total)
    z = ((x / stages) ** (1 / 3) - (1 - 1 / (9 * stages))) / math.sqrt(1 / (9 * stages))
    return 0.5 * math.erfc(z / math.sqrt(2))


@dataclass(frozen=True)
class SteadyState:
    """Erlang A figures at one arrival rate (per second)."""

    arrival_rate: float
    in_system: float
    abandonment: float
    service_level: float


def steady_state(agents: int, arrival_rate: float, handle_s: float, patience_s: float,
                 costs: QueueCosts) -> SteadyState:
    """Erlang A (M/M/N+M): the birth-death steady state, costs of each queue position by PASTA.

    ``abandonment`` counts abandons that are not short, over answered + those abandons; the
    service level is answered in time over the same denominator.
    """
    service, gamma = 1.0 / handle_s, 1.0 / patience_s
    if arrival_rate <= 0:
        return SteadyState(arrival_rate, 0.0, 0.0, 1.0)
    # Log weights: a^k/k! overflows a float for a few hundred agents.
    log_weights = [0.0]
    for k in range(1, agents + 1):
        log_weights.append(log_weights[-1] + math.log(arrival_rate / (k * service)))
    peak = max(log_weights)
    queued = 0
    while queued < len(costs.abandon) - 2 and log_weights[-1] > peak + _NEGLIGIBLE_LOG_WEIGHT:
        queued += 1
        log_weights.append(log_weights[-1] + math.log(arrival_rate / (agents * service + queued * gamma)))
        peak = max(peak, log_weights[-1])
    weights = [math.exp(w - peak) for w in log_weights]
    total = sum(weights)
    abandon = late = lost = 0.0
    for j, weight in enumerate(weights[agents:]):  # an arrival finding j ahead, every agent busy
        share = weight / total
        abandon += share * (costs.abandon[j + 1] - costs.abandon[j])
        late += share * (costs.late[j + 1] - costs.late[j])
        lost += share * (costs.lost[j + 1] - costs.lost[j])
    counted = max(1e-12, 1 - (lost - abandon))  # short abandons leave both rates
    return SteadyState(
        arrival_rate,
        sum(k * w for k, w in enumerate(weights)) / total,
        abandon / counted,
        max(0.0, 1 - lost - late) / counted,
    )


@lru_cache(maxsize=1024)
def erlang_a_rate(agents: int, handle_s: float, patience_s: float, short_s: float, sl_s: float,
                  max_abandonment: float, min_service_level: float) -> SteadyState:
    """The largest Poisson arrival rate whose Erlang A steady state keeps both targets."""
    costs = position_costs(agents, handle_s, patience_s, short_s, sl_s, 2 * agents + 60)
    low, high = 0.0, 2.0 * agents / handle_s
    for _ in range(30):
        mid = (low + high) / 2
        s = steady_state(agents, mid, handle_s, patience_s, costs)
        if s.abandonment <= max_abandonment and s.service_level >= min_service_level:
            low = mid
        else:
            high = mid
    return steady_state(agents, low, handle_s, patience_s, costs)
