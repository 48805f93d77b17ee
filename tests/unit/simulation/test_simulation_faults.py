"""The simulator's harder knobs do what they say: late, lost, duplicated and reset statistics,
steps in acceptance, traffic, handle time and logged-in agents, patience distributions, offer jitter."""

from __future__ import annotations

import dataclasses
import itertools
import statistics

import pytest

from streams.simulation import ConstantRatePolicy, EnginePolicy, Scenario, simulate
from streams.simulation.contact_centre import ContactCentre
from streams.simulation.policies import StatEvent
from streams.simulation.scenario import CounterReset, ReactiveBursts, SimulationResult, StatFaults, Step, pool

BASE = Scenario(agents=8, acceptance=0.3, reactive_per_hour=40, hours=0.5, warmup_s=300, seed=11)


class Recorder:
    """A constant offer rate that remembers every stat event it was handed, and when."""

    name = "recorder"

    def __init__(self, offers_per_hour: float = 400.0, seed: int = 11):
        self.inner = ConstantRatePolicy(offers_per_hour, seed)
        self.deliveries: list[tuple[float, StatEvent]] = []

    def plan(self, events: list[StatEvent], now_s: float, period_s: float) -> tuple[list[float], float]:
        self.deliveries.extend((now_s, event) for event in events)
        return self.inner.plan(events, now_s, period_s)

    def series(self, statistic: str) -> list[tuple[float, float]]:
        """(measured at, value) of one statistic in delivery order."""
        return [(measured, value) for _, (name, value, measured) in self.deliveries if name == statistic]


def record(scenario: Scenario, offers_per_hour: float = 400.0) -> Recorder:
    recorder = Recorder(offers_per_hour, scenario.seed)
    simulate(scenario, recorder)
    return recorder


def with_faults(**kwargs) -> Scenario:
    return dataclasses.replace(BASE, faults=StatFaults(**kwargs))


def test_perfect_statistics_arrive_at_once_exactly_once() -> None:
    recorder = record(BASE)
    assert all(now == measured for now, (_, _, measured) in recorder.deliveries)
    keys = [(name, measured) for _, (name, _, measured) in recorder.deliveries]
    assert len(keys) == len(set(keys))


@pytest.mark.parametrize("delay", [10.0, 30.0])
def test_a_delay_delivers_every_statistic_that_much_late(delay: float) -> None:
    recorder = record(with_faults(delay_s=delay))
    assert recorder.deliveries
    assert {now - measured for now, (_, _, measured) in recorder.deliveries} == {delay}


def test_a_delay_between_ticks_arrives_at_the_next_tick_and_jitter_spreads_it() -> None:
    late = record(with_faults(delay_s=15.0))
    assert {now - measured for now, (_, _, measured) in late.deliveries} == {20.0}
    jittered = record(with_faults(delay_s=5.0, delay_jitter_s=20.0))
    assert {now - measured for now, (_, _, measured) in jittered.deliveries} == {10.0, 20.0, 30.0}


def test_one_lagging_counter_is_late_while_the_others_are_on_time() -> None:
    recorder = record(with_faults(lagging=(("interactions_entered", 30.0),)))
    lags = {name: now - measured for now, (name, _, measured) in recorder.deliveries}
    assert lags["interactions_entered"] == 30.0
    assert lags["offers_accepted"] == 0.0 and lags["ready_agents"] == 0.0


def test_a_loss_rate_drops_about_that_share_of_events() -> None:
    sent = len(record(BASE).deliveries)
    kept = len(record(with_faults(loss=0.2)).deliveries)
    assert sent > 2000
    assert 1 - kept / sent == pytest.approx(0.2, abs=0.03)


def test_duplicated_events_are_exact_copies_arriving_again_later() -> None:
    recorder = record(with_faults(duplication=0.3))
    first_seen: dict[StatEvent, float] = {}
    copies = 0
    for now, event in recorder.deliveries:
        if event in first_seen:
            copies += 1
            assert now >= first_seen[event]
        else:
            first_seen[event] = now
    assert copies / len(first_seen) == pytest.approx(0.3, abs=0.04)


def test_a_counter_reset_restarts_only_the_named_counter_from_zero() -> None:
    at = 900.0
    recorder = record(with_faults(resets=(CounterReset(at, ("interactions_entered",)),)))
    entered = recorder.series("interactions_entered")
    before = [v for t, v in entered if t < at]
    after = [v for t, v in entered if t >= at]
    assert before[-1] > 20
    assert after[0] < before[-1] and after[0] <= 5  # restarted from 0: only the last period's entries
    assert after == sorted(after) and after[-1] > 10  # and counts on from there
    for name in ("offers_accepted", "offers_made", "interactions_answered"):
        values = [v for _, v in recorder.series(name)]
        assert values == sorted(values), f"{name} must not restart"


