"""The Faust internals :mod:`streams.node.faust_compat` relies on are still there, in the pinned version.

If one of these fails after a faust-streaming upgrade, read ``streams/node/faust_compat.py`` before
anything else: the pacing node's at-least-once guarantees go through it.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
from importlib.metadata import version
from pathlib import Path
from types import SimpleNamespace

import faust
import pytest
from faust.streams import Stream, current_event
from faust.tables.base import Collection
from faust.transport.consumer import Consumer
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from streams.node.faust_compat import as_current_event, forget_positions


def test_the_pinned_faust_streaming_version_is_installed() -> None:
    major, minor = (int(part) for part in version("faust-streaming").split(".")[:2])
    assert (major, minor) == (0, 15)


class _Event:
    partition = 3


def test_current_event_is_a_context_variable_faust_reads() -> None:
    event = _Event()
    assert isinstance(faust.streams._current_event, contextvars.ContextVar)
    with as_current_event(event):  # type: ignore[arg-type]
        assert current_event() is event
    assert current_event() is None


def test_the_apis_the_node_uses_keep_their_shape() -> None:
    assert "noack_take" in vars(Stream)
    assert list(inspect.signature(Collection.send_changelog).parameters)[:4] == ["self", "partition", "key", "value"]
    assert {"_read_offset", "_committed_offset", "_unacked_messages"} <= set(Consumer.__annotations__)


def test_forget_positions_resets_faust_marks() -> None:
    consumer = SimpleNamespace(_read_offset={"tp": 41}, _committed_offset={"tp": 40})
    forget_positions(consumer, ["tp"])  # type: ignore[list-item]
    assert consumer._read_offset["tp"] is None and consumer._committed_offset["tp"] is None


def test_the_drain_loop_the_fast_consumer_repeats_is_unchanged_upstream() -> None:
    # FastDrainConsumer copies Faust's _drain_messages with one change; an upstream change to the
    # loop must be merged into the copy (and the digest updated) before upgrading.
    from streams.node.faust_compat import UPSTREAM_DRAIN_SHA256, upstream_drain_digest

    assert upstream_drain_digest() == UPSTREAM_DRAIN_SHA256


def test_the_fast_consumer_is_installed_on_the_app_transport() -> None:
    from streams.node.faust_compat import FastDrainConsumer, TunedConsumer, install_consumer

    app = faust.App("compat-test", broker="kafka://127.0.0.1:1")
    install_consumer(app, fetch_max_wait_ms=100)
    assert issubclass(app.transport.Consumer, FastDrainConsumer)
    assert issubclass(FastDrainConsumer, Consumer)
    stock = faust.App("compat-test-stock", broker="kafka://127.0.0.1:1")
    install_consumer(stock, fetch_max_wait_ms=100, fast_drain=False)
    assert issubclass(stock.transport.Consumer, TunedConsumer)
    assert not issubclass(stock.transport.Consumer, FastDrainConsumer)


async def test_faust_fixes_its_fetch_wait_and_the_installed_consumer_replaces_it() -> None:
    # Faust hard-codes fetch_max_wait_ms=1500 in its worker consumer; if an upgrade makes it a setting,
    # use the setting and drop TunedConsumer.
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    from streams.node.faust_compat import FAUST_FETCH_MAX_WAIT_MS, install_consumer

    assert f"fetch_max_wait_ms={FAUST_FETCH_MAX_WAIT_MS}," in inspect.getsource(
        AIOKafkaConsumerThread._create_worker_consumer)
    app = faust.App("compat-test-fetch", broker="kafka://127.0.0.1:1")
    install_consumer(app, fetch_max_wait_ms=77)
    thread = app.consumer._thread
    consumer = thread._create_worker_consumer(app.transport)
    assert consumer._fetch_max_wait_ms == 77
    source = inspect.getsource(type(consumer).start)
    assert "fetch_max_wait_ms=self._fetch_max_wait_ms" in source  # aiokafka hands it to its Fetcher at start


async def test_a_callback_that_does_not_block_runs_inline_and_one_that_blocks_is_resumed() -> None:
    import asyncio

    from streams.node.faust_compat import _DONE, _resume, _step

    order: list[str] = []

    async def quick() -> None:
        order.append("quick")

    assert _step(quick()) is _DONE and order == ["quick"]  # ran to completion without the loop

    gate: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def blocked() -> None:
        order.append(await gate)

    handling = blocked()
    blocked_on = _step(handling)
    assert blocked_on is gate
    resumed = asyncio.ensure_future(_resume(handling, blocked_on))
    await asyncio.sleep(0)
    assert not resumed.done()
    gate.set_result("released")
    await resumed
    assert order == ["quick", "released"]


async def test_a_blocked_callback_abandoned_by_the_flow_suspension_is_closed() -> None:
    import asyncio

    from streams.node.faust_compat import _resume, _step

    closed: list[bool] = []
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def blocked() -> None:
        try:
            await never
        finally:
            closed.append(True)

    handling = blocked()
    resumed = asyncio.ensure_future(_resume(handling, _step(handling)))
    await asyncio.sleep(0)
    resumed.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await resumed
    assert closed == [True]


def test_the_flags_and_hooks_the_node_reads_are_there() -> None:
    # recovery_completed, consumption_suspended, owned_actives and correct_recovery_end_offsets
    # read these: an upgrade that renames one must fail here, not in a rebalance in production.
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    from streams.node.faust_compat import consumption_suspended, owned_actives, recovery_completed

    app = faust.App("compat-flags", broker="kafka://127.0.0.1:1")
    assert recovery_completed(app) is False
    app.flow_control.resume()  # as Faust does once partitions are assigned
    assert consumption_suspended(app) is False
    app.flow_control.suspend()
    assert consumption_suspended(app) is True
    assert owned_actives(app) == set()
    assert inspect.iscoroutinefunction(AIOKafkaConsumerThread._highwaters)
    assert list(inspect.signature(AIOKafkaConsumerThread._highwaters).parameters) == ["self", "partitions"]



class _FetchedLog:
    """A stand-in for the aiokafka consumer in Faust's consumer thread: one fetch waits until records
    arrive; handing records out advances the partition's position, as aiokafka's does."""

    def __init__(self, ends: dict[TP, int]):
        import asyncio

        self.ends = ends
        self.position = dict.fromkeys(ends, 0)
        self.arrived = asyncio.Event()
        self._closed = False
        self._fetcher = self
        self._subscriptions = SimpleNamespace(fetch_context=contextlib.nullcontext)

    async def fetched_records(self, partitions: set[TP], timeout: float, max_records: int | None) -> dict:  # noqa: ASYNC109
        await self.arrived.wait()
        drained = {}
        for tp, end in self.ends.items():
            if partitions and tp not in partitions:  # aiokafka: no partitions named means all of them
                continue
            if self.position[tp] < end:
                drained[tp] = [SimpleNamespace(offset=offset) for offset in range(self.position[tp], end)]
                self.position[tp] = end
        return drained

    def assignment(self) -> set[TP]:
        return set(self.ends)

    def seek(self, tp: TP, offset: int) -> None:
        self.position[tp] = offset


CHANGELOG = TP("compat-target-state-changelog", 2)
STATS = TP("compat.stats", 2)


async def _fetch_across_a_rebalance(fetch_records) -> tuple[dict, _FetchedLog]:
    """A fetch begun before a rebalance returns after the table recovery sought the changelog to 0."""
    import asyncio

    from streams.node.faust_compat import install_consumer

    app = faust.App("compat-test-refetch", broker="kafka://127.0.0.1:1")
    install_consumer(app, fetch_max_wait_ms=100)
    consumer = app.consumer
    thread = consumer._thread
    log = _FetchedLog({CHANGELOG: 5, STATS: 0})
    active = consumer._set_active_tps({STATS})  # Faust hands its live set to the fetch
    fetch = asyncio.ensure_future(fetch_records(thread, log, active, timeout=1.0))
    await asyncio.sleep(0)
    consumer.stop_flow()  # partitions revoked: flow suspended, every partition paused
    consumer.pause_partitions({STATS, CHANGELOG})
    log.seek(CHANGELOG, 0)  # the recovery reads the changelog from 0 (then resumes the flow)
    log.arrived.set()
    return await fetch, log


async def test_upstream_a_fetch_across_a_rebalance_consumes_the_records_the_recovery_asked_for() -> None:
    # The cause of the recoveries that waited for ever (tests/integration/test_scaling.py split, Apache
    # Kafka, a busy core): the batch holds the changelog's records and Faust's getmany drops it (flow
    # suspended), seeking back only partitions with committed offsets. If this fails, Faust no longer
    # does that and _TunedConsumerThread._fetch_records may go.
    from faust.transport.consumer import Consumer as FaustConsumer

    batch, log = await _fetch_across_a_rebalance(faust_aiokafka.AIOKafkaConsumerThread._fetch_records)
    assert [record.offset for record in batch[CHANGELOG]] == [0, 1, 2, 3, 4]
    assert log.position[CHANGELOG] == 5  # consumed: never fetched again
    getmany = inspect.getsource(FaustConsumer.getmany)
    assert "if self.flow_active:" in getmany and "await self.perform_seek()" in getmany


async def test_a_fetch_across_a_rebalance_puts_back_what_faust_would_drop() -> None:
    from streams.node.faust_compat import _TunedConsumerThread

    batch, log = await _fetch_across_a_rebalance(_TunedConsumerThread._fetch_records)
    assert batch == {}
    assert log.position[CHANGELOG] == 0  # the recovery's next fetch gets them


async def test_a_fetch_puts_back_the_partitions_paused_while_it_waited() -> None:
    import asyncio

    from streams.node.faust_compat import install_consumer

    app = faust.App("compat-test-refetch-paused", broker="kafka://127.0.0.1:1")
    install_consumer(app, fetch_max_wait_ms=100)
    consumer = app.consumer
    log = _FetchedLog({CHANGELOG: 5, STATS: 3})
    active = consumer._set_active_tps({CHANGELOG})
    fetch = asyncio.ensure_future(consumer._thread._fetch_records(log, active, timeout=1.0))
    await asyncio.sleep(0)
    consumer.pause_partitions({CHANGELOG})  # recovery done: paused, the flow goes on; the live set is empty
    log.arrived.set()
    assert await fetch == {}
    assert log.position == {CHANGELOG: 0, STATS: 0}  # nothing Faust drops is lost


def test_keep_deliverable_keeps_what_faust_delivers_and_seeks_back_the_rest() -> None:
    from streams.node.faust_compat import keep_deliverable

    log = _FetchedLog({CHANGELOG: 5, STATS: 3})
    gone = TP("compat.stats", 0)  # no longer assigned: nothing to seek
    records = {STATS: [SimpleNamespace(offset=1), SimpleNamespace(offset=2)],
               CHANGELOG: [SimpleNamespace(offset=3), SimpleNamespace(offset=4)], gone: [SimpleNamespace(offset=9)]}
    log.position.update({STATS: 3, CHANGELOG: 5})
    assert keep_deliverable(log, records, lambda tp: tp == STATS) == {STATS: records[STATS]}
    assert log.position == {CHANGELOG: 3, STATS: 3}


async def test_upstream_recovery_seeks_the_stream_partitions_before_the_resume_that_empties_their_buffers() -> None:
    # The cause of a worker taking over partitions that saw one event of them (test_scaling split,
    # second half): events fetched after the seek were thrown away by the resume. If this fails,
    # Faust changed the order and refetch_cleared_events may go.
    from faust.tables.recovery import Recovery
    from mode.utils.queues import FlowControlEvent

    completed = inspect.getsource(Recovery.on_recovery_completed)
    assert completed.index("consumer.perform_seek()") < completed.index("self.app.flow_control.resume()")
    assert "self.clear()" in inspect.getsource(FlowControlEvent.resume)


async def test_events_a_resume_throws_away_are_fetched_again() -> None:
    from streams.node.faust_compat import refetch_cleared_events

    app = faust.App("compat-test-resume", broker="kafka://127.0.0.1:1")
    stats, gone = TP("compat.stats", 2), TP("compat.stats", 0)
    seeks: list[tuple[TP, int]] = []
    consumer = SimpleNamespace(assignment=lambda: {stats}, _read_offset={stats: 34},
                               _thread=SimpleNamespace(seek=lambda tp, offset: seeks.append((tp, offset))))
    app.consumer = consumer  # type: ignore[misc]
    buffer = app.FlowControlQueue(maxsize=10, clear_on_resume=True)
    for tp, offset in ((stats, 26), (stats, 27), (gone, 5)):
        buffer.put_nowait(SimpleNamespace(message=SimpleNamespace(tp=tp, offset=offset)))
    refetch_cleared_events(app)
    refetch_cleared_events(app)  # idempotent
    app.flow_control.resume()
    assert buffer.empty()  # Faust's resume still empties the buffers
    assert seeks == [(stats, 26)] and consumer._read_offset[stats] == 26  # no longer assigned: left alone
    seeks.clear()
    app.flow_control.resume()  # nothing thrown away: no seek
    assert seeks == []

async def test_recovery_end_offsets_go_through_the_apps_own_correction(monkeypatch: pytest.MonkeyPatch) -> None:
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    from streams.node.faust_compat import _TunedConsumerThread, correct_recovery_end_offsets, install_consumer

    async def reported(self: object, partitions: list[str]) -> dict[str, int]:
        return dict.fromkeys(partitions, 8)

    async def corrected(offsets: dict[str, int]) -> dict[str, int]:
        return {tp: end + 4 for tp, end in offsets.items()}

    monkeypatch.setattr(AIOKafkaConsumerThread, "_highwaters", reported)
    corrected_app, other_app = (faust.App(f"unit-{name}", broker="kafka://127.0.0.1:1") for name in ("a", "b"))
    with pytest.raises(TypeError):  # the correction belongs to the app's own consumer class
        correct_recovery_end_offsets(corrected_app, corrected)
    for app in (corrected_app, other_app):
        install_consumer(app, fetch_max_wait_ms=100)
    correct_recovery_end_offsets(corrected_app, corrected)

    def thread_of(app: faust.App) -> _TunedConsumerThread:
        # A consumer thread as the app's consumer makes one (_new_consumer_thread), without starting it.
        thread = object.__new__(_TunedConsumerThread)
        thread.end_offset_correction = app.transport.Consumer.end_offset_correction
        thread.consumer = SimpleNamespace(in_transaction=False)
        return thread

    thread = thread_of(corrected_app)
    assert await thread._highwaters(["tp"]) == {"tp": 12}
    thread.consumer.in_transaction = True
    assert await thread._highwaters(["tp"]) == {"tp": 8}
    assert await thread_of(other_app)._highwaters(["tp"]) == {"tp": 8}  # nothing process-wide
    assert AIOKafkaConsumerThread._highwaters is reported


def test_the_node_reads_as_a_faust_app(tmp_path: Path) -> None:
    # One agent on the stats topic and one table: what a reader of Faust's examples expects to
    # find in streams/node/app.py (the timers are plain ``@app.timer`` functions beside them).
    from streams.node.app import create_app
    from streams.runtime.config import load_settings
    from streams.runtime.topics import topic_names

    settings = load_settings(kafka={"bootstrap_servers": "127.0.0.1:1"}, worker={"data_dir": str(tmp_path)})
    node = create_app(settings)
    agents = list(node.app.agents.values())
    assert [agent.name for agent in agents] == ["pacing-node"]
    assert list(agents[0].channel.topics) == [topic_names(settings).stats]
    assert list(node.app.tables) == ["target-state"]
    assert node.store.changelog_topic.endswith("-target-state-changelog")


async def test_the_batching_transport_reaches_the_aiokafka_producer_under_faust_and_partitions_as_it_does() -> None:
    # BatchingTransport reads Faust's producer's aiokafka producer and calls its create_batch,
    # send_batch and (private) _partition: an upgrade that changes them must fail here.
    from aiokafka import AIOKafkaProducer
    from aiokafka.partitioner import DefaultPartitioner

    from streams.node.faust_compat import BatchingTransport

    app = faust.App("compat-batching", broker="kafka://127.0.0.1:1")
    app.producer._producer = app.producer._new_producer()  # what Faust's producer does when it starts
    transport = BatchingTransport(app)
    producer = transport._aiokafka()
    assert isinstance(producer, AIOKafkaProducer)
    assert list(inspect.signature(producer._partition).parameters) == [
        "topic", "partition", "key", "value", "serialized_key", "serialized_value"]
    assert list(inspect.signature(producer.send_batch).parameters) == ["batch", "topic", "partition"]
    batch = transport.create_batch()
    assert batch.append(timestamp=None, key=b"vq-1", value=b"v", headers=[]) is not None
    # With the topic's metadata known, the chosen partition is the default partitioner's, as for send().
    leader = SimpleNamespace(leader=0)
    producer.client.cluster._partitions["decisions"] = dict.fromkeys(range(12), leader)  # type: ignore[attr-defined]
    expected = DefaultPartitioner()(b"vq-1", list(range(12)), list(range(12)))
    assert await transport.partition_for("decisions", b"vq-1") == expected
    await producer.stop()
