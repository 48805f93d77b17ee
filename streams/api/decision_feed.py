"""Keeps a :class:`~streams.api.directory.TargetDirectory` current from ``pacing.actiontargets``.

Every worker reads the whole compacted topic (no consumer group, from the beginning), as the node
reads ``pacing.targets``: the newest decision of every target, whoever owns it. ``caught_up`` turns
true once the topic was read to its end, so a worker that just started does not answer 404 for
targets it has not read yet (its ``/readyz`` on the API port says 503 until then).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka import AIOKafkaConsumer

from streams.api.directory import TargetDirectory
from streams.runtime.config import Settings
from streams.runtime.kafka import consumer_options
from streams.runtime.topics import topic_names

log = logging.getLogger(__name__)

#: Changed decisions folded into the consolidated sums at a time (~2 ms) before requests get their turn.
REFRESH_SLICE = 200


class DecisionFeed:
    """A background consumer of ``pacing.actiontargets`` folding every record into a directory."""

    def __init__(self, settings: Settings, directory: TargetDirectory):
        self.settings = settings
        self.directory = directory
        self.records = 0
        self._task: asyncio.Task[None] | None = None
        self._caught_up = asyncio.Event()

    @property
    def caught_up(self) -> bool:
        """True once every decision on the topic when following started has been read."""
        return self._caught_up.is_set()

    async def wait_caught_up(self, timeout_s: float) -> bool:
        """Wait (at most ``timeout_s``) until the topic was read to its end; whether it was."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._caught_up.wait(), timeout_s)
        return self.caught_up

    async def start(self) -> None:
        """Start following the topic in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self._follow(), name="api-decision-feed")

    async def stop(self) -> None:
        """Stop following the topic."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _follow(self) -> None:
        while True:
            try:
                await self._consume()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker went away or lost the topic: read it again, from the start
                log.warning("reading pacing.actiontargets for the API failed (%s: %s); retrying",
                            type(exc).__name__, exc)
                await asyncio.sleep(1.0)

    async def _consume(self) -> None:
        consumer = AIOKafkaConsumer(
            topic_names(self.settings).actiontargets, group_id=None, auto_offset_reset="earliest",
            enable_auto_commit=False, **consumer_options(self.settings),
        )
        await consumer.start()
        try:
            apply = self.directory.apply_decision
            while True:
                batches = await consumer.getmany(timeout_ms=500, max_records=1000)
                for records in batches.values():
                    for record in records:
                        apply(record.key, record.value)
                    self.records += len(records)
                if self.directory.sums_wanted():
                    await self._refresh_sums()
                if not self._caught_up.is_set() and await _at_end(consumer):
                    log.info("API: read the decisions of %d targets", len(self.directory))
                    self._caught_up.set()
        finally:
            await consumer.stop()


    async def _refresh_sums(self) -> None:
        """Fold the changed decisions into the consolidated sums, a slice at a time, requests in between."""
        left = self.directory.refresh_sums(REFRESH_SLICE)
        for _ in range(left // REFRESH_SLICE + 1):
            if not left:
                return
            await asyncio.sleep(0)
            left = self.directory.refresh_sums(REFRESH_SLICE)


async def _at_end(consumer: AIOKafkaConsumer) -> bool:
    """Every assigned partition read up to the high watermark of its last fetch (see TargetDefinitions)."""
    assigned = consumer.assignment()
    if not assigned:
        return False
    for tp in assigned:
        highwater = consumer.highwater(tp)
        if highwater is None or await consumer.position(tp) < highwater:
            return False
    return True
