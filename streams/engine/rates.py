"""What the algorithms see: gauges and rolling rates of one target at one instant.

Rates come from the counter increments in the state's time buckets over the rate window. Each
estimate falls back on a prior while data is thin, so a target that just appeared (or a stale
one whose window has emptied) is paced from sensible defaults rather than from noise:

- acceptance rate: accepted / made from the state's decayed offer memory (offers still
  outstanding are not yet answered, so they do not count as made). The slow memory (1 h
  half-life) is used unless a faster one (10 min, 2 min, 30 s) differs from it by more than
  ``CHANGE_Z`` binomial standard errors: then acceptance has changed and the fastest such one
  follows it (the old lifetime ratio still said 0.26 an hour and a half after acceptance rose
  from 0.1 to 0.4; with the 10-minute memory alone a 15-agent group still lost 4.9 % then).
  The 30 s memory (issue 20) follows a 3x change within about a minute where offers are many:
  at 5 offers a second, 0.1 -> 0.3 read 0.16 a minute later with the 2-minute one, 0.22 with it,
  and steady periods are as quiet (the change test guards them).
  ``LIFETIME_OFFERS`` pseudo-offers at the raw counters' lifetime ratio (itself shrunk towards
  ``acceptance_prior`` below that many offers) fill in while the memory is thin;
- reactive arrival rate: interactions entered minus offers accepted, per second, and the reactive
  interactions seen since the state began from the increments' totals (which survive a reset of
  one counter alone). Two counters delivered separately are not measured at the same moment: the
  accepts expected between their timestamps are added to the one that lags. A burst or a lull
  shows in the state's 45 s or 4 min memory first (``_reactive_rate``, issue 20), and a window
  with few arrivals is read through the hour-long one;
- patience: interaction-seconds waited per abandon (exponential patience) over the state's
  hour-long memory, with one pseudo-abandon at ``patience_prior_s`` (issue 20: five over the
  window outweighed a small group's data);
- observed abandonment counting every abandon and, as Genesys computes it, with short abandons
  excluded; the service level with short abandons excluded (the Genesys SL).

Late statistics (issue 9): the gauges describe the group when they were measured, ``age_s``
ago (the newest of the ready, busy, waiting and outstanding timestamps). Offers made since then
(from the state's offers log, or at the window's offer rate when the node keeps no log) count as
outstanding, and the reactive arrivals expected since then as agents taken; agents finishing
meanwhile are not credited, so caution grows with the age.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from streams.engine.settings import PacingSettings
from streams.engine.state import (
    BUCKET_MS,
    COUNTER_INDEX,
    OFFERS_LOG_MS,
    REACTIVE_HOUR,
    REACTIVE_PAIRS,
    RECENT_ABANDONED,
    RECENT_WAITING,
    RETENTION_MS,
    TargetState,
)

#: Below this many lifetime offers the configured prior fills the gap; as many pseudo-offers at
#: the lifetime ratio fill in while the decayed memory is thin.
LIFETIME_OFFERS = 20.0
#: The fast acceptance memory replaces the slow one when they differ by more than this many
#: binomial standard errors of the fast one (3: a false alarm every few hundred decisions' worth
#: of independent data, and then the fast estimate is still an unbiased one).
CHANGE_Z = 3.0
#: Two counters further apart than this are not aligned: the older one is taken as current (a
#: bridge may report a counter only when it changes).
MAX_COUNTER_LAG_S = 60.0
#: The gauges that describe the group now; the newest of their timestamps dates the snapshot.
SNAPSHOT_GAUGES = ("ready_agents", "busy_agents", "waiting_interactions", "outstanding_offers")
#: Pseudo-abandons behind the patience prior: one, over the state's hour-long decayed memory of
#: waiting and abandons (``TargetState.recent``). Five over the 900 s window kept a 15-agent group
#: with a true 20 s patience at an estimate of 42-57 s (it sees 1-3 abandons a window at the
#: goal) and 4.5 % abandonment (issue 20).
PATIENCE_WEIGHT = 1.0
#: Patience is never estimated below this (abandons counted with no waiting seen, e.g. from
#: statistics delivered without their gauge: the queueing maths need a positive patience).
MIN_PATIENCE_S = 1.0
#: A recent reactive memory (45 s, then 4 min: ``state.REACTIVE_PAIRS``) replaces the window's rate
#: when its count is more than this many Poisson standard deviations above what the window's rate
#: predicts for it (a burst) ...
BURST_Z = 2.0
#: ... or this many below (a burst's end, or a lull): a fall makes offers, so it needs more evidence.
LULL_Z = 3.0
#: A memory is consulted once the window's rate expects this many arrivals in it: fewer, and two or
#: three arrivals close together would look like a burst (a small group's 45 s memory).
MIN_RECENT_EXPECTED = 4.0
#: A window with fewer reactive arrivals than this is read through the hour-long memory instead:
#: a 2-agent group with a quarter of its capacity reactive sees about one a window, often none, and
#: then kept no agent free for them.
SPARSE_REACTIVE = 10.0
#: Rates are never divided by less observed time than this (avoids bursts at start-up).
MIN_OBSERVED_S = 60.0

_ENTERED = COUNTER_INDEX["interactions_entered"]
_ANSWERED = COUNTER_INDEX["interactions_answered"]
_WITHIN_SL = COUNTER_INDEX["answered_within_sl"]
_ABANDONED = COUNTER_INDEX["interactions_abandoned"]
_SHORT = COUNTER_INDEX["short_abandoned"]
_MADE = COUNTER_INDEX["offers_made"]
_ACCEPTED = COUNTER_INDEX["offers_accepted"]


@dataclass(frozen=True, init=False)
class Observation:
    """One target's inputs to pacing (counts are whole numbers, rates per second).

    Frozen, with its own ``__init__`` (same parameters as the generated one): a frozen
    dataclass's generated constructor sets each of the sixteen fields with its own
    ``object.__setattr__`` call, a noticeable share of a small cold decision."""

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
    #: Observed abandonment over the window with short abandons excluded (the Genesys figure);
    #: ``abandonment`` counts every abandon.
    abandonment_excluding_short: float | None = None
    #: Seconds between the newest measurement of the gauges and the decision (0: current).
    age_s: float = 0.0
    #: Offers counted in ``outstanding`` that were made after the gauges were measured.
    offers_since: float = 0.0

    def __init__(self, ready: int, busy: int, logged_in: int, waiting: int, outstanding: int,
                 handle_time_s: float, acceptance: float, reactive_rate: float, reactive_seen: float,
                 patience_s: float, observed_s: float, abandonment: float | None,
                 service_level: float | None, abandonment_excluding_short: float | None = None,
                 age_s: float = 0.0, offers_since: float = 0.0) -> None:
        self.__dict__.update(
            ready=ready, busy=busy, logged_in=logged_in, waiting=waiting, outstanding=outstanding,
            handle_time_s=handle_time_s, acceptance=acceptance, reactive_rate=reactive_rate,
            reactive_seen=reactive_seen, patience_s=patience_s, observed_s=observed_s,
            abandonment=abandonment, service_level=service_level,
            abandonment_excluding_short=abandonment_excluding_short, age_s=age_s, offers_since=offers_since)

    @property
    def agents(self) -> int:
        """Agents taking interactions now or when they finish the current one. (The engine's cold
        path reads ``ready + busy`` itself: a property call costs the interpreter a frame.)"""
        return self.ready + self.busy



def observe(state: TargetState, settings: PacingSettings, now_ms: int) -> Observation:
    """The target's gauges and rolling rates at ``now_ms`` (a pure function of its arguments)."""
    # Two-value min/max on this path are conditional expressions: a builtin min() or max() call
    # costs ~700 instructions in CPython 3.11 (its arguments are parsed as keywords), and
    # ``b if b > a else a`` is exactly max(a, b) (the first of equal values; NaN alike).
    window_ms = settings.rate_window_s * 1000
    window_ms = BUCKET_MS if BUCKET_MS > window_ms else window_ms
    window_ms = int(RETENTION_MS if RETENTION_MS < window_ms else window_ms)
    start_ms = (now_ms - window_ms) // BUCKET_MS * BUCKET_MS
    observed_s = 0.0
    since_ms = state.counter_since_ms
    if since_ms is not None:
        observed_s = (now_ms - (since_ms if since_ms > start_ms else start_ms)) / 1000
        if not observed_s > 0.0:
            observed_s = 0.0
    totals = state.window_totals(start_ms)
    made = totals[_MADE]
    accepted = totals[_ACCEPTED]
    if made < accepted:
        accepted = made
    abandoned = totals[_ABANDONED]
    long_abandons = abandoned - totals[_SHORT]
    if not long_abandons > 0.0:
        long_abandons = 0.0
    answered = totals[_ANSWERED]
    handled = answered + long_abandons  # the Genesys denominator: short abandons excluded
    handled_all = answered + abandoned
    span_s = MIN_OBSERVED_S if MIN_OBSERVED_S > observed_s else observed_s
    lag_accepts, lag_doubt = _accepts_between_counters(state, accepted / span_s)
    reactive = totals[_ENTERED] - totals[_ACCEPTED] + lag_accepts
    reactive_rate = _reactive_rate(state, reactive if reactive > 0.0 else 0.0, span_s, lag_accepts, now_ms)
    # The gauges straight from the state's dicts (state.gauge's defaults), each read once, and no
    # helper calls that are not needed: the interpreter's work is most of a small cold decision.
    gauges, gauge_ts = state.gauges, state.gauge_ts
    ready = _count(gauges.get("ready_agents", 0.0))
    busy = _count(gauges.get("busy_agents", 0.0))
    outstanding_gauge = gauges.get("outstanding_offers", 0.0)
    aht = gauges.get("average_handle_time_s", 0.0)
    # What happened since the gauges were measured, each from its own gauge's timestamp (jittered
    # delivery mixes measurements): offers made since the outstanding count are outstanding too,
    # reactive arrivals since the ready count took agents; agents finishing are not credited.
    outstanding_ms = gauge_ts.get("outstanding_offers", now_ms)
    offers_since = 0.0 if outstanding_ms >= now_ms else \
        _offers_since(state, now_ms, outstanding_ms, made / span_s)
    outstanding = _count(outstanding_gauge) + (0 if offers_since == 0.0 else round(offers_since))
    if outstanding > MAX_COUNT:
        outstanding = MAX_COUNT
    ready_ms = gauge_ts.get("ready_agents", now_ms)
    if ready_ms < now_ms and ready:
        taken = round(reactive_rate * ((now_ms - ready_ms) / 1000))
        if ready < taken:
            taken = ready
        ready, busy = ready - taken, busy + taken
    logged_in = _count(gauges.get("logged_in_agents", 0.0))
    if logged_in < ready + busy:
        logged_in = ready + busy
    return Observation(
        ready,
        busy,
        logged_in,
        _count(gauges.get("waiting_interactions", 0.0)),
        outstanding,
        aht if aht > 0 else settings.handle_time_prior_s,
        _acceptance(state, settings, now_ms, outstanding_gauge),
        reactive_rate,
        _reactive_seen(state, lag_accepts - lag_doubt),
        _patience_s(state, settings, now_ms),
        observed_s,
        abandoned / handled_all if handled_all >= 1 else None,
        _at_most_1(totals[_WITHIN_SL] / handled) if handled >= 1 else None,
        long_abandons / handled if handled >= 1 else None,
        _age_s(gauge_ts, now_ms),
        offers_since,
    )


