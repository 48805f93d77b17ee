"""The pacing node's table value: one target's folded state and where it lives."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from streams.engine import TargetState


@dataclass(slots=True)
class TargetEntry:
    """What a node keeps per target in its changelog-backed table.

    ``received_ms`` is this node's wall clock when the target's newest statistic arrived, set when it
    is folded (staleness is judged on arrival, not on the ACD's clock); ``partition`` is the target's home partition of
    ``pacing.stats``, so a timer can tell which entries the node actively owns. ``decided_at`` (this
    node's monotonic clock, not stored) is when the node last decided it: the decide period counts
    from there (:mod:`streams.node.cadence`).
    """

    state: TargetState
    partition: int
    received_ms: int
    decided_at: float = field(default=0.0, compare=False)

    @classmethod
    def new(cls, target_id: str, partition: int, now_ms: int) -> TargetEntry:
        """A target seen for the first time."""
        return cls(TargetState(target_id), partition, now_ms)

    def to_json(self) -> dict[str, Any]:
        """The changelog value (plain JSON)."""
        return {"state": self.state.to_dict(), "partition": self.partition, "received_ms": self.received_ms}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TargetEntry:
        """Read a changelog value (older values also held a ``decision`` key, ignored now)."""
        return cls(TargetState.from_dict(data["state"]), int(data["partition"]), int(data["received_ms"]))
