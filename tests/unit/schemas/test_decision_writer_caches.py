"""A :class:`~schemas.fast.decision_writer.DecisionWriter` owns its caches: writers do not share them.

The byte-for-byte promise itself is tests/unit/schemas/test_decision_writer.py's (through the default writer
behind ``encode_decision_fields``); here, that a writer made on its own writes the same bytes, and
that its caches, bounds and clearing are its own.
"""

from __future__ import annotations

from typing import Any

import schemas.codec as codec
from schemas import REGISTRY
from schemas.fast.decision_writer import DecisionWriter
from tests.unit.schemas.test_decision_writer import base_record

HEADER = REGISTRY._fast_decision_header


def _cached(writer: DecisionWriter) -> int:
    return sum(map(len, (writer.strings, writer.varints, writer.media))) + sum(map(len, writer.figures.values()))


def test_a_writer_writes_what_fastavro_writes_from_its_own_caches() -> None:
    assert HEADER is not None
    codec._clear_decision_caches()
    first, second = DecisionWriter(), DecisionWriter()
    record = base_record()
    expected = REGISTRY.encode("ActionTargetDecision", record)
    assert first.write(record, HEADER) == expected
    assert first.write(record, HEADER) == expected  # from the caches
    assert _cached(first) == first.size[0] > 0
    assert _cached(second) == 0 and not codec._STRINGS  # the others learnt nothing
    assert second.write(record, HEADER) == expected
    first.clear()
    assert _cached(first) == 0 and first.size == [0, 0]
    assert _cached(second) > 0


def test_a_writer_is_bounded_by_its_own_limit() -> None:
    small = DecisionWriter(max_entries=30)
    for i in range(200):
        record: dict[str, Any] = base_record(target_id=f"vq-{i}", computed_at=1_700_000_000_000 + i,
                                             figures={"handleTimeS": str(i)})
        assert small.write(record, HEADER) == REGISTRY.encode("ActionTargetDecision", record)
        assert small.size[0] <= 30 + 20
    assert _cached(small) == small.size[0]
    assert codec._DECISION_WRITER.max_entries == 100_000  # the default writer's bound is untouched


def test_what_is_not_usual_is_left_to_fastavro() -> None:
    writer = DecisionWriter()
    for record in (None, [], base_record(ready_agents=None), base_record(figures={"a": 1}), {"tenant": "acme"}):
        assert writer.write(record, HEADER) is None  # type: ignore[arg-type]
