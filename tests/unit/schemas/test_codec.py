"""Avro single-object codec: wire format, fingerprints, evolution and rejection reasons."""

from __future__ import annotations

import copy
import json
import struct
import time
from pathlib import Path
from typing import Any

import pytest

from schemas import (
    AVRO_DIR,
    MAGIC,
    MAX_PAYLOAD_BYTES,
    REGISTRY,
    ActionTargetDecision,
    Alarm,
    AlarmState,
    DecodeCategory,
    DecodeError,
    EncodeError,
    SchemaRegistry,
    SchemaVersion,
    StatEvent,
    TargetConfig,
    decode,
    decode_alarm,
    decode_decision,
    decode_stat_event,
    decode_stat_events,
    decode_target_config,
    encode_alarm,
    encode_decision,
    encode_stat_event,
    encode_target_config,
)

# --- independent CRC-64-AVRO (Avro spec, "Schema Fingerprints") -------------------

EMPTY = 0xC15D213AA4D7A795
_MASK = 0xFFFFFFFFFFFFFFFF


def fingerprint_int(version: SchemaVersion) -> int:
    """A schema's fingerprint as the unsigned 64-bit integer the Avro spec defines."""
    return int.from_bytes(version.fingerprint, "little")


def _table() -> list[int]:
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (EMPTY & -(fp & 1))
        table.append(fp & _MASK)
    return table


_TABLE = _table()


def crc64_avro(data: bytes) -> int:
    """The spec's table-driven Rabin fingerprint, written out here on purpose."""
    fp = EMPTY
    for byte in data:
        fp = (fp >> 8) ^ _TABLE[(fp ^ byte) & 0xFF]
    return fp


def signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def test_crc64_reference_vectors() -> None:
    """Our reference implementation matches share/test/data/schema-tests.txt."""
    assert crc64_avro(b'"null"') == 7195948357588979594
    assert crc64_avro(b'"int"') == 8247732601305521295 == 0x7275D51A3F395C8F
    assert signed(crc64_avro(b'{"name":"foo","type":"record","fields":[]}')) == (-4824392279771201922)


def test_registry_fingerprints_match_independent_crc() -> None:
    for record in ("StatEvent", "ActionTargetDecision", "Alarm", "TargetConfig"):
        for sv in REGISTRY.versions(record):
            expected = crc64_avro(sv.canonical_form.encode())
            assert fingerprint_int(sv) == expected
            assert sv.fingerprint == struct.pack("<Q", expected)
            # canonical form: no docs/defaults, full name, no whitespace
            assert f'"name":"com.pacing.{record}"' in sv.canonical_form
            assert '"doc"' not in sv.canonical_form
            assert " " not in sv.canonical_form


def test_registry_loads_every_schema_file() -> None:
    names = {p.name for p in AVRO_DIR.glob("*.avsc")}
    assert {
        "stat_event.v1.avsc",
        "action_target_decision.v1.avsc",
        "alarm.v1.avsc",
        "target_config.v1.avsc",
    } <= names
    total = sum(len(REGISTRY.versions(r)) for r in REGISTRY.records)
    assert total == len(names)


# --- fixtures -----------------------------------------------------------------------


def make_event(**overrides: Any) -> StatEvent:
    data: dict[str, Any] = {
        "tenant": "acme",
        "target_id": "target-1",
        "statistic": "waiting_interactions",
        "value": 7.0,
        "timestamp": 1_700_000_000_123,
        "source": "unit-test",
        "media_type": "call",
    }
    data.update(overrides)
    return StatEvent.model_validate(data)


def make_decision() -> ActionTargetDecision:
    return ActionTargetDecision(
        tenant="acme",
        target_id="target-1",
        name="Sales callbacks",
        state="active",
        supported_media_types=("callback", "webchat"),
        service_level_percentage=0.8,
        service_level_duration_ms=20_000,
        short_abandon_threshold=5,
        description="pacing",
        allowed_offers=12,
        reactive_admission=0.75,
        ready_agents=3,
        busy_agents=9,
        logged_in_agents=12,
        waiting_interactions=4,
        outstanding_offers=2,
        acceptance_rate=0.6,
        algorithm="erlang-c",
        computed_at=1_700_000_000_000,
        node="node-a",
        figures={"aht_s": "183.5", "erlangs": "9.1"},
    )


