"""The engine's kernels as straightforward Python: the meaning of the compiled ones' numbers, and
the fallback where they cannot be built or imported (``streams.engine.kernels`` picks).

Each function has the signature and the results of its namesake in ``_kernels.c``, computed the
plain way (the compiled ones were written as fast versions of these loops, and
tests/unit/engine/test_engine_reference.py checks them against each other):

- ``position_table`` / ``position_at``: one queue position at a time, exact Poisson sums up to 60
  stages, Wilson-Hilferty beyond;
- ``steady_state`` / ``erlang_a_rate``: the birth-death weights in a loop, the capacity by 30
  bisection steps (the compiled one by Newton's method: the same rate to 2 x agents / handle x
  2^-30);
- ``horizon_costs``: explicit convolutions of truncated distributions (``distributions``), and
  for the exact mode the joint table of (accepts still to come, free agents) advanced slice by
  slice;
- ``progressive_search`` / ``progressive_plan``: gallop from the guess, then bisect, over those
  costs; the plan's other steps as ``progressive._plan`` documents them.

Tolerances between the two: tables ~1e-12, horizon costs ~1e-9, the same offers. Slow: a cold
decision of a 50-agent group takes milliseconds here instead of microseconds.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable, Sequence
from functools import lru_cache

from streams.engine.distributions import Pmf, binomial, point, poisson

_EXACT_STAGES = 60
_SLICES = 3
_TINY = 1e-10

Table = tuple[list[float], list[float], list[float]]


# ---------------------------------------------------------------------------------------------
# Position costs, one position at a time


def gamma_tail(stages: int, x: float) -> float:
    """P(Gamma(stages, 1) > x) = P(Poisson(x) < stages); Wilson-Hilferty past 60 stages."""
    if x <= 0:
        return 1.0
    if stages <= _EXACT_STAGES:
        term = math.exp(-min(x, 745.0))
        total = term
        for i in range(1, stages):
            term *= x / i
            total += term
        return min(1.0, total)
    z = ((x / stages) ** (1 / 3) - (1 - 1 / (9 * stages))) / math.sqrt(1 / (9 * stages))
    return 0.5 * math.erfc(z / math.sqrt(2)) if z < 9.0 else 0.0


@lru_cache(maxsize=64)
def position_costs(agents: int, handle_s: float, patience_s: float, short_s: float, sl_s: float,
                   positions: int) -> Table:
    """Cumulative (abandon, late, lost) costs of queues of 0..positions (see queueing.py)."""
    _check_table(agents, handle_s, patience_s, short_s, sl_s, positions)
    service, gamma = agents / handle_s, 1.0 / patience_s
    abandon, late, lost = [0.0], [0.0], [0.0]
    mean_wait = 0.0
    keep_short = math.exp(-gamma * short_s)
    for j in range(positions):
        mean_wait += 1.0 / (service + j * gamma)
        stages = j + 1
        rate = stages / mean_wait
        served_share = (rate / (rate + gamma)) ** stages
        abandon_j = keep_short * gamma_tail(stages, rate * short_s) \
            - served_share * gamma_tail(stages, (rate + gamma) * short_s)
        late_j = served_share * gamma_tail(stages, (rate + gamma) * sl_s)
        abandon.append(abandon[-1] + max(0.0, abandon_j))
        late.append(late[-1] + max(0.0, late_j))
        lost.append(lost[-1] + 1 - served_share)
    return abandon, late, lost


def _check_table(agents: int, handle_s: float, patience_s: float, short_s: float, sl_s: float,
                 positions: int) -> None:
    if agents < 1 or positions < 1 or not handle_s > 0 or not patience_s > 0 or not short_s >= 0 or not sl_s >= 0:
        raise ValueError("position costs need agents >= 1, positions >= 1, handle and patience > 0, "
                         "short and service-level thresholds >= 0")


def table_at(table: Table, row: int, length: int) -> float:
    """Cumulative cost ``row`` of a queue of ``length``; past the table each position costs the last's."""
    column = table[row]
    if length <= 0:
        return 0.0
    last = len(column) - 1
    if length <= last:
        return column[length]
    return column[last] + (length - last) * (column[last] - column[last - 1])


