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

Cost: both run on numpy arrays (a 500-agent table has 1,060 positions). The position table
prices its positions on demand, a block at a time (a decision rarely looks past the first few
dozen); ``erlang_a_rate`` finds the rate by Newton's method on log(rate) with exact derivatives
(the birth-death weights are c_k·rate^k, so every figure is a weighted mean whose derivative is
a covariance with k) instead of 30 bisection steps: 3-5 evaluations of the steady state (the
last, tiny step is extrapolated to first order), each one pass over the weights up to the first
negligible one. Both are cached on their (rounded) arguments: decide() calls them for every
changed target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

_EXACT_STAGES = 60
_NEGLIGIBLE_LOG_WEIGHT = math.log(1e-12)
#: erlang_a_rate takes a Newton step below this (in log rate) without evaluating its end.
_EXTRAPOLATED_STEP = 1e-6
#: Poisson terms i = 1..59 of the exact gamma tail, as a column; _BELOW[i - 1, j]: i < j + 1.
_TERMS = np.arange(1, _EXACT_STAGES, dtype=float)[:, None]
_BELOW = (np.arange(1, _EXACT_STAGES)[:, None] <= np.arange(_EXACT_STAGES)[None, :]).astype(float)
_ERFC = np.frompyfunc(math.erfc, 1, 1)
_SQRT_HALF = math.sqrt(0.5)
_STAGES = np.arange(1, 1061, dtype=float)  # 1..1060: the stage counts of a 500-agent table


class QueueCosts:
    """Cumulative costs of a queue of length z: expected counted (not short) abandons, late
    answers and abandons of any length among its z interactions (``abandon``, ``late``,
    ``lost``: arrays indexed by z = 0..positions).

    Positions are priced on demand: a decision rarely looks past the first few dozen of a
    500-agent table's 1,060, and pricing (three gamma tails per position) is most of the table's
    cost. The stage rates of every position are set up at once (one cumulative sum); a lookup
    prices the positions it reaches, in geometrically growing blocks.
    """

    def __init__(self, agents: int, handle_s: float, patience_s: float, short_s: float, sl_s: float,
                 positions: int):
        self.agents = agents
        self.positions = positions
        service = agents / handle_s
        gamma = 1.0 / patience_s
        stages = _stages(positions)
        mean_wait = np.cumsum(1.0 / (service + (stages - 1) * gamma))
        rate = stages / mean_wait
        self._served_share = (rate / (rate + gamma)) ** stages
        self._keep_short = math.exp(-gamma * short_s)
        x = self._x = np.empty((3, positions))  # the three gamma tails' arguments, one row each
        np.multiply(rate, short_s, out=x[0])
        rate += gamma
        np.multiply(rate, short_s, out=x[1])
        np.multiply(rate, sl_s, out=x[2])
        #: Per position (rows abandon, late, lost): what the position adds to each cumulative cost.
        self._increments = np.empty((3, positions))
        # Cumulative sums, each with a leading 0 (the cost of an empty queue); rows abandon, late,
        # lost, abandon + late.
        self._table = np.zeros((4, positions + 1))
        self.priced = 0
        self._extended: np.ndarray | None = None

    def _price(self, count: int) -> None:
        """Price positions up to ``count`` (at least; the block grows geometrically)."""
        if count <= self.priced:
            return
        first = self.priced
        end = min(self.positions, max(count, 2 * first, 16))
        served = self._served_share[first:end]
        short, short_served, late = _gamma_tails(self._x[:, first:end], first)
        increments = self._increments[:, first:end]
        np.maximum(self._keep_short * short - served * short_served, 0.0, out=increments[0])
        np.maximum(served * late, 0.0, out=increments[1])
        np.subtract(1.0, served, out=increments[2])
        # The sums over the whole priced prefix: the same numbers as one pass over the full table.
        np.cumsum(self._increments[:, :end], axis=1, out=self._table[:3, 1:end + 1])
        np.add(self._table[0, 1:end + 1], self._table[1, 1:end + 1], out=self._table[3, 1:end + 1])
        self.priced = end

    @property
    def abandon(self) -> np.ndarray:
        """The full cumulative table of counted abandons (every position priced)."""
        self._price(self.positions)
        return self._table[0]

    @property
    def late(self) -> np.ndarray:
        """The full cumulative table of late answers."""
        self._price(self.positions)
        return self._table[1]

    @property
    def lost(self) -> np.ndarray:
        """The full cumulative table of abandons of any length."""
        self._price(self.positions)
        return self._table[2]

    def per_position(self, count: int | None = None) -> np.ndarray:
        """The costs each of the first ``count`` positions (default all) adds, rows abandon, late, lost."""
        count = self.positions if count is None else min(count, self.positions)
        self._price(count)
        return self._increments[:, :count]

    def at(self, length: int) -> tuple[float, float]:
        """Expected (abandons, late answers) among ``length`` queued interactions."""
        if length <= 0:
            return 0.0, 0.0
        last = self.positions
        if length <= last:
            self._price(length)
            return float(self._table[0, length]), float(self._table[1, length])
        self._price(last)
        extra = length - last  # beyond the table every further position costs like the last one
        table = self._table
        return (
            float(table[0, last] + extra * (table[0, last] - table[0, last - 1])),
            float(table[1, last] + extra * (table[1, last] - table[1, last - 1])),
        )

    def cumulative(self, lengths: np.ndarray) -> np.ndarray:
        """``at`` for an integer array of queue lengths (<= 0: nobody waits), stacked: [abandons,
        abandons + late answers] along a new first axis. Beyond the table, looks up one extended
        (by the same extrapolation as ``at``) to the longest length asked so far."""
        longest = int(lengths.max())
        if longest <= self.positions:
            self._price(longest)
            table = self._table[::3]  # rows abandon, abandon + late
        else:
            if self._extended is None or self._extended.shape[1] <= longest:
                self._extended = self._extend(max(longest + 1, 2 * self.positions + 2))
            table = self._extended
        # np.take: indexing as [:, lengths] costs several times more
        return np.take(table, np.maximum(lengths, 0), axis=1)

    def _extend(self, size: int) -> np.ndarray:
        """Rows abandon, abandon + late for lengths 0..size-1, extrapolated past the table."""
        self._price(self.positions)
        last = self.positions
        extra = np.arange(1, size - last, dtype=float)
        slope = self._table[::3, last] - self._table[::3, last - 1]
        out = np.empty((2, size))
        out[:, :last + 1] = self._table[::3]
        np.add(self._table[::3, last, None], slope[:, None] * extra, out=out[:, last + 1:])
        return out