def make_alarm() -> Alarm:
    return Alarm(
        name="PacingRequestsFailed",
        state=AlarmState.RAISED,
        severity="major",
        tenant="acme",
        node="node-a",
        scope="sink",
        message="5 consecutive bulk requests failed",
        observed_value=5.0,
        threshold=3.0,
        timestamp=1_700_000_000_000,
    )


def make_target_config() -> TargetConfig:
    return TargetConfig(
        tenant="acme",
        target_id="target-1",
        name="Sales callbacks",
        supported_media_types=("callback",),
        service_level_percentage=0.9,
        service_level_duration_ms=30_000,
        algorithm="progressive",
        proactive_ratio=0.25,
    )


# --- round trips ----------------------------------------------------------------------


def test_stat_event_round_trip_and_header() -> None:
    event = make_event()
    payload = encode_stat_event(event)
    assert payload[:2] == b"\xc3\x01" == MAGIC
    sv = REGISTRY.latest("StatEvent")
    expected_fp = crc64_avro(sv.canonical_form.encode()).to_bytes(8, "little")
    assert payload[2:10] == expected_fp
    assert decode_stat_event(payload) == event
    # media_type null round-trips too
    plain = make_event(media_type=None)
    assert decode_stat_event(encode_stat_event(plain)) == plain


def test_other_records_round_trip() -> None:
    d = make_decision()
    assert decode_decision(encode_decision(d)) == d
    a = make_alarm()
    assert decode_alarm(encode_alarm(a)) == a
    cleared = a.model_copy(update={"state": AlarmState.CLEARED, "observed_value": None})
    assert decode_alarm(encode_alarm(cleared)) == cleared
    c = make_target_config()
    payload = encode_target_config(c)
    assert payload is not None
    assert payload[2:10] == REGISTRY.latest("TargetConfig").fingerprint
    assert decode_target_config(payload) == c


def test_generic_decode() -> None:
    event = make_event()
    assert decode("StatEvent", encode_stat_event(event)) == event.model_dump()
    alarm = make_alarm()
    assert decode("Alarm", encode_alarm(alarm))["state"] == "raised"


def test_registry_encode_type_error() -> None:
    with pytest.raises(EncodeError):
        REGISTRY.encode("StatEvent", {"tenant": "acme"})


def test_target_config_tombstone() -> None:
    assert encode_target_config(None) is None
    assert decode_target_config(None) is None


# --- JSON input -----------------------------------------------------------------------


def test_stat_event_json_accepted() -> None:
    event = make_event()
    payload = b"\n  " + json.dumps(event.model_dump()).encode()
    assert decode_stat_event(payload) == event
    minimal = {k: v for k, v in event.model_dump().items() if k != "media_type"}
    assert decode_stat_event(json.dumps(minimal).encode()).media_type is None


def test_target_config_json_accepted() -> None:
    payload = json.dumps(
        {"tenant": "acme", "target_id": "t1", "name": "Sales", "supported_media_types": ["call"]}
    ).encode()
    config = decode_target_config(payload)
    assert config is not None
    assert config.target_id == "t1"
    assert config.algorithm is None


def test_decision_and_alarm_reject_json() -> None:
    with pytest.raises(DecodeError) as info:
        decode_decision(json.dumps(make_decision().model_dump()).encode())
    assert info.value.reason == "not Avro single-object encoding"


# --- rejections -------------------------------------------------------------------------


def reject(payload: bytes) -> str:
    with pytest.raises(DecodeError) as info:
        decode_stat_event(payload)
    assert isinstance(info.value, ValueError)
    assert str(info.value) == info.value.reason
    return info.value.reason


def test_reject_garbage() -> None:
    assert reject(b"\x00\x01garbage") == "not Avro single-object or JSON"
    assert reject(b"hello") == "not Avro single-object or JSON"
    assert reject(b"[1, 2]") == "not Avro single-object or JSON"
    assert reject(b"") == "empty payload"