def position_table(agents: int, handle_s: float, patience_s: float, short_s: float, sl_s: float, positions: int,
                   count: int) -> bytes:
    """``_kernels.position_table``: 3 x (count + 1) float64 values, row by row."""
    table = position_costs(agents, float(handle_s), float(patience_s), float(short_s), float(sl_s), positions)
    if not 0 <= count <= positions:
        raise ValueError("count must be within 0..positions")
    return array("d", [v for column in table for v in column[:count + 1]]).tobytes()


def position_at(agents: int, handle_s: float, patience_s: float, short_s: float, sl_s: float, positions: int,
                length: int) -> tuple[float, float]:
    """``_kernels.position_at``: expected counted abandons and late answers among ``length`` queued."""
    table = position_costs(agents, float(handle_s), float(patience_s), float(short_s), float(sl_s), positions)
    return table_at(table, 0, length), table_at(table, 1, length)


# ---------------------------------------------------------------------------------------------
# Erlang A: the steady state in a loop, the capacity by bisection


def steady_from(agents: int, rate: float, handle_s: float, patience_s: float,
                table: Table) -> tuple[float, float, float, float]:
    """(rate, in_system, abandonment, service_level) of Erlang A at ``rate``, queue costs from ``table``."""
    abandon_t, late_t, lost_t = table
    service, gamma = 1.0 / handle_s, 1.0 / patience_s
    if rate <= 0:
        return rate, 0.0, 0.0, 1.0
    log_weights = [0.0]
    for k in range(1, agents + 1):
        log_weights.append(log_weights[-1] + math.log(rate / (k * service)))
    peak = max(log_weights)
    queued = 0
    while queued < len(abandon_t) - 2 and log_weights[-1] > peak + math.log(1e-12):
        queued += 1
        log_weights.append(log_weights[-1] + math.log(rate / (agents * service + queued * gamma)))
        peak = max(peak, log_weights[-1])
    weights = [math.exp(w - peak) for w in log_weights]
    total = sum(weights)
    abandon = late = lost = 0.0
    for j, weight in enumerate(weights[agents:]):
        share = weight / total
        abandon += share * (abandon_t[j + 1] - abandon_t[j])
        late += share * (late_t[j + 1] - late_t[j])
        lost += share * (lost_t[j + 1] - lost_t[j])
    counted = max(1e-12, 1 - (lost - abandon))
    return rate, sum(k * w for k, w in enumerate(weights)) / total, abandon / counted, \
        max(0.0, 1 - lost - late) / counted


def steady_state(agents: int, rate: float, handle_s: float, patience_s: float, short_s: float, sl_s: float,
                 positions: int) -> tuple[float, float, float, float]:
    """``_kernels.steady_state``."""
    if agents < 1 or positions < 1 or not handle_s > 0 or not patience_s > 0:
        raise ValueError("steady_state needs agents >= 1, positions >= 1, handle and patience > 0")
    table = position_costs(agents, float(handle_s), float(patience_s), float(short_s), float(sl_s), positions)
    return steady_from(agents, rate, handle_s, patience_s, table)


