"""The ownership fence: which of two writes for one target wins, whatever order they arrive in.

Every decision and every table (changelog) entry a worker writes carries its *ownership epoch*:
the worker group's generation, plus one, when the worker was assigned the target's partition
(:mod:`streams.node.ownership`). Kafka raises the generation at every rebalance, so a worker that
took a partition over writes a higher epoch than the worker it took it from, and a write from
the old owner — paused past its session, cut off, or a retried send delivered late — carries an
older one. Where writes are applied (the sink before the endpoint, the table restore) a write
with an older epoch than the newest applied for that target is dropped (:func:`supersedes`).

One exception keeps a fence from holding forever: a group whose generation started again (the
group deleted after ``offsets.retention.minutes`` without members, or a broker that lost its
state) writes low epochs again. An older epoch is therefore accepted when it was written more
than ``window_ms`` after the newest write of the higher epoch: a live owner re-publishes every
target at least every ``worker.keepalive_s``, so within the window (two keepalives by default)
the fence always holds against the owner it protects. The configuration refuses a keepalive longer
than half the window (``worker.keepalive_s`` ≤ 30), which would let a live owner's newest write age
out of it.
"""

from __future__ import annotations

from dataclasses import dataclass

#: How long past the newest write of an epoch an older epoch stays fenced (two default keepalives).
FENCE_WINDOW_MS = 60_000


def supersedes(applied_epoch: int, applied_at_ms: int, epoch: int, at_ms: int,
               window_ms: int = FENCE_WINDOW_MS) -> bool:
    """Whether a write (``epoch``, written at ``at_ms``) may replace the applied one.

    A write of the same or a newer epoch always may; an older epoch only when it was written more
    than ``window_ms`` after the applied write (the group's generation started again).
    """
    return epoch >= applied_epoch or at_ms > applied_at_ms + window_ms


@dataclass(slots=True)
class _Applied:
    epoch: int
    at_ms: int


class EpochFence:
    """Per target: the newest epoch applied and when its newest write was made (the sink's fence)."""

    def __init__(self, window_ms: int = FENCE_WINDOW_MS):
        self._window_ms = window_ms
        self._applied: dict[str, _Applied] = {}

    def __len__(self) -> int:
        return len(self._applied)

    def admit(self, target_id: str, epoch: int, at_ms: int) -> bool:
        """Whether the write may be applied; if so it becomes the target's applied write."""
        applied = self._applied.get(target_id)
        if applied is None:
            self._applied[target_id] = _Applied(epoch, at_ms)
            return True
        if not supersedes(applied.epoch, applied.at_ms, epoch, at_ms, self._window_ms):
            return False
        if epoch == applied.epoch:
            applied.at_ms = max(applied.at_ms, at_ms)
        else:  # a newer epoch, or an older one past the window (the generation started again)
            applied.epoch, applied.at_ms = epoch, at_ms
        return True

    def learn(self, target_id: str, epoch: int, at_ms: int) -> None:
        """Take in a write applied before (read again from the log): raises the fence, never lowers it."""
        self.admit(target_id, epoch, at_ms)

    def forget(self, target_ids: set[str] | None = None) -> None:
        """Forget targets (all by default): their log started again (a topic recreated)."""
        if target_ids is None:
            self._applied.clear()
        else:
            for target_id in target_ids:
                self._applied.pop(target_id, None)