def test_reject_bad_json() -> None:
    assert reject(b'{"tenant": ') == "invalid JSON: Expecting value at line 1 column 12"
    assert reject(b'{"x": "\xff"}') == "invalid JSON: not UTF-8"


def test_reject_unknown_fingerprint() -> None:
    payload = encode_stat_event(make_event())
    forged = MAGIC + struct.pack("<Q", 0x0123456789ABCDEF) + payload[10:]
    assert reject(forged) == "unknown schema fingerprint 0x0123456789abcdef"


def test_reject_wrong_record() -> None:
    payload = encode_alarm(make_alarm())
    fp = fingerprint_int(REGISTRY.latest("Alarm"))
    assert reject(payload) == f"expected StatEvent, got Alarm (fingerprint 0x{fp:016x})"


def test_reject_truncated() -> None:
    payload = encode_stat_event(make_event())
    assert reject(payload[:6]) == "truncated Avro single-object header"
    for cut in (10, 11, len(payload) - 1):
        assert reject(payload[:cut]) == "truncated Avro body (StatEvent v1)"


def test_reject_trailing_bytes() -> None:
    payload = encode_stat_event(make_event())
    assert reject(payload + b"\x00\x00") == "2 trailing bytes after Avro body (StatEvent v1)"


def test_reject_corrupt_body() -> None:
    header = REGISTRY.latest("StatEvent").header
    # string length 2 followed by invalid UTF-8
    assert reject(header + b"\x04\xff\xfe") == "corrupt Avro body (StatEvent v1): a string is not valid UTF-8"


def avro_with(**overrides: Any) -> bytes:
    """Avro payload bypassing model validation (as a foreign producer could send)."""
    data = make_event().model_dump()
    data.update(overrides)
    return REGISTRY.encode("StatEvent", data)


def test_reject_invalid_values() -> None:
    assert reject(avro_with(value=-1.0)) == "invalid StatEvent: value must be >= 0"
    assert reject(avro_with(value=float("nan"))) == "invalid StatEvent: value must be finite"
    assert reject(avro_with(statistic="bogus")) == ("invalid StatEvent: statistic 'bogus' is not a known statistic")
    assert reject(avro_with(target_id="")) == "invalid StatEvent: target_id must not be empty"
    assert reject(avro_with(timestamp=0)) == "invalid StatEvent: timestamp must be > 0"


def test_reject_invalid_json_values() -> None:
    good = make_event().model_dump()
    # json.dumps writes NaN, which is not JSON
    assert reject(json.dumps({**good, "value": float("nan")}).encode()) == "invalid JSON: NaN is not a JSON number"
    assert reject(json.dumps({**good, "value": 1e400}).encode()) == "invalid JSON: Infinity is not a JSON number"
    assert reject(json.dumps({**good}).encode().replace(b"7.0", b"1e400")) == "invalid StatEvent: value must be finite"
    assert reject(json.dumps({**good, "statistic": "nope"}).encode()) == (
        "invalid StatEvent: statistic 'nope' is not a known statistic"
    )
    assert reject(json.dumps({**good, "colour": "red"}).encode()) == ("invalid StatEvent: unexpected field colour")


def test_bulk_decode_keeps_positions() -> None:
    good = encode_stat_event(make_event())
    results = decode_stat_events([good, b"junk", avro_with(value=-2.0), good])
    assert results[0] == make_event()
    assert results[3] == make_event()
    assert isinstance(results[1], DecodeError)
    assert results[1].reason == "not Avro single-object or JSON"
    assert isinstance(results[2], DecodeError)
    assert results[2].reason == "invalid StatEvent: value must be >= 0"


# --- schema evolution ---------------------------------------------------------------------


def _v2_stat_event() -> dict[str, Any]:
    schema = json.loads((AVRO_DIR / "stat_event.v1.avsc").read_text())
    v2 = copy.deepcopy(schema)
    v2["fields"].append({"name": "quality", "type": "string", "default": "good"})
    return v2


