"""Fuzz test of the decoders: whatever the bytes, an event or a DecodeError with a reason.

60,000 generated payloads per run (about 4 s): random bytes, byte-level mutations (bit flips,
truncations, insertions, deletions, duplications, splices) of valid Avro single-object and
JSON stat events, JSON events with a field replaced by something hostile (nesting thousands
deep, integer literals of thousands of digits, NaN, 1e400, lone surrogates, control
characters, wrong types, oversized strings), Avro bodies of random varints and length
prefixes (huge and negative), Kafka null values and other payload types.

Every payload goes through ``decode_stat_events`` (in batches, as the pacing node calls it),
``decode_target_config`` and ``decode_decision``, and the invariant is checked: nothing but
a ``DecodeError`` escapes (the batch decoder lets nothing escape at all); a rejection has a
non-empty, printable, one-line reason of at most 200 characters and a category from the
fixed set, never ``internal_error`` (that would be a decoder bug caught by the safety net);
an accepted StatEvent is valid and survives an Avro round trip.

The seed is random per run and printed; each case is generated from ``(seed, index)``, so a
failure is reproduced with ``PACING_FUZZ_SEED=<seed>`` (and the index in the message points
at the payload: ``fuzz_case(seed, index)``). ``PACING_FUZZ_CASES`` changes the count.
"""

from __future__ import annotations

import json
import math
import os
import random
import struct
import time
import traceback
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from schemas import (
    AVRO_DIR,
    MAGIC,
    MAX_BATCH_EVENTS,
    MAX_PAYLOAD_BYTES,
    REGISTRY,
    ActionTargetDecision,
    Alarm,
    AlarmState,
    DecodeCategory,
    DecodeError,
    SchemaRegistry,
    StatEvent,
    TargetConfig,
    decode_decision,
    decode_stat_event,
    decode_stat_events,
    decode_stat_records,
    decode_target_config,
    encode_alarm,
    encode_decision,
    encode_stat_event,
    encode_target_config,
)
from schemas.models import COUNTERS, GAUGES, MEDIA_TYPES

CASES = int(os.environ.get("PACING_FUZZ_CASES", "60000"))
SEED = int(os.environ.get("PACING_FUZZ_SEED") or random.SystemRandom().randrange(2**32))
BATCH = 1000

# --- the material mutations start from ----------------------------------------------------

_STATISTICS = sorted(GAUGES | COUNTERS)
_MEDIA = [None, *sorted(MEDIA_TYPES)]
_TEXTS = ["acme", "vq-sales-chat", "t", "x" * 255, "é", "日本語", "\U0001f600", "a b", "[{", '"q"', "\\u0041"]


def _base_events() -> list[StatEvent]:
    rng = random.Random(1)  # the material is the same every run; the seed drives the mutations
    events = []
    for i in range(40):
        events.append(
            StatEvent(
                tenant=rng.choice(["acme", "globex", "é"]),
                target_id=rng.choice(_TEXTS),
                statistic=_STATISTICS[i % len(_STATISTICS)],
                value=rng.choice([0.0, 1.0, 7.5, 1e300, 5e-324, float(rng.randrange(10**6))]),
                timestamp=rng.choice([1, 1_700_000_000_123, 2**63 - 1]),
                source=rng.choice(_TEXTS),
                media_type=_MEDIA[i % len(_MEDIA)],
            )
        )
    return events


def _other_records() -> list[bytes]:
    """Valid Avro of the other records: on the stats topic they are wrong_record rejections."""
    decision = ActionTargetDecision(
        tenant="acme", target_id="t", name="n", state="active", supported_media_types=("call", "webchat"),
        service_level_percentage=0.8, service_level_duration_ms=20_000, short_abandon_threshold=5,
        allowed_offers=3, reactive_admission=0.5, ready_agents=1, busy_agents=2, logged_in_agents=3,
        waiting_interactions=0, outstanding_offers=1, acceptance_rate=0.5, algorithm="a",
        computed_at=1_700_000_000_000, node="n", figures={"k": "v"},
    )
    alarm = Alarm(name="A", state=AlarmState.RAISED, severity="major", tenant="acme", node="n", scope="s",
                  message="m", timestamp=1)
    config = TargetConfig(tenant="acme", target_id="t", name="n", supported_media_types=("call",))
    config_payload = encode_target_config(config)
    assert config_payload is not None
    return [encode_decision(decision), encode_alarm(alarm), config_payload]


