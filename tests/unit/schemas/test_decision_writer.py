"""The hand-written ActionTargetDecision writer (``encode_decision_fields``) against fastavro.

The promise: the same bytes as ``REGISTRY.encode("ActionTargetDecision", record)`` for any
record, or the same ``EncodeError``; and fastavro alone once the newest schema is not the layout
the writer was written for. The writer caches encoded values across calls, so the property tests
run many records through the same caches (values first seen, then found again, equal values of
other types after them) and check every record twice.
"""

from __future__ import annotations

import enum
import json
import math
import random
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import schemas.codec as codec
from schemas import (
    AVRO_DIR,
    REGISTRY,
    ActionTargetDecision,
    EncodeError,
    SchemaRegistry,
    decode_decision,
    encode_decision,
    encode_decision_fields,
)
from schemas.models import MEDIA_TYPES

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
INT32_MAX = 2**31 - 1


def base_record(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "tenant": "acme", "target_id": "vq-1", "name": "Sales", "state": "active",
        "supported_media_types": ["webchat"], "service_level_percentage": 0.8,
        "service_level_duration_ms": 20_000, "short_abandon_threshold": 10, "description": "",
        "allowed_offers": 12, "reactive_admission": 1.0, "ready_agents": 4, "busy_agents": 6,
        "logged_in_agents": 10, "waiting_interactions": 0, "outstanding_offers": 0, "acceptance_rate": 0.3,
        "algorithm": "SUPER_PROGRESSIVE", "computed_at": 1_700_000_000_123, "node": "n1",
        "figures": {"freeAgents": "4", "handleTimeS": "300"}, "owner_epoch": 7,
    }
    record.update(changes)
    return record


def outcome(function: Any, record: Any) -> bytes | str:
    """The bytes written, or the EncodeError's type (its message is fastavro's in both cases)."""
    try:
        return function(record)
    except EncodeError:
        return "EncodeError"


def reference(record: Any) -> bytes | str:
    return outcome(lambda r: REGISTRY.encode("ActionTargetDecision", r), record)


def check_same(record: Any) -> bytes | str:
    """encode_decision_fields agrees with fastavro, the first time and the second (cached)."""
    expected = reference(record)
    for attempt in ("first", "again"):
        got = outcome(encode_decision_fields, record)
        assert got == expected, f"{attempt}: {record!r:.500}\n  hand:     {got!r:.300}\n  fastavro: {expected!r:.300}"
    return expected


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    codec._clear_decision_caches()
    yield
    codec._clear_decision_caches()


# --- the guard: the writer's layout is the newest schema's ----------------------------------------


def test_writer_layout_is_the_newest_schema() -> None:
    """Fails when a new ActionTargetDecision version is added: the hand-written writer in
    schemas/codec.py ("ActionTargetDecision fast writer") must then be updated along with
    _FAST_DECISION_FIELDS, or every decision is written by fastavro (correct, but 3-4x slower)."""
    newest = REGISTRY.latest("ActionTargetDecision")
    fields = [(field["name"], json.dumps(field["type"], separators=(",", ":")))
              for field in json.loads(newest.canonical_form)["fields"]]
    assert fields == list(codec._FAST_DECISION_FIELDS), (
        f"{newest.source} (v{newest.version}) changed the ActionTargetDecision fields: update the hand-written "
        "writer in schemas/codec.py (_FAST_DECISION_FIELDS, _write_decision, _learn_decision) to the new layout")
    assert newest.canonical_form == codec._FAST_DECISION_FORM
    assert REGISTRY._fast_decision_header == newest.header


def _schema(*extra_fields: dict[str, Any], doc: str | None = None) -> dict[str, Any]:
    schema = json.loads((AVRO_DIR / "action_target_decision.v2.avsc").read_text(encoding="utf-8"))
    schema["fields"] = schema["fields"][:5] + list(extra_fields) + schema["fields"][5:]
    if doc is not None:
        schema["doc"] = doc
    return schema


def _registry(directory: Path, *versions: dict[str, Any]) -> SchemaRegistry:
    """A registry of ActionTargetDecision ``versions`` (v1, v2, …), written as schema files."""
    directory.mkdir()
    for number, schema in enumerate(versions, start=1):
        (directory / f"action_target_decision.v{number}.avsc").write_text(json.dumps(schema), encoding="utf-8")
    return SchemaRegistry.from_directory(directory)