@pytest.fixture
def evolved(tmp_path: Path) -> SchemaRegistry:
    """A registry with the real v1 plus a test-only v2 that adds a defaulted field."""
    (tmp_path / "stat_event.v1.avsc").write_text((AVRO_DIR / "stat_event.v1.avsc").read_text())
    (tmp_path / "stat_event.v2.avsc").write_text(json.dumps(_v2_stat_event()))
    return SchemaRegistry.from_directory(tmp_path)


def test_v1_writer_resolved_to_v2_reader(evolved: SchemaRegistry) -> None:
    assert [sv.version for sv in evolved.versions("StatEvent")] == [1, 2]
    assert evolved.latest("StatEvent").version == 2
    v1_payload = encode_stat_event(make_event())  # default registry: v1 writer
    assert v1_payload[2:10] == evolved.get("StatEvent", 1).fingerprint
    data = evolved.decode("StatEvent", v1_payload)
    assert data["quality"] == "good"  # filled from the v2 reader default
    assert data["value"] == 7.0


def test_v2_writer_read_with_v1_reader(evolved: SchemaRegistry) -> None:
    v2_data = {**make_event().model_dump(), "quality": "estimated"}
    payload = evolved.encode("StatEvent", v2_data)
    v2 = evolved.get("StatEvent", 2)
    assert payload[:10] == MAGIC + v2.fingerprint
    assert fingerprint_int(v2) == crc64_avro(v2.canonical_form.encode())
    assert v2.fingerprint != evolved.get("StatEvent", 1).fingerprint
    assert evolved.decode("StatEvent", payload)["quality"] == "estimated"
    old = evolved.decode("StatEvent", payload, version=1)
    assert "quality" not in old
    assert StatEvent.model_validate(old) == make_event()
    # a deployment that only knows v1 rejects the v2 fingerprint precisely
    assert reject(payload) == f"unknown schema fingerprint 0x{fingerprint_int(v2):016x}"


def test_registry_rejects_badly_named_files(tmp_path: Path) -> None:
    (tmp_path / "stat_event.avsc").write_text((AVRO_DIR / "stat_event.v1.avsc").read_text())
    with pytest.raises(ValueError, match=r"<name>\.v<N>\.avsc"):
        SchemaRegistry.from_directory(tmp_path)


# --- never raises: regressions of payloads that crashed the decoder (issue 6, item 1) -----


def _zigzag(n: int) -> bytes:
    """Avro varint of ``n`` (zig-zag, 7 bits a byte)."""
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _avro_str(text: bytes) -> bytes:
    return _zigzag(len(text)) + text


def rejected(payload: Any) -> DecodeError:
    """The batch decoder's rejection of ``payload``; nothing may escape it."""
    [result] = decode_stat_events([payload])
    assert isinstance(result, DecodeError), result
    assert result.reason and result.reason.isprintable() and len(result.reason) <= 200
    assert result.category in set(DecodeCategory) and result.category is not DecodeCategory.INTERNAL_ERROR
    # The single decoder agrees, and raises nothing but DecodeError.
    with pytest.raises(DecodeError) as info:
        decode_stat_event(payload)
    assert (info.value.reason, info.value.category) == (result.reason, result.category)
    return result


def test_null_value_is_a_rejection_not_a_type_error() -> None:
    error = rejected(None)
    assert (error.reason, error.category) == ("null value", DecodeCategory.EMPTY)
    assert (rejected(b"").reason, rejected(b"").category) == ("empty payload", DecodeCategory.EMPTY)
    with pytest.raises(DecodeError, match="null value"):
        decode_decision(None)
    with pytest.raises(DecodeError, match="null value"):
        decode_alarm(None)
    assert decode_target_config(b"") is None  # an empty value deletes, like a null one


@pytest.mark.parametrize("depth", [33, 1_000, 10_000])
@pytest.mark.parametrize("shape", ["object", "array"])
def test_deep_json_is_a_rejection_not_a_recursion_error(depth: int, shape: str) -> None:
    if shape == "object":
        payload = b'{"a":' * depth + b"1" + b"}" * depth
    else:
        payload = b'{"a":' + b"[" * depth + b"]" * depth + b"}"
    error = rejected(payload)
    assert error.reason == "invalid JSON: nested deeper than 32 levels"
    assert error.category is DecodeCategory.TOO_LARGE
    with pytest.raises(DecodeError, match="nested deeper"):
        decode_target_config(payload)


