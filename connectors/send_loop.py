"""When the sink posts: batches by count, bytes and linger time, a periodic full refresh, retries with backoff.

:class:`SendLoop` takes batches from the :class:`DeliveryLedger` — as soon as
``batch_max_entities`` are ready, or ``linger_ms`` after the oldest pending decision arrived,
and every ``full_refresh_s`` every target the endpoint holds again — hands each to the
:class:`~connectors.target_writer.ActionTargetWriter` and has the
:class:`~connectors.settlement.Settlement` book the outcomes. After a failed attempt it waits
with exponential backoff and full jitter, never sooner than the server's ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from connectors.backoff import Backoff
from connectors.delivery import DeliveryLedger
from connectors.settlement import Settlement
from connectors.target_writer import ActionTargetWriter
from streams.runtime.config import SinkSettings
from streams.runtime.metrics import SinkMetrics

log = logging.getLogger(__name__)


class SendLoop:
    """The sink's sending task (:meth:`run`); the consuming side calls :meth:`note_pending` and :meth:`wake`."""

    def __init__(self, sink: SinkSettings, ledger: DeliveryLedger, settlement: Settlement, metrics: SinkMetrics):
        self.settings = sink
        self.ledger = ledger
        self.settlement = settlement
        self.metrics = metrics
        self._wake = asyncio.Event()
        self._oldest_pending_at: float | None = None
        self._next_refresh = time.monotonic() + sink.full_refresh_s

    def note_pending(self) -> None:
        """A decision now waits for delivery: the linger time runs from the oldest one waiting."""
        if self._oldest_pending_at is None:
            self._oldest_pending_at = time.monotonic()

    def wake(self) -> None:
        """New decisions were booked: see whether a batch is ready."""
        self._wake.set()

    async def run(self, writer: ActionTargetWriter) -> None:
        """Post batches through ``writer`` until cancelled."""
        sink = self.settings
        self._next_refresh = time.monotonic() + sink.full_refresh_s
        backoff = Backoff(sink.retry_initial_backoff_s, sink.retry_max_backoff_s)
        while True:
            await self._wait_for_batch()
            batch = self.ledger.take_batch(sink.batch_max_entities, sink.batch_max_bytes)
            if not batch:
                self._oldest_pending_at = None
                continue
            retry_after = self.settlement.settle(await writer.write(batch))
            self._oldest_pending_at = time.monotonic() if self.ledger.ready_count else None
            self.metrics.pending.set(self.ledger.pending_count)
            if retry_after is None:
                backoff.reset()
                continue
            # Full jitter on an exponential ceiling; the server's Retry-After is a floor.
            delay = backoff.next_delay(retry_after)
            log.warning("bulk request failed; retrying in %.1fs (%d targets pending)",
                        delay, self.ledger.pending_count)
            await asyncio.sleep(delay)

    async def _wait_for_batch(self) -> None:
        """Until a full batch is ready, the linger time of the oldest pending record passed, or a refresh is due."""
        sink = self.settings
        while True:
            now = time.monotonic()
            if now >= self._next_refresh:
                queued = self.ledger.schedule_refresh()
                self._next_refresh = now + sink.full_refresh_s
                if queued:
                    log.info("full refresh: %d targets queued", queued)
                    self._oldest_pending_at = self._oldest_pending_at or now
            ready = self.ledger.ready_count
            if ready >= sink.batch_max_entities:
                return
            if ready and self._oldest_pending_at is not None:
                wait = self._oldest_pending_at + sink.linger_ms / 1000 - now
                if wait <= 0:
                    return
            else:
                wait = self._next_refresh - now
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=max(0.01, min(wait, self._next_refresh - now)))
