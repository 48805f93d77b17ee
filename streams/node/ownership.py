"""This worker's claim on its partitions: the ownership epoch it writes, and whether it still holds.

The *epoch* is one more than the worker group's generation when this worker was last assigned
partitions (Tansu's first generation is 0, and epoch 0 marks records written before epochs):
Kafka raises the generation at every rebalance, so whoever takes a partition over writes a higher epoch than
the worker it took it from. Every decision and table entry carries it, and the sink and the
table restore drop a write with an older epoch than one they applied for the target
(:mod:`streams.runtime.fencing`).

The *lease* stops a worker writing as soon as it may have lost its partitions, before it learns
so: it holds while the consumer's generation is still the epoch, the broker still knows its
member id, and the last heartbeat the coordinator acknowledged was *sent* less than the session
timeout ago (the broker renewed the session after that). A worker paused past its session
(SIGSTOP, a long GC pause, a frozen VM) resumes with an expired lease, so its timers publish
nothing from the state they held before the pause; a worker cut off from the broker stops
writing within the session timeout, before the broker hands its partitions to another. Records
already handed to the producer before that are still delivered when the link heals — the epoch
fences those.

While partitions move (Faust has suspended the flow) no decision goes out either
(:meth:`Ownership.may_publish`): the checkpoint Faust waits for at a revocation holds the state of
every decision published before it, so the next owner restores at least that state, but a
decision from events taken after it would be newer than what the next owner starts from, and its
first keepalive would send the target back. Changelog writes stay allowed then: the revocation's
checkpoint is one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import faust

from streams.node.faust_compat import consumption_suspended, group_membership, install_heartbeat_clock
from streams.runtime.outbox import SendFailed

log = logging.getLogger(__name__)


class Fenced(SendFailed):
    """A write refused because this worker may no longer own the partition it is for."""


class Ownership:
    """The epoch this worker writes and its lease (see the module docstring)."""

    def __init__(self, app: faust.App, session_timeout_s: float, guarded_topics: Callable[[], set[str]],
                 clock: Callable[[], float] = time.monotonic):
        install_heartbeat_clock()
        self._app = app
        self._session_timeout_s = session_timeout_s
        self._guarded_topics = guarded_topics
        self._clock = clock
        self.epoch = 0
        self._assigned_at: float | None = None
        self._lapsed_logged = False

    def on_assigned(self, *_: Any, **__: Any) -> None:
        """Partitions were assigned: the epoch is the generation they were assigned in."""
        membership = group_membership(self._app)
        if membership is None:
            return
        generation, _, _ = membership
        if generation >= 0:  # aiokafka's -1: not in a generation
            if generation + 1 != self.epoch:
                log.info("ownership epoch %d (group generation %d at assignment)", generation + 1, generation)
            self.epoch = generation + 1
            self._assigned_at = self._clock()
            self._lapsed_logged = False

    async def on_assigned_signal(self, *args: Any, **kwargs: Any) -> None:
        """:meth:`on_assigned` as a Faust signal receiver."""
        self.on_assigned(*args, **kwargs)

    def lapsed(self) -> str | None:
        """Why this worker may no longer own its partitions (None: the lease holds)."""
        membership = group_membership(self._app)
        if membership is None or self._assigned_at is None:
            return "not assigned partitions yet"
        generation, member_known, heartbeat_ok_at = membership
        if not member_known:
            return "the group coordinator no longer knows this member"
        if generation + 1 != self.epoch:
            return f"the group moved from generation {self.epoch - 1} to {generation}"
        renewed = max(self._assigned_at, heartbeat_ok_at or 0.0)
        silent = self._clock() - renewed
        if silent >= self._session_timeout_s:
            return f"no heartbeat acknowledged for {silent:.1f}s (session timeout {self._session_timeout_s:.0f}s)"
        return None

    def holds(self) -> bool:
        """Whether this worker may write for its partitions now; logs the first lapse."""
        reason = self.lapsed()
        if reason is None:
            self._lapsed_logged = False
            return True
        if not self._lapsed_logged:
            self._lapsed_logged = True
            log.warning("not writing decisions or table entries: %s", reason)
        return False

    def may_publish(self) -> bool:
        """Whether a decision may go out now: the lease holds and partitions are not moving."""
        return self.holds() and not consumption_suspended(self._app)

    def guard(self, topic: str) -> None:
        """Refuse a write to a fenced topic while the lease does not hold (:class:`Fenced`)."""
        if topic in self._guarded_topics():
            reason = self.lapsed()
            if reason is not None:
                self.holds()  # logs it once
                raise Fenced(f"not written to {topic}: this worker may no longer own the partition: {reason}")
