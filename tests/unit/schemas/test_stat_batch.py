"""StatBatch records on ``pacing.stats``: ``decode_stat_records``, ``encode_stat_batch`` and the schema."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import pytest

import schemas.codec as codec
from schemas import (
    AVRO_DIR,
    MAGIC,
    MAX_BATCH_EVENTS,
    MAX_JSON_FIELDS,
    MAX_PAYLOAD_BYTES,
    REGISTRY,
    Alarm,
    AlarmState,
    DecodeCategory,
    DecodeError,
    EncodeError,
    SchemaRegistry,
    StatEvent,
    decode_stat_events,
    decode_stat_records,
    encode_alarm,
    encode_stat_batch,
    encode_stat_event,
)

STATS = ["ready_agents", "busy_agents", "logged_in_agents", "waiting_interactions", "interactions_entered"]


def event(**overrides: Any) -> StatEvent:
    data: dict[str, Any] = {"tenant": "acme", "target_id": "vq-1", "statistic": "ready_agents", "value": 3.0,
                            "timestamp": 1_700_000_000_123, "source": "unit", "media_type": "webchat"}
    data.update(overrides)
    return StatEvent.model_validate(data)


def events(count: int = 5, **overrides: Any) -> list[StatEvent]:
    return [event(statistic=STATS[i % len(STATS)], value=float(i), **overrides) for i in range(count)]


def raw(**overrides: Any) -> dict[str, Any]:
    """An event dict bypassing validation (what a foreign producer can write)."""
    return {**event().model_dump(), **overrides}


def avro_batch(items: list[dict[str, Any]]) -> bytes:
    return REGISTRY.encode("StatBatch", {"events": items})


def json_batch(items: list[Any]) -> bytes:
    return json.dumps({"events": items}).encode()


def one(payload: Any) -> list[StatEvent | DecodeError] | DecodeError:
    [result] = decode_stat_records([payload])
    return result


def whole(payload: Any) -> DecodeError:
    """The rejection of a whole record."""
    result = one(payload)
    assert isinstance(result, DecodeError), result
    assert result.index is None and result.item is None
    assert result.category is not DecodeCategory.INTERNAL_ERROR
    return result


def single_reason(item: dict[str, Any] | bytes) -> tuple[str, DecodeCategory]:
    """What the same event gets today as a single record (Avro for a dict, else the JSON bytes)."""
    payload = item if isinstance(item, bytes) else REGISTRY.encode("StatEvent", item)
    [result] = decode_stat_events([payload])
    assert isinstance(result, DecodeError), result
    return result.reason, result.category


# --- the schema ------------------------------------------------------------------------------


def test_stat_batch_schema_inlines_the_newest_stat_event() -> None:
    """stat_batch.v<N> must carry exactly the newest StatEvent (a new StatEvent means a new StatBatch)."""
    batch = REGISTRY.latest("StatBatch")
    assert batch.full_name == "com.pacing.StatBatch"
    assert batch.canonical_form == (
        '{"name":"com.pacing.StatBatch","type":"record","fields":[{"name":"events","type":{"type":"array",'
        f'"items":{REGISTRY.latest("StatEvent").canonical_form}}}}}]}}'
    )
    assert REGISTRY.by_fingerprint(batch.fingerprint) is batch
    # the hand-written reader knows both layouts in the shipped registry
    assert REGISTRY._fast_batch_fp == batch.fingerprint
    assert REGISTRY._fast_event_fp == REGISTRY.latest("StatEvent").fingerprint


# --- accepted ---------------------------------------------------------------------------------


def test_avro_batch_round_trip_keeps_order() -> None:
    batch = events(13)
    payload = encode_stat_batch(batch)
    assert payload[:10] == REGISTRY.latest("StatBatch").header
    result = one(payload)
    assert result == batch
    assert all(type(e) is StatEvent for e in result)  # type: ignore[union-attr]
    # Built as pydantic builds them: same fields set, same value types.
    validated = [StatEvent.model_validate(e.model_dump(), strict=True) for e in batch]
    for got, expected in zip(result, validated, strict=True):  # type: ignore[arg-type]
        assert got.__dict__ == expected.__dict__ and got.model_fields_set == expected.model_fields_set
        assert [type(v) for v in got.__dict__.values()] == [type(v) for v in expected.__dict__.values()]
        assert hash(got) == hash(expected) and encode_stat_event(got) == encode_stat_event(expected)


def test_single_stat_event_is_a_one_element_list() -> None:
    assert one(encode_stat_event(event())) == [event()]
    assert one(json.dumps(event().model_dump()).encode()) == [event()]


def test_json_batch_accepted() -> None:
    batch = events(4)
    dumped = [e.model_dump() for e in batch]
    del dumped[1]["media_type"]  # optional in JSON
    assert one(json_batch(dumped)) == [*batch[:1], batch[1].model_copy(update={"media_type": None}), *batch[2:]]
    assert one(b'  {"events": [' + json.dumps(dumped[0]).encode() + b"]}\n") == batch[:1]


def test_batches_of_several_targets_are_accepted_each_event_keeps_its_target() -> None:
    batch = [event(target_id="vq-1"), event(target_id="vq-2", statistic="busy_agents"), event(target_id="vq-1")]
    result = one(encode_stat_batch(batch))
    assert [e.target_id for e in result] == ["vq-1", "vq-2", "vq-1"]  # type: ignore[union-attr]


def test_unusual_but_valid_batches_decode_like_fastavro() -> None:
    """Long strings (2-byte lengths), non-ASCII text, blocks of several counts: all the same events."""
    batch = [event(target_id="x" * 255, source="s" * 300), event(tenant="é", target_id="日本語" * 80),
             event(media_type=None), event(value=0.0, timestamp=2**63 - 1), event(value=-0.0, timestamp=1)]
    assert one(encode_stat_batch(batch)) == batch
    header = REGISTRY.latest("StatBatch").header
    bodies = [encode_stat_event(e)[10:] for e in batch]
    blocks = b"\x04" + bodies[0] + bodies[1] + b"\x06" + b"".join(bodies[2:]) + b"\x00"
    assert one(header + blocks) == batch
    # A block in the negative form: -count, then the block's size in bytes.
    size = sum(map(len, bodies))
    assert one(header + _zigzag(-len(bodies)) + _zigzag(size) + b"".join(bodies) + b"\x00") == batch


def _zigzag(n: int) -> bytes:
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


# --- one bad event among good ones ---------------------------------------------------------------


@pytest.mark.parametrize("bad", [
    {"value": -1.0}, {"value": float("nan")}, {"value": float("inf")}, {"statistic": "bogus"},
    {"target_id": ""}, {"target_id": "x" * 256}, {"tenant": ""}, {"timestamp": 0}, {"timestamp": -5},
    {"media_type": "fax"}, {"statistic": "bogus", "value": -1.0},
])
def test_a_bad_avro_event_is_rejected_alone_with_the_single_record_reason(bad: dict[str, Any]) -> None:
    good = [e.model_dump() for e in events(4)]
    item = raw(**bad)
    result = one(avro_batch([good[0], good[1], item, good[3]]))
    assert isinstance(result, list) and len(result) == 4
    assert result[:2] == events(4)[:2] and result[3] == events(4)[3]
    error = result[2]
    assert isinstance(error, DecodeError)
    assert (error.reason, error.category) == single_reason(item)
    assert error.reason.startswith("invalid StatEvent: ")
    assert error.index == 2
    assert error.item is not None
    assert json.loads(error.item.decode(), parse_constant=lambda c: c) == {
        k: ("NaN" if v != v else "Infinity" if v == float("inf") else v) for k, v in item.items()
    }


@pytest.mark.parametrize(("bad", "category"), [
    ({**raw(), "value": True}, DecodeCategory.INVALID_FIELD),
    ({**raw(), "timestamp": 1.7e12}, DecodeCategory.INVALID_FIELD),
    ({**raw(), "colour": "red"}, DecodeCategory.INVALID_FIELD),
    ({k: v for k, v in raw().items() if k != "tenant"}, DecodeCategory.INVALID_FIELD),
    ({**raw(), "source": "\ud800"}, DecodeCategory.MALFORMED_JSON),
    ({**raw(), **{f"f{i}": i for i in range(MAX_JSON_FIELDS)}}, DecodeCategory.TOO_LARGE),
])
def test_a_bad_json_event_is_rejected_alone_with_the_single_record_reason(
        bad: dict[str, Any], category: DecodeCategory) -> None:
    good = [e.model_dump() for e in events(3)]
    result = one(json_batch([good[0], bad, good[2]]))
    assert isinstance(result, list)
    assert result[0] == events(3)[0] and result[2] == events(3)[2]
    error = result[1]
    assert isinstance(error, DecodeError)
    assert (error.reason, error.category) == single_reason(json.dumps(bad).encode())
    assert error.category is category
    assert (error.index, json.loads(error.item or b"")) == (1, bad)


def test_a_batch_event_that_is_not_an_object() -> None:
    result = one(json_batch([raw(), 5, [1], None]))
    assert isinstance(result, list) and result[0] == event()
    for index, item in enumerate(result[1:], 1):
        assert isinstance(item, DecodeError)
        assert (item.reason, item.category) == ("invalid JSON: event is not an object", DecodeCategory.MALFORMED_JSON)
        assert item.index == index
    assert [e.item for e in result[1:]] == [b"5", b"[1]", b"null"]  # type: ignore[union-attr]


def test_a_bad_single_event_is_a_whole_record_rejection_as_today() -> None:
    """The record is the event: the DLQ keeps the record as received, with today's reason."""
    for payload in (REGISTRY.encode("StatEvent", raw(value=-1.0)), json.dumps(raw(statistic="x")).encode()):
        error = whole(payload)
        assert (error.reason, error.category) == single_reason(payload)