def _reactive_rate(state: TargetState, window_count: float, span_s: float, lag_accepts: float,
                   now_ms: int) -> float:
    """Reactive arrivals per second: the window's rate, unless a recent memory says it has changed
    (``BURST_Z`` standard deviations above the rate of the rest of the window, ``LULL_Z`` below; the
    fastest such memory wins): then that memory's own rate. Compared with the rest of the window,
    not all of it, so a burst does not raise its own yardstick. At 100 agents (40 % reactive load)
    a 3x burst shows within about a minute in the 45 s memory; a 15-agent group sees a few arrivals
    a minute and its 4-minute memory takes a few minutes. Steady periods keep the window's figure.
    A window of fewer than ``SPARSE_REACTIVE`` arrivals is too thin for either: the hour's rate."""
    window_rate = window_count / span_s
    max_age_ms = int(MAX_COUNTER_LAG_S * 1000)
    if window_count < SPARSE_REACTIVE:
        count, weight_s = state.recent_reactive(REACTIVE_HOUR, lag_accepts, now_ms, max_age_ms)
        if weight_s > span_s:
            return count / weight_s
    for pair in REACTIVE_PAIRS:
        count, weight_s = state.recent_reactive(pair, lag_accepts, now_ms, max_age_ms)
        if weight_s >= span_s:
            continue
        before = window_count - count
        expected = (before if before > 0.0 else 0.0) / (span_s - weight_s) * weight_s
        if expected < MIN_RECENT_EXPECTED:
            continue
        spread = math.sqrt(expected + 1.0)
        if count > expected + BURST_Z * spread or count < expected - LULL_Z * spread:
            return count / weight_s
    return window_rate


