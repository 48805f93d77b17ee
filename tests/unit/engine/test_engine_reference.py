"""The engine's fast paths against straightforward reference computations, on samples of inputs.

The fast paths (compiled position tables, Erlang A by Newton's method, horizon costs through
characteristic functions and an inverse FFT, a Newton search over offer counts) replaced
straightforward loops. The loops are kept here, as they were, as the meaning of the numbers:

- ``ref_position_costs``: one queue position at a time, exact Poisson sums up to 60 stages;
- ``ref_erlang_a_rate``: the birth-death weights in a Python loop, 30 bisection steps;
- ``RefHorizon``: explicit convolutions of truncated distributions, and for the exact mode the
  joint table of (accepts still to come, free agents) advanced slice by slice;
- ``ref_largest``: gallop from the guess, then bisect;
- ``composed_plan``: the progressive plan's steps with the documented Python classes
  (``Horizon``, ``reactive_reserve``) around the search kernel, as ``progressive._plan`` was
  before ``_kernels.progressive_plan`` took its whole body.

Tolerances: tables agree to ~1e-12 (rounding, and the reference's truncation of probabilities
below 1e-10..1e-13), horizon costs to ~1e-9 (the kernel's window ends 7 standard deviations out);
the rate to the reference bisection's own resolution (2·agents/handle·2^-30); the offers exactly;
the plan kernel's figures to 1e-9 of the composed plan's (the same arithmetic, but the horizon
kernel reuses a window size prepared by earlier calls, which moves the last digits).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import pytest

from streams.engine import _kernels
from streams.engine.horizon import Horizon, exact_for
from streams.engine.progressive import _plan, reactive_reserve
from streams.engine.queueing import erlang_a_rate, position_costs, steady_state
from tests.unit.engine.distributions import Pmf, binomial, point, poisson

# ---------------------------------------------------------------------------------------------
# Reference: position costs, one position at a time


def ref_gamma_tail(stages: int, x: float) -> float:
    if x <= 0:
        return 1.0
    if stages <= 60:
        term = math.exp(-x)
        total = term
        for i in range(1, stages):
            term *= x / i
            total += term
        return min(1.0, total)
    z = ((x / stages) ** (1 / 3) - (1 - 1 / (9 * stages))) / math.sqrt(1 / (9 * stages))
    return 0.5 * math.erfc(z / math.sqrt(2))


def ref_position_costs(agents: int, handle_s: float, patience_s: float, short_s: float, sl_s: float,
                       positions: int) -> tuple[list[float], list[float], list[float]]:
    service, gamma = agents / handle_s, 1.0 / patience_s
    abandon, late, lost = [0.0], [0.0], [0.0]
    mean_wait = 0.0
    keep_short = math.exp(-gamma * short_s)
    for j in range(positions):
        mean_wait += 1.0 / (service + j * gamma)
        stages = j + 1
        rate = stages / mean_wait
        served_share = (rate / (rate + gamma)) ** stages
        abandon_j = keep_short * ref_gamma_tail(stages, rate * short_s) \
            - served_share * ref_gamma_tail(stages, (rate + gamma) * short_s)
        late_j = served_share * ref_gamma_tail(stages, (rate + gamma) * sl_s)
        abandon.append(abandon[-1] + max(0.0, abandon_j))
        late.append(late[-1] + max(0.0, late_j))
        lost.append(lost[-1] + 1 - served_share)
    return abandon, late, lost


# ---------------------------------------------------------------------------------------------
# Reference: Erlang A steady state in a loop, capacity by bisection


def ref_steady_state(agents: int, rate: float, handle_s: float, patience_s: float,
                     table: tuple[list[float], list[float], list[float]]) -> tuple[float, float, float, float]:
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


def ref_erlang_a_rate(agents: int, handle_s: float, patience_s: float, short_s: float, sl_s: float,
                      goal: float, min_sl: float) -> tuple[float, float, float, float]:
    table = ref_position_costs(agents, handle_s, patience_s, short_s, sl_s, 2 * agents + 60)
    low, high = 0.0, 2.0 * agents / handle_s
    for _ in range(30):
        mid = (low + high) / 2
        s = ref_steady_state(agents, mid, handle_s, patience_s, table)
        if s[2] <= goal and s[3] >= min_sl:
            low = mid
        else:
            high = mid
    return ref_steady_state(agents, low, handle_s, patience_s, table)


# ---------------------------------------------------------------------------------------------
# Reference: the horizon by explicit convolutions (and the joint table for the exact mode)

_SLICES, _TINY = 3, 1e-10


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


class RefJoint:
    """(accepts still to come, free agents minus queue), dense rows per count to come."""

    def __init__(self, free: int, to_come: Pmf):
        self.offset = free
        self.rows = {to_come.offset + k: [p] for k, p in enumerate(to_come.probs) if p > _TINY}

    def add_free(self, finishing: Pmf) -> None:
        if len(finishing.probs) > 1:
            self.rows = {k: _convolve(row, finishing.probs) for k, row in self.rows.items()}
        self.offset += finishing.offset

    def arrive(self, share: float, reactive: Pmf) -> None:
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
        total = [0.0] * max(len(row) for row in self.rows.values())
        for row in self.rows.values():
            for i, v in enumerate(row):
                total[i] += v
        return Pmf(self.offset, tuple(total))


class RefHorizon:
    """The horizon of horizon.py, computed with truncated distributions one convolution at a time."""

    def __init__(self, fast: Horizon, costs_table: tuple[list[float], list[float], list[float]]):
        self.f = fast
        self.table = costs_table
        self.finishing = [binomial(fast.busy, q) for q in fast.finish_share]
        self.tail_finishing = binomial(fast.agents, fast.tail_finish)

    def _at(self, length: int) -> tuple[float, float]:
        abandon, late, _ = self.table
        last = len(abandon) - 1
        if length <= last:
            return abandon[length], late[length]
        extra = length - last
        return (abandon[last] + extra * (abandon[last] - abandon[last - 1]),
                late[last] + extra * (late[last] - late[last - 1]))

    def _queue_cost(self, free: Pmf) -> tuple[float, float]:
        abandon = bad = 0.0
        for i, prob in enumerate(free.probs):
            queue = -(free.offset + i)
            if queue > 0:
                a, late = self._at(queue)
                abandon += prob * a
                bad += prob * (a + late)
        return abandon, bad

    def costs(self, offers: int, reactive_rate: float) -> tuple[float, float]:
        f = self.f
        new_mean, pending_mean = offers * f.p, f.outstanding * f.p
        accepts_mean = new_mean + pending_mean
        reactive_slice = poisson(reactive_rate * f.slice_s)
        if f.exact:
            joint = RefJoint(f.start, binomial(offers, f.p).plus(binomial(f.outstanding, f.p)))
        free = point(f.start)
        abandon = bad = arrived_share = 0.0
        for s in range(_SLICES):
            share = (new_mean * f.new_share[s] + f.outstanding * f.p * f.pending_share[s]) / accepts_mean \
                if accepts_mean > 0 else 0.0
            if f.exact:
                conditional = 1.0 if s == _SLICES - 1 else min(1.0, share / max(1e-12, 1 - arrived_share))
                arrived_share += share
                joint.add_free(self.finishing[s])
                free_before = joint.free()
                joint.arrive(conditional, reactive_slice)
                free = joint.free()
            else:
                free_before = free.plus(self.finishing[s])
                arrivals = binomial(offers, f.p * f.new_share[s]).plus(
                    binomial(f.outstanding, f.p * f.pending_share[s])).plus(reactive_slice)
                free = free_before.plus(arrivals.negated())
            before, after = self._queue_cost(free_before), self._queue_cost(free)
            abandon += after[0] - before[0]
            bad += after[1] - before[1]
        if reactive_rate > 0:
            free = free.plus(self.tail_finishing)
            before = self._queue_cost(free)
            after = self._queue_cost(free.plus(poisson(reactive_rate * f.tail_s).negated()))
            abandon += after[0] - before[0]
            bad += after[1] - before[1]
        return abandon, bad


def ref_largest(keeps_goal: Callable[[int], bool], cap: int, guess: float) -> int:
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


def ref_reserve(agents: int, reactive_rate: float, handle_s: float, queued_abandon: float, goal: float) -> int:
    if reactive_rate <= 0 or queued_abandon <= goal:
        return 0
    weights = [1.0]
    for k in range(1, agents + 1):
        weights.append(weights[-1] * (agents - k + 1) / handle_s / reactive_rate)
        if queued_abandon / sum(weights) <= goal:
            return k
    return agents


def ref_offers(ready: int, busy: int, waiting: int, outstanding: int, p: float, handle_s: float, patience_s: float,
               reactive_per_hour: float, goal: float, service_level: float | None, cap: int, exact: bool) -> int:
    """The progressive plan's offers, every step the straightforward way (defaults: period 10 s,
    response 5 s, short 10 s, service level in 20 s)."""
    agents = ready + busy
    table = ref_position_costs(agents, handle_s, patience_s, 10.0, 20.0, 2 * agents + 60)
    fast_costs = position_costs(agents, handle_s, patience_s, 10.0, 20.0, 2 * agents + 60)
    reactive = reactive_per_hour / 3600
    reserve = ref_reserve(agents, reactive, handle_s, table[0][1], goal)
    planning = RefHorizon(Horizon(ready - reserve, busy, waiting, outstanding, p, handle_s, 10.0, 5.0, fast_costs,
                                  exact), table)
    base = planning.costs(0, reactive)

    def keeps_goal(n: int) -> bool:
        abandon, bad = planning.costs(n, reactive)
        if abandon - base[0] > goal * n * p + 1e-12:
            return False
        return service_level is None or bad - base[1] <= (1 - service_level) * n * p + 1e-12

    length = 15.0
    guess = (ready - reserve - waiting + busy * (1 - math.exp(-length / handle_s)) - outstanding * p
             - reactive * length) / p
    return ref_largest(keeps_goal, cap, guess)


# ---------------------------------------------------------------------------------------------
# The comparisons


def _log_uniform(rnd: random.Random, low: float, high: float) -> float:
    return math.exp(rnd.uniform(math.log(low), math.log(high)))


def test_position_tables_match_the_loop() -> None:
    rnd = random.Random(11)
    for _ in range(40):
        agents = int(_log_uniform(rnd, 1, 400))
        args = (agents, _log_uniform(rnd, 30, 1200), _log_uniform(rnd, 10, 400), rnd.choice([0.0, 5.0, 10.0, 20.0]),
                rnd.choice([10.0, 20.0, 60.0]), 2 * agents + 60)
        fast = position_costs.__wrapped__(*args)
        for fast_column, ref_column in zip((fast.abandon, fast.late, fast.lost), ref_position_costs(*args),
                                           strict=True):
            assert max(abs(a - b) for a, b in zip(fast_column, ref_column, strict=True)) < 1e-9


def test_erlang_a_capacity_matches_the_bisection() -> None:
    rnd = random.Random(12)
    for _ in range(30):
        agents = int(_log_uniform(rnd, 1, 300))
        args = (agents, float(round(_log_uniform(rnd, 30, 1200))), float(round(_log_uniform(rnd, 10, 400))), 10.0,
                20.0, rnd.choice([0.01, 0.03, 0.05, 0.2]), rnd.choice([0.0, 0.5, 0.8, 0.9]))
        fast = erlang_a_rate.__wrapped__(*args)
        rate, in_system, abandonment, level = ref_erlang_a_rate(*args)
        resolution = 2 * agents / args[1] * 2 ** -30
        assert fast.arrival_rate == pytest.approx(rate, abs=2 * resolution, rel=1e-9)
        assert fast.in_system == pytest.approx(in_system, rel=1e-5, abs=1e-7)
        assert fast.abandonment == pytest.approx(abandonment, rel=1e-4, abs=1e-9)
        assert fast.service_level == pytest.approx(level, rel=1e-6)


def test_steady_state_matches_the_loop() -> None:
    for agents, rate in ((1, 0.001), (5, 0.01), (15, 0.05), (60, 0.3)):
        table = ref_position_costs(agents, 300.0, 60.0, 10.0, 20.0, 2 * agents + 60)
        fast = steady_state(agents, rate, 300.0, 60.0, position_costs(agents, 300.0, 60.0, 10.0, 20.0, 2 * agents + 60))
        ref = ref_steady_state(agents, rate, 300.0, 60.0, table)
        assert (fast.in_system, fast.abandonment, fast.service_level) == pytest.approx(ref[1:], rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("exact", [True, False])
def test_horizon_costs_match_the_convolutions(exact: bool) -> None:
    rnd = random.Random(13 + exact)
    for _ in range(25):
        agents = int(_log_uniform(rnd, 1, 15 if exact else 80))
        busy = rnd.randint(0, agents)
        ready = agents - busy
        p = rnd.uniform(0.2, 0.9) if exact else rnd.uniform(0.03, 0.7)
        handle, patience = _log_uniform(rnd, 40, 900), _log_uniform(rnd, 15, 300)
        table = ref_position_costs(agents, handle, patience, 10.0, 20.0, 2 * agents + 60)
        costs = position_costs(agents, handle, patience, 10.0, 20.0, 2 * agents + 60)
        fast = Horizon(ready - rnd.randint(0, 1), busy, rnd.choice([0, 0, 1, 3]), rnd.randint(0, 2 * agents + 2), p,
                       handle, 10.0, 5.0, costs, exact)
        ref = RefHorizon(fast, table)
        reactive = rnd.choice([0.0, 0.0, _log_uniform(rnd, 0.001, 0.2)])
        for offers in sorted({0, 1, rnd.randint(0, 3 * agents + 3), rnd.randint(0, int(agents / p) + 1)}):
            got, want = fast.costs(offers, reactive), ref.costs(offers, reactive)
            assert got == pytest.approx(want, rel=1e-7, abs=1e-9), (agents, busy, p, offers, reactive)


def test_progressive_offers_match_the_reference_search() -> None:
    """Same offers as the straightforward search over straightforward costs, inputs as
    ``progressive_plan`` passes them (already on its 5 % grid)."""
    rnd = random.Random(14)
    compared = 0
    while compared < 40:
        agents = int(_log_uniform(rnd, 1, 40))
        busy = rnd.randint(0, agents)
        ready = agents - busy
        waiting = rnd.choice([0, 0, 0, 1, 2])
        if waiting >= agents:
            continue
        p = round(rnd.uniform(0.05, 0.7), 3)
        handle, patience = float(round(_log_uniform(rnd, 60, 900))), float(round(_log_uniform(rnd, 20, 300)))
        reactive = rnd.choice([0.0, 0.0, float(round(_log_uniform(rnd, 2, 0.3 * agents * 3600 / handle)))])
        goal = rnd.choice([0.01, 0.03, 0.05])
        level = rnd.choice([None, 0.8])
        cap = min(10 * agents, math.floor(agents / p + 1e-9))
        outstanding = rnd.randint(0, max(1, round(ready / p)))
        exact = exact_for(agents, p)
        fast = _plan.__wrapped__(ready, busy, waiting, outstanding, p, handle, patience, reactive, 10.0, 5.0, 10.0,
                                 20.0, goal, level, cap, exact)
        want = ref_offers(ready, busy, waiting, outstanding, p, handle, patience, reactive, goal, level, cap, exact)
        assert fast.offers == want, (ready, busy, waiting, outstanding, p, handle, patience, reactive, goal, level)
        compared += 1


@pytest.mark.parametrize("exact", [True, False])
def test_horizon_costs_do_not_depend_on_how_counts_are_batched(exact: bool) -> None:
    """One kernel call for several counts (in any order, repeated) gives each count the costs of a
    call for it alone, and a search's costs at the actual start are those of a call for its
    offers: the calls of one search share a cost window and the offers' powers between them.
    (To 1e-9: a call's window holds all its counts, and what lies beyond 7 standard deviations of
    a row, ~1e-12 of it, wraps around it.)"""
    rnd = random.Random(15 + exact)
    for _ in range(25):
        agents = int(_log_uniform(rnd, 1, 15 if exact else 300))
        busy = rnd.randint(0, agents)
        p = rnd.uniform(0.2, 0.9) if exact else rnd.uniform(0.03, 0.7)
        handle, patience = _log_uniform(rnd, 40, 900), _log_uniform(rnd, 15, 300)
        costs = position_costs(agents, handle, patience, 10.0, 20.0, 2 * agents + 60)
        horizon = Horizon(agents - busy, busy, rnd.choice([0, 1]), rnd.randint(0, 2 * agents + 2), p, handle, 10.0,
                          5.0, costs, exact)
        model = horizon.model(rnd.choice([0.0, _log_uniform(rnd, 0.001, 0.2)]))
        counts = [rnd.randint(0, 3 * agents + 3) for _ in range(6)]
        batch = [*counts, 0, counts[0], max(counts) + 1]
        together = _kernels.horizon_costs(batch, horizon.start, model)
        for n, got in zip(batch, together, strict=True):
            alone = _kernels.horizon_costs([n], horizon.start, model)[0]
            assert got == pytest.approx(alone, rel=1e-7, abs=1e-9), (agents, busy, p, n)
        reserve = rnd.randint(0, 2)
        offers, abandon, bad = _kernels.progressive_search(model, horizon.start - reserve, horizon.start, p, 0.03, 0.8,
                                                           3 * agents + 3, agents / p)
        alone = _kernels.horizon_costs([offers], horizon.start, model)[0]
        assert (abandon, bad) == pytest.approx(alone, rel=1e-7, abs=1e-9), (agents, busy, p, offers, reserve)


def composed_plan(ready: int, busy: int, waiting: int, outstanding: int, p: float, handle_s: float,
                  patience_s: float, reactive_per_hour: float, period_s: float, response_s: float, short_s: float,
                  sl_s: float, goal: float, service_level: float | None, cap: int,
                  exact: bool) -> tuple[int, float, float]:
    """The progressive plan from the Python classes and the search kernel: position costs, the
    reactive reserve, the horizon, the lines-per-agent guess, the search, the figures."""
    agents = ready + busy
    costs = position_costs(agents, handle_s, patience_s, short_s, sl_s, 2 * agents + 60)
    reactive = reactive_per_hour / 3600
    reserve = reactive_reserve(agents, reactive, handle_s, costs.at(1)[0], goal) if reactive > 0 else 0
    actual = Horizon(ready, busy, waiting, outstanding, p, handle_s, period_s, response_s, costs, exact)
    guess = (ready - reserve - waiting + busy * (1 - math.exp(-actual.length_s / handle_s))
             - outstanding * p - reactive * actual.length_s) / p
    offers, abandon, bad = _kernels.progressive_search(
        actual.model(reactive), actual.start - reserve, actual.start, p, goal,
        -1.0 if service_level is None else service_level, cap, guess)
    arriving = (offers + outstanding) * p + reactive * actual.reactive_span_s
    return (offers, abandon / arriving if arriving > 0 else 0.0, 1 - bad / arriving if arriving > 0 else 1.0)


def test_plan_kernel_matches_the_composed_plan() -> None:
    """``_kernels.progressive_plan`` (``_plan``'s one call) gives the offers and figures of the
    documented steps, on situations from one agent to a few hundred, with and without reactive
    traffic (and so a reserve), a queue, pending offers, the service level, and several settings."""
    rnd = random.Random(17)
    reserved = 0
    for _ in range(300):
        agents = int(_log_uniform(rnd, 1, 300))
        busy = rnd.randint(0, agents)
        ready = agents - busy
        p = round(_log_uniform(rnd, 0.02, 1.0), 4)
        handle, patience = round(_log_uniform(rnd, 20, 2000), 3), round(_log_uniform(rnd, 5, 600), 3)
        reactive = rnd.choice([0.0, 0.0, _log_uniform(rnd, 1, 1.2 * agents * 3600 / handle)])
        goal = rnd.choice([0.01, 0.03, 0.05])
        args = (ready, busy, rnd.choice([0, 0, 1, 3, 12]), rnd.randint(0, 2 * agents + 2), p, handle, patience,
                reactive, rnd.choice([5.0, 10.0, 30.0]), rnd.choice([2.0, 5.0, 20.0]), rnd.choice([0.0, 10.0]),
                rnd.choice([10.0, 20.0]), goal)
        level = rnd.choice([None, 0.5, 0.8])
        cap = rnd.choice([0, 3, min(10 * agents, math.floor(agents / p + 1e-9))])
        exact = exact_for(agents, p)
        want = composed_plan(*args, level, cap, exact)
        got = _plan.__wrapped__(*args, level, cap, exact)
        assert got.offers == want[0], (args, level, cap)
        assert (got.predicted_abandonment, got.predicted_service_level) == pytest.approx(want[1:], rel=1e-9,
                                                                                          abs=1e-12)
        if reactive > 0:
            first = position_costs(agents, handle, patience, args[10], args[11], 2 * agents + 60).at(1)[0]
            reserved += reactive_reserve(agents, reactive / 3600, handle, first, goal) > 0
    assert reserved > 20, reserved  # the reserve was exercised


def test_plan_kernel_refuses_a_group_without_agents() -> None:
    with pytest.raises(ValueError, match="at least one agent"):
        _kernels.progressive_plan(0, 0, 0, 0, 0.3, 300.0, 60.0, 0.0, 10.0, 5.0, 10.0, 20.0, 0.03, -1.0, 0, False)
    with pytest.raises(ValueError, match="handle"):
        _kernels.progressive_plan(2, 0, 0, 0, 0.3, 0.0, 60.0, 0.0, 10.0, 5.0, 10.0, 20.0, 0.03, -1.0, 4, False)