def test_unclosed_json_nesting_is_too_deep_too() -> None:
    """Truncated JSON: the parser recurses into every opening before it finds the end."""
    assert rejected(b"{" + b"[" * 5_000).reason == "invalid JSON: nested deeper than 32 levels"
    assert rejected(b'{"a": ' + b"[" * 31).reason.startswith("invalid JSON: Expecting value")


def test_json_depth_check_is_linear() -> None:
    """A string that never ends after many escaped quotes once cost seconds (regex retried at every quote)."""
    payloads = [
        b'{"a": ' + b"[" * 40 + b'"' + b'\\"' * 30_000,
        b'{"a": ' + b"[" * 40 + b'"' + b'\\"' * 30_000 + b"\\",
        b'{"a": [' + b"[]," * 20_000 + b"[]]}",
        b'{"a": [' + b'"[",' * 15_000 + b'"x"]}',
    ]
    started = time.process_time()  # CPU time: other processes on a loaded machine do not count
    for payload in payloads:
        rejected(payload)
    assert time.process_time() - started < 1.0  # about 10 ms; quadratic was over 10 s


def test_json_objects_with_too_many_fields_are_rejected_before_validation() -> None:
    payload = b"{" + b",".join(b'"k%d": 1' % i for i in range(6000)) + b"}"
    error = rejected(payload)
    assert error.reason == "invalid JSON: object of 6000 fields (limit 64)"
    assert error.category is DecodeCategory.TOO_LARGE
    many = {**make_event().model_dump(), **{f"k{i}": 1 for i in range(57)}}  # 64 fields: validation says which
    assert rejected(json.dumps(many).encode()).reason == "invalid StatEvent: unexpected field k0 (+56 more)"


def test_json_depth_ignores_brackets_inside_strings() -> None:
    payload = json.dumps({**make_event().model_dump(), "source": "[{" * 100 + '\\"]'}).encode()
    assert decode_stat_event(payload).source == "[{" * 100 + '\\"]'
    shallow = json.dumps({**make_event().model_dump(), "a": [[]] * 100}).encode()  # many brackets, depth 3
    assert rejected(shallow).reason == "invalid StatEvent: unexpected field a"


@pytest.mark.parametrize("digits", [641, 4_301, 5_000, 60_000])
def test_huge_integer_literal_is_a_rejection_not_a_value_error(digits: int) -> None:
    good = json.dumps(make_event().model_dump()).encode()
    payload = good.replace(b"1700000000123", b"9" * digits)
    error = rejected(payload)
    assert error.reason == f"invalid JSON: integer literal of {digits} digits (limit 640)"
    assert error.category is DecodeCategory.TOO_LARGE
    negative = good.replace(b"1700000000123", b"-" + b"1" * digits)
    assert rejected(negative).reason == f"invalid JSON: integer literal of {digits} digits (limit 640)"
    with pytest.raises(DecodeError, match="integer literal"):
        decode_target_config(b'{"x": ' + b"1" * digits + b"}")


def test_integer_literal_within_the_limit_is_validated() -> None:
    good = json.dumps(make_event().model_dump()).encode()
    assert rejected(good.replace(b"1700000000123", b"9" * 640)).reason == (
        "invalid StatEvent: timestamp must be <= 9223372036854775807"
    )
    assert decode_stat_event(good.replace(b"7.0", b"1" + b"0" * 300)).value == 1e300


def test_json_lone_surrogates_are_rejected() -> None:
    good = json.dumps(make_event().model_dump()).encode()
    for escape in (b"\\ud800", b"\\udfff", b"x\\udc00", b"\\ud83dx"):
        error = rejected(good.replace(b'"target-1"', b'"' + escape + b'"'))
        assert error.reason == "invalid JSON: field target_id holds a lone surrogate"
        assert error.category is DecodeCategory.MALFORMED_JSON
    assert rejected(b'{"\\ud800": 1}').reason == "invalid JSON: a field name holds a lone surrogate"
    # source is an unconstrained string, which pydantic passes through unchecked: it used to be
    # accepted, giving an event that cannot be encoded again (UnicodeEncodeError in Avro or a key)
    assert rejected(good.replace(b'"unit-test"', b'"\\ud83d"')).reason == (
        "invalid JSON: field source holds a lone surrogate"
    )
    # a surrogate *pair* is an ordinary character
    assert decode_stat_event(good.replace(b'"unit-test"', b'"\\ud83d\\ude00"')).source == "\U0001f600"
    # inside a list (TargetConfig) validation names it, escaped
    with pytest.raises(DecodeError, match=r"supported_media_types '\\ud800' is not one of"):
        decode_target_config(b'{"tenant": "acme", "target_id": "t", "name": "n", "supported_media_types": ["\\ud800"]}')


