"""Pacing target definitions from the compacted topic ``pacing.targets``, applied without restart.

Every worker reads the whole topic (no consumer group, from the beginning) into memory — a
global table: definitions are few, small, and needed by whichever worker owns the target.
A record with an empty value deletes the definition (a tombstone).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiokafka import AIOKafkaConsumer

from schemas import DecodeError, decode_target_config
from streams.config import Settings
from streams.kafka import client_options
from streams.topics import topic_names

log = logging.getLogger(__name__)


class TargetDefinitions:
    """The latest definition per target id, kept current by a background consumer."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._definitions: dict[str, dict[str, Any]] = {}
        self._task: asyncio.Task[None] | None = None
        self.rejected = 0

    def get(self, target_id: str) -> dict[str, Any] | None:
        """The definition of ``target_id``, or None to use the configured defaults."""
        return self._definitions.get(target_id)

    def __len__(self) -> int:
        return len(self._definitions)

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """Fold one record of ``pacing.targets`` (a tombstone deletes)."""
        if not value:
            if key:
                self._definitions.pop(key.decode(errors="replace"), None)
            return
        try:
            config = decode_target_config(value)
        except DecodeError as exc:
            self.rejected += 1
            log.warning("ignored pacing target definition %r: %s", key, exc.reason)
            return
        if config.tenant != self.settings.tenant:
            self.rejected += 1
            log.warning("ignored pacing target definition %s for tenant %r", config.target_id, config.tenant)
            return
        self._definitions[config.target_id] = config.model_dump()

    async def start(self) -> None:
        """Start following the topic in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self._follow(), name="target-definitions")

    async def stop(self) -> None:
        """Stop following the topic."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _follow(self) -> None:
        consumer = AIOKafkaConsumer(
            topic_names(self.settings).targets, group_id=None, auto_offset_reset="earliest",
            enable_auto_commit=False, **client_options(self.settings),
        )
        await consumer.start()
        try:
            async for record in consumer:
                self.apply(record.key, record.value)
        finally:
            await consumer.stop()
