"""Per-target observed state, folded from stat events.

The state is what a pacing node keeps in its changelog-backed table, so it must be
cheap to update, deterministic, and serialisable to plain JSON (``to_dict``/``from_dict``).
Gauges keep the newest value by event timestamp, so late or duplicated events never
overwrite fresher data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

GAUGE_NAMES = frozenset(
    {
        "ready_agents",
        "busy_agents",
        "logged_in_agents",
        "waiting_interactions",
        "outstanding_offers",
        "average_handle_time_s",
    }
)


@dataclass
class TargetState:
    """What a pacing node knows about one target."""

    target_id: str
    media_type: str | None = None
    gauges: dict[str, float] = field(default_factory=dict)
    gauge_ts: dict[str, int] = field(default_factory=dict)
    counters: dict[str, float] = field(default_factory=dict)
    counter_ts: dict[str, int] = field(default_factory=dict)
    last_event_ms: int = 0

    def apply(self, statistic: str, value: float, timestamp_ms: int, media_type: str | None = None) -> bool:
        """Fold one statistic into the state; returns False when the event was stale or a duplicate."""
        if media_type:
            self.media_type = media_type
        values, stamps = (self.gauges, self.gauge_ts) if statistic in GAUGE_NAMES else (
            self.counters,
            self.counter_ts,
        )
        if stamps.get(statistic, -1) >= timestamp_ms:
            return False
        values[statistic] = value
        stamps[statistic] = timestamp_ms
        self.last_event_ms = max(self.last_event_ms, timestamp_ms)
        return True

    def gauge(self, name: str, default: float = 0.0) -> float:
        """The latest value of a gauge statistic, or ``default`` before any was seen."""
        return self.gauges.get(name, default)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy for the table's changelog."""
        return {
            "target_id": self.target_id,
            "media_type": self.media_type,
            "gauges": dict(self.gauges),
            "gauge_ts": dict(self.gauge_ts),
            "counters": dict(self.counters),
            "counter_ts": dict(self.counter_ts),
            "last_event_ms": self.last_event_ms,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TargetState:
        """Rebuild a state written by ``to_dict`` (for example from a changelog)."""
        return cls(
            target_id=data["target_id"],
            media_type=data.get("media_type"),
            gauges=dict(data.get("gauges", {})),
            gauge_ts={k: int(v) for k, v in data.get("gauge_ts", {}).items()},
            counters=dict(data.get("counters", {})),
            counter_ts={k: int(v) for k, v in data.get("counter_ts", {}).items()},
            last_event_ms=int(data.get("last_event_ms", 0)),
        )