def test_avro_lone_surrogate_and_invalid_utf8_are_rejected() -> None:
    header = REGISTRY.latest("StatEvent").header
    for bad in ("\ud800".encode("utf-8", "surrogatepass"), b"\xff", b"\xc3", b"\xed\xbf\xbf"):
        body = (_avro_str(b"acme") + _avro_str(bad) + _avro_str(b"ready_agents") + struct.pack("<d", 1.0)
                + _zigzag(1_700_000_000_000) + _avro_str(b"s") + b"\x00")
        error = rejected(header + body)
        assert error.reason == "corrupt Avro body (StatEvent v1): a string is not valid UTF-8"
        assert error.category is DecodeCategory.MALFORMED_AVRO


def test_nan_and_infinity_literals_and_overflowing_floats() -> None:
    good = json.dumps(make_event().model_dump()).encode()
    for literal in (b"NaN", b"Infinity", b"-Infinity"):
        error = rejected(good.replace(b"7.0", literal))
        assert error.reason == f"invalid JSON: {literal.decode()} is not a JSON number"
        assert error.category is DecodeCategory.MALFORMED_JSON
    for literal in (b"1e400", b"-1e400", b"1" + b"0" * 400 + b".0"):
        assert rejected(good.replace(b"7.0", literal)).reason.startswith("invalid StatEvent: value must be")
    assert decode_stat_event(good.replace(b"7.0", b"1e-400")).value == 0.0


def test_wrong_json_types_are_rejected_not_coerced() -> None:
    good = make_event().model_dump()
    cases = {
        "value": (True, "value must be a number"),
        "timestamp": ("1700000000000", "timestamp must be an integer"),
        "tenant": (5, "tenant must be a string"),
        "media_type": (["call"], "media_type must be a string"),
        "source": ({"a": 1}, "source must be a string"),
    }
    for field, (value, reason) in cases.items():
        error = rejected(json.dumps({**good, field: value}).encode())
        assert error.reason == f"invalid StatEvent: {reason}"
        assert error.category is DecodeCategory.INVALID_FIELD
    assert rejected(json.dumps({**good, "timestamp": 1.7e12}).encode()).reason == (
        "invalid StatEvent: timestamp must be an integer"
    )
    assert decode_stat_event(json.dumps({**good, "value": 7}).encode()).value == 7.0  # an int is a double


def test_huge_declared_avro_lengths_cost_nothing() -> None:
    header = REGISTRY.latest("StatEvent").header
    for length in (2**62, 10**9, -5, -(2**62)):
        error = rejected(header + _zigzag(length) + b"acme")
        assert error.reason == "truncated Avro body (StatEvent v1)"
        assert error.category is DecodeCategory.MALFORMED_AVRO
    # a union branch out of range
    body = (_avro_str(b"acme") + _avro_str(b"t") + _avro_str(b"ready_agents") + struct.pack("<d", 1.0)
            + _zigzag(1_700_000_000_000) + _avro_str(b"s") + _zigzag(7))
    error = rejected(header + body)
    assert error.reason == "corrupt Avro body (StatEvent v1): a union branch, enum symbol or varint is out of range"
    # a varint that never ends
    assert rejected(header + b"\xff" * 3000).category is DecodeCategory.MALFORMED_AVRO


