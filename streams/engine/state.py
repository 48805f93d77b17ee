"""Per-target observed state, folded from stat events.

The state is what a pacing node keeps in its changelog-backed table, so it must be cheap to
update, deterministic, bounded in size and serialisable to plain JSON (``to_dict``/``from_dict``).

- Gauges keep the newest value by event timestamp: late or duplicated events change nothing.
- Counters are running totals that may restart at 0 (an ACD restart) and may arrive late or
  twice. Each counter keeps its newest raw value; a newer sample adds its *increment* (the
  difference, or the raw value itself after a reset) to a one-minute time bucket. Older or
  equal samples are ignored — because counters are cumulative, the next newer sample carries
  whatever a dropped late one would have added, so no increment is lost or counted twice.
- The waiting-interactions gauge is also integrated over time (interaction-seconds waited),
  which with the abandon counter gives the customers' patience.

At most ``MAX_BUCKETS`` buckets are kept (the longest usable rate window), so the state's size
is bounded whatever the event rate.

Beyond the buckets (issue 9):

- ``totals``: the increments of entered and accepted summed since the state began. Unlike the raw values
  they survive a reset of one counter alone (an ACD restart resets ``interactions_entered`` but
  not ``offers_accepted``), so the reactive interactions seen = entered - accepted stays right.
- ``memory``: offers made and accepted, exponentially decayed with each of
  ``MEMORY_HALF_LIVES_S`` (1 h, 10 min, 2 min, 30 s), as of ``memory_ms``: the acceptance estimate
  forgets, and a change shows as a faster memory disagreeing with the slow one. An increment is decayed from its own
  timestamp, so the order in which counters arrive does not matter.
- ``offers_log``: what the node allowed in its recent decisions (``record_offers``), so a
  decision on late statistics can count the offers made since they were measured.

And (issue 20) ``recent``, eight more decayed sums, each increment decayed from its own timestamp
and spread over the span it accrued in (``RECENT``): entered and accepted with half-lives of 45 s
and 4 min, so the reactive rate follows a burst within about a minute where arrivals are many and
within a few where they are few (the rate window alone followed a 3x burst by at most 1.33x, and
only once it was over), and over an hour, for a target that sees few in a window; the waiting
integral and the abandons with a one-hour half-life, so
the patience estimate rests on an hour of abandons rather than on a window's one to three in a
small group.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from operator import add
from typing import Any

from schemas.models import COUNTER_NAMES, GAUGES

GAUGE_NAMES = GAUGES
#: Column of each counter in a bucket row (:data:`schemas.models.COUNTER_NAMES` gives the order).
COUNTER_INDEX = {name: i for i, name in enumerate(COUNTER_NAMES)}
#: Index in a bucket row of the waiting integral (interaction-seconds spent waiting).
WAITING_AREA = len(COUNTER_NAMES)
BUCKET_MS = 60_000
MAX_BUCKETS = 30
#: The longest rate window the state can answer for.
RETENTION_MS = BUCKET_MS * MAX_BUCKETS
#: Half-lives of the decayed offer memory (acceptance), slowest first: the slow one gives a steady
#: estimate from many offers, the faster ones show a change within minutes (30 s: within about a
#: minute where offers are many, issue 20).
MEMORY_HALF_LIVES_S = (3600.0, 600.0, 120.0, 30.0)
_DECAY_PER_MS = tuple(math.log(2) / (half_life * 1000) for half_life in MEMORY_HALF_LIVES_S)
#: A faster memory that disagrees with a slower one by more than this many binomial standard
#: errors (with at least CHANGE_MIN_OFFERS offers in it) means acceptance changed: the slower
#: memories restart from the faster one's contents, so the estimate does not fall back to the
#: old level while few offers are made (a full group makes none).
CHANGE_Z = 3.0
CHANGE_MIN_OFFERS = 30.0
#: ``memory`` holds (made, accepted) per half-life, in that order.
_MEMORY_OFFSET = {"offers_made": 0, "offers_accepted": 1}
_MEMORY_SIZE = 2 * len(MEMORY_HALF_LIVES_S)
#: ``recent``: what each decayed sum adds up (a counter, or the waiting integral) and its half-life
#: in seconds: entered and accepted over 45 s and over 4 min (the reactive rate's change
#: detection), the waiting integral and the abandons over an hour (patience).
RECENT = (("interactions_entered", 45.0), ("offers_accepted", 45.0),
          ("interactions_entered", 240.0), ("offers_accepted", 240.0),
          ("waiting", 3600.0), ("interactions_abandoned", 3600.0),
          ("interactions_entered", 3600.0), ("offers_accepted", 3600.0))
#: Slots of ``recent``: the (entered, accepted) pairs fastest first, the waiting integral, the
#: abandons, and the hour-long (entered, accepted) pair (the reactive rate of a sparse target).
REACTIVE_PAIRS = ((0, 1), (2, 3))
RECENT_WAITING, RECENT_ABANDONED = 4, 5
REACTIVE_HOUR = (6, 7)
_RECENT_DECAY_PER_MS = tuple(math.log(2) / (half_life * 1000) for _, half_life in RECENT)
_RECENT_OF = {name: tuple(i for i, (n, _) in enumerate(RECENT) if n == name) for name, _ in RECENT}
#: Counters whose newest increment is kept (``steps``): reactive traffic is their difference.
STEP_COUNTERS = ("interactions_entered", "offers_accepted")
#: The offers log keeps decisions this recent, at most OFFERS_LOG_ENTRIES of them (~0.5 KB of
#: JSON at a 10 s refresh period); statistics older than that are covered at the offer rate.
OFFERS_LOG_MS = 120_000
OFFERS_LOG_ENTRIES = 24


@dataclass
class TargetState:
    """What a pacing node knows about one target: latest gauges, recent counter increments."""

    target_id: str
    media_type: str | None = None
    gauges: dict[str, float] = field(default_factory=dict)
    gauge_ts: dict[str, int] = field(default_factory=dict)
    counters: dict[str, float] = field(default_factory=dict)
    counter_ts: dict[str, int] = field(default_factory=dict)
    counter_since_ms: int | None = None
    buckets: dict[int, list[float]] = field(default_factory=dict)
    last_event_ms: int = 0
    totals: dict[str, float] = field(default_factory=dict)
    memory: list[float] = field(default_factory=lambda: [0.0] * _MEMORY_SIZE)
    memory_ms: int | None = None
    offers_log: list[tuple[int, int, int]] = field(default_factory=list)
    #: The newest increment of each of ``STEP_COUNTERS`` and the milliseconds it covered: what one
    #: counter has and the other not yet (their samples arrive separately) is read from them.
    steps: dict[str, tuple[float, int]] = field(default_factory=dict)
    #: Decayed sums of ``RECENT`` as of ``recent_ms``.
    recent: list[float] = field(default_factory=lambda: [0.0] * len(RECENT))
    recent_ms: int | None = None

    def apply(self, statistic: str, value: float, timestamp_ms: int, media_type: str | None = None) -> bool:
        """Fold one statistic into the state; False when it was stale, a duplicate or unknown."""
        if statistic in GAUGE_NAMES:
            folded = self._apply_gauge(statistic, value, timestamp_ms)
        elif statistic in COUNTER_INDEX:
            folded = self._apply_counter(statistic, value, timestamp_ms)
        else:
            return False
        if folded:
            if media_type:
                self.media_type = media_type
            self.last_event_ms = max(self.last_event_ms, timestamp_ms)
        return folded

    def record_offers(self, now_ms: int, offers: int, period_s: float) -> None:
        """Note that ``offers`` were allowed at ``now_ms``, to be made over the next ``period_s``.

        The node calls this after publishing a decision (``decide`` itself stays pure). A
        decision taken before the newest statistics were measured counts the offers made since
        from this log; entries older than ``OFFERS_LOG_MS`` are dropped."""
        if offers < 0 or period_s <= 0:
            raise ValueError(f"offers must be >= 0 and the period > 0, got {offers} and {period_s}")
        log = [entry for entry in self.offers_log if entry[0] < now_ms and entry[0] > now_ms - OFFERS_LOG_MS]
        if offers:
            log.append((now_ms, offers, round(period_s * 1000)))
        self.offers_log = log[-OFFERS_LOG_ENTRIES:]

    def offers_since(self, since_ms: int, now_ms: int) -> float:
        """Offers of the logged decisions made in (since_ms, now_ms], each decision's offers spread
        evenly over its period until the next decision replaces it."""
        total = 0.0
        log = self.offers_log
        for i, (at_ms, offers, period_ms) in enumerate(log):
            # a newer decision replaces this one's remaining offers
            end_ms = min(now_ms, at_ms + period_ms, log[i + 1][0] if i + 1 < len(log) else now_ms)
            overlap = end_ms - max(since_ms, at_ms)
            if overlap > 0:
                total += offers * overlap / period_ms
        return total

    def decayed_memory(self, now_ms: int) -> list[tuple[float, float]]:
        """(made, accepted) per half-life, slowest first, decayed to ``now_ms`` (a later time; the
        memory itself is not changed)."""
        if self.memory_ms is None:
            return [(0.0, 0.0)] * len(MEMORY_HALF_LIVES_S)
        age = now_ms - self.memory_ms
        if not age > 0:  # max(0, age) without the builtin's call (this runs in every decision)
            age = 0
        m = self.memory
        out = []
        for i, rate in enumerate(_DECAY_PER_MS):
            decay = math.exp(-rate * age)
            out.append((m[2 * i] * decay, m[2 * i + 1] * decay))
        return out

    def recent_at(self, slot: int, at_ms: int) -> float:
        """The decayed sum of ``RECENT`` slot ``slot`` as of ``at_ms`` (earlier or later than
        the newest increment: the decay runs either way)."""
        if self.recent_ms is None:
            return 0.0
        return self.recent[slot] * math.exp(-_RECENT_DECAY_PER_MS[slot] * (at_ms - self.recent_ms))

    def recent_reactive(self, pair: tuple[int, int], lag_accepts: float, now_ms: int,
                        max_age_ms: int) -> tuple[float, float]:
        """Reactive interactions in the (entered, accepted) memory ``pair`` of ``REACTIVE_PAIRS``
        (entered - accepted, plus the accepts one counter has and the other not yet) and the seconds
        of observation they weigh, both as of the newer of the two counters' timestamps; (0, 0)
        before both have moved, or when that is more than ``max_age_ms`` before ``now_ms`` (a quiet
        target's last minute is not now's)."""
        entered_ms = self.counter_ts.get("interactions_entered")
        accepted_ms = self.counter_ts.get("offers_accepted")
        since_ms = self.counter_since_ms
        if entered_ms is None or accepted_ms is None or since_ms is None or self.recent_ms is None:
            return 0.0, 0.0
        at_ms = entered_ms if entered_ms > accepted_ms else accepted_ms
        if now_ms - at_ms > max_age_ms:
            return 0.0, 0.0
        entered, accepted = pair
        rate = _RECENT_DECAY_PER_MS[entered]
        weight_s = -math.expm1(-rate * (at_ms - since_ms)) / rate / 1000
        count = self.recent_at(entered, at_ms) - self.recent_at(accepted, at_ms) + lag_accepts
        return (count if count > 0.0 else 0.0), weight_s

    def gauge(self, name: str, default: float = 0.0) -> float:
        """The latest value of a gauge statistic, or ``default`` before any was seen."""
        return self.gauges.get(name, default)

    def window_totals(self, since_ms: int) -> list[float]:
        """Counter increments (and the waiting integral) summed over buckets from ``since_ms`` on."""
        first = since_ms // BUCKET_MS
        width = WAITING_AREA + 1
        totals = [0.0] * width
        for index, row in self.buckets.items():
            if index >= first:
                if len(row) == width:
                    totals = list(map(add, totals, row))  # the same additions in the same order, in C
                else:  # a short row (an older format's): its columns alone
                    for i, v in enumerate(row):
                        totals[i] += v
        return totals

    def _apply_gauge(self, statistic: str, value: float, timestamp_ms: int) -> bool:
        previous_ts = self.gauge_ts.get(statistic)
        if previous_ts is not None and timestamp_ms <= previous_ts:
            return False
        if statistic == "waiting_interactions" and previous_ts is not None:
            span_ms = min(timestamp_ms - previous_ts, RETENTION_MS)
            area = self.gauges[statistic] * span_ms / 1000
            self._bucket(timestamp_ms)[WAITING_AREA] += area
            if area:
                self._remember_recent(RECENT_WAITING, area, timestamp_ms, span_ms)
        self.gauges[statistic] = value
        self.gauge_ts[statistic] = timestamp_ms
        return True

    def _apply_counter(self, statistic: str, value: float, timestamp_ms: int) -> bool:
        previous_ts = self.counter_ts.get(statistic)
        if previous_ts is not None and timestamp_ms <= previous_ts:
            return False
        if previous_ts is None:
            # The first sample is the baseline: increments are observed from here on.
            if self.counter_since_ms is None or timestamp_ms < self.counter_since_ms:
                self.counter_since_ms = timestamp_ms
        else:
            previous = self.counters[statistic]
            increment = value - previous if value >= previous else value  # below: the counter restarted
            if statistic in STEP_COUNTERS:
                self.steps[statistic] = (float(increment), timestamp_ms - previous_ts)
            if increment:
                self._bucket(timestamp_ms)[COUNTER_INDEX[statistic]] += increment
                if statistic in STEP_COUNTERS:
                    self.totals[statistic] = self.totals.get(statistic, 0.0) + float(increment)
                if statistic in _MEMORY_OFFSET:
                    self._remember(statistic, increment, timestamp_ms)
                for slot in _RECENT_OF.get(statistic, ()):
                    self._remember_recent(slot, float(increment), timestamp_ms, timestamp_ms - previous_ts)
        self.counters[statistic] = value
        self.counter_ts[statistic] = timestamp_ms
        if statistic in _MEMORY_OFFSET and self.counter_ts.get("offers_made") == self.counter_ts.get("offers_accepted"):
            self._restart_on_change()
        return True

    def _remember(self, statistic: str, increment: float, timestamp_ms: int) -> None:
        """Add an increment measured at ``timestamp_ms`` to the decayed memory."""
        if self.memory_ms is None:
            self.memory_ms = timestamp_ms
        if timestamp_ms > self.memory_ms:
            self.memory = [v for pair in self.decayed_memory(timestamp_ms) for v in pair]
            self.memory_ms = timestamp_ms
        age = self.memory_ms - timestamp_ms
        offset = _MEMORY_OFFSET[statistic]
        for i, rate in enumerate(_DECAY_PER_MS):
            self.memory[2 * i + offset] += increment * math.exp(-rate * age)

    def _remember_recent(self, slot: int, increment: float, timestamp_ms: int, span_ms: int) -> None:
        """Add an increment that accrued evenly over the ``span_ms`` before ``timestamp_ms`` to
        ``recent`` (kept as of its newest time). Spreading it over its span keeps a counter
        sampled rarely from looking like a burst at each sample."""
        rate = _RECENT_DECAY_PER_MS[slot]
        if self.recent_ms is None:
            self.recent_ms = timestamp_ms
        if timestamp_ms > self.recent_ms:
            age = timestamp_ms - self.recent_ms
            self.recent = [v * math.exp(-r * age) for v, r in zip(self.recent, _RECENT_DECAY_PER_MS, strict=True)]
            self.recent_ms = timestamp_ms
        spread = -math.expm1(-rate * span_ms) / (rate * span_ms) if span_ms > 0 else 1.0
        self.recent[slot] += increment * spread * math.exp(-rate * (self.recent_ms - timestamp_ms))

    def _restart_on_change(self) -> None:
        """Restart the slower memories from the fastest one that disagrees with them (both
        counters measured at the same moment, so accepts do not lag the offers they answer)."""
        m = self.memory
        for fast in range(len(MEMORY_HALF_LIVES_S) - 1, 0, -1):
            made, accepted = m[2 * fast], m[2 * fast + 1]
            slow_made, slow_accepted = m[0], m[1]
            if made < CHANGE_MIN_OFFERS or slow_made <= made:
                continue
            p_slow = min(1.0, slow_accepted / slow_made)
            spread = CHANGE_Z * math.sqrt(max(p_slow * (1 - p_slow), 0.0099) / made)
            if abs(accepted / made - p_slow) > spread:
                for slower in range(fast):
                    m[2 * slower], m[2 * slower + 1] = made, accepted
                return

    def _bucket(self, timestamp_ms: int) -> list[float]:
        index = timestamp_ms // BUCKET_MS
        row = self.buckets.get(index)
        if row is None:
            row = self.buckets[index] = [0.0] * (WAITING_AREA + 1)
            oldest = max(self.buckets) - MAX_BUCKETS
            for old in [i for i in self.buckets if i <= oldest]:
                del self.buckets[old]
        return row

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy for the table's changelog (at most ``MAX_BUCKETS`` bucket rows)."""
        return {
            "target_id": self.target_id,
            "media_type": self.media_type,
            "gauges": dict(self.gauges),
            "gauge_ts": dict(self.gauge_ts),
            "counters": dict(self.counters),
            "counter_ts": dict(self.counter_ts),
            "counter_since_ms": self.counter_since_ms,
            "buckets": [[index, *(_compact(v) for v in row)] for index, row in sorted(self.buckets.items())],
            "last_event_ms": self.last_event_ms,
            "totals": {k: _compact(v) for k, v in self.totals.items()},
            "memory": [round(v, 4) for v in self.memory],
            "memory_ms": self.memory_ms,
            "offers_log": [list(entry) for entry in self.offers_log],
            "steps": {k: [_compact(v[0]), v[1]] for k, v in self.steps.items()},
            "recent": list(self.recent),  # unrounded: a restored state decides exactly as the original
            "recent_ms": self.recent_ms,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TargetState:
        """Rebuild a state written by ``to_dict`` (also reads older formats without buckets, totals,
        memory, offers log or recent sums: those start empty, and the acceptance falls back on the
        raw counters)."""
        width = WAITING_AREA + 1
        return cls(
            target_id=data["target_id"],
            media_type=data.get("media_type"),
            gauges={k: float(v) for k, v in data.get("gauges", {}).items()},
            gauge_ts={k: int(v) for k, v in data.get("gauge_ts", {}).items()},
            counters={k: float(v) for k, v in data.get("counters", {}).items()},
            counter_ts={k: int(v) for k, v in data.get("counter_ts", {}).items()},
            counter_since_ms=None if data.get("counter_since_ms") is None else int(data["counter_since_ms"]),
            buckets={int(row[0]): [float(v) for v in row[1:width + 1]] for row in data.get("buckets", [])},
            last_event_ms=int(data.get("last_event_ms", 0)),
            totals={k: float(v) for k, v in data.get("totals", {}).items()},
            memory=_memory(data.get("memory")),
            memory_ms=None if data.get("memory_ms") is None else int(data["memory_ms"]),
            offers_log=[(int(a), int(n), int(p)) for a, n, p in data.get("offers_log", [])],
            steps={k: (float(v[0]), int(v[1])) for k, v in data.get("steps", {}).items()},
            recent=_recent(data.get("recent")),
            recent_ms=None if data.get("recent_ms") is None or not data.get("recent") else int(data["recent_ms"]),
        )


def _memory(stored: list[float] | None) -> list[float]:
    """A stored memory of the current size: one stored before the 30 s memory takes the 2-minute
    one's pair for it (it converges within minutes); other sizes start empty."""
    if stored and len(stored) == _MEMORY_SIZE - 2:
        stored = [*stored, *stored[-2:]]
    if not stored or len(stored) != _MEMORY_SIZE:
        return [0.0] * _MEMORY_SIZE
    return [float(v) for v in stored]


def _recent(stored: list[float] | None) -> list[float]:
    """Stored recent sums of the current size, or empty ones (older formats)."""
    if not stored or len(stored) != len(RECENT):
        return [0.0] * len(RECENT)
    return [float(v) for v in stored]


def _compact(value: float) -> float | int:
    """Integral floats as ints: the changelog record stays short."""
    return int(value) if value.is_integer() else round(value, 3)
