"""StatIntake in-process: decode, reject (with a bounded class), forward to the home partition, fold.

Real intake, store (on Faust's in-memory table), outbox and codec; only the producer is a
recording stand-in (:mod:`tests.unit.node_doubles`).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

import schemas.codec as codec
from schemas import (
    MAGIC,
    MAX_PAYLOAD_BYTES,
    Alarm,
    AlarmState,
    DecodeCategory,
    decode_stat_event,
    encode_alarm,
    encode_stat_batch,
    encode_stat_event,
)
from streams.engine import TargetState
from streams.node.stat_intake import EventsFailed, StatIntake
from streams.node.target_store import TargetStore
from streams.runtime.metrics import NodeMetrics, RejectReason
from streams.runtime.outbox import Outbox
from streams.runtime.topics import TopicNames
from tests.unit.node_doubles import (
    T0,
    TENANT,
    FakeEvent,
    RecordingProducer,
    memory_table,
    node_settings,
    stat,
    taken,
    target_on,
)

NAMES = TopicNames.for_prefix("")
HOME = 1  # the partition the records below are taken from
HERE = target_on(HOME)
ELSEWHERE = target_on(3)


class Node:
    """One intake with its store, metrics and a producer that records what was sent."""

    def __init__(self, **settings: Any):
        self.settings = node_settings(**settings)
        self.metrics = NodeMetrics()
        self.store = TargetStore(memory_table())
        self.intake = StatIntake(TENANT, self.settings.kafka.stats_partitions, self.settings.worker, NAMES, self.store,
                                 self.metrics)
        self.producer = RecordingProducer()
        self._offset = 0

    def take(self, *values: bytes | None, partition: int = HOME) -> list[FakeEvent]:
        events = []
        for value in values:
            events.append(taken(partition, self._offset, value))
            self._offset += 1
        self.intake.note_taken(events)
        return events

    async def fold(self, *values: bytes | None, partition: int = HOME) -> list[FakeEvent]:
        """Take and fold records, then confirm what the fold sent (as a checkpoint would)."""
        events = self.take(*values, partition=partition)
        outbox = Outbox(self.producer, timeout_s=1.0)
        await self.intake.fold(events, outbox)
        await outbox.confirm()
        return events

    def count(self, name: str) -> float | None:
        """A sample of the node's registry."""
        return self.metrics.registry.get_sample_value(name)

    def rejected(self) -> dict[str, float]:
        """``pacing_events_rejected_total`` by label value."""
        return {sample.labels["reason"]: sample.value for metric in self.metrics.events_rejected.collect()
                for sample in metric.samples if sample.name.endswith("_total")}


def alarm_record() -> bytes:
    return encode_alarm(Alarm(name="X", state=AlarmState.RAISED, severity="minor", tenant=TENANT, node="n",
                              scope="s", message="m", observed_value=0.0, threshold=0.0, timestamp=T0))


def event_bytes(**overrides: Any) -> bytes:
    return encode_stat_event(stat(HERE, **overrides))


def rejection_cases() -> dict[RejectReason, bytes | None]:
    """A record for each class the decoder gives a whole record (internal_error and processing_failed apart)."""
    good = event_bytes()
    return {
        RejectReason.EMPTY: None,
        RejectReason.TOO_LARGE: b'{"x": "' + b"a" * MAX_PAYLOAD_BYTES + b'"}',
        RejectReason.UNKNOWN_FORMAT: b"hello",
        RejectReason.UNKNOWN_SCHEMA: MAGIC + b"\x00" * 8 + good[10:],
        RejectReason.WRONG_RECORD: alarm_record(),
        RejectReason.MALFORMED_AVRO: good[:-1],
        RejectReason.MALFORMED_JSON: b'{"tenant": ',
        RejectReason.INVALID_FIELD: json.dumps({**stat(HERE).model_dump(), "value": -1.0}).encode(),
        RejectReason.WRONG_TENANT: encode_stat_event(stat(HERE, tenant="globex")),
    }


def test_every_decoder_class_is_a_reject_reason() -> None:
    assert {c.value for c in DecodeCategory} | {"processing_failed"} == {r.value for r in RejectReason}
    assert all(RejectReason.of(category).value == category.value for category in DecodeCategory)


def test_a_reason_outside_the_classes_is_refused_not_counted() -> None:
    metrics = NodeMetrics()
    with pytest.raises(ValueError):
        metrics.count_rejected("unknown schema fingerprint 0x1234abcd")  # type: ignore[arg-type]
    assert not list(metrics.events_rejected.collect()[0].samples)