def _patience_s(state: TargetState, settings: PacingSettings, now_ms: int) -> float:
    """Interaction-seconds waited per abandon over the hour-long decayed memory, with
    ``PATIENCE_WEIGHT`` pseudo-abandons at ``patience_prior_s`` (the prior yields once a few
    abandons are seen), at least ``MIN_PATIENCE_S``."""
    waited = state.recent_at(RECENT_WAITING, now_ms)
    abandons = state.recent_at(RECENT_ABANDONED, now_ms)
    patience = (waited + PATIENCE_WEIGHT * settings.patience_prior_s) / (abandons + PATIENCE_WEIGHT)
    return patience if patience > MIN_PATIENCE_S else MIN_PATIENCE_S


def _offers_since(state: TargetState, now_ms: int, since_ms: int, offer_rate: float) -> float:
    """Offers made in (since_ms, now_ms]: from the offers log, and at ``offer_rate`` per second for
    the time before the log (or all of it without one)."""
    if since_ms >= now_ms:
        return 0.0
    if not state.offers_log:
        return offer_rate * (now_ms - since_ms) / 1000
    logged_from_ms = now_ms - OFFERS_LOG_MS
    return state.offers_since(since_ms, now_ms) + offer_rate * max(0, logged_from_ms - since_ms) / 1000