EVENTS = _base_events()
AVRO = [encode_stat_event(e) for e in EVENTS]
OTHER_AVRO = _other_records()
JSON_DICTS = [e.model_dump() for e in EVENTS]
JSON = [json.dumps(d, ensure_ascii=i % 2 == 0).encode() for i, d in enumerate(JSON_DICTS)]
JSON_FIELDS = [{json.dumps(k): json.dumps(v) for k, v in d.items()} for d in JSON_DICTS]  # raw text per field
TARGET_JSON = [b'{"tenant": "acme", "target_id": "t", "name": "n", "supported_media_types": ["call"]}']
STAT_HEADER = REGISTRY.latest("StatEvent").header

# --- building blocks ------------------------------------------------------------------------


def zigzag(n: int) -> bytes:
    """Avro varint (zig-zag) of ``n``, any size (longer than 10 bytes for huge ``n``)."""
    n = (n << 1) ^ (n >> 63) if -(2**63) <= n < 2**63 else abs(n) << 1
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _huge_int(rng: random.Random) -> str:
    digits = rng.choice([19, 20, 309, 640, 641, 4300, 4301, 5000, rng.randrange(1, 8_000)])
    return rng.choice(["", "-"]) + "9" * digits


def _nested(rng: random.Random) -> str:
    depth = rng.choice([2, 31, 32, 33, 100, 999, 1000, 1001, rng.randrange(1, 3_000), 20_000])
    if rng.random() < 0.5:
        return '{"a":' * depth + "1" + "}" * depth
    return "[" * depth + "]" * depth


def _json_string(rng: random.Random) -> str:
    """A JSON string literal, often with something awkward in it."""
    return rng.choice([
        '"\\ud800"', '"\\udfff"', '"a\\udc00b"', '"\\ud83d"', '"\\ud83d\\ude00"', '"\\ud800\\ud800"',
        '"\\u0000"', '"line\\nbreak"', '"\\u2028"', '"tab\\t"', '"\\\\ud800"',
        '"' + "x" * rng.choice([256, 1000, rng.randrange(MAX_PAYLOAD_BYTES - 300, MAX_PAYLOAD_BYTES + 100)]) + '"',
        json.dumps(rng.choice(_TEXTS)), json.dumps(rng.choice(_STATISTICS)), '""', '"ready_agents"', '"call"',
    ])


def _json_fragment(rng: random.Random) -> str:
    """Something hostile (or merely wrong) to put where a field value goes."""
    kind = rng.randrange(12)
    if kind == 0:
        return _nested(rng)
    if kind == 1:
        return _huge_int(rng)
    if kind == 2:
        return rng.choice(["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1e-400", "-0", "-0.0", "0e0",
                           "1" + "0" * rng.randrange(300, 5000) + ".5", "1.7e12", "1700000000000.0", "1E+2"])
    if kind == 3:
        return _json_string(rng)
    if kind == 4:
        return rng.choice(["true", "false", "null", "[]", "{}", "[1]", '{"a": 1}', '"5"', '"1700000000000"'])
    if kind == 5:
        return str(rng.choice([-1, 0, 1, 2**31, 2**63 - 1, 2**63, 2**64, -(2**63)]))
    if kind == 6:
        return repr(rng.uniform(-1e6, 1e6))
    if kind == 7:
        return "[" + ", ".join(_json_string(rng) for _ in range(rng.randrange(0, 4))) + "]"
    return json.dumps(rng.choice([rng.random(), rng.randrange(10**13), rng.choice(_TEXTS), None]))


