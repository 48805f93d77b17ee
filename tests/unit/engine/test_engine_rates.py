"""Rolling rates and priors: what the algorithms see of a target."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from streams.engine import PacingSettings, TargetState, observe
from streams.engine.rates import LIFETIME_OFFERS

T0 = 1_700_000_000_000
SETTINGS = PacingSettings(acceptance_prior=0.3, handle_time_prior_s=300, patience_prior_s=60, rate_window_s=900)


def fold(samples: list[tuple[int, dict[str, float]]]) -> TargetState:
    state = TargetState("vq")
    for ts, stats in samples:
        for name, value in stats.items():
            state.apply(name, value, ts)
    return state


def test_a_target_without_statistics_is_seen_through_the_priors() -> None:
    obs = observe(TargetState("vq"), SETTINGS, T0)
    assert (obs.acceptance, obs.handle_time_s, obs.patience_s, obs.reactive_rate) == (0.3, 300, 60, 0)
    assert obs.abandonment is None and obs.service_level is None
    assert obs.agents == 0 and obs.logged_in == 0


def test_a_single_counter_sample_gives_the_lifetime_acceptance() -> None:
    state = fold([(T0, {"offers_made": 100, "offers_accepted": 25})])
    assert observe(state, SETTINGS, T0).acceptance == 0.25


def test_few_lifetime_offers_are_topped_up_with_the_prior() -> None:
    state = fold([(T0, {"offers_made": 10, "offers_accepted": 10})])
    assert observe(state, SETTINGS, T0).acceptance == pytest.approx((10 + 0.3 * 10) / 20)


def test_acceptance_is_the_remembered_ratio_topped_up_with_the_lifetime_one() -> None:
    state = fold([(T0, {"offers_made": 1000, "offers_accepted": 100}),
                  (T0 + 600_000, {"offers_made": 1300, "offers_accepted": 220})])
    # remembered: 120 of 300 (one increment, not yet decayed); lifetime 220/1300 as LIFETIME_OFFERS offers
    expected = (120 + LIFETIME_OFFERS * 220 / 1300) / (300 + LIFETIME_OFFERS)
    assert observe(state, SETTINGS, T0 + 600_000).acceptance == pytest.approx(expected)


def test_reactive_rate_is_entered_minus_accepted_per_observed_second() -> None:
    state = fold([(T0, {"interactions_entered": 0, "offers_accepted": 0}),
                  (T0 + 600_000, {"interactions_entered": 30, "offers_accepted": 10})])
    obs = observe(state, SETTINGS, T0 + 600_000)
    assert obs.reactive_rate == pytest.approx(20 / 600)
    assert obs.reactive_seen == 20 and obs.observed_s == pytest.approx(600)


def test_rates_look_only_at_the_window_and_fade_when_the_target_goes_quiet() -> None:
    state = fold([(T0, {"interactions_entered": 0}), (T0 + 60_000, {"interactions_entered": 60})])
    assert observe(state, SETTINGS, T0 + 60_000).reactive_rate == pytest.approx(1.0)
    assert observe(state, SETTINGS, T0 + 3_600_000).reactive_rate == 0


def test_patience_is_time_waited_per_abandon_shrunk_to_the_prior() -> None:
    state = fold([(T0, {"interactions_abandoned": 0, "waiting_interactions": 3}),
                  (T0 + 300_000, {"interactions_abandoned": 10, "waiting_interactions": 0})])
    # 900 interaction-seconds waited, 10 abandons, one pseudo-abandon at the 60 s prior (the hour-long
    # memory has decayed both alike by under 3 %, which leaves their ratio all but unchanged)
    assert observe(state, SETTINGS, T0 + 300_000).patience_s == pytest.approx((900 + 60) / 11, rel=1e-3)


def poisson_counts(rng: random.Random, rate_at: Callable[[float], float], seconds: int,
                   period_s: int = 10) -> list[tuple[int, dict[str, float]]]:
    """Counter samples every ``period_s`` of reactive arrivals at ``rate_at(t)`` per second (seeded
    Poisson), with the waiting and ready gauges of a quiet group, as a bridge sends them."""
    entered, samples = 0, []
    for t in range(0, seconds + 1, period_s):
        if t:
            mean = rate_at(t) * period_s
            # Poisson by counting unit-rate exponential gaps (no numpy in the engine's tests)
            gap, arrivals = rng.expovariate(1.0), 0
            while gap < mean:
                arrivals += 1
                gap += rng.expovariate(1.0)
            entered += arrivals
        samples.append((T0 + t * 1000, {"interactions_entered": entered, "offers_accepted": 0}))
    return samples


def test_a_3x_reactive_burst_is_seen_within_about_a_minute_at_100_agents() -> None:
    """Issue 20: the window's rate followed a 3x burst by at most 1.33x, and only once it was over.
    40 % of 100 agents' capacity at 360 s handle time; the burst starts after an hour."""
    base = 0.4 * 100 / 360
    seen = []
    for seed in range(6):
        samples = poisson_counts(random.Random(seed), lambda t: base * (3 if t > 3600 else 1), 3600 + 90)
        state = fold(samples)
        seen.append(observe(state, SETTINGS, T0 + (3600 + 90) * 1000).reactive_rate / base)
    assert min(seen) > 2.0, seen  # within 90 s of its start, in every seed


