"""Rolling rates and priors: what the algorithms see of a target."""

from __future__ import annotations

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
    assert observe(state, SETTINGS, T0 + 300_000).patience_s == pytest.approx((900 + 5 * 60) / 15)


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