def _json_key(rng: random.Random) -> str:
    return rng.choice([
        '"colour"', '"\\ud800"', '"a\\nb"', '"' + "k" * rng.randrange(41, 3000) + '"', '""', '"value"',
        '"tenant"', '"\\u0000"', json.dumps(rng.choice(list(JSON_DICTS[0]))),
    ])


# --- generators: one payload each -----------------------------------------------------------


def gen_random_bytes(rng: random.Random) -> Any:
    size = rng.choice([rng.randrange(0, 16), rng.randrange(0, 200), rng.randrange(0, 2000)])
    body = rng.randbytes(size)
    prefix = rng.choice([b"", b"", MAGIC, STAT_HEADER, STAT_HEADER, b"{", b" \n{", MAGIC + rng.randbytes(8)])
    return prefix + body


_INTERESTING = [b"\xff" * 11, b"\x80" * 20, zigzag(2**62), zigzag(-(2**62)), zigzag(-1), b"\xed\xa0\x80", b"\xc3",
                MAGIC, b"\\ud800", b"[" * 40, b"9" * 700, b"\x00"]
_VARINTS = [zigzag(n) for n in (0, 1, -1, 7, 2**31, 2**62, -(2**62), 2**63 - 1, -(2**63), 10**30)]


def _mutate(rng: random.Random, data: bytes, pool: list[bytes]) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.choice([1, 1, 1, 2, 3, 8])):
        n = len(buf)
        op = rng.randrange(9)
        pos = rng.randrange(n + 1)
        if op == 0 and n:  # bit flip
            i = rng.randrange(n)
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1 and n:  # byte replaced by an interesting value
            buf[rng.randrange(n)] = rng.choice([0x00, 0x01, 0x7F, 0x80, 0xFF, 0x22, 0x5C, 0x7B, 0x5B, 0xED, 0xC3])
        elif op == 2:  # truncation
            del buf[pos:]
        elif op == 3:  # insertion of random bytes
            buf[pos:pos] = rng.randbytes(rng.randrange(1, 9))
        elif op == 4:  # insertion of an interesting sequence
            buf[pos:pos] = rng.choice(_INTERESTING)
        elif op == 5 and n:  # deletion of a range
            end = min(n, pos + rng.randrange(1, 9))
            del buf[pos:end]
        elif op == 6 and n:  # duplication of a range
            start = rng.randrange(n)
            end = min(n, start + rng.randrange(1, 17))
            buf[pos:pos] = buf[start:end]
        elif op == 7:  # splice: our prefix, another payload's suffix
            other = rng.choice(pool)
            buf = buf[:pos] + other[rng.randrange(len(other) + 1):]
        else:  # trailing bytes
            buf += rng.randbytes(rng.randrange(1, 5))
    return bytes(buf)


def gen_avro_mutation(rng: random.Random) -> Any:
    return _mutate(rng, rng.choice(AVRO + OTHER_AVRO), AVRO + JSON)


def gen_json_mutation(rng: random.Random) -> Any:
    return _mutate(rng, rng.choice(JSON + TARGET_JSON), JSON + AVRO)


def gen_json_structure(rng: random.Random) -> Any:
    """A valid event with fields replaced, added or removed as raw JSON text."""
    fields = dict(rng.choice(JSON_FIELDS))
    for _ in range(rng.choice([1, 1, 2, 3])):
        op = rng.randrange(4)
        if op <= 1:
            fields[rng.choice(list(fields))] = _json_fragment(rng)
        elif op == 2:
            fields[_json_key(rng)] = _json_fragment(rng)
        elif fields:
            del fields[rng.choice(list(fields))]
    sep = rng.choice([", ", ",", ",\n  ", " ,\t"])
    text = "{" + sep.join(f"{k}: {v}" for k, v in fields.items()) + "}"
    if rng.random() < 0.1:
        text = rng.choice(["  ", "\n", "\ufeff"]) + text + rng.choice(["", " ", "\n", " x", "}", "\x00"])
    return text.encode("utf-8", "surrogatepass")


