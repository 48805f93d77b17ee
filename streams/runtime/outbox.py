"""Records a process writes for one unit of work, confirmed by the broker before it counts.

At-least-once needs more than a flush before each commit: aiokafka's flush does not raise, so a
decision, DLQ, alarm or changelog record that failed to send would go unnoticed while the
source offsets were committed. An :class:`Outbox` keeps every send's delivery future;
:meth:`Outbox.confirm` waits for all of them and raises :class:`SendFailed` if any failed or
timed out. Only then does the caller acknowledge the source events (and so let their offsets
be committed), run the ``on_confirmed`` callbacks (caches of what was published) — or, on
failure, the ``on_failed`` ones (alarm transitions that never reached the topic are undone).

With a producer that takes whole batches (:class:`BatchingProducer`), the outbox fills one record
batch per partition and hands it over when it is full, at :meth:`Outbox.flush` or at
:meth:`Outbox.confirm`: sent and confirmed one at a time through Faust's producer a record costs
13 to 19 µs of CPU, in a batch 7.5 to 7.8 (``python -m tests.benchmarks.outbox_send``, load average 12),
and a pacing node sends a decision and a changelog record per target it decides.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, runtime_checkable

from aiokafka import AIOKafkaProducer


class SendFailed(Exception):
    """A record could not be written to Kafka; the work that produced it must be redone."""


class TransportProducer(Protocol):
    """The send call of Faust's transport producer (``app.producer``); :class:`AIOKafkaTransport` for aiokafka."""

    async def send(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None,
        timestamp: float | None, headers: Any,
    ) -> Awaitable[Any]: ...


@runtime_checkable
class BatchingProducer(Protocol):
    """A transport producer that also takes a whole record batch for one partition (aiokafka's
    ``create_batch``/``send_batch``), and says which partition a keyed record goes to."""

    async def send(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None,
        timestamp: float | None, headers: Any,
    ) -> Awaitable[Any]: ...

    def create_batch(self) -> Any: ...

    async def send_batch(self, batch: Any, topic: str, partition: int) -> Awaitable[Any]: ...

    async def partition_for(self, topic: str, key: bytes | None) -> int: ...


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
        self._batching = producer if isinstance(producer, BatchingProducer) else None
        self._timeout_s = timeout_s
        self._deliveries: list[tuple[str, Awaitable[Any]]] = []
        self._filling: dict[tuple[str, int], Any] = {}  # the batch being filled, per topic and partition
        self._records = 0
        self._on_confirmed: list[Callback] = []
        self._on_failed: list[Callback] = []

    def __len__(self) -> int:
        """Records sent through this outbox."""
        return self._records

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
        """Hand one record to the producer (or to the partition's batch); its delivery is checked by
        :meth:`confirm`."""
        if self._guard is not None:
            self._guard(topic)
        if on_failed is not None:
            self._on_failed.append(on_failed)
        try:
            if self._batching is not None:
                await self._add_to_batch(self._batching, topic, key, value, partition, headers)
            else:
                self._deliveries.append((topic, await self._producer.send(topic, key, value, partition, None,
                                                                          headers)))
        except SendFailed:
            raise
        except Exception as exc:  # the client refused it outright (unknown topic, buffer timeout …)
            raise SendFailed(f"cannot send to {topic}: {type(exc).__name__}: {exc}") from exc
        self._records += 1
        if on_confirmed is not None:
            self._on_confirmed.append(on_confirmed)

    async def _add_to_batch(self, producer: BatchingProducer, topic: str, key: bytes | None, value: bytes | None,
                            partition: int | None, headers: list[tuple[str, bytes]] | None) -> None:
        if partition is None:
            partition = await producer.partition_for(topic, key)
        place = (topic, partition)
        batch = self._filling.get(place)
        if batch is None:
            batch = self._filling[place] = producer.create_batch()
        if batch.append(timestamp=None, key=key, value=value, headers=headers or []) is None:  # full
            await self._hand_over(place)
            batch = self._filling[place] = producer.create_batch()
            if batch.append(timestamp=None, key=key, value=value, headers=headers or []) is None:
                del self._filling[place]
                raise SendFailed(f"cannot send to {topic}: a record of {len(value or b'')} bytes does not fit "
                                 "in a batch (producer max_batch_size)")

    async def _hand_over(self, place: tuple[str, int]) -> None:
        assert self._batching is not None
        batch = self._filling.pop(place)
        batch.close()
        topic, partition = place
        self._deliveries.append((topic, await self._batching.send_batch(batch, topic, partition)))

    async def flush(self) -> None:
        """Hand the batches being filled to the producer now (a no-op without batching).

        :meth:`confirm` does it too; a caller that confirms later flushes at the end of each step
        of work, so that its records do not wait for the confirmation to leave.
        """
        try:
            for place in list(self._filling):
                await self._hand_over(place)
        except Exception as exc:
            raise SendFailed(f"cannot send to {place[0]}: {type(exc).__name__}: {exc}") from exc

    async def confirm(self) -> None:
        """Wait until the broker acknowledged every record; :class:`SendFailed` otherwise.

        Every delivery's outcome is read, not only up to the first failure: a failed future
        nobody read is logged by asyncio as "Future exception was never retrieved" — after a
        broker restart, one line per record. Deliveries still open at the timeout are read
        whenever they end. The error names the first failure (in send order).
        """
        await self.flush()
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
                unit = "record batches" if self._batching is not None else "records"
                raise SendFailed(f"{len(pending)} {unit} not acknowledged within {self._timeout_s:.0f}s "
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
        """The work failed: undo what assumed these records would be published (batches not handed over
        are dropped)."""
        self._filling.clear()
        for callback in reversed(self._on_failed):
            callback()

    def discard(self) -> None:
        """Give up on this outbox without waiting: :meth:`abandon`, and read each delivery's outcome
        whenever it ends (a failure nobody reads is logged by asyncio)."""
        self.abandon()
        for _, delivery in self._deliveries:
            asyncio.ensure_future(delivery).add_done_callback(_read_outcome)
        self._deliveries = []

    async def settle(self) -> SendFailed | None:
        """:meth:`confirm`, or on failure :meth:`abandon`: for work that is simply done again later
        (a tick, a keepalive pass). Returns the failure, None when every record was acknowledged."""
        try:
            await self.confirm()
        except SendFailed as exc:
            self.abandon()
            return exc
        return None
