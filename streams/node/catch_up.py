"""Whether this worker has read each of its partitions up to where the log ended when it got them.

A worker that takes partitions over restores their targets' state from the changelog: the state
of the previous owner's last checkpoint, which can be older than the decisions that owner had
already published from events it took after that checkpoint (up to
``worker.checkpoint_interval_s`` of them, when it died or was paused before writing them). Those
events are replayed from the committed offset. A keepalive published from the restored state
before the replay would send the endpoint back to the older decision until the replayed events
are decided — and so would a decision from the first replayed batches. So no decision of a newly
assigned partition goes out until the intake has taken it up to the end its log had when it was
first looked at after the assignment (:meth:`CatchUp.reached`, asked by the decision publisher;
a change decided meanwhile is held, and published once it is reached); a partition with nothing
to replay is found caught up by the keepalive's check of the group's committed offset
(:meth:`CatchUp.caught_up`; not the consumer's position, which runs ahead of what was taken as
soon as records are fetched).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from faust.types import TP


class CatchUp:
    """Per assigned partition: the log end to reach, and whether the intake has reached it."""

    def __init__(self, topic: str, taken: Mapping[int, int] | None = None,
                 highwater: Callable[[TP], int | None] | None = None):
        self._topic = topic
        self._taken = taken if taken is not None else {}  # the intake's next offset per partition
        self._highwater = highwater
        self._ends: dict[int, int] = {}
        self._caught_up: set[int] = set()

    def assigned(self, *_: object, **__: object) -> None:
        """Partitions moved: every partition must be caught up again (its end is read at the next check)."""
        self._ends.clear()
        self._caught_up.clear()

    async def on_assigned_signal(self, *args: object, **kwargs: object) -> None:
        """:meth:`assigned` as a Faust signal receiver."""
        self.assigned(*args, **kwargs)

    def _end(self, partition: int, highwater: Callable[[TP], int | None]) -> int | None:
        end = self._ends.get(partition)
        if end is None:
            known = highwater(TP(self._topic, partition))
            if known is None or known < 0:
                return None  # not fetched yet: its end is unknown
            end = self._ends[partition] = known
        return end

    def reached(self, partition: int) -> bool:
        """Whether the intake has taken ``partition`` up to its end at assignment (from what it took)."""
        if partition in self._caught_up:
            return True
        if self._highwater is None:
            return True  # nothing to compare with (a node without a consumer: tests)
        end = self._end(partition, self._highwater)
        if end is None or self._taken.get(partition, 0) < end:
            return False
        self._caught_up.add(partition)
        return True

    async def caught_up(self, owned: set[int], taken: Mapping[int, int], highwater: Callable[[TP], int | None],
                        committed: Callable[[TP], Awaitable[int | None]]) -> set[int]:
        """The ``owned`` partitions read up to their end at assignment (``taken``: the intake's next
        offsets; ``highwater``: the consumer's; ``committed``: the group's committed offset)."""
        for partition in owned - self._caught_up:
            tp = TP(self._topic, partition)
            end = self._end(partition, highwater)
            if end is None:
                continue
            read = max(taken.get(partition, 0), await committed(tp) or 0)
            if read >= end:
                self._caught_up.add(partition)
        return owned & self._caught_up