def gen_avro_body(rng: random.Random) -> Any:
    """A StatEvent header and a body of random varints, length prefixes, strings and doubles."""
    parts = []
    for _ in range(rng.randrange(0, 10)):
        kind = rng.randrange(6)
        if kind == 0:
            parts.append(rng.choice(_VARINTS))
        elif kind == 1:
            text = rng.choice([b"acme", b"ready_agents", b"call", b"\xed\xa0\x80", b"\xff\xfe", rng.randbytes(5)])
            parts.append(zigzag(len(text) + rng.choice([0, 0, 0, 1, -1, 2**40])) + text)
        elif kind == 2:
            parts.append(struct.pack("<d", rng.choice([1.0, -1.0, math.nan, math.inf, 1e308, 0.0])))
        elif kind == 3:
            parts.append(bytes([rng.choice([0, 1, 2, 3, 4, 0x7F, 0xFF])]))  # union branch / short varint
        elif kind == 4:
            parts.append(b"\xff" * rng.randrange(1, 30))  # a varint that does not end
        else:
            parts.append(rng.randbytes(rng.randrange(1, 12)))
    header = rng.choice([STAT_HEADER, STAT_HEADER, STAT_HEADER, OTHER_AVRO[0][:10], MAGIC + rng.randbytes(8)])
    return header + b"".join(parts)


def gen_special(rng: random.Random) -> Any:
    kind = rng.randrange(11)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([b"", b" ", b"\n", b"{", b"}", b"{}", b"[]", b"null", MAGIC, MAGIC + b"\x00"])
    if kind == 2:
        return ('{"a": ' + _nested(rng) + "}").encode()
    if kind == 3:
        return _nested(rng).encode()
    if kind == 4:
        return ('{"value": ' + _huge_int(rng) + "}").encode()
    if kind == 5:
        return bytearray(rng.choice(AVRO))
    if kind == 6:
        return memoryview(rng.choice(JSON))
    if kind == 7:
        return rng.choice(AVRO) + b"\x00" * (MAX_PAYLOAD_BYTES - rng.randrange(-2, 60))
    if kind == 8:
        return rng.choice(["text", 5, 1.5, object(), [b"x"]])
    if kind == 9:
        return rng.choice(AVRO + JSON)  # unmutated: must decode
    return b'{"source": "' + b"x" * rng.randrange(MAX_PAYLOAD_BYTES - 200, MAX_PAYLOAD_BYTES + 200) + b'"}'


GENERATORS: list[tuple[Callable[[random.Random], Any], int]] = [
    (gen_random_bytes, 15),
    (gen_avro_mutation, 28),
    (gen_json_mutation, 20),
    (gen_json_structure, 22),
    (gen_avro_body, 8),
    (gen_special, 7),
]
_TABLE = [gen for gen, weight in GENERATORS for _ in range(weight)]


def fuzz_case(seed: int, index: int) -> tuple[str, Any]:
    """The generator's name and the payload of case ``index`` of the run with ``seed``."""
    rng = random.Random(seed * 1_000_003 + index)
    generator = rng.choice(_TABLE)
    return generator.__name__, generator(rng)


# --- the invariant ----------------------------------------------------------------------------


def _check_rejection(error: BaseException) -> str | None:
    """Why ``error`` is not an acceptable rejection, or None if it is."""
    if not isinstance(error, DecodeError):
        return f"{type(error).__name__} escaped: {''.join(traceback.format_exception(error))[-1500:]}"
    reason = error.reason
    if not isinstance(reason, str) or not reason or not reason.isprintable() or len(reason) > 200:
        return f"bad reason {reason!r}"
    if str(error) != reason:
        return f"str(error) {str(error)!r} differs from the reason {reason!r}"
    if not isinstance(error.category, DecodeCategory):
        return f"category {error.category!r} not a DecodeCategory"
    if error.category is DecodeCategory.INTERNAL_ERROR:
        return f"decoder bug caught by the safety net: {reason}"
    return None