def test_oversized_payloads_are_rejected_before_parsing() -> None:
    payload = b'{"source": "' + b"x" * MAX_PAYLOAD_BYTES + b'"}'
    error = rejected(payload)
    assert error.reason == f"payload of {len(payload)} bytes exceeds the 65536-byte limit"
    assert error.category is DecodeCategory.TOO_LARGE
    avro = encode_stat_event(make_event())
    assert rejected(avro + b"\x00" * MAX_PAYLOAD_BYTES).category is DecodeCategory.TOO_LARGE


def test_categories_of_the_classic_rejections() -> None:
    event = encode_stat_event(make_event())
    cases = {
        b"hello": DecodeCategory.UNKNOWN_FORMAT,
        MAGIC + b"\x00" * 8 + event[10:]: DecodeCategory.UNKNOWN_SCHEMA,
        encode_alarm(make_alarm()): DecodeCategory.WRONG_RECORD,
        event[:6]: DecodeCategory.MALFORMED_AVRO,
        event[:-1]: DecodeCategory.MALFORMED_AVRO,
        event + b"\x00": DecodeCategory.MALFORMED_AVRO,
        b'{"tenant": ': DecodeCategory.MALFORMED_JSON,
        b'{"x": "\xff"}': DecodeCategory.MALFORMED_JSON,
        avro_with(value=-1.0): DecodeCategory.INVALID_FIELD,
    }
    for payload, category in cases.items():
        assert rejected(payload).category is category, payload
    with pytest.raises(DecodeError) as info:
        decode_decision(json.dumps(make_decision().model_dump()).encode())
    assert info.value.category is DecodeCategory.UNKNOWN_FORMAT


def test_other_payload_types() -> None:
    event = encode_stat_event(make_event())
    assert decode_stat_events([bytearray(event), memoryview(event)]) == [make_event(), make_event()]
    for payload in ("text", 5, object()):
        error = rejected(payload)
        assert error.reason == f"payload is {type(payload).__name__}, not bytes"
        assert error.category is DecodeCategory.UNKNOWN_FORMAT


def test_reasons_are_one_short_printable_line() -> None:
    good = make_event().model_dump()
    error = rejected(json.dumps({**good, "a\nb\r\u2028" * 50: 1}).encode())
    assert error.reason.startswith("invalid StatEvent: unexpected field 'a\\nb\\r\\u2028a\\nb")
    assert "\n" not in error.reason and len(error.reason) <= 200
    error = DecodeError("x" * 1000 + "\ud800\n", DecodeCategory.INVALID_FIELD)
    assert len(error.reason) == 200 and error.reason.endswith("...")
    assert DecodeError("tab\there \ud800").reason == "tab\\there \\ud800"
    assert DecodeError("").reason == "rejected"


def test_decode_error_api() -> None:
    import pickle

    error = DecodeError("tenant 'x' is not served here", DecodeCategory.WRONG_TENANT)
    assert error.category == "wrong_tenant" and str(error) == error.reason
    assert DecodeError("no category given").category is DecodeCategory.INVALID_FIELD
    assert DecodeError("by value", "too_large").category is DecodeCategory.TOO_LARGE
    copy_ = pickle.loads(pickle.dumps(error))
    assert (copy_.reason, copy_.category) == (error.reason, error.category)
    assert {c.value for c in DecodeCategory} == {
        "empty", "too_large", "unknown_format", "unknown_schema", "wrong_record", "malformed_avro",
        "malformed_json", "invalid_field", "wrong_tenant", "internal_error",
    }


def test_unexpected_decoder_failure_is_contained(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug inside the decoder costs the one payload (category internal_error), not the batch."""
    import schemas.codec as codec

    def broken(*_: Any) -> Any:
        raise ZeroDivisionError("boom")

    good = encode_stat_event(make_event())
    monkeypatch.setattr(codec, "_decode_json", broken)
    results = decode_stat_events([good, b"{}", good])
    assert results[0] == results[2] == make_event()
    assert isinstance(results[1], DecodeError)
    assert results[1].category is DecodeCategory.INTERNAL_ERROR
    assert results[1].reason == "decoder failed: ZeroDivisionError: boom"
    with pytest.raises(DecodeError, match="decoder failed"):
        decode_stat_event(b"{}")
    with pytest.raises(DecodeError, match="decoder failed"):
        decode_target_config(b"{}")