def test_an_acceptance_step_changes_the_share_of_accepted_offers() -> None:
    at = 1200.0
    scenario = dataclasses.replace(BASE, acceptance=0.1, hours=1.0, steps=(Step(at, "acceptance", 0.6),))
    recorder = record(scenario, offers_per_hour=600)
    made = dict(recorder.series("offers_made"))
    accepted = dict(recorder.series("offers_accepted"))
    step_tick = max(t for t in made if t <= at)
    early = accepted[step_tick] / made[step_tick]
    late_offers = made[max(made)] - made[step_tick + 60]
    late = (accepted[max(made)] - accepted[step_tick + 60]) / late_offers
    assert early == pytest.approx(0.1, abs=0.05)
    assert late == pytest.approx(0.6, abs=0.08)


def test_agents_logging_off_finish_their_interaction_then_leave() -> None:
    scenario = dataclasses.replace(BASE, agents=20, hours=1.0, steps=(Step(1200.0, "agents", 5),))
    recorder = record(scenario, offers_per_hour=1500)
    logged_in = recorder.series("logged_in_agents")
    busy = dict(recorder.series("busy_agents"))
    ready = recorder.series("ready_agents")
    assert max(v for t, v in logged_in if t < 1200) == 20
    assert max(v for t, v in ready if t >= 1200) <= 5
    assert all(v == max(5, busy[t]) for t, v in logged_in if t >= 1200)
    assert min(v for t, v in logged_in if t > 3000) == 5


def test_a_handle_time_shift_moves_the_reported_average_handle_time() -> None:
    scenario = dataclasses.replace(BASE, agents=30, hours=2.0, steps=(Step(2400.0, "handle_time_s", 120.0),))
    aht = record(scenario, offers_per_hour=3000).series("average_handle_time_s")
    before = [v for t, v in aht if 1200 <= t < 2400]
    after = [v for t, v in aht if t > 5000]
    assert statistics.mean(before) == pytest.approx(360, rel=0.25)
    assert statistics.mean(after) == pytest.approx(120, rel=0.25)


def test_a_reactive_surge_raises_the_arrivals_while_it_lasts() -> None:
    surge = (Step(1200.0, "reactive_per_hour", 400.0), Step(1800.0, "reactive_per_hour", 40.0))
    recorder = record(dataclasses.replace(BASE, hours=1.0, steps=surge), offers_per_hour=0)
    entered = dict(recorder.series("interactions_entered"))
    assert entered[1800.0] - entered[1200.0] > 3 * (entered[1200.0] - entered[600.0])
    assert entered[3000.0] - entered[2400.0] < (entered[1800.0] - entered[1200.0]) / 3


@pytest.mark.parametrize("distribution", ["exponential", "lognormal"])
def test_patience_has_the_scenario_mean_and_spread(distribution: str) -> None:
    scenario = dataclasses.replace(BASE, patience_s=45.0, patience_distribution=distribution, patience_cv=0.5)
    centre = ContactCentre(scenario, Recorder())
    draws = [centre.draw_patience() for _ in range(20_000)]
    cv = statistics.stdev(draws) / statistics.mean(draws)
    assert statistics.mean(draws) == pytest.approx(45.0, rel=0.03)
    assert cv == pytest.approx(1.0 if distribution == "exponential" else 0.5, rel=0.06)


def test_offer_jitter_moves_offers_within_their_period() -> None:
    even = ContactCentre(BASE, Recorder())
    assert even.offer_time(103.75, 100.0) == 103.75
    random_times = ContactCentre(dataclasses.replace(BASE, offer_jitter=1.0), Recorder())
    times = [random_times.offer_time(105.0, 100.0) for _ in range(5000)]
    assert 100.0 <= min(times) and max(times) < 110.0
    assert statistics.stdev(times) == pytest.approx(10 / 12 ** 0.5, rel=0.05)


def test_faulty_statistics_and_steps_reproduce_with_the_seed() -> None:
    scenario = dataclasses.replace(
        BASE, offer_jitter=0.5, patience_distribution="lognormal",
        steps=(Step(900.0, "acceptance", 0.5),),
        faults=StatFaults(delay_s=10, delay_jitter_s=5, loss=0.05, duplication=0.1,
                          resets=(CounterReset(1000.0, ("interactions_entered",)),)))
    first = simulate(scenario, EnginePolicy(scenario.settings))
    assert simulate(scenario, EnginePolicy(scenario.settings)) == first
    assert simulate(dataclasses.replace(scenario, seed=12), EnginePolicy(scenario.settings)) != first