def _age_s(gauge_ts: dict[str, int], now_ms: int) -> float:
    """How old the group's snapshot is: now minus the newest timestamp of its gauges (the newest,
    so that a bridge reporting a gauge only when it changes does not make the snapshot look old)."""
    newest = None
    for name in SNAPSHOT_GAUGES:
        stamp = gauge_ts.get(name)
        if stamp is not None and (newest is None or stamp > newest):
            newest = stamp
    age_s = 0.0 if newest is None else (now_ms - newest) / 1000
    return age_s if age_s > 0.0 else 0.0


def _accepts_between_counters(state: TargetState, window_rate: float) -> tuple[float, float]:
    """What to add to entered - accepted so that both counters describe the same moment: the
    newer counter is taken back to the older one's timestamp by prorating its newest increment
    (exact when both were sampled together before, as after one lost sample); when the newer one
    has moved on by more than one sample, the accepts in between are priced at the newest
    accepted increment's rate (at the window's before there is one). A window average overstated
    them while an idle group filled, and made a 50-agent group without reactive traffic look dual.
    Returns the correction and its uncertainty (two Poisson standard deviations when priced at a
    rate, 0 when prorated)."""
    entered_ms = state.counter_ts.get("interactions_entered")
    accepted_ms = state.counter_ts.get("offers_accepted")
    if entered_ms is None or accepted_ms is None or entered_ms == accepted_ms \
            or abs(entered_ms - accepted_ms) > MAX_COUNTER_LAG_S * 1000:
        return 0.0, 0.0
    ahead, behind_ms, ahead_ms, sign = (("interactions_entered", accepted_ms, entered_ms, -1.0)
                                        if entered_ms > accepted_ms else
                                        ("offers_accepted", entered_ms, accepted_ms, 1.0))
    increment, span_ms = state.steps.get(ahead, (0.0, 0))
    if span_ms > 0 and ahead_ms - span_ms <= behind_ms:
        return sign * increment * (ahead_ms - behind_ms) / span_ms, 0.0
    accepted_increment, accepted_span_ms = state.steps.get("offers_accepted", (0.0, 0))
    rate_per_ms = accepted_increment / accepted_span_ms if accepted_span_ms > 0 else window_rate / 1000
    expected = rate_per_ms * (accepted_ms - entered_ms)
    return expected, 2 * math.sqrt(abs(expected))


