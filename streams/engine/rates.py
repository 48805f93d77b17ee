"""What the algorithms see: gauges and rolling rates of one target at one instant.

Rates come from the counter increments in the state's time buckets over the rate window. Each
estimate falls back on a prior while data is thin, so a target that just appeared (or a stale
one whose window has emptied) is paced from sensible defaults rather than from noise:

- acceptance rate: accepted / made in the window, shrunk towards the lifetime ratio of the raw
  counters (itself shrunk towards ``acceptance_prior`` below ``LIFETIME_OFFERS`` offers);
- reactive arrival rate: interactions entered minus offers accepted, per second (and the same
  difference of the raw counters: the reactive interactions seen since the ACD's counters began);
- patience: interaction-seconds waited per abandon (exponential patience), shrunk towards
  ``patience_prior_s``;
- observed abandonment and service level, short abandons excluded (as Genesys computes SL).
"""

from __future__ import annotations

from dataclasses import dataclass

from streams.engine.settings import PacingSettings
from streams.engine.state import BUCKET_MS, COUNTER_INDEX, RETENTION_MS, WAITING_AREA, TargetState

#: Pseudo-offers behind the lifetime acceptance ratio when it is blended with the window: acceptance
#: drifts slowly, and sizing offers by 1/p turns noise in p into extra abandonment (300 rather than
#: 100 took a 15-agent group at p = 0.1 from 2.4-3.0 % to 2.3-2.7 % at the same occupancy).
ACCEPTANCE_WEIGHT = 300.0
#: Below this many lifetime offers the configured prior fills the gap.
LIFETIME_OFFERS = 20.0
#: Pseudo-abandons behind the patience prior.
PATIENCE_WEIGHT = 5.0
#: Rates are never divided by less observed time than this (avoids bursts at start-up).
MIN_OBSERVED_S = 60.0

_ENTERED = COUNTER_INDEX["interactions_entered"]
_ANSWERED = COUNTER_INDEX["interactions_answered"]
_WITHIN_SL = COUNTER_INDEX["answered_within_sl"]
_ABANDONED = COUNTER_INDEX["interactions_abandoned"]
_SHORT = COUNTER_INDEX["short_abandoned"]
_MADE = COUNTER_INDEX["offers_made"]
_ACCEPTED = COUNTER_INDEX["offers_accepted"]


@dataclass(frozen=True)
class Observation:
    """One target's inputs to pacing (counts are whole numbers, rates per second)."""

    ready: int
    busy: int
    logged_in: int
    waiting: int
    outstanding: int
    handle_time_s: float
    acceptance: float
    reactive_rate: float
    reactive_seen: float
    patience_s: float
    observed_s: float
    abandonment: float | None
    service_level: float | None

    @property
    def agents(self) -> int:
        """Agents taking interactions now or when they finish the current one."""
        return self.ready + self.busy



def observe(state: TargetState, settings: PacingSettings, now_ms: int) -> Observation:
    """The target's gauges and rolling rates at ``now_ms`` (a pure function of its arguments)."""
    window_ms = int(min(max(settings.rate_window_s * 1000, BUCKET_MS), RETENTION_MS))
    start_ms = (now_ms - window_ms) // BUCKET_MS * BUCKET_MS
    observed_s = 0.0
    if state.counter_since_ms is not None:
        observed_s = max(0.0, (now_ms - max(start_ms, state.counter_since_ms)) / 1000)
    totals = state.window_totals(start_ms)
    made, accepted = totals[_MADE], min(totals[_ACCEPTED], totals[_MADE])
    abandoned = totals[_ABANDONED]
    counted_abandons = max(0.0, abandoned - totals[_SHORT])
    handled = totals[_ANSWERED] + counted_abandons
    ready = _count(state.gauge("ready_agents"))
    busy = _count(state.gauge("busy_agents"))
    aht = state.gauge("average_handle_time_s")
    return Observation(
        ready=ready,
        busy=busy,
        logged_in=max(_count(state.gauge("logged_in_agents")), ready + busy),
        waiting=_count(state.gauge("waiting_interactions")),
        outstanding=_count(state.gauge("outstanding_offers")),
        handle_time_s=aht if aht > 0 else settings.handle_time_prior_s,
        acceptance=(accepted + ACCEPTANCE_WEIGHT * _lifetime_acceptance(state, settings))
        / (made + ACCEPTANCE_WEIGHT),
        reactive_rate=max(0.0, totals[_ENTERED] - totals[_ACCEPTED]) / max(observed_s, MIN_OBSERVED_S),
        reactive_seen=max(0.0, state.counters.get("interactions_entered", 0.0)
                          - state.counters.get("offers_accepted", 0.0)),
        patience_s=(totals[WAITING_AREA] + PATIENCE_WEIGHT * settings.patience_prior_s)
        / (abandoned + PATIENCE_WEIGHT),
        observed_s=observed_s,
        abandonment=counted_abandons / handled if handled >= 1 else None,
        service_level=min(1.0, totals[_WITHIN_SL] / handled) if handled >= 1 else None,
    )


def _lifetime_acceptance(state: TargetState, settings: PacingSettings) -> float:
    """accepted / made of the raw counters, topped up with the prior below LIFETIME_OFFERS offers."""
    made = max(0.0, state.counters.get("offers_made", 0.0))
    accepted = min(max(0.0, state.counters.get("offers_accepted", 0.0)), made)
    prior = min(1.0, max(0.0, settings.acceptance_prior))
    return (accepted + prior * max(0.0, LIFETIME_OFFERS - made)) / max(LIFETIME_OFFERS, made)


#: Counts above this are clamped: no pacing target is that large, and the queueing maths loops
#: over agents, so a bridge reporting nonsense (3e9 agents) must not stall a worker.
MAX_COUNT = 10_000


def _count(value: float) -> int:
    return min(MAX_COUNT, max(0, round(value)))