@pytest.mark.parametrize("bad", [
    lambda: StatFaults(loss=1.0),
    lambda: StatFaults(delay_s=-1),
    lambda: StatFaults(lagging=(("no_such_stat", 5.0),)),
    lambda: CounterReset(10.0, ("ready_agents",)),
    lambda: Step(10.0, "patience_s", 30.0),
    lambda: Step(10.0, "acceptance", 1.5),
    lambda: dataclasses.replace(BASE, patience_distribution="weibull"),
    lambda: dataclasses.replace(BASE, agents=0),
])
def test_bad_knobs_are_refused_with_a_clear_error(bad) -> None:
    with pytest.raises(ValueError):
        bad()


def test_abandonment_is_reported_counting_every_abandon_and_as_genesys_does() -> None:
    result = SimulationResult(policy="x", offers=0, accepted=0, reactive=0, reactive_blocked=0, answered=90,
                              answered_in_sl=80, abandoned=4, short_abandoned=6, busy_agent_s=1.0, agent_s=2.0,
                              measured_s=3600.0)
    assert result.abandonment == pytest.approx(10 / 100)
    assert result.abandonment_genesys == pytest.approx(4 / 94)


def test_pooled_seeds_add_up_and_keep_every_batch() -> None:
    runs = [simulate(dataclasses.replace(BASE, seed=s), ConstantRatePolicy(300, s)) for s in (1, 2, 3)]
    pooled = pool(runs)
    assert pooled.runs == 3 and pooled.answered == sum(r.answered for r in runs)
    assert len(pooled.batch_entered) == 3 * len(runs[0].batch_entered)
    assert pooled.occupancy == pytest.approx(sum(r.busy_agent_s for r in runs) / sum(r.agent_s for r in runs))


# -- issue 20: bursts of reactive traffic, bimodal handle times, statistics in batched deliveries ----


def test_reactive_bursts_triple_the_rate_for_their_share_of_the_time() -> None:
    """Bursts of exactly 5 min every 15 min of quiet on average: a quarter of the time at 3x, so
    1.5x the reactive arrivals of the same scenario without bursts (common random numbers)."""
    steady = dataclasses.replace(BASE, agents=60, reactive_per_hour=120, hours=20.0)
    bursty = dataclasses.replace(steady, bursts=ReactiveBursts(factor=3.0, min_s=300, max_s=300, quiet_mean_s=900))
    plain = simulate(steady, ConstantRatePolicy(0, steady.seed))
    burst = simulate(bursty, ConstantRatePolicy(0, bursty.seed))
    assert plain.reactive == pytest.approx(120 * 20, rel=0.08)
    assert burst.reactive / plain.reactive == pytest.approx(1.5, rel=0.12)


def test_refused_reactive_visitors_are_lost_customers_counted_per_batch() -> None:
    class Refuser(ConstantRatePolicy):
        def plan(self, events: list[StatEvent], now_s: float, period_s: float) -> tuple[list[float], float]:
            return super().plan(events, now_s, period_s)[0], 0.5  # half the reactive visitors turned away

    run = simulate(dataclasses.replace(BASE, hours=4.0), Refuser(0, BASE.seed))
    assert run.abandonment == 0.0 and run.reactive_blocked > 40  # 8 agents, little traffic: nobody abandons
    assert run.blocked_share == pytest.approx(0.5, abs=0.08)
    assert run.lost == pytest.approx(run.reactive_blocked / (run.entered + run.reactive_blocked))
    assert sum(run.batch_refused) == run.reactive_blocked and run.lost_se > 0


def test_bimodal_handle_times_come_from_their_modes() -> None:
    scenario = dataclasses.replace(BASE, handle_time_s=360.0, handle_time_cv=0.3,
                                   handle_time_modes=((0.7, 150.0), (0.3, 850.0)))
    centre = ContactCentre(scenario, ConstantRatePolicy(0, 1))
    draws = [centre.draw_handle() for _ in range(20_000)]
    assert statistics.fmean(draws) == pytest.approx(360, rel=0.03)
    short = [d for d in draws if d < 400]
    assert len(short) / len(draws) == pytest.approx(0.7, abs=0.02)
    assert statistics.fmean(short) == pytest.approx(150, rel=0.05)
    with pytest.raises(ValueError):  # handle_time_s must be the modes' mean
        dataclasses.replace(scenario, handle_time_s=300.0)


def test_batched_statistics_arrive_together_late_and_out_of_order() -> None:
    recorder = record(dataclasses.replace(BASE, faults=StatFaults(delay_jitter_s=15.0, burst_s=30.0)))
    ticks = sorted({at for at, _ in recorder.deliveries})
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert min(gaps) >= 10.0 and statistics.fmean(gaps) > 25.0  # a delivery every ~30 s, not every tick
    measured = [m for m, _ in recorder.series("ready_agents")]
    assert any(b < a for a, b in itertools.pairwise(measured))  # out of order
    assert all(at >= m for at, (_, _, m) in recorder.deliveries)  # never before it was measured
