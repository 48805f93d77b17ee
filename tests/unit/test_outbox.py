"""Outbox: records count as written only once the broker acknowledged every one of them."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

from streams.runtime.outbox import Outbox, SendFailed
from tests.unit.node_doubles import RecordingProducer


class Unanswered(RecordingProducer):
    """A producer whose sends to ``silent`` topics are never acknowledged, and that refuses ``refused`` ones."""

    def __init__(self, silent: set[str] = frozenset(), refused: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        super().__init__()
        self.silent, self.refused = set(silent), set(refused)

    async def send(self, topic: str, *args: Any) -> asyncio.Future[None]:
        if topic in self.refused:
            raise RuntimeError("unknown topic")
        if topic in self.silent:
            return asyncio.get_running_loop().create_future()
        return await super().send(topic, *args)


async def test_callbacks_run_only_after_every_record_is_acknowledged() -> None:
    confirmed: list[str] = []
    outbox = Outbox(RecordingProducer(), timeout_s=1.0)
    await outbox.send("a", b"k", b"v", on_confirmed=lambda: confirmed.append("a"))
    await outbox.send("b", b"k", b"v", on_confirmed=lambda: confirmed.append("b"))
    assert len(outbox) == 2 and confirmed == []
    await outbox.confirm()
    assert confirmed == ["a", "b"]


async def test_a_record_not_acknowledged_in_time_fails_the_whole_unit_naming_its_topic() -> None:
    confirmed: list[str] = []
    outbox = Outbox(Unanswered(silent={"pacing.alarms"}), timeout_s=0.05)
    await outbox.send("pacing.actiontargets", b"k", b"v", on_confirmed=lambda: confirmed.append("decision"))
    await outbox.send("pacing.alarms", b"k", b"v")
    with pytest.raises(SendFailed, match=r"1 records not acknowledged .*topics pacing\.alarms"):
        await outbox.confirm()
    assert confirmed == []  # the decision's cache is not updated: it will be published again


async def test_a_failed_delivery_and_a_refused_send_both_raise_send_failed() -> None:
    failing = RecordingProducer()
    failing.failing.add("pacing.stats.dlq")
    outbox = Outbox(failing, timeout_s=1.0)
    await outbox.send("pacing.stats.dlq", None, b"v")
    with pytest.raises(SendFailed, match=r"cannot send to pacing\.stats\.dlq: ConnectionError"):
        await outbox.confirm()
    with pytest.raises(SendFailed, match="cannot send to nowhere: RuntimeError: unknown topic"):
        await Outbox(Unanswered(refused={"nowhere"}), timeout_s=1.0).send("nowhere", None, b"v")


async def test_abandon_undoes_in_reverse_order() -> None:
    undone: list[int] = []
    outbox = Outbox(RecordingProducer(), timeout_s=1.0)
    for n in range(3):
        await outbox.send("t", None, b"v", on_failed=lambda n=n: undone.append(n))
    outbox.abandon()
    assert undone == [2, 1, 0]


async def test_settle_confirms_or_abandons_and_returns_the_failure() -> None:
    confirmed: list[str] = []
    undone: list[str] = []
    good = Outbox(RecordingProducer(), timeout_s=1.0)
    await good.send("t", None, b"v", on_confirmed=lambda: confirmed.append("t"), on_failed=lambda: undone.append("t"))
    assert await good.settle() is None
    assert confirmed == ["t"] and undone == []
    bad = Outbox(Unanswered(silent={"pacing.alarms"}), timeout_s=0.05)
    await bad.send("pacing.alarms", None, b"v", on_confirmed=lambda: confirmed.append("alarm"),
                   on_failed=lambda: undone.append("alarm"))
    failure = await bad.settle()
    assert isinstance(failure, SendFailed) and "pacing.alarms" in str(failure)
    assert confirmed == ["t"] and undone == ["alarm"]


class KeptUnanswered(Unanswered):
    """:class:`Unanswered` that keeps the delivery futures of its silent topics, to answer them late."""

    def __init__(self, silent: set[str]) -> None:
        super().__init__(silent=silent)
        self.unanswered: list[asyncio.Future[None]] = []

    async def send(self, topic: str, *args: Any) -> asyncio.Future[None]:
        delivery = await super().send(topic, *args)
        if topic in self.silent:
            self.unanswered.append(delivery)
        return delivery


def never_retrieved() -> list[str]:
    """What the running loop reports about futures whose exception nobody read (filled as they are collected)."""
    reports: list[str] = []
    asyncio.get_running_loop().set_exception_handler(lambda _, context: reports.append(context["message"]))
    return reports


async def test_confirm_reads_every_failure_and_names_the_first() -> None:
    reports = never_retrieved()
    producer = RecordingProducer()
    producer.failing |= {"pacing.alarms", "pacing.actiontargets.errors"}
    outbox = Outbox(producer, timeout_s=1.0)
    await outbox.send("pacing.actiontargets", b"k", b"v")
    await outbox.send("pacing.alarms", b"k", b"v")
    for n in range(3):
        await outbox.send("pacing.actiontargets.errors", b"k%d" % n, b"v")
    with pytest.raises(SendFailed, match=r"cannot send to pacing\.alarms: ConnectionError") as failure:
        await outbox.confirm()
    del outbox, failure  # the futures go with them: one never read is reported when collected
    gc.collect()
    assert reports == []


async def test_a_delivery_that_fails_after_the_timeout_is_read_too() -> None:
    reports = never_retrieved()
    producer = KeptUnanswered(silent={"pacing.alarms"})
    outbox = Outbox(producer, timeout_s=0.01)
    await outbox.send("pacing.alarms", b"k", b"v")
    with pytest.raises(SendFailed, match="1 records not acknowledged"):
        await outbox.confirm()
    producer.unanswered[0].set_exception(ConnectionError("broker gone"))  # the producer gives up later
    await asyncio.sleep(0)
    del outbox, producer
    gc.collect()
    assert reports == []


class RecordBatch:
    """An aiokafka record batch as an outbox fills it: appends until full, then refuses."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.records: list[tuple[bytes | None, bytes | None]] = []
        self.closed = False

    def append(self, *, timestamp: float | None, key: bytes | None, value: bytes | None, headers: Any) -> Any:
        if self.closed or len(self.records) >= self.capacity:
            return None
        self.records.append((key, value))
        return object()

    def close(self) -> None:
        self.closed = True


