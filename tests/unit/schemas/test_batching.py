"""schemas.batching.StatBatcher: per-target StatBatch records for bridges and the console tools."""

from __future__ import annotations

import json
from typing import Any

import pytest

from schemas import (
    MAX_PAYLOAD_BYTES,
    REGISTRY,
    StatEvent,
    decode_stat_events,
    decode_stat_records,
    encode_stat_batch,
    encode_stat_event,
)
from schemas.batching import DEFAULT_MAX_BYTES, DEFAULT_MAX_EVENTS, StatBatcher
from schemas.models import COUNTERS, GAUGES

STATISTICS = sorted(GAUGES) + sorted(COUNTERS)


def report(target_id: str, count: int = 13, **overrides: Any) -> list[StatEvent]:
    fields = {"tenant": "acme", "source": "bridge", "media_type": "call", **overrides}
    return [StatEvent(target_id=target_id, statistic=STATISTICS[i % 13], value=float(i),
                      timestamp=1_700_000_000_000 + i, **fields)
            for i in range(count)]


def decoded(records: list[tuple[bytes, bytes]]) -> list[tuple[bytes, list[Any]]]:
    results = decode_stat_records([value for _, value in records])
    for result in results:
        assert isinstance(result, list), result
    return [(key, result) for (key, _), result in zip(records, results, strict=True)]  # type: ignore[misc]


def test_one_record_per_target_keyed_by_it_in_order() -> None:
    batcher = StatBatcher()
    a, b = report("vq-a"), report("vq-b")
    interleaved = [event for pair in zip(a, b, strict=True) for event in pair]
    assert batcher.extend(interleaved) == []
    assert (len(batcher), batcher.pending_targets) == (26, 2)
    records = batcher.flush()
    assert (len(batcher), batcher.pending_targets) == (0, 0)
    assert decoded(records) == [(b"vq-a", a), (b"vq-b", b)]
    # exactly what encode_stat_batch (fastavro) writes
    assert [value for _, value in records] == [encode_stat_batch(a), encode_stat_batch(b)]
    assert batcher.flush() == []


def test_max_events_splits_a_target_in_order() -> None:
    batcher = StatBatcher(max_events=5)
    events = report("vq-a", 12)
    due = batcher.extend(events)
    assert [len(result) for _, result in decoded(due)] == [5, 5]
    rest = batcher.flush()
    assert [len(result) for _, result in decoded(rest)] == [2]
    assert [e for _, result in decoded(due + rest) for e in result] == events


@pytest.mark.parametrize("as_json", [False, True])
def test_max_bytes_bounds_every_record(as_json: bool) -> None:
    batcher = StatBatcher(max_bytes=1000, as_json=as_json)
    events = report("vq-a", 40, tenant="t" * 30)
    records = batcher.extend(events) + batcher.flush()
    assert len(records) > 2
    assert all(len(value) <= 1000 for _, value in records)
    # and no record could have taken the next event: sizes are computed exactly
    largest = max(len(json.dumps(e.model_dump()) if as_json else encode_stat_event(e)) for e in events)
    assert all(len(value) > 1000 - largest for _, value in records[:-1])
    assert [e for _, result in decoded(records) for e in result] == events


def test_a_lone_event_is_a_plain_stat_event_record() -> None:
    event = report("vq-a", 1)[0]
    batcher = StatBatcher()
    batcher.add(event)
    [(key, value)] = batcher.flush()
    assert (key, value) == (b"vq-a", encode_stat_event(event))
    assert decode_stat_events([value]) == [event]
    batcher = StatBatcher(single_events=False)
    batcher.add(event)
    [(_, value)] = batcher.flush()
    assert value == encode_stat_batch([event]) and value[:10] == REGISTRY.latest("StatBatch").header


def test_json_records() -> None:
    batcher = StatBatcher(as_json=True)
    events = report("vq-é", 3) + report("vq-b", 1)
    batcher.extend(events)
    records = batcher.flush()
    assert [key for key, _ in records] == ["vq-é".encode(), b"vq-b"]
    assert json.loads(records[0][1]) == {"events": [e.model_dump() for e in events[:3]]}
    assert json.loads(records[1][1]) == events[3].model_dump()
    assert decoded(records) == [("vq-é".encode(), events[:3]), (b"vq-b", events[3:])]


def test_a_target_flushed_by_size_goes_last_in_the_next_flush() -> None:
    batcher = StatBatcher(max_events=2)
    batcher.extend(report("vq-a", 1) + report("vq-b", 1))
    assert len(batcher.extend(report("vq-a", 2)[1:] + report("vq-a", 3)[2:])) == 1
    assert [key for key, _ in batcher.flush()] == [b"vq-b", b"vq-a"]


def test_limits_are_checked() -> None:
    assert (DEFAULT_MAX_EVENTS, DEFAULT_MAX_BYTES) == (128, 32 * 1024)
    for kwargs in ({"max_events": 0}, {"max_events": 1025}, {"max_bytes": 100}, {"max_bytes": MAX_PAYLOAD_BYTES + 1}):
        with pytest.raises(ValueError):
            StatBatcher(**kwargs)
