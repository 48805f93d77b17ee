"""Keeps a :class:`~streams.api.directory.TargetDirectory` current from ``pacing.actiontargets``.

Every worker reads the whole compacted topic (:class:`~streams.runtime.compacted_topic.CompactedTopicReader`,
as the node reads ``pacing.targets``): the newest decision of every target, whoever owns it. ``caught_up`` turns
true once the topic was read to its end, so a worker that just started does not answer 404 for
targets it has not read yet (its ``/readyz`` on the API port says 503 until then).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from streams.api.directory import TargetDirectory
from streams.runtime.compacted_topic import CompactedTopicReader

log = logging.getLogger(__name__)

#: Changed decisions folded into the consolidated sums at a time (~2 ms) before requests get their turn.
REFRESH_SLICE = 200


class DecisionFeed(CompactedTopicReader):
    """A background reader of ``pacing.actiontargets`` (``topic``) folding every record into a directory.

    ``options`` connect the consumer (:func:`streams.runtime.kafka.consumer_options`).
    """

    max_records = 1000

    def __init__(self, options: Mapping[str, Any], topic: str, directory: TargetDirectory):
        super().__init__(options, topic)
        self.directory = directory

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        self.directory.apply_decision(key, value)

    async def after_batch(self) -> None:
        if self.directory.sums_wanted():
            await self._refresh_sums()

    def on_caught_up(self) -> None:
        log.info("API: read the decisions of %d targets", len(self.directory))

    async def _refresh_sums(self) -> None:
        """Fold the changed decisions into the consolidated sums, a slice at a time, requests in between."""
        left = self.directory.refresh_sums(REFRESH_SLICE)
        for _ in range(left // REFRESH_SLICE + 1):
            if not left:
                return
            await asyncio.sleep(0)
            left = self.directory.refresh_sums(REFRESH_SLICE)