async def test_each_rejection_goes_to_the_dlq_as_received_with_its_class_and_detail() -> None:
    node = Node()
    cases = rejection_cases()
    events = await node.fold(*cases.values())
    dlq = node.producer.to(NAMES.stats_dlq)
    assert [r.header("error.class") for r in dlq] == [reason.value for reason in cases]
    for record, event in zip(dlq, events, strict=True):
        assert record.value == event.message.value  # as received
        assert record.header("error") and record.header("error") != record.header("error.class")
        assert record.header("source.partition") == str(HOME)
        assert record.header("source.offset") == str(event.message.offset)
    assert "globex" in dlq[-1].header("error")  # the detail stays in the header ...
    assert node.rejected() == {reason.value: 1.0 for reason in cases}  # ... the label is the class
    assert node.intake.touched == {}


async def test_a_decoder_bug_is_rejected_as_internal_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: Any) -> Any:
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(codec, "_decode_json", broken)
    node = Node()
    await node.fold(b"{}", event_bytes())
    [record] = node.producer.to(NAMES.stats_dlq)
    assert record.header("error.class") == "internal_error" and "ZeroDivisionError" in record.header("error")
    assert node.rejected() == {"internal_error": 1.0}
    assert HERE in node.intake.touched  # the good record beside it is folded


async def test_bad_events_inside_a_statbatch_go_alone_with_their_index() -> None:
    node = Node()
    batch = encode_stat_batch([stat(HERE, value=4.0), stat(HERE, tenant="globex", at_ms=T0 + 1),
                               stat(HERE, statistic="busy_agents", value=9.0, at_ms=T0 + 2)])
    await node.fold(batch)
    [record] = node.producer.to(NAMES.stats_dlq)
    assert (record.header("error.class"), record.header("source.index")) == ("wrong_tenant", "1")
    assert decode_stat_event(record.value).tenant == "globex"  # the one event, not the batch
    state = node.intake.touched[HERE].entry.state
    assert (state.gauge("ready_agents"), state.gauge("busy_agents")) == (4.0, 9.0)


async def test_an_event_off_its_home_partition_is_forwarded_there_keyed_by_its_target() -> None:
    node = Node()
    single = encode_stat_event(stat(ELSEWHERE))
    events = await node.fold(single, encode_stat_batch([stat(HERE), stat(ELSEWHERE, value=5.0, at_ms=T0 + 1)]))
    forwarded = node.producer.to(NAMES.stats)
    assert [(r.key, r.partition) for r in forwarded] == [(ELSEWHERE.encode(), 3)] * 2
    assert forwarded[0].value == single  # a single record as received
    assert decode_stat_event(forwarded[1].value).value == 5.0  # the one event of the batch
    assert forwarded[0].header("pacing.rerouted-from") == f"pacing.stats/{HOME}@{events[0].message.offset}"
    assert list(node.intake.touched) == [HERE] and ELSEWHERE not in node.intake.touched
    assert node.count("pacing_events_rerouted_total") == 2


async def test_folding_is_idempotent_and_late_events_count_as_stale() -> None:
    node = Node()
    records = [event_bytes(value=3.0, at_ms=T0 + 1000), event_bytes(value=7.0, at_ms=T0)]
    await node.fold(*records)
    entry = node.intake.touched[HERE].entry
    assert entry.state.gauge("ready_agents") == 3.0  # the newest by timestamp, not by arrival
    await node.fold(*records)  # a replay
    assert entry.state.gauge("ready_agents") == 3.0
    assert node.count("pacing_events_stale_total") == 3  # one late, then both replayed
    assert len(node.intake.touched[HERE].events) == 4 and len(node.intake.pending) == 4


async def test_a_target_is_read_from_the_table_not_started_afresh() -> None:
    node = Node()
    state = TargetState(HERE)
    state.apply("busy_agents", 12.0, T0)
    node.store.table.data[HERE] = {"state": state.to_dict(), "partition": HOME, "received_ms": T0}
    await node.fold(event_bytes(value=2.0, at_ms=T0 + 1))
    entry = node.intake.touched[HERE].entry
    assert (entry.state.gauge("busy_agents"), entry.state.gauge("ready_agents")) == (12.0, 2.0)


async def test_decided_and_acknowledged_in_turn() -> None:
    node = Node()
    first = await node.fold(event_bytes())
    batch = node.intake.take_undecided()
    assert list(batch) == [HERE] and node.intake.take_undecided() == {}
    other = target_on(HOME, prefix="sales")
    await node.fold(encode_stat_event(stat(other)))
    assert node.intake.take_done(1) == first
    assert list(node.intake.touched) == [other]  # folded after the pass: written at the next checkpoint
    node.intake.take_done(1)
    assert node.intake.touched == {} and node.intake.pending == []


