"""The compiled kernels against the Python reference (streams.engine.reference), on samples of inputs.

The compiled fast paths (position tables, Erlang A by Newton's method, horizon costs through
characteristic functions and an FFT, a batched search over offer counts) replaced straightforward
loops. The loops are the reference kernels, in the product since the engine falls back on them
where the compiled ones cannot be built (streams.engine.kernels), and the meaning of the numbers:

- ``position_costs``: one queue position at a time, exact Poisson sums up to 60 stages;
- ``erlang_a_rate``: the birth-death weights in a Python loop, 30 bisection steps;
- ``HorizonModel``: explicit convolutions of truncated distributions, and for the exact mode the
  joint table of (accepts still to come, free agents) advanced slice by slice;
- ``largest``: gallop from the guess, then bisect; ``progressive_plan``: the plan's steps with them;
- ``composed_plan`` (here): the progressive plan's steps with the documented Python classes
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

import pytest

from streams.engine import _kernels, reference
from streams.engine.horizon import Horizon, exact_for
from streams.engine.progressive import _plan, reactive_reserve
from streams.engine.queueing import erlang_a_rate, position_costs, steady_state

ref_position_costs = reference.position_costs
ref_steady_state = reference.steady_from
ref_erlang_a_rate = reference.erlang_a_rate
ref_reserve = reference.reactive_reserve


def ref_offers(ready: int, busy: int, waiting: int, outstanding: int, p: float, handle_s: float, patience_s: float,
               reactive_per_hour: float, goal: float, service_level: float | None, cap: int, exact: bool) -> int:
    """The progressive plan's offers from the reference kernels (period 10 s, response 5 s, short
    10 s, service level in 20 s)."""
    return reference.progressive_plan(ready, busy, waiting, outstanding, p, handle_s, patience_s, reactive_per_hour,
                                      10.0, 5.0, 10.0, 20.0, goal, -1.0 if service_level is None else service_level,
                                      cap, exact)[0]


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
        reactive = rnd.choice([0.0, 0.0, _log_uniform(rnd, 0.001, 0.2)])
        ref = reference.HorizonModel(fast.start, fast.model(reactive))
        assert ref.table == table
        for offers in sorted({0, 1, rnd.randint(0, 3 * agents + 3), rnd.randint(0, int(agents / p) + 1)}):
            got, want = fast.costs(offers, reactive), ref.costs(offers)
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
