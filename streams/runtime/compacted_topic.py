"""A reader of a whole compacted topic held in memory by every process: the pattern of a global table.

Target definitions (``pacing.targets``) and the REST API's view of every decision
(``pacing.actiontargets``) are both read this way: no consumer group, from the beginning, then
followed for as long as the process runs. ``caught_up`` turns true once the topic has been read to
its end, so that the process does not act on half of it (publish default names, answer 404).
A failure (the broker went away or lost the topic) reads the topic again from the start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer

log = logging.getLogger(__name__)

RETRY_S = 1.0


class CompactedTopicReader:
    """Reads ``topic`` into memory in the background (see the module docstring); subclasses fold the records.

    ``options`` are the consumer's connection options (:func:`streams.runtime.kafka.consumer_options`):
    all the reader needs of the configuration.
    """

    #: Records taken per fetch.
    max_records: int | None = None

    def __init__(self, options: Mapping[str, Any], topic: str):
        self.options = options
        self.topic = topic
        self._task: asyncio.Task[None] | None = None
        self._caught_up = asyncio.Event()

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """Fold one record (an empty value is a tombstone)."""
        raise NotImplementedError

    async def after_batch(self) -> None:
        """Called after each fetched batch was applied."""

    def on_caught_up(self) -> None:
        """Called once, when the topic was first read to its end."""

    @property
    def caught_up(self) -> bool:
        """True once every record on the topic when following started has been read."""
        return self._caught_up.is_set()

    async def wait_caught_up_for(self, timeout_s: float) -> bool:
        """Wait (at most ``timeout_s``) until the topic was read to its end; whether it was."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._caught_up.wait(), timeout_s)
        return self.caught_up

    async def start(self) -> None:
        """Start following the topic in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self._follow(), name=f"read {self.topic}")

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
            except Exception as exc:
                log.warning("reading %s failed (%s: %s); reading it again from the start in %.0fs",
                            self.topic, type(exc).__name__, exc, RETRY_S)
                await asyncio.sleep(RETRY_S)

    async def _consume(self) -> None:
        consumer = AIOKafkaConsumer(self.topic, group_id=None, auto_offset_reset="earliest",
                                    enable_auto_commit=False, **self.options)
        await consumer.start()
        try:
            apply = self.apply
            while True:
                batches = await consumer.getmany(timeout_ms=500, max_records=self.max_records)
                for records in batches.values():
                    for record in records:
                        apply(record.key, record.value)
                await self.after_batch()
                if not self._caught_up.is_set() and await read_to_the_end(consumer):
                    self.on_caught_up()
                    self._caught_up.set()
        finally:
            await consumer.stop()


async def read_to_the_end(consumer: AIOKafkaConsumer) -> bool:
    """Every assigned partition read up to the high watermark of its last fetch response.

    The high watermark, not ListOffsets: the embedded broker under-reports the latter.
    """
    assigned = consumer.assignment()
    if not assigned:
        return False
    for tp in assigned:
        highwater = consumer.highwater(tp)
        if highwater is None or await consumer.position(tp) < highwater:
            return False
    return True