def _check_stat(payload: Any, result: object) -> str | None:
    if isinstance(result, DecodeError):
        return _check_rejection(result)
    if not isinstance(result, StatEvent):
        return f"result is {type(result).__name__}"
    if not (math.isfinite(result.value) and result.value >= 0 and result.statistic in _STATISTICS):
        return f"invalid event accepted: {result!r}"
    if decode_stat_event(encode_stat_event(result)) != result:  # encodable (no lone surrogates) and stable
        return f"accepted event does not round-trip: {result!r}"
    return None


def _check_single(decoder: Callable[[Any], Any], payload: Any, accepted: tuple[type, ...]) -> str | None:
    try:
        result = decoder(payload)
    except BaseException as exc:  # everything, to report it
        return _check_rejection(exc)
    if not isinstance(result, accepted):
        return f"{decoder.__name__} returned {type(result).__name__}"
    if result is None and not (payload is None or payload == b""):
        return f"{decoder.__name__} returned None (a tombstone) for a non-empty payload"
    return None


def test_decoders_never_raise_on_fuzzed_payloads() -> None:
    print(f"codec fuzz: seed {SEED}, {CASES} cases (reproduce with PACING_FUZZ_SEED={SEED})")
    started = time.perf_counter()
    failures: list[str] = []
    outcomes: Counter[str] = Counter()
    generators: Counter[str] = Counter()

    def fail(index: int, name: str, payload: Any, decoder: str, problem: str) -> None:
        shown = payload[:300] if isinstance(payload, bytes | bytearray) else payload
        failures.append(f"case {index} ({name}) via {decoder}: {problem}\n  payload {shown!r}")

    for start in range(0, CASES, BATCH):
        cases = [fuzz_case(SEED, i) for i in range(start, min(start + BATCH, CASES))]
        payloads = [payload for _, payload in cases]
        try:
            results: list[object] = list(decode_stat_events(payloads))
        except BaseException as exc:  # the batch decoder must never raise: find the culprit
            failures.append(f"decode_stat_events raised on the batch at {start}: {exc!r}")
            results = []
            for payload in payloads:
                try:
                    results.extend(decode_stat_events([payload]))
                except BaseException as single:
                    results.append(single)
        if len(results) != len(payloads):
            failures.append(f"batch at {start}: {len(results)} results for {len(payloads)} payloads")
            continue
        for offset, ((name, payload), result) in enumerate(zip(cases, results, strict=True)):
            index = start + offset
            generators[name] += 1
            outcomes["event" if isinstance(result, StatEvent) else str(getattr(result, "category", "?"))] += 1
            problem = _check_stat(payload, result)
            if problem:
                fail(index, name, payload, "decode_stat_events", problem)
            problem = _check_single(decode_target_config, payload, (TargetConfig, type(None)))
            if problem:
                fail(index, name, payload, "decode_target_config", problem)
            problem = _check_single(decode_decision, payload, (ActionTargetDecision,))
            if problem:
                fail(index, name, payload, "decode_decision", problem)
        if len(failures) >= 20:
            break

    elapsed = time.perf_counter() - started
    print(f"codec fuzz: {sum(generators.values())} cases in {elapsed:.1f}s; generators {dict(generators)}")
    print(f"codec fuzz: outcomes {dict(sorted(outcomes.items()))}")
    assert not failures, f"seed {SEED} (PACING_FUZZ_SEED={SEED}):\n" + "\n".join(failures[:20])
    assert sum(generators.values()) == CASES
    # The generators reach every part of the decoder (a guard against a fuzzer that only makes noise).
    expected = {c.value for c in DecodeCategory} - {"wrong_tenant", "internal_error"}
    assert expected <= outcomes.keys(), f"seed {SEED}: categories never produced: {expected - outcomes.keys()}"
    assert outcomes["event"] >= CASES // 50, f"seed {SEED}: only {outcomes['event']} valid events"


def test_fuzz_cases_are_reproducible() -> None:
    """The same (seed, index) gives the same payload, so a failure can be replayed alone."""
    for index in (0, 1, 4242, CASES - 1):
        name, payload = fuzz_case(SEED, index)
        again_name, again = fuzz_case(SEED, index)
        if isinstance(payload, bytes | bytearray | memoryview | str | int | float | type(None)):
            assert (name, payload) == (again_name, again)
        else:
            assert (name, type(payload)) == (again_name, type(again))


