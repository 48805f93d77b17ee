"""A deployment topic that vanishes under a worker on Apache Kafka: alarm, then stop with its own status.

On Apache Kafka topics do not vanish by themselves: a missing ``pacing.*`` topic (or one created
again with another partition count, e.g. auto-created by a client) is an operator incident. Going
on would mean reading nothing, or routing targets to the wrong partitions. As Kafka Streams does
with ``MissingSourceTopicException``, the worker stops: it raises ``PacingTopicsMissing`` (when
the alarms topic is still there) and exits with :data:`EXIT_TOPICS_MISSING`, so the supervisor
sees why and restarts it; a restarted worker's start-up creates what is missing
(:func:`streams.runtime.topics.ensure_topics`). The stop leaves a mark in the worker's data
folder, so that the restarted worker clears the alarm at its first check that finds every topic
in place (a worker whose folder was lost leaves it for an operator to clear). Only the embedded
broker, which loses its topics on restart, gets a recovery in place instead
(:mod:`streams.dev_broker.topic_watch`); this guard runs where that is not attached.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

log = logging.getLogger(__name__)

#: The worker's exit status when it stopped because deployment topics went missing.
EXIT_TOPICS_MISSING = 3

ALARM_TIMEOUT_S = 5.0
"""How long the alarm may take before the worker stops anyway (the alarms topic may be gone too)."""


class TopicsMissing(RuntimeError):
    """Deployment topics are gone or wrong; the worker stops (the message lists them)."""


class TopicGuard:
    """Checks the deployment's topics; on a problem found by two checks in a row, alarms and stops the worker.

    ``problems`` lists what is wrong with the topics (empty: all in place); ``raise_alarm`` publishes
    ``PacingTopicsMissing`` and ``clear_alarm`` its end; ``stop`` ends the worker with the given
    reason; ``mark`` is the file that says a stop is the reason the worker (re)started.
    """

    def __init__(self, problems: Callable[[], Awaitable[list[str]]],
                 raise_alarm: Callable[[list[str]], Awaitable[object]],
                 clear_alarm: Callable[[str], Awaitable[object]],
                 stop: Callable[[BaseException], Awaitable[object]], mark: Path):
        self._problems = problems
        self._raise_alarm = raise_alarm
        self._clear_alarm = clear_alarm
        self._stop = stop
        self._mark = mark
        #: What was found missing or wrong, once the guard stopped the worker.
        self.lost: list[str] = []
        self._suspected: list[str] = []  # what the previous check found: a stop needs two checks in a row

    async def check(self) -> None:
        """One check; a cluster that does not answer is not a lost topic (the next check asks again)."""
        if self.lost:
            return
        try:
            problems = await self._problems()
        except Exception as exc:
            log.warning("topic check failed: %s", exc)
            return
        if not problems:
            self._suspected = []
            if self._mark.exists():
                lost = self._mark.read_text(encoding="utf-8")
                if await self._clear_alarm(f"topics back in place after: {lost}"):
                    self._mark.unlink(missing_ok=True)
            return
        if problems != self._suspected:  # seen once: a broker restarting in the cluster may answer wrongly
            log.warning("deployment topics look missing or wrong: %s; checking again", "; ".join(problems))
            self._suspected = problems
            return
        self.lost = problems
        log.critical("deployment topics missing or wrong: %s; stopping (exit status %d)",
                     "; ".join(problems), EXIT_TOPICS_MISSING)
        self._mark.parent.mkdir(parents=True, exist_ok=True)
        self._mark.write_text("; ".join(problems), encoding="utf-8")
        try:
            await asyncio.wait_for(self._raise_alarm(problems), ALARM_TIMEOUT_S)
        except Exception as exc:
            log.error("could not publish PacingTopicsMissing: %s", exc)
        await self._stop(TopicsMissing("; ".join(problems)))