@lru_cache(maxsize=256)  # a 200-agent table is ~16 KB
def position_costs(agents: int, handle_s: float, patience_s: float, short_s: float, sl_s: float,
                   positions: int) -> QueueCosts:
    """Cumulative abandon, late-answer and any-abandon chances of queue positions 0..positions-1
    (priced as they are looked up)."""
    return QueueCosts(agents, handle_s, patience_s, short_s, sl_s, positions)


def _stages(count: int) -> np.ndarray:
    """1.0, 2.0, ..., count."""
    return _STAGES[:count] if count <= len(_STAGES) else np.arange(1, count + 1, dtype=float)


def _gamma_tails(x: np.ndarray, first: int = 0) -> np.ndarray:
    """P(Gamma(j + 1, 1) > x[t, j - first]) = P(Poisson(x[t, j - first]) < j + 1) for the queue
    positions j = first, first + 1, ... of each row t: the Poisson sum up to 60 stages,
    Wilson-Hilferty beyond."""
    rows, count = x.shape
    out = np.ones((rows, count))
    m = max(0, min(count, _EXACT_STAGES - first))  # columns summed exactly
    if m:
        head = np.minimum(x[:, :m], 745.0)  # exp(-745) is 0: beyond, the sum is 0 however large its terms
        # Where j + 1 > x + 12 sqrt(x) + 12 in every row, the tails are 1 to 1e-17: only the columns up
        # to the last other one are summed, each with its terms up to that bound.
        column_max = head.max(axis=0)
        bound = column_max + 12 * np.sqrt(column_max) + 12
        live = _STAGES[first:first + m] <= bound
        width = m - int(live[::-1].argmax()) if live.any() else 0
        if width:
            top = min(first + width - 1, math.ceil(float(bound[:width].max())))
            part = head[:, :width]
            total = np.exp(-part)
            if top >= 1:
                terms = np.cumprod(part[:, None, :] / _TERMS[None, :top, :], axis=1)  # x^i / i!, i = 1..top
                total *= 1.0 + (terms * _BELOW[None, :top, first:first + width]).sum(axis=1)
            np.minimum(total, 1.0, out=out[:, :width])  # x = 0 (no short abandons): 1, as it should
    if m < count:
        n = _stages(first + count)[first + m:]
        z = ((x[:, m:] / n) ** (1 / 3) - (1 - 1 / (9 * n))) * np.sqrt(9 * n)
        out[:, m:] = _normal_tail(z)
    return out


def _normal_tail(z: np.ndarray) -> np.ndarray:
    """P(N(0, 1) > z), elementwise: erfc(z/√2)/2 is exactly 1.0 in floating point below z = -8.5
    and < 1e-19 above 9."""
    q = (z < 9.0).astype(float)
    inner = (z > -8.5) & (z < 9.0)
    if inner.any():
        q[inner] = 0.5 * _ERFC(z[inner] * _SQRT_HALF).astype(float)
    return q