# --- the fast stat path agrees with fastavro + pydantic -------------------------------------------
#
# decode_stat_records / decode_stat_events read the usual Avro payloads by hand and validate the
# usual dicts by hand (schemas.models.stat_event_if_valid). The promise is that this changes the
# speed only: below, the same payloads go through the reference path (fastavro and pydantic alone)
# and every outcome must be identical: the same events (same values, value types and fields set),
# the same rejections (reason, category, index, item).

FAST_CASES = int(os.environ.get("PACING_FUZZ_FAST_CASES", "5000"))


class _Str(str):
    """A str subclass: pydantic accepts it (and builds a plain str); the hand check leaves it to pydantic."""


_FIELD_VALUES: dict[str, list[Any]] = {
    "tenant": ["acme", "", "é", "\ud800", _Str("acme"), b"acme", 5, None, "x" * 300],
    "target_id": ["t", "", "x" * 255, "x" * 256, "é" * 255, "é" * 256, "\ud800", "a\ud800" * 128, _Str("t"),
                  b"t", 1, None],
    "statistic": [*_STATISTICS[:3], "bogus", "", "Ready_agents", _Str("ready_agents"), b"ready_agents", None, 1],
    "value": [0.0, -0.0, 1.0, 5e-324, -5e-324, 1.7976931348623157e308, math.inf, -math.inf, math.nan, -1.0,
              0, 1, -1, 2**53, 2**53 + 1, 2**63, 2**1100, True, False, "5", None, [1.0]],
    "timestamp": [1, 0, -1, 1_700_000_000_123, 2**63 - 1, 2**63, -(2**63), True, 1.0, 1.7e12, "1", None],
    "source": ["s", "", "é", "\ud800", "x" * 70_000, _Str("s"), b"s", None, 0],
    "media_type": [None, *sorted(MEDIA_TYPES)[:3], "fax", "", "Call", _Str("call"), b"call", 0, []],
}


def _random_event_dict(rng: random.Random) -> Any:
    data: dict[Any, Any] = dict(rng.choice(JSON_DICTS))
    for _ in range(rng.choice([0, 0, 1, 1, 2, 3])):
        op = rng.randrange(10)
        if op < 7:
            field = rng.choice(list(_FIELD_VALUES))
            data[field] = rng.choice(_FIELD_VALUES[field])
        elif op == 7 and data:
            del data[rng.choice(list(data))]
        elif op == 8:
            data[rng.choice(["colour", "", "value ", 5, "media"])] = rng.choice([1, "x", None])
        else:
            data.pop("media_type", None)
    if rng.random() < 0.02:
        return rng.choice([list(data.items()), None, "text", _DictSubclass(data)])
    return data


class _DictSubclass(dict):  # type: ignore[type-arg]
    """Not a plain dict: the hand check leaves it to pydantic."""


def _same_event(a: StatEvent, b: StatEvent) -> bool:
    return (type(a) is type(b) is StatEvent and a == b and a.model_fields_set == b.model_fields_set
            and [(type(v), repr(v)) for v in a.__dict__.values()] == [(type(v), repr(v)) for v in b.__dict__.values()]
            and list(a.__dict__) == list(b.__dict__))


def test_stat_event_if_valid_agrees_with_pydantic() -> None:
    from pydantic import ValidationError

    from schemas import stat_event_if_valid

    rng = random.Random(SEED)
    outcomes: Counter[str] = Counter()
    failures = []
    for index in range(FAST_CASES):
        data = _random_event_dict(rng)
        fast = stat_event_if_valid(data)
        try:
            reference: StatEvent | None = StatEvent.model_validate(data, strict=True)
        except ValidationError:
            reference = None
        if fast is not None and (reference is None or not _same_event(fast, reference)):
            failures.append(f"case {index}: {data!r:.300}: fast {fast!r}, pydantic {reference!r}")
        outcomes["fast" if fast is not None else "pydantic accepts" if reference is not None else "rejected"] += 1
    print(f"stat_event_if_valid: seed {SEED}, outcomes {dict(outcomes)}")
    assert not failures, f"seed {SEED}:\n" + "\n".join(failures[:10])
    assert outcomes["fast"] > FAST_CASES // 8 and outcomes["rejected"] > FAST_CASES // 4, outcomes