@lru_cache(maxsize=256)
def erlang_a_rate(agents: int, handle_s: float, patience_s: float, short_s: float, sl_s: float, goal: float,
                  min_sl: float) -> tuple[float, float, float, float]:
    """``_kernels.erlang_a_rate``: the largest rate up to 2 x agents / handle within both goals."""
    if agents < 1 or not handle_s > 0 or not patience_s > 0 or not goal > 0:
        raise ValueError("erlang_a_rate needs agents >= 1, handle, patience and the goal > 0")
    if min_sl >= 1:
        return 0.0, 0.0, 0.0, 1.0
    table = position_costs(agents, float(handle_s), float(patience_s), float(short_s), float(sl_s),
                           2 * agents + 60)
    low, high = 0.0, 2.0 * agents / handle_s
    top = steady_from(agents, high, handle_s, patience_s, table)
    if top[2] <= goal and top[3] >= min_sl:
        return top
    for _ in range(30):
        mid = (low + high) / 2
        s = steady_from(agents, mid, handle_s, patience_s, table)
        if s[2] <= goal and s[3] >= min_sl:
            low = mid
        else:
            high = mid
    return steady_from(agents, low, handle_s, patience_s, table)


# ---------------------------------------------------------------------------------------------
# The horizon by explicit convolutions (and the joint table for the exact mode)


def _convolve(row: list[float], probs: tuple[float, ...]) -> list[float]:
    out = [0.0] * (len(row) + len(probs) - 1)
    for i, q in enumerate(probs):
        for j, v in enumerate(row):
            out[i + j] += q * v
    return out


def _binomial_row(trials: int, p: float) -> list[float]:
    if p >= 1:
        return [0.0] * trials + [1.0]
    row = [(1 - p) ** trials]
    for a in range(trials):
        row.append(row[-1] * (trials - a) / (a + 1) * p / (1 - p))
    return row


class Joint:
    """(accepts still to come, free agents minus queue), dense rows per count to come."""

    def __init__(self, free: int, to_come: Pmf):
        self.offset = free
        self.rows = {to_come.offset + k: [p] for k, p in enumerate(to_come.probs) if p > _TINY}

    def add_free(self, finishing: Pmf) -> None:
        """Agents finishing: every row's free agents grow by them."""
        if len(finishing.probs) > 1:
            self.rows = {k: _convolve(row, finishing.probs) for k, row in self.rows.items()}
        self.offset += finishing.offset

    def arrive(self, share: float, reactive: Pmf) -> None:
        """Each accept still to come arrives now with chance ``share``; reactive arrivals too."""
        top = max(self.rows)
        width = max(len(row) for row in self.rows.values()) + top
        moved: dict[int, list[float]] = {}
        for k, row in self.rows.items():
            for a, p in enumerate(_binomial_row(k, share)):
                if p < _TINY:
                    continue
                target = moved.setdefault(k - a, [0.0] * width)
                for i, v in enumerate(row):
                    target[top - a + i] += p * v
        self.offset -= top
        if len(reactive.probs) > 1 or reactive.offset:
            negated = reactive.negated()
            moved = {k: _convolve(row, negated.probs) for k, row in moved.items()}
            self.offset += negated.offset
        self.rows = {k: row for k, row in moved.items() if sum(row) > _TINY}
        needed = [i for row in self.rows.values() for i, v in enumerate(row) if v > _TINY]
        low, high = min(needed), max(needed) + 1
        self.rows = {k: row[low:high] for k, row in self.rows.items()}
        self.offset += low

    def free(self) -> Pmf:
        """The distribution of free agents minus queue, whatever is still to come."""
        total = [0.0] * max(len(row) for row in self.rows.values())
        for row in self.rows.values():
            for i, v in enumerate(row):
                total[i] += v
        return Pmf(self.offset, tuple(total))


