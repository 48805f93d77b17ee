"""The hand-over from the Faust agent to the node's loop: batches of taken events, one at a time.

The agent only takes batches from its stream and puts them here; the node's loop
(:meth:`streams.node.app.PacingNode.run`) is the one task that folds, decides, publishes and
checkpoints, so none of that needs a lock. The inbox holds at most ``capacity`` batches: a busy
loop makes the agent wait, and Faust's stream buffer — then the consumer's flow — pushes back, as
when the agent did the work itself. The loop also wakes without a batch: at a deadline (the next
tick, checkpoint or keepalive) or when :meth:`nudge` d (partitions moved, the worker stops).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

_Batch = TypeVar("_Batch")


class Inbox(Generic[_Batch]):
    """A small bounded queue of batches whose reader can wait with a deadline and be woken early."""

    def __init__(self, capacity: int = 1):
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._capacity = capacity
        self._batches: deque[_Batch] = deque()
        self._arrived = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()

    def __len__(self) -> int:
        return len(self._batches)

    async def put(self, batch: _Batch) -> None:
        """Hand a batch to the loop; wait while ``capacity`` batches are waiting already."""
        while len(self._batches) >= self._capacity:
            self._room.clear()
            await self._room.wait()
        self._batches.append(batch)
        self._arrived.set()

    def nudge(self) -> None:
        """Wake the loop now, without a batch (something it must handle changed)."""
        self._arrived.set()

    async def next(self, timeout_s: float) -> _Batch | None:
        """The next batch; None if none arrived within ``timeout_s`` or the loop was nudged.

        Without a batch waiting, it always gives the event loop a turn (even with no time to wait),
        so that the agent and Faust's consumer run between two of the loop's slices of work.
        """
        if not self._batches:
            if timeout_s > 0:
                try:
                    await asyncio.wait_for(self._arrived.wait(), timeout_s)
                except TimeoutError:
                    pass
            else:
                await asyncio.sleep(0)
        self._arrived.clear()
        return self.take_nowait()

    def take_nowait(self) -> _Batch | None:
        """The next waiting batch, or None."""
        if not self._batches:
            return None
        batch = self._batches.popleft()
        self._room.set()
        if self._batches:
            self._arrived.set()
        return batch

    def drain(self) -> list[_Batch]:
        """Every waiting batch (the loop gives up on them: stopping, partitions moving)."""
        batches = list(self._batches)
        self._batches.clear()
        self._room.set()
        return batches