def test_a_new_layout_is_written_by_fastavro(tmp_path: Path) -> None:
    v1 = _schema()
    v2 = _schema({"name": "priority", "type": "int", "default": 0})
    registry = _registry(tmp_path / "new", v1, v2)
    assert registry._fast_decision_header is None
    record = base_record()
    got = encode_decision_fields(record, registry=registry)
    assert got == registry.encode("ActionTargetDecision", record)
    assert got[2:10] == registry.latest("ActionTargetDecision").fingerprint
    assert registry.decode("ActionTargetDecision", got) == {**record, "priority": 0}
    assert encode_decision_fields(record) == REGISTRY.encode("ActionTargetDecision", record)  # the default one
    # A version that only changes a doc has the same canonical form: still written by hand.
    same = _registry(tmp_path / "reworded", v1, _schema(doc="reworded"))
    assert same._fast_decision_header == REGISTRY._fast_decision_header


def test_encode_decision_uses_the_writer() -> None:
    model = ActionTargetDecision.model_validate(base_record(supported_media_types=["call", "email"]))
    payload = encode_decision(model)
    assert payload == REGISTRY.encode("ActionTargetDecision", model.to_avro_dict())
    assert codec._STRINGS  # written by hand (it cached values)
    assert decode_decision(payload) == model


# --- what fastavro does with the unusual, and the writer too -------------------------------------


class Colour(enum.StrEnum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 10


class Text(str):
    """A str subclass (encode() not overridden): fastavro writes its value."""


@pytest.mark.parametrize("changes", [
    {}, {"description": "é" * 300}, {"name": "\U0001f600日本語"}, {"supported_media_types": []},
    {"supported_media_types": ("call", "email")}, {"figures": {}}, {"figures": {"": ""}},
    {"short_abandon_threshold": True}, {"allowed_offers": False}, {"ready_agents": 4.0}, {"ready_agents": 4.5},
    {"busy_agents": Level.HIGH}, {"state": Colour.RED}, {"algorithm": Text("X")}, {"node": b"n1"},
    {"service_level_percentage": 1}, {"service_level_percentage": True}, {"service_level_percentage": "0.5"},
    {"service_level_percentage": 2**1100}, {"acceptance_rate": -0.0}, {"acceptance_rate": math.nan},
    {"reactive_admission": math.inf}, {"service_level_duration_ms": INT64_MAX}, {"computed_at": INT64_MIN},
    {"computed_at": INT64_MAX + 1}, {"computed_at": INT64_MIN - 1}, {"outstanding_offers": INT32_MAX + 1},
    {"tenant": None}, {"target_id": "\ud800"}, {"figures": {"k": "\udfff"}}, {"figures": {"k": 1}},
    {"figures": {1: "v"}}, {"figures": [("k", "v")]}, {"figures": None}, {"supported_media_types": "ab"},
    {"supported_media_types": None}, {"supported_media_types": [["call"]]}, {"supported_media_types": [1]},
    {"description": ["x"]}, {"extra": "ignored"},
])
def test_unusual_values(changes: dict[str, Any]) -> None:
    check_same(base_record(**changes))


@pytest.mark.parametrize("missing", ["tenant", "description", "figures", "computed_at", "supported_media_types"])
def test_missing_fields(missing: str) -> None:
    record = base_record()
    del record[missing]
    assert check_same(record) == reference(record)  # description and figures have defaults


def test_equal_values_of_other_types_after_cached_ones() -> None:
    """A cached value serves equal values: what fastavro writes for them too."""
    check_same(base_record(ready_agents=1, waiting_interactions=10, state="red", algorithm="X"))
    for changes in ({"ready_agents": True}, {"ready_agents": 1.0}, {"waiting_interactions": Level.HIGH},
                    {"state": Colour.RED}, {"algorithm": Text("X")}, {"supported_media_types": ("webchat",)}):
        check_same(base_record(**changes))
    for value in (0.0, -0.0, 0, math.nan, -math.nan, 5e-324, -5e-324, 1.7976931348623157e308):
        check_same(base_record(acceptance_rate=value, reactive_admission=value, service_level_percentage=value))


def test_not_a_dict() -> None:
    for record in (None, [], "record", 5):
        check_same(record)

    class Mapping(dict):  # type: ignore[type-arg]
        pass

    check_same(Mapping(base_record()))


def test_caches_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codec._DECISION_WRITER, "max_entries", 50)  # the default writer's bound
    for i in range(400):
        record = base_record(target_id=f"vq-{i}", computed_at=1_700_000_000_000 + i,
                             figures={"handleTimeS": str(i), "freeAgents": str(i % 7)})
        check_same(record)
        assert codec._cache_size[0] <= 50 + 20
    sizes = sum(map(len, (codec._STRINGS, codec._VARINTS, codec._MEDIA))) + sum(map(len, codec._FIGURES.values()))
    assert sizes == codec._cache_size[0] <= 70


