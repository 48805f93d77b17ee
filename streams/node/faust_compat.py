"""The few places where the pacing node reaches below Faust's public API, kept together.

- Faust derives the changelog partition of a table write — and its RocksDB store picks the
  partition's database — from the *current event*, which exists only inside Faust's per-event
  drainer, not while an agent handles a batch. :func:`as_current_event` makes one of the
  target's own events current for the write, so the changelog stays co-partitioned with
  ``pacing.stats`` and a worker taking over a partition restores exactly its targets.
- A table assignment hands its changelog record to Faust's producer buffer and drops the
  delivery future, so a failed write would go unnoticed. :func:`store_locally` updates only the
  local store; the node sends the changelog record itself (:func:`changelog_topic_name`) and
  waits for the broker's acknowledgement before it acknowledges the source events.
- After the broker lost a topic's log, :func:`forget_positions` resets Faust's own offset marks
  (:mod:`streams.dev_broker.topic_watch`).
- A batch given up on when the worker stops or partitions move is taken out of the set Faust
  waits on before it commits (:func:`release_unacknowledged`).
- Faust hands every fetched message to its streams through ``wait_first(callback(message),
  suspend_flow.wait())``: four tasks and an ``asyncio.wait`` per message, most of Faust's own
  per-message cost. :func:`install_consumer` gives the app a consumer whose drain loop first
  runs the callback inline and falls back to that race only when the callback would block (a
  full stream buffer, flow suspended for a rebalance): the same behaviour, without the tasks.
- Faust creates its aiokafka consumer with a fixed ``fetch_max_wait_ms=1500``. A broker that does
  not answer a waiting fetch as soon as records arrive (Tansu: measured, each fetch waits the full
  time) then delays every hop through the worker by up to 1.5 s. :func:`install_consumer` gives the
  app a consumer whose fetches wait ``kafka.fetch_max_wait_ms`` instead (aiokafka reads the value
  when the consumer starts its fetcher).
- A fetch begun before a rebalance can return records Faust then drops without seeking back
  (flow suspended; only partitions with committed offsets are sought back) — a changelog's
  records the table recovery had just asked for, so the recovery waited for them until the next
  rebalance. The consumer thread puts every partition Faust would drop back where its batch
  began (:meth:`_TunedConsumerThread._fetch_records`).
- When the flow resumes, Faust empties the stream buffers; after a rebalance it does so after
  seeking the stream partitions to their committed offsets, so events fetched in between were
  thrown away with their offsets passed (a worker taking over partitions saw one event of them
  until the next rebalance). :func:`refetch_cleared_events` seeks their partitions back.
- Faust's table recovery reads each changelog up to the end offsets its consumer thread asks
  for (``AIOKafkaConsumerThread._highwaters``); :func:`correct_recovery_end_offsets` routes them,
  for one app's consumer (the class :func:`install_consumer` made for it, nothing process-wide),
  through a correction (:mod:`streams.dev_broker.end_offsets`, for brokers that under-report them).
- Ownership fencing (:mod:`streams.node.ownership`) reads the group generation and member id of
  the aiokafka consumer Faust runs in its consumer thread (:func:`group_membership`), and when its
  last heartbeat the coordinator acknowledged was sent (:func:`install_heartbeat_clock` records it
  on aiokafka's ``GroupCoordinator``). A table's changelog restore keeps, per key, the entry
  :func:`keep_newest_on_restore` says is newer, not simply the last one in the log.
- Faust's transport producer sends one record at a time; aiokafka's producer under it also takes a
  whole record batch for a partition at about a third of the CPU per record.
  :class:`BatchingTransport` gives an :class:`~streams.runtime.outbox.Outbox` both, choosing a keyed
  record's partition exactly as aiokafka's ``send`` would.
- The node reads Faust's recovery and flow-control flags (:func:`recovery_completed`,
  :func:`consumption_suspended`) and its assignor's active partitions (:func:`owned_actives`).

Tested against the pinned faust-streaming version in ``tests/unit/node/test_faust_compat.py``.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import time
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, cast

from aiokafka.consumer.group_coordinator import GroupCoordinator
from faust.sensors.monitor import Monitor
from faust.serializers import codecs
from faust.streams import _current_event
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, AppT, EventT, TableT
from mode import Service, ServiceT

#: ``faust.transport.consumer.Consumer._drain_messages`` of the pinned faust-streaming, whose loop
#: :class:`FastDrainConsumer` repeats with its one change. A test fails when upstream changes it.
UPSTREAM_DRAIN_SHA256 = "44a2500309e83c630493f6828af50166ec8d96a0b3e4fb2bab735f704ae93417"
#: The fetch wait Faust gives its worker consumer (``AIOKafkaConsumerThread._create_worker_consumer``).
FAUST_FETCH_MAX_WAIT_MS = 1500


@contextmanager
def as_current_event(event: EventT) -> Iterator[None]:
    """Within the block, Faust sees ``event`` as the event being processed."""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


def store_locally(table: TableT, event: EventT, key: Any, value: Any) -> None:
    """Write ``key`` to the table's local store (partition of ``event``), without a changelog record."""
    with as_current_event(event):
        table.data[key] = value