def _reference_registry() -> SchemaRegistry:
    registry = SchemaRegistry.from_directory(AVRO_DIR)
    registry._fast_event_fp = registry._fast_batch_fp = None  # fastavro for every payload
    return registry


BATCH_HEADER = REGISTRY.latest("StatBatch").header
_BAD_RAW = [
    {"value": -1.0}, {"value": math.nan}, {"value": math.inf}, {"statistic": "bogus"}, {"target_id": ""},
    {"target_id": "x" * 256}, {"target_id": "é" * 256}, {"tenant": ""}, {"timestamp": 0}, {"timestamp": -(2**63)},
    {"media_type": "fax"}, {"media_type": None}, {"source": "s" * 100}, {},
]


def _raw_event(rng: random.Random) -> dict[str, Any]:
    return {**rng.choice(JSON_DICTS), **rng.choice(_BAD_RAW)}


def _stat_batch(rng: random.Random, count: int | None = None) -> bytes:
    """A StatBatch payload written by fastavro: events of one target, sometimes bad ones, sometimes mixed."""
    count = rng.choice([1, 2, 13, 13, rng.randrange(1, 60)]) if count is None else count
    base = rng.choice(JSON_DICTS)
    items = []
    for i in range(count):
        item = {**base, "statistic": _STATISTICS[i % len(_STATISTICS)], "value": float(rng.randrange(1000))}
        if rng.random() < 0.1:
            item = _raw_event(rng)
        items.append(item)
    return REGISTRY.encode("StatBatch", {"events": items})


def _blocks(rng: random.Random) -> bytes:
    """A StatBatch body with hand-made array blocks: several counts, negative counts with sizes, odd ends."""
    bodies = [REGISTRY.encode("StatEvent", _raw_event(rng) if rng.random() < 0.2 else rng.choice(JSON_DICTS))[10:]
              for _ in range(rng.randrange(0, 6))]
    out = b""
    i = 0
    while i < len(bodies):
        n = rng.randrange(1, len(bodies) - i + 1)
        chunk = b"".join(bodies[i:i + n])
        if rng.random() < 0.4:
            out += zigzag(-n) + zigzag(len(chunk) + rng.choice([0, 0, 0, 1, -1])) + chunk
        else:
            out += zigzag(n + rng.choice([0, 0, 0, 0, 1, -1])) + chunk
        i += n
    return BATCH_HEADER + out + rng.choice([b"\x00", b"\x00", b"", b"\x00\x00", b"\x01", zigzag(2**40)])


def _json_stat_batch(rng: random.Random) -> bytes:
    items = []
    for _ in range(rng.choice([0, 1, 3, 13])):
        kind = rng.randrange(6)
        if kind == 0:
            fields = dict(rng.choice(JSON_FIELDS))
            fields[rng.choice(list(fields))] = _json_fragment(rng)
            items.append("{" + ", ".join(f"{k}: {v}" for k, v in fields.items()) + "}")
        elif kind == 1:
            items.append(rng.choice(["1", "null", "[]", '"x"', "{}", _json_fragment(rng)]))
        else:
            items.append(rng.choice(JSON).decode())
    body = '{"events": [' + ", ".join(items) + "]" + rng.choice(["", "", ', "x": 1', ', "events": []']) + "}"
    return body.encode("utf-8", "surrogatepass")