def test_realistic_records() -> None:
    """Records as the pacing node builds them, a fleet over two ticks."""
    from streams.engine import TargetState
    from streams.node.decisions import decision_record, encode_decision_record
    from streams.runtime.config import load_settings

    defaults = load_settings().targets
    rnd = random.Random(7)
    for tick in range(2):
        for i in range(60):
            state = TargetState(f"vq-{i}")
            now = 1_700_000_000_000 + tick * 10_000
            logged = rnd.randrange(0, 60)
            busy = rnd.randrange(0, logged + 1)
            for name, value in (("logged_in_agents", logged), ("busy_agents", busy), ("ready_agents", logged - busy),
                                ("waiting_interactions", rnd.randrange(0, 5)), ("offers_made", 100 + i),
                                ("offers_accepted", 30 + tick), ("interactions_answered", 50 + i)):
                state.apply(name, float(value), now - 5_000, "webchat")
            definition = {"name": f"Queue {i} (Köln)", "supported_media_types": ["call", "callback"]} if i % 3 else None
            record = decision_record("acme", "n1", state, defaults, now, definition, stale=i % 17 == 0)
            payload = check_same(record)
            assert encode_decision_record(record) == payload
            assert decode_decision(payload) == ActionTargetDecision.model_validate(record)


# --- property tests ---------------------------------------------------------------------------------

texts = st.one_of(st.sampled_from(["", "acme", "vq-1", "é", "日本語", "\U0001f600", "x" * 64, "y" * 300]),
                  st.text(max_size=40), st.text(alphabet=st.characters(codec="utf-8"), max_size=8))
longs = st.one_of(st.integers(0, 1100), st.integers(INT64_MIN, INT64_MAX),
                  st.sampled_from([INT64_MIN, INT64_MAX, -1, 0, 2**31, 2**31 - 1, 1_700_000_000_123]))
counts = st.one_of(st.integers(0, 1100), st.sampled_from([0, INT32_MAX]), st.integers(0, INT32_MAX))
doubles = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, -0.0, 5e-324, 1e-300,
                    1e300, 1.7976931348623157e308, 1.0, 0.5]), st.integers(-(2**60), 2**60))
figure_names = st.sampled_from(["freeAgents", "handleTimeS", "patienceS", "stale", "é", ""])
figures = st.dictionaries(st.one_of(figure_names, texts), st.one_of(st.integers(0, 400).map(str), texts),
                          max_size=14)
media = st.one_of(st.lists(st.sampled_from(sorted(MEDIA_TYPES)), max_size=4), st.lists(texts, max_size=3),
                  st.lists(st.sampled_from(sorted(MEDIA_TYPES)), max_size=3).map(tuple))
unusual = st.sampled_from([None, True, False, 1.5, 2.0, b"x", "1", [], {}, (), Text("a"), Colour.RED, Level.HIGH,
                           "\ud800", INT64_MAX + 1, INT64_MIN - 1, 2**1100, math.nan, -0.0])