# --- whole-record rejections ---------------------------------------------------------------------


def test_whole_record_rejections() -> None:
    good = encode_stat_batch(events(3))
    alarm = encode_alarm(Alarm(name="A", state=AlarmState.RAISED, severity="major", tenant="acme", node="n",
                               scope="s", message="m", timestamp=1))
    cases: dict[Any, tuple[str, DecodeCategory]] = {
        None: ("null value", DecodeCategory.EMPTY),
        b"": ("empty payload", DecodeCategory.EMPTY),
        b"junk": ("not Avro single-object or JSON", DecodeCategory.UNKNOWN_FORMAT),
        MAGIC + b"\x00" * 8 + good[10:]: ("unknown schema fingerprint 0x0000000000000000",
                                           DecodeCategory.UNKNOWN_SCHEMA),
        good[:6]: ("truncated Avro single-object header", DecodeCategory.MALFORMED_AVRO),
        good[:-3]: ("truncated Avro body (StatBatch v1)", DecodeCategory.MALFORMED_AVRO),
        good + b"\x00": ("1 trailing bytes after Avro body (StatBatch v1)", DecodeCategory.MALFORMED_AVRO),
        good.replace(b"unit", b"\xff\xfenit"): ("corrupt Avro body (StatBatch v1): a string is not valid UTF-8",
                                                DecodeCategory.MALFORMED_AVRO),
        b'{"events": [': ("invalid JSON: Expecting value at line 1 column 13", DecodeCategory.MALFORMED_JSON),
        b'{"events": {}}': ("invalid StatBatch: events must be a list", DecodeCategory.INVALID_FIELD),
        b'{"events": [], "tenant": "acme"}': ("invalid StatBatch: unexpected field tenant",
                                              DecodeCategory.INVALID_FIELD),
        b"[1, 2]": ("not Avro single-object or JSON", DecodeCategory.UNKNOWN_FORMAT),
    }
    for payload, expected in cases.items():
        error = whole(payload)
        assert (error.reason, error.category) == expected, payload
    error = whole(alarm)
    assert error.category is DecodeCategory.WRONG_RECORD
    assert error.reason.startswith("expected StatEvent or StatBatch, got Alarm (fingerprint 0x")