def changelog_topic_name(table: TableT) -> str:
    """The name of the table's changelog topic."""
    return table.changelog_topic.get_topic_name()


def forget_positions(consumer: Any, partitions: Iterable[TP]) -> None:
    """Forget Faust's read and commit marks of partitions whose log started again at offset 0.

    After a broker lost a topic (memory storage, restart), Faust would otherwise drop every new
    record below the old read mark and never commit offsets below the old commit mark.
    """
    for tp in partitions:
        consumer._read_offset[tp] = None
        consumer._committed_offset[tp] = None


def release_unacknowledged(consumer: Any, events: Iterable[EventT]) -> None:
    """Stop Faust waiting for events this worker gives up on without acknowledging them.

    On stop and on every rebalance Faust waits until all delivered messages are acknowledged.
    A batch abandoned then (its writes could not be confirmed) is never acknowledged; it is
    replayed from the committed offset — Faust seeks every assigned partition there after a
    rebalance — so the wait must not include it.
    """
    for event in events:
        consumer._unacked_messages.discard(event.message)


def recovery_completed(app: AppT) -> bool:
    """True once Faust restored every table partition this worker was assigned."""
    return app.tables.recovery.completed.is_set()


def consumption_suspended(app: AppT) -> bool:
    """True while partitions move or the worker stops: Faust has suspended the flow of events."""
    return bool(app.rebalancing) or not app.flow_control.is_active()


def owned_actives(app: AppT) -> set[TP]:
    """The partitions assigned to this worker as active (standbys excluded)."""
    return set(app.assignor.assigned_actives())


EndOffsetCorrection = Callable[[Mapping[TP, int]], Awaitable[Mapping[TP, int]]]


def correct_recovery_end_offsets(app: AppT, correct: EndOffsetCorrection) -> None:
    """Make ``app``'s table recovery read up to ``correct(reported)`` instead of the reported end offsets.

    Only this app's consumer is affected (its consumer class is its own, see :func:`install_consumer`,
    which must have run). Offsets asked inside a transaction are left as reported (the node does not
    use transactions; Faust's exactly-once mode would). Call it before the app starts.
    """
    consumer = app.transport.Consumer
    if not issubclass(consumer, TunedConsumer):
        raise TypeError("install_consumer(app) first: the correction belongs to the app's own consumer class")
    consumer.end_offset_correction = staticmethod(correct)


def upstream_drain_digest() -> str:
    """SHA-256 of the installed faust's ``_drain_messages`` source (see ``UPSTREAM_DRAIN_SHA256``)."""
    source = inspect.getsource(faust_consumer.Consumer._drain_messages)
    return hashlib.sha256(source.encode()).hexdigest()