class HorizonModel:
    """One horizon as ``Horizon.model`` hands it to the kernels, with its start."""

    def __init__(self, start: int, model: tuple):
        (self.reactive_rate, self.busy, self.outstanding, self.agents, self.p, self.exact, self.slice_s, self.tail_s,
         self.tail_finish, finish_share, new_share, pending_share, table) = model
        self.start = start
        self.finish_share, self.new_share, self.pending_share = \
            tuple(finish_share), tuple(new_share), tuple(pending_share)
        if not (0 < self.p <= 1) or self.busy < 0 or self.outstanding < 0 or not self.reactive_rate >= 0:
            raise ValueError("a horizon needs 0 < p <= 1, counts and the reactive rate >= 0 and a valid "
                             "position table")
        for shares in (self.finish_share, self.new_share, self.pending_share):
            if len(shares) != _SLICES:
                raise ValueError(f"the slice shares must hold {_SLICES} values")
        agents, handle_s, patience_s, short_s, sl_s, positions = table
        self.table = position_costs(agents, float(handle_s), float(patience_s), float(short_s), float(sl_s), positions)
        self.finishing = [binomial(self.busy, q) for q in self.finish_share]
        self.tail_finishing = binomial(self.agents, self.tail_finish)

    def _queue_cost(self, free: Pmf) -> tuple[float, float]:
        abandon = bad = 0.0
        for i, prob in enumerate(free.probs):
            queue = -(free.offset + i)
            if queue > 0:
                a, late = table_at(self.table, 0, queue), table_at(self.table, 1, queue)
                abandon += prob * a
                bad += prob * (a + late)
        return abandon, bad

    def costs(self, offers: int) -> tuple[float, float]:
        """Expected (abandons, abandons + late answers) of everything arriving, with ``offers`` new offers."""
        new_mean, pending_mean = offers * self.p, self.outstanding * self.p
        accepts_mean = new_mean + pending_mean
        reactive_slice = poisson(self.reactive_rate * self.slice_s)
        joint = Joint(self.start, binomial(offers, self.p).plus(binomial(self.outstanding, self.p))) \
            if self.exact else None
        free = point(self.start)
        abandon = bad = arrived_share = 0.0
        for s in range(_SLICES):
            share = (new_mean * self.new_share[s] + pending_mean * self.pending_share[s]) / accepts_mean \
                if accepts_mean > 0 else 0.0
            if joint is not None:
                conditional = 1.0 if s == _SLICES - 1 else min(1.0, share / max(1e-12, 1 - arrived_share))
                arrived_share += share
                joint.add_free(self.finishing[s])
                free_before = joint.free()
                joint.arrive(conditional, reactive_slice)
                free = joint.free()
            else:
                free_before = free.plus(self.finishing[s])
                arrivals = binomial(offers, self.p * self.new_share[s]).plus(
                    binomial(self.outstanding, self.p * self.pending_share[s])).plus(reactive_slice)
                free = free_before.plus(arrivals.negated())
            before, after = self._queue_cost(free_before), self._queue_cost(free)
            abandon += after[0] - before[0]
            bad += after[1] - before[1]
        if self.reactive_rate > 0:
            free = free.plus(self.tail_finishing)
            before = self._queue_cost(free)
            after = self._queue_cost(free.plus(poisson(self.reactive_rate * self.tail_s).negated()))
            abandon += after[0] - before[0]
            bad += after[1] - before[1]
        return max(0.0, abandon), max(0.0, bad)


def horizon_costs(offers: Sequence[int], start: int, model: tuple) -> list[tuple[float, float]]:
    """``_kernels.horizon_costs``."""
    horizon = HorizonModel(start, model)
    if any(n < 0 for n in offers):
        raise ValueError("offer counts must be >= 0")
    return [horizon.costs(n) for n in offers]


# ---------------------------------------------------------------------------------------------
# The progressive plan: the search over offer counts, and the plan around it