def test_steady_reactive_traffic_keeps_a_steady_estimate() -> None:
    """The one-minute memory must not make steady periods noisy: over four steady hours the estimate
    stays within 40 % of the truth nearly always (the window alone: +-15-20 % at 100 agents)."""
    base = 0.4 * 100 / 360
    state = TargetState("vq")
    off = 0
    decisions = 0
    for ts, stats in poisson_counts(random.Random(7), lambda t: base, 4 * 3600):
        for name, value in stats.items():
            state.apply(name, value, ts)
        if ts >= T0 + 900_000:
            decisions += 1
            off += abs(observe(state, SETTINGS, ts).reactive_rate / base - 1) > 0.4
    assert off / decisions < 0.02, off / decisions


def test_a_counter_sampled_rarely_does_not_look_like_a_burst() -> None:
    state = fold([(T0, {"interactions_entered": 0, "offers_accepted": 0}),
                  (T0 + 600_000, {"interactions_entered": 60, "offers_accepted": 0})])
    assert observe(state, SETTINGS, T0 + 600_000).reactive_rate == pytest.approx(60 / 600)


def test_a_short_true_patience_outweighs_the_prior_in_a_small_group() -> None:
    """Issue 20: a 15-agent group at the goal sees 1-3 abandons per 900 s window; with patience 20 s
    the estimate stayed at 42-57 s (5 pseudo-abandons at the 60 s prior). Here: an hour of 8
    abandons of a 20 s patience, the waiting they did (20 s each) spread over the hour."""
    samples = []
    for minute in range(61):
        abandons = minute * 8 // 60
        waiting = 1.0 if minute % 15 == 7 else 0.0  # one waits a minute every quarter hour ...
        samples.append((T0 + minute * 60_000, {"interactions_abandoned": abandons, "waiting_interactions": waiting}))
    state = fold(samples)
    waited_s = 60.0 * sum(1 for minute in range(60) if minute % 15 == 7)  # ... 240 s in all, 8 abandons: 30 s
    obs = observe(state, SETTINGS, T0 + 3_600_000)
    assert obs.patience_s < 40.0  # 60 s with the old prior and window; the data say 30 s
    assert obs.patience_s > waited_s / 8 * 0.8


def test_observed_abandonment_counts_every_abandon_and_also_reports_the_genesys_figure() -> None:
    state = fold([(T0, {"interactions_answered": 0, "interactions_abandoned": 0, "short_abandoned": 0,
                        "answered_within_sl": 0}),
                  (T0 + 60_000, {"interactions_answered": 90, "interactions_abandoned": 12, "short_abandoned": 2,
                                 "answered_within_sl": 72})])
    obs = observe(state, SETTINGS, T0 + 60_000)
    assert obs.abandonment == pytest.approx(12 / 102)  # every abandon, short ones too
    assert obs.abandonment_excluding_short == pytest.approx(10 / 100)  # as Genesys counts it
    assert obs.service_level == pytest.approx(72 / 100)  # the Genesys SL: short abandons excluded


def test_gauges_are_whole_non_negative_counts_and_logged_in_covers_ready_and_busy() -> None:
    state = fold([(T0, {"ready_agents": 2.4, "busy_agents": 3, "logged_in_agents": 1, "waiting_interactions": 0,
                        "average_handle_time_s": 0})])
    obs = observe(state, SETTINGS, T0)
    assert (obs.ready, obs.busy, obs.logged_in, obs.agents) == (2, 3, 5, 5)
    assert obs.handle_time_s == 300  # a zero AHT is no information


def _acceptance_after_a_step(before: float, after: float, seed: int, step_s: int = 3600,
                             after_s: int = 60) -> tuple[float, list[float]]:
    """A group making ~5 offers a second (both counters every 10 s) whose acceptance steps from
    ``before`` to ``after``: the estimate ``after_s`` later, and its readings over the steady
    half hour before the step."""
    rnd = random.Random(seed)
    state = TargetState("vq")
    made = accepted = 0.0
    state.apply("offers_made", 0.0, T0)
    state.apply("offers_accepted", 0.0, T0)
    steady = []
    for k in range(1, (step_s + after_s) // 10 + 1):
        at = T0 + k * 10_000
        p = before if k * 10 <= step_s else after
        offers = sum(rnd.random() < 0.5 for _ in range(100))  # ~50 offers in 10 s
        made += offers
        accepted += sum(rnd.random() < p for _ in range(offers))
        state.apply("offers_made", made, at)
        state.apply("offers_accepted", accepted, at)
        if step_s - 1800 <= k * 10 <= step_s:
            steady.append(observe(state, SETTINGS, at).acceptance)
    return observe(state, SETTINGS, T0 + (step_s + after_s) * 1000).acceptance, steady


@pytest.mark.parametrize(("before", "after"), [(0.1, 0.3), (0.3, 0.1)])
def test_acceptance_follows_a_threefold_change_within_a_minute_and_stays_quiet_when_steady(
        before: float, after: float) -> None:
    """Issue 20: the offer-response estimate follows a 3x change within about a minute where offers
    are many (the 2-minute memory had moved 0.1 -> 0.3 only to 0.16 a minute later, 0.3 -> 0.1 to
    0.24), without making steady periods noisy."""
    readings, errors = [], []
    for seed in range(6):
        reading, steady = _acceptance_after_a_step(before, after, seed)
        readings.append(reading)
        errors += [abs(estimate / before - 1) for estimate in steady]
    readings.sort()
    errors.sort()
    median = (readings[2] + readings[3]) / 2
    if after > before:
        assert median >= 0.2, readings
    else:
        assert median <= 0.18, readings
    assert errors[int(0.95 * len(errors))] <= 0.08  # 95 % of the steady readings within 8 %