def _reactive_seen(state: TargetState, lag_accepts: float) -> float:
    """Reactive interactions seen since the state began: entered minus accepted increments (a
    counter reset alone does not disturb them), corrected by the accepts one counter has and the
    other not yet (less their uncertainty: AUTO's dual choice does not flip on a guess). States
    written before the totals existed use the raw counters."""
    if state.totals:
        entered = state.totals.get("interactions_entered", 0.0)
        accepted = state.totals.get("offers_accepted", 0.0)
    else:
        entered = state.counters.get("interactions_entered", 0.0)
        accepted = state.counters.get("offers_accepted", 0.0)
    seen = entered - accepted + lag_accepts
    return seen if seen > 0.0 else 0.0


def _acceptance(state: TargetState, settings: PacingSettings, now_ms: int, answered_later: float) -> float:
    """Accepted / made from the decayed memory: the slow estimate, unless a faster one differs from
    it by more than ``CHANGE_Z`` of its standard errors (the fastest such one wins: see the module
    docstring). ``answered_later``: the outstanding-offers gauge (made, not yet answered: the
    newest offers, weight ~1 in every memory)."""
    fallback = _lifetime_acceptance(state, settings)
    slow = chosen = 0.0
    first = True
    for made, accepted in state.decayed_memory(now_ms):  # slowest first
        unanswered = made - answered_later  # (min/max as conditional expressions: see observe)
        n = (unanswered if unanswered > 0.0 else 0.0) + LIFETIME_OFFERS
        estimate = ((made if made < accepted else accepted) + LIFETIME_OFFERS * fallback) / n
        if not estimate < 1.0:
            estimate = 1.0
        if first:
            slow = chosen = estimate
            slow_variance = slow * (1 - slow)
            first = False
        elif abs(estimate - slow) > CHANGE_Z * math.sqrt((0.0099 if 0.0099 > slow_variance else slow_variance) / n):
            chosen = estimate
    return chosen


def _lifetime_acceptance(state: TargetState, settings: PacingSettings) -> float:
    """accepted / made of the raw counters, topped up with the prior below LIFETIME_OFFERS offers."""
    counters = state.counters  # (min/max as conditional expressions: see observe)
    made = counters.get("offers_made", 0.0)
    made = made if made > 0.0 else 0.0
    accepted = counters.get("offers_accepted", 0.0)
    accepted = accepted if accepted > 0.0 else 0.0
    accepted = made if made < accepted else accepted
    prior = settings.acceptance_prior
    prior = prior if prior > 0.0 else 0.0
    prior = prior if prior < 1.0 else 1.0
    missing = LIFETIME_OFFERS - made
    offers = made if made > LIFETIME_OFFERS else LIFETIME_OFFERS
    return (accepted + prior * (missing if missing > 0.0 else 0.0)) / offers


#: Counts above this are clamped: no pacing target is that large, and the queueing maths loops
#: over agents, so a bridge reporting nonsense (3e9 agents) must not stall a worker.
MAX_COUNT = 10_000


def _at_most_1(value: float) -> float:
    """min(1.0, value), without the builtin's call."""
    return value if value < 1.0 else 1.0


def _count(value: float) -> int:
    """A gauge as a whole count within 0..MAX_COUNT."""
    count = int(value)  # a whole value is its own rounding; round() looks up and binds __round__
    if count != value:
        count = round(value)
    return count if 0 <= count <= MAX_COUNT else (0 if count < 0 else MAX_COUNT)