@dataclass(frozen=True)
class SteadyState:
    """Erlang A figures at one arrival rate (per second)."""

    arrival_rate: float
    in_system: float
    abandonment: float
    service_level: float


class _ErlangA:
    """The M/M/N+M birth-death chain of one group, evaluated at any arrival rate λ.

    Its stationary weights are c_k·λ^k (k in the system), so log c_k is computed once and each
    rate costs one pass: log weights = log c + k·log λ. Every figure is a ratio of weighted sums,
    and its derivative with respect to u = log λ follows from the same weights times k.
    """

    def __init__(self, agents: int, handle_s: float, patience_s: float, costs: QueueCosts):
        service, gamma = 1.0 / handle_s, 1.0 / patience_s
        self.agents = agents
        self.costs = costs
        self.max_queue = costs.positions - 1
        rates = np.empty(agents + self.max_queue + 1)
        rates[0] = 1.0
        rates[1:agents + 1] = np.arange(1, agents + 1) * service
        rates[agents + 1:] = agents * service + np.arange(1, self.max_queue + 1) * gamma
        self.log_c = -np.cumsum(np.log(rates))
        k = _stages(len(rates)) - 1
        self.k = k
        self.moments = np.ones((len(k), 3))  # w·moments = (Σ w, Σ k w, Σ k² w)
        self.moments[:, 1] = k
        self.moments[:, 2] = k * k
        # Queue states weighed by evaluate (grown as needed): half a group's size is typical at the goal.
        self.span = min(self.max_queue + 1, 48 + agents // 2)
        # Cost increments of an arrival that finds j ahead with every agent busy, plain and times k:
        # the queue's weights times these give every share and its derivative. Only the positions
        # the weights reach are priced (see ``_increments``).
        self.increments = np.empty((0, 6))

    def _increments(self, count: int) -> np.ndarray:
        """The first ``count`` rows of the (position, [abandon, late, lost, k·abandon, k·late,
        k·lost]) increments, priced as far as asked so far."""
        if len(self.increments) < count:
            rows = min(self.max_queue + 1, max(count, 2 * len(self.increments)))
            increments = self.costs.per_position(rows).T
            self.increments = np.empty((rows, 6))
            self.increments[:, :3] = increments
            np.multiply(increments, self.k[self.agents:self.agents + rows, None], out=self.increments[:, 3:])
        return self.increments[:count]

    def evaluate(self, u: float) -> tuple[SteadyState, float, float, float, float, float]:
        """(state, abandonment, d abandonment/du, service level, d service level/du, d in_system/du)
        at λ = e^u."""
        n = self.agents
        while True:
            # Only the states up to the span are weighed: past the first negligible queue weight
            # nothing counts, and the span grows (up to the whole table) until it holds one.
            end = n + self.span
            log_w = self.log_c[:end] + self.k[:end] * u
            queue = log_w[n:]
            peak = float(log_w[:n + 1].max())
            # The queue is followed while its last weight is not negligible against the peak so far
            # (the rule of the straightforward loop, so both sum the same terms).
            running = np.maximum.accumulate(queue)
            negligible = queue <= np.maximum(running, peak) + _NEGLIGIBLE_LOG_WEIGHT
            queued = int(negligible.argmax())  # the first negligible weight, or none: 0 and not negligible[0]
            if negligible[queued]:
                break
            if self.span > self.max_queue:
                queued = self.max_queue
                break
            self.span = min(self.max_queue + 1, 2 * self.span)
        end = n + queued + 1
        peak = max(peak, float(running[queued]))
        w = np.exp(log_w[:end] - peak)
        # (einsum, not @: BLAS threads spin longer than these small products take)
        total, k_total, k2_total = np.einsum("i,ij->j", w, self.moments[:end])
        shares = np.einsum("i,ij->j", w[n:], self._increments(queued + 1)) / total  # Σ w f / Σ w, Σ k w f / Σ w
        abandon, late, lost = float(shares[0]), float(shares[1]), float(shares[2])
        mean_k = float(k_total / total)
        in_system_d = float(k2_total / total) - mean_k * mean_k  # d mean k / du = variance of k
        # d/du of a share s = Σ w f / Σ w is Σ k w f / Σ w - s · mean k
        abandon_d = float(shares[3]) - abandon * mean_k
        late_d = float(shares[4]) - late * mean_k
        lost_d = float(shares[5]) - lost * mean_k
        counted = 1 - (lost - abandon)
        if counted <= 1e-12:
            counted, counted_d = 1e-12, 0.0
        else:
            counted_d = abandon_d - lost_d
        served = 1 - lost - late
        rate_a = abandon / counted
        rate_a_d = (abandon_d * counted - abandon * counted_d) / counted ** 2
        level = max(0.0, served) / counted
        level_d = ((-lost_d - late_d) * counted - served * counted_d) / counted ** 2 if served > 0 else 0.0
        state = SteadyState(math.exp(u), mean_k, rate_a, level)
        return state, rate_a, rate_a_d, level, level_d, in_system_d


def steady_state(agents: int, arrival_rate: float, handle_s: float, patience_s: float,
                 costs: QueueCosts) -> SteadyState:
    """Erlang A (M/M/N+M): the birth-death steady state, costs of each queue position by PASTA.

    ``abandonment`` counts abandons that are not short, over answered + those abandons; the
    service level is answered in time over the same denominator.
    """
    if arrival_rate <= 0:
        return SteadyState(arrival_rate, 0.0, 0.0, 1.0)
    return _ErlangA(agents, handle_s, patience_s, costs).evaluate(math.log(arrival_rate))[0]


@lru_cache(maxsize=16384)  # a SteadyState is ~100 bytes: a pass over a 10,000-target fleet stays cached
def erlang_a_rate(agents: int, handle_s: float, patience_s: float, short_s: float, sl_s: float,
                  max_abandonment: float, min_service_level: float) -> SteadyState:
    """The largest Poisson arrival rate whose Erlang A steady state keeps both targets.

    Searched up to twice the group's service rate. Safeguarded Newton on u = log λ for the
    tighter of the two conditions (log abandonment = log goal, log(1 - SL) = log(1 - target)):
    a step that leaves the bracket of known good and bad rates bisects it instead. Stops when a
    step moves u by less than 1e-11, at a rate that keeps both targets.
    """
    costs = position_costs(agents, handle_s, patience_s, short_s, sl_s, 2 * agents + 60)
    model = _ErlangA(agents, handle_s, patience_s, costs)
    upper = math.log(2.0 * agents / handle_s)
    if min_service_level >= 1:
        return SteadyState(0.0, 0.0, 0.0, 1.0)
    log_goal = math.log(max_abandonment)
    log_miss = math.log(1 - min_service_level) if min_service_level > 0 else None

    def excess(u: float) -> tuple[SteadyState, float, float]:
        """The state at e^u, how far the binding condition is past its target (> 0: broken), and
        that figure's derivative."""
        state, a, a_d, s, s_d, n_d = model.evaluate(u)
        slopes[:] = a_d, s_d, n_d
        value = math.log(a) - log_goal if a > 0 else -math.inf
        slope = a_d / a if a > 0 else 1.0
        if log_miss is not None:
            miss = 1 - s
            value_s = math.log(miss) - log_miss if miss > 0 else -math.inf
            if value_s > value:
                value, slope = value_s, (-s_d / miss if miss > 0 else 1.0)
        return state, value, slope

    slopes = [0.0, 0.0, 0.0]  # of the last evaluation: abandonment, service level, in system
    good_u, good = -math.inf, SteadyState(0.0, 0.0, 0.0, 1.0)
    bad_u = upper + 1e-9  # not evaluated: the top of the range is tried only when a step reaches it
    # First guess: load agents²/(agents + 3), as small groups run well below their size.
    u = min(upper, math.log(agents * agents / (agents + 3) / handle_s))
    for _ in range(100):
        state, value, slope = excess(u)
        if value <= 0:
            good_u, good = u, state
            if u >= upper:
                return state
        else:
            bad_u = u
        if bad_u - good_u < 1e-10:
            return good
        step = -value / slope if slope > 0 and math.isfinite(value) else math.nan
        if value <= 0 and 0 <= step < 1e-10:
            return state  # converged from below
        if value <= 0 and 0 <= step < _EXTRAPOLATED_STEP and u + step < min(bad_u, upper):
            # The last Newton step is tiny: the state there follows to first order (an error of
            # ~step², < 1e-13), a hair short of the root so that the rate keeps the goal.
            delta = step * (1 - 1e-3)
            a_d, s_d, n_d = slopes
            return SteadyState(math.exp(u + delta), state.in_system + delta * n_d, state.abandonment + delta * a_d,
                               state.service_level + delta * s_d)
        target = u - 1e-10 if value > 0 and -1e-10 < step <= 0 else u + step  # from above: just below
        low = good_u if math.isfinite(good_u) else bad_u - 40.0
        if u < upper <= target and bad_u > upper:
            target = upper  # the whole range may keep the goal (then the answer is its top)
        elif not low < target < bad_u:  # also a NaN step
            target = (low + bad_u) / 2 if math.isfinite(good_u) else bad_u - max(1.0, 2 * (bad_u - u))
        u = min(target, upper)
    return good
