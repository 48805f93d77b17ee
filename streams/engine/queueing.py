"""Queueing formulas with customer patience: what happens to an interaction that has to wait.

Model: ``agents`` agents, exponential handle times with mean ``handle_s``, FIFO queue,
exponential patience with mean ``patience_s``. An abandon within ``short_s`` seconds is short
and does not count (numerator or denominator); an answer after ``sl_s`` seconds misses the
service level. Two views:

- ``position_costs``: for an interaction that finds ``j`` others ahead of it in the queue with
  every agent busy — the chance it abandons (not short) and the chance it is answered late.
  Its virtual wait is a sum of exponential stages (rate agents/handle + i/patience while ``i``
  are ahead), approximated by a gamma distribution with the same mean and stage count.
- ``erlang_c_load``: the steady state for Poisson arrivals (Erlang C, domain.md §6) with the
  patience corrections, and the largest load that keeps an abandonment goal and a service level.

Both are cached on their (rounded) arguments: decide() calls them for every changed target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

_EXACT_STAGES = 60


@dataclass(frozen=True)
class QueueCosts:
    """Cumulative costs of a queue of length z: ``abandon[z]`` and ``late[z]`` expected counts."""

    abandon: tuple[float, ...]
    late: tuple[float, ...]

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


@lru_cache(maxsize=512)
def position_costs(agents: int, handle_s: float, patience_s: float, short_s: float, sl_s: float,
                   positions: int) -> QueueCosts:
    """Cumulative abandon and late-answer chances of queue positions 0..positions-1."""
    service = agents / handle_s
    gamma = 1.0 / patience_s
    abandon, late = [0.0], [0.0]
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
    return QueueCosts(tuple(abandon), tuple(late))


def _gamma_tail(stages: int, x: float) -> float:
    """P(Gamma(stages, 1) > x) = P(Poisson(x) < stages); Wilson–Hilferty for many stages."""
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


def erlang_c(agents: int, load: float) -> float:
    """Probability that a Poisson arrival waits (Erlang C); 1 when the load reaches the agents."""
    if agents <= 0 or load >= agents:
        return 1.0
    if load <= 0:
        return 0.0
    blocking = 1.0
    for k in range(1, agents + 1):
        blocking = load * blocking / (k + load * blocking)
    return agents * blocking / (agents - load * (1 - blocking))


@dataclass(frozen=True)
class SteadyState:
    """Erlang C figures at one offered load (erlangs)."""

    load: float
    wait_probability: float
    abandonment: float
    service_level: float
    queue_length: float


def steady_state(agents: int, load: float, handle_s: float, patience_s: float, short_s: float,
                 sl_s: float) -> SteadyState:
    """Erlang C at ``load`` with the patience corrections for abandonment and service level."""
    wait = erlang_c(agents, load)
    if wait >= 1.0:
        return SteadyState(load, 1.0, 1.0, 0.0, math.inf)
    drain = (agents - load) / handle_s  # rate of the exponential wait of those who wait
    gamma = 1.0 / patience_s
    gives_up = gamma / (drain + gamma)
    abandonment = wait * math.exp(-short_s * (drain + gamma)) * gives_up
    short = wait * gives_up * (1 - math.exp(-short_s * (drain + gamma)))
    answered_in_time = 1 - wait + wait * (1 - gives_up) * (1 - math.exp(-(drain + gamma) * sl_s))
    counted = max(1e-9, 1 - short)
    queue = wait * load / (agents - load)
    return SteadyState(load, wait, abandonment / counted, min(1.0, answered_in_time / counted), queue)


@lru_cache(maxsize=1024)
def erlang_c_load(agents: int, handle_s: float, patience_s: float, short_s: float, sl_s: float,
                  max_abandonment: float, min_service_level: float) -> SteadyState:
    """The largest offered load whose steady state keeps both targets (bisection on the load)."""
    low, high = 0.0, float(agents)
    for _ in range(40):
        mid = (low + high) / 2
        s = steady_state(agents, mid, handle_s, patience_s, short_s, sl_s)
        if s.abandonment <= max_abandonment and s.service_level >= min_service_level:
            low = mid
        else:
            high = mid
    return steady_state(agents, low, handle_s, patience_s, short_s, sl_s)
