"""The maths under the algorithms: distributions, queue-position costs, Erlang A."""

from __future__ import annotations

import itertools
import math

import pytest

from streams.engine.distributions import binomial, point, poisson
from streams.engine.queueing import erlang_a_rate, position_costs, steady_state


@pytest.mark.parametrize("pmf", [binomial(40, 0.1), binomial(3, 0.5), poisson(2.5), poisson(0.01), point(4)])
def test_distributions_are_proper(pmf) -> None:
    assert sum(pmf.probs) == pytest.approx(1, abs=1e-9)


def test_binomial_and_poisson_have_their_means_and_sums_convolve() -> None:
    def mean(pmf):
        return sum((pmf.offset + i) * p for i, p in enumerate(pmf.probs))

    assert mean(binomial(40, 0.1)) == pytest.approx(4)
    assert mean(poisson(2.5)) == pytest.approx(2.5)
    assert mean(binomial(10, 0.3).plus(poisson(1.0).negated()).shifted(2)) == pytest.approx(3 + 2 - 1)
    assert binomial(5, 1.0) == point(5) and binomial(5, 0.0) == point(0)


def test_position_zero_costs_match_the_exponential_closed_form() -> None:
    agents, handle, patience, short, sl = 5, 300.0, 60.0, 10.0, 20.0
    costs = position_costs(agents, handle, patience, short, sl, 10)
    nu, gamma = agents / handle, 1 / patience
    assert costs.abandon[1] == pytest.approx(gamma / (nu + gamma) * math.exp(-(nu + gamma) * short))
    assert costs.late[1] == pytest.approx(nu / (nu + gamma) * math.exp(-(nu + gamma) * sl))
    assert costs.lost[1] == pytest.approx(gamma / (nu + gamma))


def test_later_queue_positions_cost_more() -> None:
    costs = position_costs(15, 300.0, 60.0, 10.0, 20.0, 40)
    per_position = [b - a for a, b in itertools.pairwise(costs.abandon)]
    assert all(b >= a for a, b in itertools.pairwise(per_position))
    assert costs.at(60)[0] > costs.abandon[-1]  # extrapolated beyond the table


def test_erlang_a_gets_worse_with_load() -> None:
    costs = position_costs(15, 300.0, 60.0, 10.0, 20.0, 90)
    light, heavy = (steady_state(15, rate, 300.0, 60.0, costs) for rate in (0.02, 0.05))
    assert light.abandonment < heavy.abandonment and light.service_level > heavy.service_level
    assert light.in_system < heavy.in_system


def test_erlang_a_capacity_keeps_the_goal_and_grows_with_goal_and_agents() -> None:
    def rate(agents: int, goal: float) -> float:
        return erlang_a_rate(agents, 300.0, 60.0, 10.0, 20.0, goal, 0.0).arrival_rate

    at_goal = erlang_a_rate(50, 300.0, 60.0, 10.0, 20.0, 0.03, 0.0)
    assert at_goal.abandonment == pytest.approx(0.03, abs=1e-4)
    assert rate(50, 0.03) < rate(50, 0.05) and rate(50, 0.03) < rate(51, 0.03)
    # economies of scale: small groups need slack, big ones can be loaded past their capacity
    assert rate(2, 0.03) * 300 / 2 < 0.3 and rate(200, 0.03) * 300 / 200 > 1.0
