"""The pydantic internals :func:`schemas.models._stat_event_unchecked` relies on are still there.

It builds StatEvents by writing pydantic 2's private instance slots instead of calling
``StatEvent.model_construct`` (twice the cost of a whole StatBatch read; see its docstring), for
``stat_event_if_valid`` and the hand-written Avro reader (``schemas/fast/stat_reader.py``). If one
of these fails after a pydantic upgrade, the slots changed: read ``_stat_event_unchecked`` first,
and build the events with ``model_construct`` (or the new slots) before raising the ``pydantic<3``
pin in pyproject.toml.
"""

from __future__ import annotations

import copy
import pickle
from importlib.metadata import version

from pydantic import BaseModel

from schemas import StatEvent, decode_stat_records, encode_stat_batch
from schemas.models import _stat_event_unchecked

FIELDS = {"tenant": "acme", "target_id": "vq-1", "statistic": "ready_agents", "value": 3.0,
          "timestamp": 1_700_000_000_123, "source": "feed", "media_type": "webchat"}
SLOTS = ("__pydantic_fields_set__", "__pydantic_extra__", "__pydantic_private__")


def test_the_pinned_pydantic_major_version_is_installed() -> None:
    assert int(version("pydantic").split(".")[0]) == 2


def test_a_model_instance_is_the_slots_written() -> None:
    """An instance is its ``__dict__`` and exactly these three private slots, nothing else."""
    assert BaseModel.__slots__ == ("__dict__", *SLOTS)
    assert StatEvent.__private_attributes__ == {}  # a private attribute would need __pydantic_private__ set
    assert StatEvent.model_config.get("extra") == "forbid"  # so __pydantic_extra__ is None
    validated = StatEvent.model_validate(FIELDS, strict=True)
    assert validated.__pydantic_fields_set__ == set(FIELDS)
    assert validated.__pydantic_extra__ is None
    assert validated.__pydantic_private__ is None


def test_written_slots_give_what_model_validate_gives() -> None:
    for fields in (FIELDS, {key: value for key, value in FIELDS.items() if key != "media_type"}):
        validated = StatEvent.model_validate(fields, strict=True)
        built = _stat_event_unchecked(**{"media_type": None, **fields}, fields_set=set(fields))
        assert type(built) is StatEvent
        assert list(vars(built).items()) == list(vars(validated).items())  # values and field order
        for slot in SLOTS:
            assert getattr(built, slot) == getattr(validated, slot), slot
        assert built == validated and hash(built) == hash(validated)
        assert repr(built) == repr(validated)
        assert built.model_dump() == validated.model_dump()
        assert built.model_dump(exclude_unset=True) == validated.model_dump(exclude_unset=True)
        assert built.model_dump_json() == validated.model_dump_json()
        assert built.model_copy(update={"value": 4.0}) == validated.model_copy(update={"value": 4.0})
        assert copy.deepcopy(built) == validated
        assert pickle.loads(pickle.dumps(built)) == validated
        assert StatEvent.model_construct(**fields) == built  # the public way builds the same


def test_the_hand_reader_builds_events_through_it() -> None:
    events = [StatEvent.model_validate({**FIELDS, "statistic": name}, strict=True)
              for name in ("ready_agents", "busy_agents")]
    [read] = decode_stat_records([encode_stat_batch(events)])
    assert read == events
    assert [(e.__pydantic_fields_set__, e.__pydantic_extra__, e.__pydantic_private__) for e in read] == [
        (set(FIELDS), None, None)] * 2