def gen_stat_record(rng: random.Random) -> Any:
    if rng.random() < 0.005:  # at and over the length limit (costly: a thousand events each)
        return _stat_batch(rng, rng.choice([0, MAX_BATCH_EVENTS, MAX_BATCH_EVENTS + 1]))
    kind = rng.randrange(10)
    if kind <= 2:
        return _stat_batch(rng)
    if kind == 3:
        return _mutate(rng, _stat_batch(rng), AVRO + JSON)
    if kind == 4:
        return _blocks(rng)
    if kind == 5:
        return _json_stat_batch(rng)
    if kind == 6:
        return REGISTRY.encode("StatEvent", _raw_event(rng))
    if kind == 7:
        return _stat_batch(rng, rng.choice([0, 1, 2]))
    return fuzz_case(SEED, rng.randrange(CASES))[1]  # everything the single-record fuzzer makes


def _same_outcome(fast: object, reference: object) -> str | None:
    if isinstance(fast, DecodeError) or isinstance(reference, DecodeError):
        if not (isinstance(fast, DecodeError) and isinstance(reference, DecodeError)):
            return f"fast {fast!r:.200} vs reference {reference!r:.200}"
        got = (fast.reason, fast.category, fast.index, fast.item)
        expected = (reference.reason, reference.category, reference.index, reference.item)
        return None if got == expected else f"fast {got!r:.300} vs reference {expected!r:.300}"
    if isinstance(fast, StatEvent) and isinstance(reference, StatEvent):
        return None if _same_event(fast, reference) else f"fast {fast!r} vs reference {reference!r}"
    if isinstance(fast, list) and isinstance(reference, list):
        if len(fast) != len(reference):
            return f"{len(fast)} results vs {len(reference)}"
        for a, b in zip(fast, reference, strict=True):
            problem = _same_outcome(a, b)
            if problem:
                return problem
        return None
    return f"fast {type(fast).__name__} vs reference {type(reference).__name__}"


def _check_record(result: object) -> str | None:
    """The invariant of one decode_stat_records entry."""
    if isinstance(result, DecodeError):
        if result.index is not None or result.item is not None:
            return "a whole-record rejection with an index or item"
        return _check_rejection(result)
    if not isinstance(result, list) or not result:
        return f"record result is {result!r:.100}"
    for index, item in enumerate(result):
        if isinstance(item, DecodeError):
            problem = _check_rejection(item)
            if problem:
                return problem
            if item.index != index or not isinstance(item.item, bytes):
                return f"event rejection without its index/item: {item.index!r} {item.item!r:.100}"
        elif not isinstance(item, StatEvent):
            return f"event result is {type(item).__name__}"
    return None


def test_stat_records_fast_path_agrees_with_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    import schemas.codec as codec

    rng = random.Random(SEED + 1)
    payloads = [gen_stat_record(rng) for _ in range(FAST_CASES)]
    reference_registry = _reference_registry()
    fast = decode_stat_records(payloads)
    fast_single = decode_stat_events(payloads)
    with monkeypatch.context() as patch:
        patch.setattr(codec, "stat_event_if_valid", lambda data: None)  # pydantic for every dict
        reference = decode_stat_records(payloads, registry=reference_registry)
        reference_single = decode_stat_events(payloads, registry=reference_registry)
    failures = []
    outcomes: Counter[str] = Counter()
    for index, payload in enumerate(payloads):
        for name, got, expected in (("decode_stat_records", fast[index], reference[index]),
                                    ("decode_stat_events", fast_single[index], reference_single[index])):
            problem = _same_outcome(got, expected) or (_check_record(got) if name == "decode_stat_records" else None)
            if problem:
                shown = payload[:200] if isinstance(payload, bytes | bytearray) else payload
                failures.append(f"payload {index} via {name}: {problem}\n  payload {shown!r}")
        result = fast[index]
        if isinstance(result, DecodeError):
            outcomes[f"record {result.category}"] += 1
        else:
            outcomes["events" if all(isinstance(e, StatEvent) for e in result) else "some rejected"] += 1
    print(f"fast stat path: seed {SEED}, outcomes {dict(sorted(outcomes.items()))}")
    assert not failures, f"seed {SEED} (PACING_FUZZ_SEED={SEED}):\n" + "\n".join(failures[:10])
    assert outcomes["events"] > FAST_CASES // 10 and outcomes["some rejected"] > FAST_CASES // 50, outcomes
