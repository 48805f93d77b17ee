"""The contact-centre simulator and the benchmark: reproducible, honest, driving the engine as a node does."""

from __future__ import annotations

import dataclasses

import pytest

from schemas import COUNTERS, GAUGES
from streams.engine import PacingSettings
from streams.simulation import ConstantRatePolicy, EnginePolicy, ReadyPolicy, Scenario, simulate
from streams.simulation.benchmark import (
    AUTO,
    CONSTANT,
    READY,
    best_constant_rate,
    format_table,
    keeps_goal,
    run_matrix,
)
from streams.simulation.command import main
from streams.simulation.policies import spread

SHORT = Scenario(agents=5, acceptance=0.4, reactive_per_hour=20, hours=2.0, warmup_s=600, seed=7)


def engine_run(scenario: Scenario, **kwargs) -> tuple:
    policy = EnginePolicy(scenario.settings, **kwargs)
    return simulate(scenario, policy), policy


def test_the_same_seed_gives_the_same_run_and_another_seed_another() -> None:
    first, _ = engine_run(SHORT)
    again, _ = engine_run(SHORT)
    other, _ = engine_run(dataclasses.replace(SHORT, seed=8))
    assert first == again
    assert other != first


def test_duplicated_and_late_stat_events_do_not_change_a_single_decision() -> None:
    plain, _ = engine_run(SHORT)
    replayed, _ = engine_run(SHORT, replay_stale=True)
    assert replayed == plain


def test_the_engine_sees_exactly_the_statistics_a_stat_server_bridge_sends() -> None:
    _, policy = engine_run(dataclasses.replace(SHORT, hours=0.2))
    assert set(policy.state.gauges) == set(GAUGES)
    assert set(policy.state.counters) == set(COUNTERS)


def test_the_engine_paces_a_small_group_well_within_a_short_run() -> None:
    result, policy = engine_run(SHORT)
    assert result.handled > 50
    assert result.abandonment < 0.08
    assert result.occupancy > 0.4
    assert set(policy.algorithms) <= {"SUPER_PROGRESSIVE", "SUPER_PROGRESSIVE_DUAL"}


def test_offers_are_spread_over_the_period() -> None:
    assert spread(4, 100.0, 10.0) == [101.25, 103.75, 106.25, 108.75]
    assert spread(0, 100.0, 10.0) == []


def test_without_offers_or_reactive_traffic_nothing_happens() -> None:
    idle = simulate(dataclasses.replace(SHORT, reactive_per_hour=0), ConstantRatePolicy(0, 7))
    assert (idle.handled, idle.offers, idle.occupancy) == (0, 0, 0.0)


def test_offering_whenever_an_agent_is_ready_keeps_agents_busy_and_customers_waiting() -> None:
    ready = simulate(SHORT, ReadyPolicy(SHORT.acceptance))
    paced, _ = engine_run(SHORT)
    assert ready.occupancy > paced.occupancy
    assert ready.abandonment > paced.abandonment


def test_the_best_constant_rate_keeps_the_goal() -> None:
    search = best_constant_rate(SHORT, steps=5)
    assert search.offers_per_hour is not None and search.offers_per_hour > 0
    assert keeps_goal(search.result, SHORT.settings.goal_fraction)


def test_the_benchmark_table_judges_the_configured_algorithm() -> None:
    scenario = Scenario(agents=3, acceptance=0.4, hours=1.0, warmup_s=600, seed=3)
    [results] = run_matrix([scenario], workers=1, seeds=1, all_algorithms=True)
    assert set(results.runs) == {AUTO, "SUPER_PROGRESSIVE", "PREDICTIVE_B", READY}
    table = format_table([results])
    assert "AUTO -> SUPER_PROGRESSIVE" in table and CONSTANT in table and "ready/p" in table
    assert str(results.verdict()) in table and "criterion met in" in table


@pytest.mark.parametrize("algorithm", ["AUTO", "PREDICTIVE_B_DUAL", "ready/p"])
def test_the_command_runs_one_scenario(algorithm: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--", "--agents", "4", "--acceptance", "0.3", "--reactive-load", "0.2", "--hours", "0.3",
                 "--warmup", "300", "--algorithm", algorithm]) == 0
    assert algorithm.split()[0] in capsys.readouterr().out


def test_busy_factor_pacing_holds_the_occupancy_near_its_goal() -> None:
    scenario = Scenario(agents=20, acceptance=0.3, hours=1.0, warmup_s=600, seed=5,
                        settings=PacingSettings(optimization_target="BUSY_FACTOR", optimization_goal=75))
    result, _ = engine_run(scenario)
    assert 0.65 < result.occupancy < 0.85
