"""A Faust table whose changelog partition is given explicitly by the caller.

Faust derives the changelog partition of a write from the *current event*, which does not
exist when a stream is consumed in batches (``take_events``). Pacing nodes aggregate a batch
per target and write each target once, naming the source partition of the target's events, so
the changelog stays co-partitioned with ``pacing.stats`` and recovery after a rebalance
restores each target on the worker that owns it.
"""

from __future__ import annotations

from typing import Any

from faust.tables.table import Table


class PinnedPartitionTable(Table):
    """``put(key, value, partition)`` writes the changelog record to that partition."""

    _pinned_partition: int | None = None

    def put(self, key: Any, value: Any, partition: int) -> None:
        """Set ``key`` and send its changelog record to ``partition``."""
        self._pinned_partition = partition
        try:
            self[key] = value
        finally:
            self._pinned_partition = None

    def partition_for_key(self, key: Any) -> int | None:
        """The pinned partition during ``put``; Faust's rule otherwise."""
        if self._pinned_partition is not None:
            return self._pinned_partition
        return super().partition_for_key(key)