def _step(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine up to its first suspension; ``_DONE`` if it finished without one."""
    try:
        return coro.send(None)
    except StopIteration:
        return _DONE


_DONE = object()


async def _resume(coro: Coroutine[Any, Any, Any], blocked_on: Any) -> None:
    """Continue a coroutine that :func:`_step` started and that is suspended on ``blocked_on``."""
    try:
        while True:
            if isinstance(blocked_on, asyncio.Future):
                await asyncio.wait([blocked_on])  # its outcome is read by the coroutine itself
            else:
                await asyncio.sleep(0)  # a bare yield
            blocked_on = _step(coro)
            if blocked_on is _DONE:
                return
    finally:
        coro.close()  # cancelled while blocked (flow suspended): the callback is abandoned, as upstream


def keep_deliverable(consumer: Any, records: Mapping[Any, list[Any]],
                     deliverable: Callable[[Any], bool]) -> dict[Any, list[Any]]:
    """The partitions of a fetched batch that Faust will hand to its streams; each other partition of
    the batch is put back at its first record (``consumer`` is the aiokafka consumer that fetched it).

    aiokafka advances a partition's position when it hands its records out, so a record that is
    then dropped would never be fetched again unless someone seeks back.
    """
    kept: dict[Any, list[Any]] = {}
    assigned = consumer.assignment()
    for tp, batch in records.items():
        if deliverable(tp):
            kept[tp] = batch
        elif batch and tp in assigned:
            consumer.seek(tp, batch[0].offset)
    return kept


class _TunedConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer thread, creating its aiokafka consumer with our fetch wait, and never
    consuming records that Faust drops (see :meth:`_fetch_records`)."""

    fetch_max_wait_ms: int = FAUST_FETCH_MAX_WAIT_MS
    end_offset_correction: EndOffsetCorrection | None = None

    async def _highwaters(self, partitions: list[TP]) -> Mapping[TP, int]:  # Faust's, in the consumer thread
        """The end offsets table recovery reads up to: the broker's, through the app's correction if any."""
        reported = await super()._highwaters(partitions)
        if self.end_offset_correction is None or self.consumer.in_transaction:
            return reported
        return await self.end_offset_correction(reported)

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = self.fetch_max_wait_ms  # read by AIOKafkaConsumer.start (its Fetcher)
        return consumer

    async def _fetch_records(  # Faust's signature
        self, consumer: Any, active_partitions: Any,
        timeout: float | None = None,  # noqa: ASYNC109
        max_records: int | None = None,
    ) -> Any:
        """Faust's fetch, handing back only what Faust will deliver; the rest is fetched again.

        A fetch waits up to a second in this thread. One that began before a rebalance can return
        after it: Faust then drops the whole batch (flow suspended) or the partitions no longer
        active, and seeks only the partitions with committed offsets back. A changelog partition
        has none: when the fetch took the records the table recovery had just sought to (the fetch
        asks for Faust's live set of active partitions, emptied — meaning all — when a rebalance
        pauses them), the recovery waited for records already consumed until the next rebalance.
        Here, in the thread and before anything else runs on its loop, every partition of the batch
        that Faust would drop is put back where the batch began.
        """
        records = await super()._fetch_records(consumer, active_partitions, timeout=timeout, max_records=max_records)
        if not records:
            return records
        faust_consumer = self.consumer
        if not faust_consumer.flow_active:  # Faust's getmany drops the batch
            return keep_deliverable(consumer, records, lambda tp: False)
        buffered = faust_consumer._buffered_partitions
        return keep_deliverable(consumer, records, lambda tp: (
            active_partitions is None or tp in active_partitions or tp in buffered))  # getmany's own filter


class TunedConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer with the fetch wait of the settings (see :func:`install_consumer`)."""

    fetch_max_wait_ms: int = FAUST_FETCH_MAX_WAIT_MS
    #: Set per app by :func:`correct_recovery_end_offsets` (a staticmethod on the app's own subclass).
    end_offset_correction: EndOffsetCorrection | None = None

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        thread = _TunedConsumerThread(self, loop=self.loop, beacon=self.beacon)
        thread.fetch_max_wait_ms = self.fetch_max_wait_ms
        thread.end_offset_correction = self.end_offset_correction
        return thread


class FastDrainConsumer(TunedConsumer):
    """Faust's aiokafka consumer, handing messages to the streams without four tasks per message."""

    async def _drain_messages(self, fetcher: ServiceT) -> None:  # pragma: no cover - Faust's loop
        # Upstream's loop (faust-streaming 0.15.3, faust/transport/consumer.py), unchanged but for
        # the marked lines: the callback runs inline, and only when it blocks does it race the
        # flow suspension as upstream always does.
        callback = self.callback
        getmany = self.getmany
        consumer_should_stop = cast(Service, self)._stopped.is_set
        fetcher_should_stop = cast(Service, fetcher)._stopped.is_set

        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        flag_consumer_fetching = faust_consumer.CONSUMER_FETCHING
        set_flag = self.diag.set_flag
        unset_flag = self.diag.unset_flag
        commit_every = self._commit_every
        acks_enabled_for = self.app.topics.acks_enabled_for

        yield_every = 100
        num_since_yield = 0
        sleep = asyncio.sleep

        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                set_flag(flag_consumer_fetching)
                ait = getmany(timeout=1.0)

                await self.sleep(0)
                if not self.should_stop:
                    async for tp, message in ait:
                        num_since_yield += 1
                        if num_since_yield > yield_every:
                            await sleep(0)
                            num_since_yield = 0

                        offset = message.offset
                        r_offset = get_read_offset(tp)
                        if r_offset is None or offset >= r_offset:
                            gap = offset - (r_offset or 0)
                            if gap > 1 and r_offset:
                                acks_enabled = acks_enabled_for(message.topic)
                                if acks_enabled:
                                    await self._add_gap(tp, r_offset + 1, offset)
                            if commit_every is not None:
                                if self._n_acked >= commit_every:
                                    self._n_acked = 0
                                    await self.commit()
                            # -- changed: inline first, upstream's race only if it blocks
                            handling = callback(message)
                            blocked_on = _step(handling)
                            if blocked_on is not _DONE:
                                await self.wait_first(_resume(handling, blocked_on), self.suspend_flow.wait())
                            # -- end of change
                            set_read_offset(tp, offset)
                        else:
                            self.log.dev("DROPPED MESSAGE ROFF %r: k=%r v=%r", offset, message.key, message.value)
                    unset_flag(flag_consumer_fetching)

        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            unset_flag(flag_consumer_fetching)


def refetch_cleared_events(app: AppT) -> None:
    """Make the events Faust's flow control throws away when it resumes be fetched again.

    ``flow_control.resume()`` empties every stream buffer (Faust expects what they hold to be
    fetched again from the committed offsets). After a rebalance, Faust's recovery seeks the
    stream partitions to their committed offsets and only then resumes: events fetched in between
    (the flow is already running) are thrown away while their partitions' positions have passed
    them, and the worker does not see them until the next rebalance. Here each partition whose
    events a resume throws away is sought back to the first of them.
    """
    flow_control = app.flow_control
    resume = flow_control.resume
    if getattr(resume, "_refetching", False):
        return

    def resume_and_refetch() -> None:
        first: dict[TP, int] = {}
        for queue in list(flow_control._queues):
            for item in list(getattr(queue, "_queue", ())):
                message = getattr(item, "message", None)
                if message is not None and message.offset < first.get(message.tp, message.offset + 1):
                    first[message.tp] = message.offset
        resume()
        if first:
            seek_back(app.consumer, first)

    resume_and_refetch._refetching = True  # type: ignore[attr-defined]
    flow_control.resume = resume_and_refetch  # type: ignore[method-assign]


def seek_back(consumer: Any, offsets: Mapping[TP, int]) -> None:
    """Seek each assigned partition of ``offsets`` back to its offset, as Faust's ``Consumer.seek``
    does (its read mark too, else the drain loop drops the records fetched again)."""
    assigned = consumer.assignment()
    for tp, offset in offsets.items():
        if tp in assigned:
            consumer._thread.seek(tp, offset)
            consumer._read_offset[tp] = offset if offset else None


def install_consumer(app: AppT, *, fetch_max_wait_ms: int, fast_drain: bool = True) -> None:
    """Make ``app`` consume with fetches that wait at most ``fetch_max_wait_ms``, and with the fast drain
    loop of :class:`FastDrainConsumer` unless ``fast_drain`` is off (before the app starts)."""
    transport = app.transport
    if transport.Consumer is faust_aiokafka.Consumer:
        base = FastDrainConsumer if fast_drain else TunedConsumer
        transport.Consumer = type(base.__name__, (base,), {"fetch_max_wait_ms": fetch_max_wait_ms})


class LeanMonitor(Monitor):
    """Faust's monitor (``App(Monitor=...)``, a public setting) without its per-message bookkeeping.

    Faust's default monitor records every message and stream event (time in, time out, counts
    per partition) for its web views, which this app does not serve: a dict and several clock
    reads per event, a few percent of the worker's time. Commits, sends, rebalances and table
    operations are still counted; the service's own metrics are in :mod:`streams.runtime.metrics`.
    """

    def on_message_in(self, tp: TP, offset: int, message: Any) -> None:
        """Not recorded (per message)."""

    def on_stream_event_in(self, tp: TP, offset: int, stream: Any, event: EventT) -> dict | None:
        """Not recorded (per event)."""
        return None

    def on_stream_event_out(self, tp: TP, offset: int, stream: Any, event: EventT, state: dict | None = None) -> None:
        """Not recorded (per event)."""

    def on_message_out(self, tp: TP, offset: int, message: Any) -> None:
        """Not recorded (per message)."""


# -- ownership: the group membership under Faust's consumer, and the changelog restore ---------------

#: Where the heartbeat clock keeps, on a GroupCoordinator, when its last acknowledged heartbeat was sent.
_HEARTBEAT_OK_AT = "_pacing_heartbeat_ok_at"


def install_heartbeat_clock() -> None:
    """Record on each aiokafka ``GroupCoordinator`` when the last heartbeat it sent was acknowledged.

    The coordinator keeps that time in a local of its heartbeat loop; the node needs it to know
    whether the broker may already have expired its session (a process paused past the session
    timeout resumes with its generation unchanged until its next heartbeat fails). The time is the
    heartbeat's *sending*, which is before the broker renewed the session. Idempotent.
    """
    original = GroupCoordinator._do_heartbeat
    if getattr(original, "_pacing_clock", False):
        return

    async def _do_heartbeat(self: GroupCoordinator) -> Any:
        sent = time.monotonic()
        outcome = await original(self)
        if outcome is True:  # acknowledged (or rebalancing, when the member stays in the group)
            setattr(self, _HEARTBEAT_OK_AT, sent)
        return outcome

    _do_heartbeat._pacing_clock = True  # type: ignore[attr-defined]
    GroupCoordinator._do_heartbeat = _do_heartbeat  # type: ignore[method-assign]


def group_membership(app: AppT) -> tuple[int, bool, float | None] | None:
    """The worker consumer's group generation, whether the broker knows its member id, and when its
    last acknowledged heartbeat was sent (monotonic; None before the first); None before it joined."""
    thread = getattr(app.consumer, "_thread", None)
    consumer = getattr(thread, "_consumer", None)
    coordinator = getattr(consumer, "_coordinator", None)
    if coordinator is None:
        return None
    member_known = bool(coordinator.member_id)  # aiokafka resets it to "" when the broker forgot it
    return coordinator.generation, member_known, getattr(coordinator, _HEARTBEAT_OK_AT, None)


async def committed_offset(app: AppT, tp: TP) -> int | None:
    """The group's committed offset of ``tp``, asked of the aiokafka consumer in Faust's consumer thread.

    Not the consumer's position: that runs ahead of what the agent took as soon as records are fetched.
    """
    thread = app.consumer._thread
    consumer = thread._consumer
    if consumer is None:
        return None
    return await thread.call_thread(consumer.committed, tp)


def keep_newest_on_restore(table: TableT, newer: Callable[[Any, Any], bool]) -> None:
    """When Faust restores ``table`` from its changelog, apply a record only if ``newer(old, new)``.

    ``old`` is the value the store (or an earlier record of the same batch) holds for the key,
    ``new`` the record's value, both as the table's JSON values; a tombstone is always applied.
    Faust applies changelog records in log order, so a record a fenced-out worker wrote late would
    otherwise win over its successor's (:mod:`streams.runtime.fencing`).
    """
    apply = table.apply_changelog_batch

    def apply_newest(batch: Iterable[EventT]) -> None:
        kept: list[EventT] = []
        seen: dict[Any, Any] = {}
        for event in batch:
            message = event.message
            if message.value is None or message.key is None:
                kept.append(event)
                continue
            key = codecs.loads("json", message.key)
            value = codecs.loads("json", message.value)
            old = seen[key] if key in seen else table.data.get(key)
            if old is None or newer(old, value):
                seen[key] = value
                kept.append(event)
        apply(kept)

    table.apply_changelog_batch = apply_newest  # type: ignore[method-assign]
class BatchingTransport:
    """Faust's transport producer (``app.producer``) plus the batch calls of the aiokafka producer it
    wraps: an :class:`~streams.runtime.outbox.BatchingProducer`."""

    def __init__(self, app: AppT):
        self._app = app

    def _aiokafka(self) -> Any:
        return self._app.producer._ensure_producer()

    async def send(self, topic: str, key: bytes | None, value: bytes | None, partition: int | None,
                   timestamp: float | None, headers: Any) -> Any:
        """One record, through Faust's producer."""
        return await self._app.producer.send(topic, key, value, partition, timestamp, headers)

    def create_batch(self) -> Any:
        """An empty record batch of the producer's settings (size, compression)."""
        return self._aiokafka().create_batch()

    async def send_batch(self, batch: Any, topic: str, partition: int) -> Any:
        """Hand a closed batch to the producer; its delivery future."""
        return await self._aiokafka().send_batch(batch, topic, partition=partition)

    async def partition_for(self, topic: str, key: bytes | None) -> int:
        """The partition aiokafka's ``send`` would choose for ``key`` (its partitioner, its metadata)."""
        producer = self._aiokafka()
        if producer.client.cluster.partitions_for_topic(topic) is None:
            await producer.partitions_for(topic)  # waits for the topic's metadata
        return int(producer._partition(topic, None, key, None, key, None))