async def test_an_event_that_keeps_failing_goes_to_the_dlq_as_processing_failed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def apply(self: TargetState, *args: Any, **kwargs: Any) -> bool:
        raise RuntimeError("state corrupt")

    monkeypatch.setattr(TargetState, "apply", apply)
    node = Node(worker={"max_attempts": 2})
    events = node.take(event_bytes())
    for _ in range(2):
        with pytest.raises(EventsFailed) as failed:
            await node.intake.fold(events, Outbox(node.producer, 1.0), again=True)
        assert failed.value.events == events
        node.intake.count_failure(failed.value)
        node.intake.reset()
    outbox = Outbox(node.producer, 1.0)
    await node.intake.fold(events, outbox, again=True)
    await outbox.confirm()
    [record] = node.producer.to(NAMES.stats_dlq)
    assert record.header("error.class") == "processing_failed"
    assert "processing failed 2 times" in record.header("error") and "state corrupt" in record.header("error")
    assert node.rejected() == {"processing_failed": 1.0}
    assert node.intake.take_done(1) == events and node.intake._poisoned == {}


async def test_a_rejection_is_counted_only_once_the_dlq_record_is_acknowledged() -> None:
    node = Node()
    node.producer.failing.add(NAMES.stats_dlq)
    events = node.take(b"hello")
    outbox = Outbox(node.producer, 1.0)
    await node.intake.fold(events, outbox)
    with pytest.raises(Exception, match="broker gone"):
        await outbox.confirm()
    assert node.rejected() == {}


async def test_events_are_counted_per_event_and_records_per_record() -> None:
    node = Node()
    await node.fold(encode_stat_batch([stat(HERE, at_ms=T0 + i) for i in range(5)]), event_bytes())
    assert node.count("pacing_records_in_total") == 2 and node.count("pacing_events_in_total") == 6
    assert node.intake.next_offset == {HOME: 2}


async def test_material_changes_mark_their_targets_urgent_and_small_ones_do_not() -> None:
    node = Node()
    await node.fold(encode_stat_event(stat(HERE, "ready_agents", 3.0, T0)))
    assert node.intake.urgent == {HERE}, "a target seen for the first time is decided at once"
    node.intake.take_undecided()
    assert node.intake.urgent == set()

    await node.fold(encode_stat_event(stat(HERE, "ready_agents", 4.0, T0 + 1)),
                    encode_stat_event(stat(HERE, "busy_agents", 6.0, T0 + 1)),
                    encode_stat_event(stat(HERE, "waiting_interactions", 2.0, T0 + 1)))
    assert node.intake.urgent == set(), "ready agents 3 -> 4: decided at the next tick"
    await node.fold(encode_stat_event(stat(HERE, "ready_agents", 0.0, T0 + 2)))
    assert node.intake.urgent == {HERE}, "ready agents reaching zero"
    urgent = node.intake.take_urgent()
    assert list(urgent) == [HERE] and HERE not in node.intake.undecided

    await node.fold(encode_stat_event(stat(HERE, "ready_agents", 2.0, T0 + 3)))
    assert node.intake.urgent == {HERE}, "ready agents leaving zero"
    node.intake.take_undecided()
    await node.fold(encode_stat_event(stat(HERE, "logged_in_agents", 12.0, T0 + 4)))
    assert node.intake.urgent == {HERE}, "the logged-in agents went from none to 12"
    node.intake.take_undecided()
    await node.fold(encode_stat_event(stat(HERE, "logged_in_agents", 13.0, T0 + 5)))
    assert node.intake.urgent == set(), "one agent more of 12 is less than a tenth"
    await node.fold(encode_stat_event(stat(HERE, "logged_in_agents", 15.0, T0 + 6)))
    assert node.intake.urgent == {HERE}, "three more of 12 (13 folded but not decided) resize the group"
    node.intake.take_undecided()
    await node.fold(encode_stat_event(stat(HERE, "logged_in_agents", 300.0, T0 + 7)))
    node.intake.take_undecided()
    await node.fold(encode_stat_event(stat(HERE, "logged_in_agents", 301.0, T0 + 8)))
    assert node.intake.urgent == set(), "one agent more of 300 waits for the decide period"
    node.intake.take_undecided()
    await node.fold(encode_stat_event(stat(HERE, "logged_in_agents", 301.0, T0 + 9)),
                    encode_stat_event(stat(HERE, "ready_agents", 0.0, T0 + 1)))  # the same; a late one
    assert node.intake.urgent == set(), "an unchanged or late gauge is not a change"


async def test_urgent_targets_are_taken_a_slice_at_a_time_and_the_rest_stay_urgent() -> None:
    node = Node()
    opened = [target_on(HOME, f"u{n}") for n in range(5)]
    await node.fold(*(encode_stat_event(stat(target, "ready_agents", 3.0, T0)) for target in opened))
    first = node.intake.take_urgent(limit=2)
    assert len(first) == 2 and node.intake.urgent == set(opened) - set(first)
    rest = node.intake.take_urgent(limit=10)
    assert set(first) | set(rest) == set(opened) and node.intake.urgent == set()
