"""What the sink writes to Kafka beside its deliveries — error records, alarms, metrics — retried until taken.

The send loop must never wait for Kafka: a broker that restarts would stop the delivery of the
decisions the sink already holds, and a write Kafka refuses (Tansu answers ``UnknownError`` to
the first write into a topic recreated after a loss) would end the process. So the sink queues
such writes here and goes on. One task hands what is queued to the producer — one
:class:`Outbox` per record, so that exactly the records Kafka refused are retried — and retries
with exponential backoff and full jitter, like the bulk requests, for as long as it takes.

A record about a consumed record (an error-topic record) holds that record's offset in the
:class:`DeliveryLedger` until Kafka acknowledges it: the ledger stays the one place that says
what may be committed, and an offset is never committed before its error record is on the
broker (at-least-once). Alarm transitions keep their order; a transition Kafka refused is not
sent again once a later transition of the same alarm was acknowledged (it would end last).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiokafka.structs import TopicPartition
from prometheus_client import Gauge

from connectors.backoff import Backoff
from connectors.delivery import DeliveryLedger
from streams.runtime.alarm_publisher import AlarmPublisher
from streams.runtime.alarms import AlarmMessage
from streams.runtime.outbox import Outbox, SendFailed

log = logging.getLogger(__name__)

#: Records handed to the producer in one attempt (more wait for the next, which follows at once).
MAX_WRITES_PER_ATTEMPT = 1000


@dataclass(eq=False)
class _Write:
    """One queued record: a name for the log, how it goes into an outbox, and the alarm it is a transition of."""

    what: str
    add_to: Callable[[Outbox], Awaitable[None]]
    alarm_key: bytes | None = None


class SideWrites:
    """The sink's queue of records for Kafka and the task that writes them (:meth:`run`)."""

    def __init__(self, ledger: DeliveryLedger, alarms: AlarmPublisher, new_outbox: Callable[[], Outbox],
                 backoff: Backoff, pending: Gauge | None = None):
        self._ledger = ledger
        self._alarms = alarms
        self._new_outbox = new_outbox
        self._backoff = backoff
        self._pending_gauge = pending
        self._queue: deque[_Write] = deque()
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._open = asyncio.Event()  # cleared while the topics are being recreated
        self._open.set()

    @property
    def pending(self) -> int:
        """Records queued and not yet acknowledged by Kafka."""
        return len(self._queue)

    # -- queueing (never blocks) -------------------------------------------------------

    def record(self, topic: str, key: bytes | None, value: bytes | None, *, what: str,
               headers: list[tuple[str, bytes]] | None = None, about: tuple[TopicPartition, int] | None = None
               ) -> None:
        """Queue a record for ``topic``; ``about``: the consumed record (partition, offset) it reports,
        whose offset stays uncommitted until Kafka acknowledged this record."""
        hold = self._ledger.hold(*about) if about is not None else None

        def acknowledged() -> None:
            if hold is not None:
                self._ledger.release(hold)

        async def add_to(outbox: Outbox) -> None:
            await outbox.send(topic, key, value, headers=headers, on_confirmed=acknowledged)

        self._put(_Write(what, add_to))

    def alarm(self, message: AlarmMessage | None) -> None:
        """Queue an alarm transition (None: nothing changed); logged now, counted once Kafka took it."""
        if message is None:
            return
        self._alarms.announce(message)

        async def add_to(outbox: Outbox) -> None:
            await self._alarms.send(message, outbox)

        alarm = message.alarm
        self._put(_Write(f"alarm {alarm.name} {alarm.state.value} [{alarm.scope}]", add_to, alarm_key=message.key))

    def _put(self, write: _Write) -> None:
        self._queue.append(write)
        self._show_pending()
        self._wake.set()

    # -- writing -----------------------------------------------------------------------

    def pause(self) -> None:
        """Write nothing until :meth:`resume`: the topics are missing and about to be recreated.

        Tansu accepts a record for a topic it lost (the topic stays unlisted), and then refuses
        the first write after the topic is created again with ``UnknownError`` — which may be
        another process's alarm. Records keep queueing meanwhile.
        """
        self._open.clear()

    def resume(self) -> None:
        """The topics are back: write what queued up."""
        self._open.set()
        self._wake.set()

    async def run(self) -> None:
        """Write what is queued, until cancelled; after a failed attempt wait the backoff, then retry."""
        while True:
            await self._open.wait()
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            if await self.write_queued():
                self._backoff.reset()
            else:
                await asyncio.sleep(self._backoff.next_delay())

    async def drain(self) -> None:
        """Write until nothing is queued, retrying with backoff (the caller bounds how long: at shutdown)."""
        while self._queue:
            await self._open.wait()
            if not await self.write_queued():
                await asyncio.sleep(self._backoff.next_delay())

    async def write_queued(self) -> bool:
        """One attempt at the oldest queued records; True when Kafka acknowledged every one of them.

        A record leaves the queue only once acknowledged (or superseded), so a cancelled attempt
        loses nothing; records queued meanwhile stay behind the ones retried.
        """
        async with self._lock:
            batch = list(itertools.islice(self._queue, MAX_WRITES_PER_ATTEMPT))
            if not batch:
                return True
            outcomes = await self._attempt(batch)
            finished: set[_Write] = set()
            failed: list[tuple[_Write, SendFailed]] = []
            acknowledged_alarms: set[bytes] = set()
            for write, failure in reversed(list(zip(batch, outcomes, strict=True))):  # newest first
                if failure is None:
                    finished.add(write)
                    if write.alarm_key is not None:
                        acknowledged_alarms.add(write.alarm_key)
                elif write.alarm_key is not None and write.alarm_key in acknowledged_alarms:
                    finished.add(write)
                    log.info("%s not sent again: a later transition of that alarm is on Kafka", write.what)
                else:
                    failed.append((write, failure))
            self._queue = deque(write for write in self._queue if write not in finished)
            self._show_pending()
            if failed:
                write, failure = failed[-1]  # the oldest
                log.warning("Kafka did not take %d of %d records (first: %s: %s); %d queued, retrying with backoff",
                            len(failed), len(batch), write.what, failure, len(self._queue))
                return False
            return True

    async def _attempt(self, batch: list[_Write]) -> list[SendFailed | None]:
        """Hand every record to the producer in order, then wait for each one's acknowledgement."""
        handed: list[Outbox | SendFailed] = []
        for write in batch:
            outbox = self._new_outbox()
            try:
                await write.add_to(outbox)
            except SendFailed as refused:  # the client refused it outright
                handed.append(refused)
            else:
                handed.append(outbox)
        return list(await asyncio.gather(*(_confirmed(item) for item in handed)))

    def _show_pending(self) -> None:
        if self._pending_gauge is not None:
            self._pending_gauge.set(len(self._queue))


async def _confirmed(handed: Outbox | SendFailed) -> SendFailed | None:
    """None once Kafka acknowledged the record, else why not (the outbox is not abandoned: it is retried)."""
    if isinstance(handed, SendFailed):
        return handed
    try:
        await handed.confirm()
    except SendFailed as failure:
        return failure
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise  # the writer itself is being stopped
        return SendFailed("delivery cancelled by the producer")
    return None
