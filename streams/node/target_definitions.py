"""Pacing target definitions from the compacted topic ``pacing.targets``, applied without restart.

Every worker reads the whole topic (no consumer group, from the beginning) into memory — a
global table: definitions are few, small, and needed by whichever worker owns the target.
A record with an empty value deletes the definition (a tombstone).

A node publishes no decision before it has read the topic to its end (:meth:`wait_caught_up`):
otherwise, after a restart, targets would first go out with default names and service levels
and then flap back to their definitions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from schemas import DecodeError, decode_target_config
from streams.runtime.compacted_topic import CompactedTopicReader

log = logging.getLogger(__name__)


class TargetDefinitions(CompactedTopicReader):
    """The latest definition per target id, kept current by a background consumer.

    ``options`` connect the consumer (:func:`streams.runtime.kafka.consumer_options`), ``topic`` is the
    deployment's ``pacing.targets`` and ``tenant`` its tenant: a definition for another tenant is ignored.
    """

    def __init__(self, options: Mapping[str, Any], topic: str, tenant: str):
        super().__init__(options, topic)
        self.tenant = tenant
        self._definitions: dict[str, dict[str, Any]] = {}
        self._changed: set[str] = set()
        self._listeners: list[Callable[[str, bool], None]] = []

    async def wait_caught_up(self, warn_every_s: float = 10.0) -> None:
        """Wait until the topic has been read to its end (logging while it takes long)."""
        while not await self.wait_caught_up_for(warn_every_s):
            log.warning("still reading pacing target definitions; no decision is published until done")

    def get(self, target_id: str) -> dict[str, Any] | None:
        """The definition of ``target_id``, or None to use the configured defaults."""
        return self._definitions.get(target_id)

    def ids(self) -> Iterable[str]:
        """The ids of every defined target."""
        return self._definitions.keys()

    def listen(self, listener: Callable[[str, bool], None]) -> None:
        """Call ``listener(target_id, defined)`` on every change from now on (the REST API's index)."""
        self._listeners.append(listener)

    def _notify(self, target_id: str, defined: bool) -> None:
        for listener in self._listeners:
            listener(target_id, defined)

    def take_changed(self) -> set[str]:
        """Target ids whose definition changed since the last call (their decisions are due now)."""
        changed, self._changed = self._changed, set()
        return changed

    def __len__(self) -> int:
        return len(self._definitions)

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """Fold one record of ``pacing.targets`` (a tombstone deletes)."""
        if not value:
            if key:
                target_id = key.decode(errors="replace")
                if self._definitions.pop(target_id, None) is not None:
                    self._changed.add(target_id)
                    self._notify(target_id, False)
            return
        try:
            config = decode_target_config(value)
        except DecodeError as exc:
            log.warning("ignored pacing target definition %r: %s", key, exc.reason)
            return
        if config.tenant != self.tenant:
            log.warning("ignored pacing target definition %s for tenant %r", config.target_id, config.tenant)
            return
        self._definitions[config.target_id] = config.model_dump()
        self._changed.add(config.target_id)
        self._notify(config.target_id, True)

    def on_caught_up(self) -> None:
        log.info("read %d pacing target definitions", len(self._definitions))