def test_empty_batch_is_rejected() -> None:
    for payload in (avro_batch([]), json_batch([])):
        error = whole(payload)
        assert (error.reason, error.category) == ("empty StatBatch: no events", DecodeCategory.EMPTY)
    with pytest.raises(EncodeError, match="at least one event"):
        encode_stat_batch([])


def test_batch_length_limit() -> None:
    small = raw(tenant="a", target_id="t", source="", media_type=None, statistic="busy_agents")
    at_limit = avro_batch([small] * MAX_BATCH_EVENTS)
    assert len(at_limit) <= MAX_PAYLOAD_BYTES
    result = one(at_limit)
    assert isinstance(result, list) and len(result) == MAX_BATCH_EVENTS
    for payload in (avro_batch([small] * (MAX_BATCH_EVENTS + 1)), json_batch([{}] * (MAX_BATCH_EVENTS + 1))):
        error = whole(payload)
        assert error.category is DecodeCategory.TOO_LARGE
        assert error.reason == f"StatBatch of {MAX_BATCH_EVENTS + 1} events exceeds the 1024-event limit"
    with pytest.raises(EncodeError, match="at most 1024"):
        encode_stat_batch([event()] * (MAX_BATCH_EVENTS + 1))


def test_payload_limit() -> None:
    big = events(MAX_BATCH_EVENTS, source="s" * 60)
    with pytest.raises(EncodeError, match="over the 65536-byte limit"):
        encode_stat_batch(big)
    error = whole(REGISTRY.encode("StatBatch", {"events": [e.model_dump() for e in big]}))
    assert error.category is DecodeCategory.TOO_LARGE