FIELD_VALUES = {
    "tenant": texts, "target_id": texts, "name": texts, "state": st.sampled_from(["active", "inactive"]) | texts,
    "supported_media_types": media, "service_level_percentage": doubles, "service_level_duration_ms": longs,
    "short_abandon_threshold": counts, "description": texts, "allowed_offers": counts, "reactive_admission": doubles,
    "ready_agents": counts, "busy_agents": counts, "logged_in_agents": counts, "waiting_interactions": counts,
    "outstanding_offers": counts, "acceptance_rate": doubles, "algorithm": texts, "computed_at": longs,
    "node": texts, "figures": figures,
}


@st.composite
def decision_dicts(draw: st.DrawFn) -> dict[str, Any]:
    record = {name: draw(values) for name, values in FIELD_VALUES.items()}
    if draw(st.integers(0, 9)) == 0:  # now and then something fastavro may or may not take
        record[draw(st.sampled_from(sorted(record)))] = draw(unusual)
    if draw(st.integers(0, 19)) == 0:
        del record[draw(st.sampled_from(sorted(record)))]
    return record


RUNS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@RUNS
@given(st.lists(decision_dicts(), min_size=1, max_size=5))
def test_same_bytes_as_fastavro(records: list[dict[str, Any]]) -> None:
    for record in records:  # in sequence: the later ones meet the values the earlier ones cached
        check_same(record)


@st.composite
def valid_decisions(draw: st.DrawFn) -> dict[str, Any]:
    fractions = st.floats(0.0, 1.0)
    nonempty = texts.filter(bool)
    return {
        "tenant": draw(nonempty), "target_id": draw(nonempty.filter(lambda t: len(t) <= 255)), "name": draw(texts),
        "state": draw(st.sampled_from(["active", "inactive"])),
        "supported_media_types": draw(st.lists(st.sampled_from(sorted(MEDIA_TYPES)), max_size=3)),
        "service_level_percentage": draw(fractions), "service_level_duration_ms": draw(st.integers(0, INT64_MAX)),
        "short_abandon_threshold": draw(counts), "description": draw(texts), "allowed_offers": draw(counts),
        "reactive_admission": draw(fractions), "ready_agents": draw(counts), "busy_agents": draw(counts),
        "logged_in_agents": draw(counts), "waiting_interactions": draw(counts), "outstanding_offers": draw(counts),
        "acceptance_rate": draw(fractions), "algorithm": draw(texts), "computed_at": draw(st.integers(1, INT64_MAX)),
        "node": draw(texts), "figures": draw(st.dictionaries(figure_names | texts, texts, max_size=12)),
    }


@RUNS
@given(valid_decisions())
def test_round_trip(record: dict[str, Any]) -> None:
    payload = check_same(record)
    assert isinstance(payload, bytes)
    decoded = decode_decision(payload)
    assert decoded == ActionTargetDecision.model_validate(record)
    assert encode_decision(decoded) == payload


def test_seeded_random_records() -> None:
    """Without hypothesis' shrinking: many plain random records through the same caches."""
    rnd = random.Random(int.from_bytes(b"decisions", "big") % sys.maxsize)
    alphabet = "ab é日\U0001f600-"
    for _ in range(3000):
        record = base_record(
            target_id=f"vq-{rnd.randrange(200)}", name="".join(rnd.choices(alphabet, k=rnd.randrange(0, 12))),
            state=rnd.choice(["active", "inactive"]), description=rnd.choice(["", "x" * rnd.randrange(300)]),
            supported_media_types=rnd.sample(sorted(MEDIA_TYPES), rnd.randrange(0, 4)),
            service_level_percentage=rnd.choice([0.8, rnd.random(), 0.0, -0.0, 1]),
            service_level_duration_ms=rnd.choice([20_000, rnd.randrange(INT64_MIN, INT64_MAX)]),
            allowed_offers=rnd.randrange(0, 2000), reactive_admission=rnd.random(), acceptance_rate=rnd.random(),
            ready_agents=rnd.randrange(0, 600), computed_at=1_700_000_000_000 + rnd.randrange(0, 10) * 10_000,
            figures={name: str(rnd.randrange(0, 1000)) for name in rnd.sample(["a", "bb", "é", "freeAgents"], 3)},
        )
        if rnd.random() < 0.05:
            record[rnd.choice(sorted(record))] = rnd.choice([None, True, 1.0, "x", Text("t"), INT64_MAX + 1])
        check_same(record)