class BatchingRecorder(RecordingProducer):
    """A producer that also takes whole batches (of ``capacity`` records) per partition; partition = key's length."""

    def __init__(self, capacity: int = 3) -> None:
        super().__init__()
        self.capacity = capacity
        self.batches: list[tuple[str, int, list[tuple[bytes | None, bytes | None]]]] = []

    def create_batch(self) -> RecordBatch:
        return RecordBatch(self.capacity)

    async def send_batch(self, batch: RecordBatch, topic: str, partition: int) -> asyncio.Future[None]:
        assert batch.closed, "a batch is closed before it is handed over"
        delivery: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if topic in self.failing:
            delivery.set_exception(ConnectionError(f"{topic}: broker gone"))
        else:
            self.batches.append((topic, partition, batch.records))
            delivery.set_result(None)
        return delivery

    async def partition_for(self, topic: str, key: bytes | None) -> int:
        return len(key or b"") % 2


async def test_with_a_batching_producer_records_leave_per_partition_in_order_when_a_batch_fills_or_at_flush() -> None:
    producer = BatchingRecorder(capacity=3)
    confirmed: list[bytes] = []
    outbox = Outbox(producer, timeout_s=1.0)
    for n in range(4):  # key length 2: partition 0
        await outbox.send("d", b"k0", f"v{n}".encode(), on_confirmed=lambda n=n: confirmed.append(b"v%d" % n))
    await outbox.send("d", b"k", b"odd")  # partition 1
    await outbox.send("c", b"k0", b"entry", partition=3)  # an explicit partition is kept
    assert producer.batches == [("d", 0, [(b"k0", b"v0"), (b"k0", b"v1"), (b"k0", b"v2")])], "only the full one"

    await outbox.flush()
    assert producer.batches[1:] == [("d", 0, [(b"k0", b"v3")]), ("d", 1, [(b"k", b"odd")]),
                                    ("c", 3, [(b"k0", b"entry")])]
    assert len(outbox) == 6 and confirmed == []
    await outbox.confirm()
    assert confirmed == [b"v0", b"v1", b"v2", b"v3"]


async def test_a_failed_batch_fails_the_unit_and_an_abandoned_one_is_never_sent() -> None:
    producer = BatchingRecorder()
    producer.failing.add("d")
    confirmed: list[str] = []
    outbox = Outbox(producer, timeout_s=1.0)
    await outbox.send("d", b"k", b"v", on_confirmed=lambda: confirmed.append("d"))
    with pytest.raises(SendFailed, match="cannot send to d: ConnectionError"):
        await outbox.confirm()
    assert confirmed == []

    abandoned = Outbox(producer, timeout_s=1.0)
    await abandoned.send("e", b"k", b"v")
    abandoned.abandon()
    await abandoned.flush()
    assert [topic for topic, _, _ in producer.batches] == []


async def test_a_record_too_big_for_any_batch_is_refused_with_its_size() -> None:
    outbox = Outbox(BatchingRecorder(capacity=0), timeout_s=1.0)
    with pytest.raises(SendFailed, match="does not fit in a batch"):
        await outbox.send("d", b"k", b"x" * 10)
