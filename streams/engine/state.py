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
"""

from __future__ import annotations

from dataclasses import dataclass, field
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

    def gauge(self, name: str, default: float = 0.0) -> float:
        """The latest value of a gauge statistic, or ``default`` before any was seen."""
        return self.gauges.get(name, default)

    def window_totals(self, since_ms: int) -> list[float]:
        """Counter increments (and the waiting integral) summed over buckets from ``since_ms`` on."""
        first = since_ms // BUCKET_MS
        totals = [0.0] * (WAITING_AREA + 1)
        for index, row in self.buckets.items():
            if index >= first:
                for i, v in enumerate(row):
                    totals[i] += v
        return totals

    def _apply_gauge(self, statistic: str, value: float, timestamp_ms: int) -> bool:
        previous_ts = self.gauge_ts.get(statistic)
        if previous_ts is not None and timestamp_ms <= previous_ts:
            return False
        if statistic == "waiting_interactions" and previous_ts is not None:
            span_ms = min(timestamp_ms - previous_ts, RETENTION_MS)
            self._bucket(timestamp_ms)[WAITING_AREA] += self.gauges[statistic] * span_ms / 1000
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
            if increment:
                self._bucket(timestamp_ms)[COUNTER_INDEX[statistic]] += increment
        self.counters[statistic] = value
        self.counter_ts[statistic] = timestamp_ms
        return True

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
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TargetState:
        """Rebuild a state written by ``to_dict`` (also reads the older format without buckets)."""
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
        )


def _compact(value: float) -> float | int:
    """Integral floats as ints: the changelog record stays short."""
    return int(value) if value.is_integer() else round(value, 3)