def test_decode_stat_events_takes_single_records_only() -> None:
    [result] = decode_stat_events([encode_stat_batch(events(2))])
    assert isinstance(result, DecodeError) and result.category is DecodeCategory.WRONG_RECORD


# --- never raises, errors travel ---------------------------------------------------------------------


def test_records_keep_their_positions_and_nothing_escapes(monkeypatch: pytest.MonkeyPatch) -> None:
    good = encode_stat_batch(events(2))
    results = decode_stat_records([good, b"junk", encode_stat_event(event()), None, "text"])  # type: ignore[list-item]
    assert results[0] == events(2) and results[2] == [event()]
    assert [type(r) for r in results[1::2]] == [DecodeError] * 2 and isinstance(results[4], DecodeError)

    def broken(*_: Any) -> Any:
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(codec, "_read_stat_batch", broken)
    results = decode_stat_records([good, encode_stat_event(event())])
    assert isinstance(results[0], DecodeError) and results[0].category is DecodeCategory.INTERNAL_ERROR
    assert results[1] == [event()]


def test_decode_error_index_and_item_survive_pickling() -> None:
    error = DecodeError("invalid StatEvent: value must be >= 0", DecodeCategory.INVALID_FIELD, index=3, item=b"{}")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.reason, copy.category, copy.index, copy.item) == (error.reason, error.category, 3, b"{}")
    assert DecodeError("whole").index is None and DecodeError("whole").item is None


def test_other_schema_versions_take_fastavro(tmp_path: Path) -> None:
    """A registry whose newest StatEvent/StatBatch the hand reader does not know still decodes (resolved)."""
    v2 = json.loads((AVRO_DIR / "stat_event.v1.avsc").read_text())
    v2["fields"].append({"name": "quality", "type": "string", "default": "good"})
    for name in ("stat_event.v1.avsc", "stat_batch.v1.avsc"):
        (tmp_path / name).write_text((AVRO_DIR / name).read_text())
    (tmp_path / "stat_event.v2.avsc").write_text(json.dumps(v2))
    registry = SchemaRegistry.from_directory(tmp_path)
    assert registry._fast_event_fp is None and registry._fast_batch_fp is not None
    batch = encode_stat_batch(events(2))
    assert decode_stat_records([batch], registry=registry) == [events(2)]
    # a v1 single event is resolved to v2, which StatEvent (v1 model) does not know: rejected as before
    [single] = decode_stat_records([encode_stat_event(event())], registry=registry)
    [expected] = decode_stat_events([encode_stat_event(event())], registry=registry)
    assert isinstance(single, DecodeError) and isinstance(expected, DecodeError)
    assert single.reason == expected.reason


def test_huge_declared_lengths_in_a_batch_are_truncation() -> None:
    header = REGISTRY.latest("StatBatch").header
    for length in (2**62, 2**63 - 1, -5, 10**9):
        error = whole(header + b"\x02" + _zigzag(length) + b"acme")
        assert (error.reason, error.category) == ("truncated Avro body (StatBatch v1)", DecodeCategory.MALFORMED_AVRO)
    error = whole(header + _zigzag(2**62) + b"\x02a")
    assert error.category is DecodeCategory.MALFORMED_AVRO