def largest(keeps_goal: Callable[[int], bool], cap: int, guess: float) -> int:
    """The largest n <= cap that keeps the goal (0 always does), galloping from the guess and
    bisecting: where the goal fails from some n on, the count the compiled search finds too."""
    if cap <= 0:
        return 0
    n = min(cap, max(1, round(guess)))
    step = max(1, n // 4)
    if keeps_goal(n):
        low = n
        while True:
            if low >= cap:
                return cap
            trial = min(cap, low + step)
            if not keeps_goal(trial):
                high = trial
                break
            low, step = trial, step * 2
    else:
        high = n
        while True:
            trial = max(0, high - step)
            if trial == 0 or keeps_goal(trial):
                low = trial
                break
            high, step = trial, step * 2
    while high - low > 1:
        mid = (low + high) // 2
        if keeps_goal(mid):
            low = mid
        else:
            high = mid
    return low


def progressive_search(model: tuple, planning_start: int, actual_start: int, p: float, goal: float,
                       service_level: float, cap: int, guess: float) -> tuple[int, float, float]:
    """``_kernels.progressive_search``: the largest n whose added costs from ``planning_start`` fit
    the goal share of its own accepts, and the horizon's costs with it from ``actual_start``."""
    if cap > 100_000_000:
        raise ValueError("progressive_search: cap out of range")
    planning = HorizonModel(planning_start, model)
    base_a, base_b = planning.costs(0)

    def keeps_goal(n: int) -> bool:
        abandon, bad = planning.costs(n)
        margin = goal * n * p + 1e-12 - (abandon - base_a)
        if service_level >= 0:
            margin = min(margin, (1 - service_level) * n * p + 1e-12 - (bad - base_b))
        return margin >= 0

    offers = largest(keeps_goal, cap, guess)
    abandon, bad = HorizonModel(actual_start, model).costs(offers)
    return offers, abandon, bad


def reactive_reserve(agents: int, reactive_rate: float, handle_s: float, queued_abandon: float, goal: float) -> int:
    """Agents kept free for reactive traffic (progressive.reactive_reserve, a sum per step)."""
    if reactive_rate <= 0 or queued_abandon <= goal:
        return 0
    weights = [1.0]
    for k in range(1, agents + 1):
        weights.append(weights[-1] * (agents - k + 1) / handle_s / reactive_rate)
        if queued_abandon / sum(weights) <= goal:
            return k
    return agents


def progressive_plan(ready: int, busy: int, waiting: int, outstanding: int, p: float, handle_s: float,
                     patience_s: float, reactive_per_hour: float, period_s: float, response_s: float, short_s: float,
                     sl_s: float, goal: float, service_level: float, cap: int,
                     exact: bool) -> tuple[int, float, float]:
    """``_kernels.progressive_plan``: progressive._plan's steps (service_level < 0: not enforced)."""
    agents = ready + busy
    if min(ready, busy, waiting, outstanding) < 0 or agents < 1:
        raise ValueError("progressive_plan needs ready, busy, waiting, outstanding >= 0 and at least one agent")
    if not (handle_s > 0 and patience_s > 0 and short_s >= 0 and sl_s >= 0 and period_s > 0 and response_s > 0
            and reactive_per_hour >= 0):
        raise ValueError("progressive_plan needs handle, patience, period and response > 0, thresholds and the "
                         "reactive rate >= 0")
    # The horizon's parameters from the Python class the compiled plan mirrors (imported here:
    # horizon.py imports the kernels, which may be this module).
    from streams.engine.horizon import Horizon
    from streams.engine.queueing import QueueCosts

    costs = QueueCosts(agents, handle_s, patience_s, short_s, sl_s, 2 * agents + 60)
    table = position_costs(*costs.table)
    reactive = reactive_per_hour / 3600
    reserve = reactive_reserve(agents, reactive, handle_s, table_at(table, 0, 1), goal)
    horizon = Horizon(ready, busy, waiting, outstanding, p, handle_s, period_s, response_s, costs, exact)
    model = horizon.model(reactive)
    guess = (ready - reserve - waiting + busy * (1 - math.exp(-horizon.length_s / handle_s)) - outstanding * p
             - reactive * horizon.length_s) / p
    start = horizon.start
    offers, abandon, bad = progressive_search(model, start - reserve, start, p, goal, service_level, cap, guess)
    arriving = (offers + outstanding) * p + reactive * horizon.reactive_span_s
    return offers, abandon / arriving if arriving > 0 else 0.0, 1 - bad / arriving if arriving > 0 else 1.0
