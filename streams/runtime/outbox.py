"""Records a process writes for one unit of work, confirmed by the broker before it counts.

At-least-once needs more than a flush before each commit: aiokafka's flush does not raise, so a
decision, DLQ, alarm or changelog record that failed to send would go unnoticed while the
source offsets were committed. An :class:`Outbox` keeps every send's delivery future;
:meth:`Outbox.confirm` waits for all of them and raises :class:`SendFailed` if any failed or
timed out. Only then does the caller acknowledge the source events (and so let their offsets
be committed), run the ``on_confirmed`` callbacks (caches of what was published) — or, on
failure, the ``on_failed`` ones (alarm transitions that never reached the topic are undone).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer


class SendFailed(Exception):
    """A record could not be written to Kafka; the work that produced it must be redone."""


class TransportProducer(Protocol):
    """The send call of Faust's transport producer (``app.producer``); :class:`AIOKafkaTransport` for aiokafka."""

    async def send(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None,
        timestamp: float | None, headers: Any,
    ) -> Awaitable[Any]: ...


class AIOKafkaTransport:
    """An aiokafka producer (the sink's) behind the :class:`TransportProducer` call an Outbox makes."""

    def __init__(self, producer: AIOKafkaProducer):
        self._producer = producer

    async def send(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None,
        timestamp: float | None, headers: Any,
    ) -> Awaitable[Any]:
        """Hand the record to the producer; returns its delivery future."""
        timestamp_ms = None if timestamp is None else int(timestamp * 1000)
        return await self._producer.send(topic, value=value, key=key, partition=partition,
                                         timestamp_ms=timestamp_ms, headers=headers)


Callback = Callable[[], None]


def _read_outcome(future: asyncio.Future[Any]) -> BaseException | None:
    """A finished delivery's failure (None: acknowledged), marking it as read; a cancelled one's CancelledError."""
    if future.cancelled():
        return asyncio.CancelledError()
    return future.exception()


class Outbox:
    """The sends of one batch or tick, and what to do once they are confirmed or have failed."""

    def __init__(self, producer: TransportProducer, timeout_s: float,
                 guard: Callable[[str], None] | None = None):
        self._producer = producer
        self._guard = guard  # raises SendFailed to refuse a record for a topic before it is sent
        self._timeout_s = timeout_s
        self._deliveries: list[tuple[str, Awaitable[Any]]] = []
        self._on_confirmed: list[Callback] = []
        self._on_failed: list[Callback] = []

    def __len__(self) -> int:
        return len(self._deliveries)

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        *,
        partition: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
        on_confirmed: Callback | None = None,
        on_failed: Callback | None = None,
    ) -> None:
        """Hand one record to the producer; its delivery is checked by :meth:`confirm`."""
        if self._guard is not None:
            self._guard(topic)
        if on_failed is not None:
            self._on_failed.append(on_failed)
        try:
            delivery = await self._producer.send(topic, key, value, partition, None, headers)
        except Exception as exc:  # the client refused it outright (unknown topic, buffer timeout …)
            raise SendFailed(f"cannot send to {topic}: {type(exc).__name__}: {exc}") from exc
        self._deliveries.append((topic, delivery))
        if on_confirmed is not None:
            self._on_confirmed.append(on_confirmed)

    async def confirm(self) -> None:
        """Wait until the broker acknowledged every record; :class:`SendFailed` otherwise.

        Every delivery's outcome is read, not only up to the first failure: a failed future
        nobody read is logged by asyncio as "Future exception was never retrieved" — after a
        broker restart, one line per record. Deliveries still open at the timeout are read
        whenever they end. The error names the first failure (in send order).
        """
        if self._deliveries:
            futures = [asyncio.ensure_future(delivery) for _, delivery in self._deliveries]
            # Only the deliveries still in flight are waited on: most are acknowledged by the time a
            # tick confirms, and asyncio.wait costs a callback added and removed per future.
            in_flight = [future for future in futures if not future.done()]
            pending: set[asyncio.Future[Any]] = set()
            if in_flight:
                _, pending = await asyncio.wait(in_flight, timeout=self._timeout_s)
            for future in pending:
                future.add_done_callback(_read_outcome)
            failures = [(topic, exc) for (topic, _), future in zip(self._deliveries, futures, strict=True)
                        if future not in pending and (exc := _read_outcome(future)) is not None]
            if pending:
                topics = sorted({topic for (topic, _), future in zip(self._deliveries, futures, strict=True)
                                 if future in pending})
                raise SendFailed(f"{len(pending)} records not acknowledged within {self._timeout_s:.0f}s "
                                 f"(topics {', '.join(topics)})")
            if failures:
                topic, exc = failures[0]
                if isinstance(exc, asyncio.CancelledError):
                    raise exc  # as before: a cancelled delivery (the producer stopping) cancels the caller
                more = f" (and {len(failures) - 1} more failed)" if len(failures) > 1 else ""
                raise SendFailed(f"cannot send to {topic}: {type(exc).__name__}: {exc}{more}") from exc
        for callback in self._on_confirmed:
            callback()

    def abandon(self) -> None:
        """The work failed: undo what assumed these records would be published."""
        for callback in reversed(self._on_failed):
            callback()

    async def settle(self) -> SendFailed | None:
        """:meth:`confirm`, or on failure :meth:`abandon`: for work that is simply done again later
        (a tick, a keepalive pass). Returns the failure, None when every record was acknowledged."""
        try:
            await self.confirm()
        except SendFailed as exc:
            self.abandon()
            return exc
        return None
