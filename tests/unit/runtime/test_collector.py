"""The long-running services' collector settings: young collections spaced out, start-up frozen."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from streams.runtime.collector import YOUNG_THRESHOLD, tune_for_long_running_service


@pytest.fixture
def restored_collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_young_collections_are_spaced_out_and_start_up_objects_frozen(restored_collector: None) -> None:
    _, middle, old = gc.get_threshold()
    built_at_start_up = {"settings": [1, 2]}
    assert any(o is built_at_start_up for o in gc.get_objects())  # a full collection would walk it

    tune_for_long_running_service()

    assert gc.get_threshold() == (YOUNG_THRESHOLD, middle, old)
    assert gc.get_freeze_count() > 0
    assert not any(o is built_at_start_up for o in gc.get_objects())  # frozen: no collection walks it


def test_cyclic_garbage_made_after_start_up_is_still_collected(restored_collector: None) -> None:
    tune_for_long_running_service()

    class Node:
        pass

    node = Node()
    node.self = node  # type: ignore[attr-defined]  # a reference cycle: only the collector frees it
    alive = gc.get_objects()
    assert any(o is node for o in alive)
    del node, alive
    gc.collect()
    assert not any(type(o).__name__ == "Node" and type(o).__qualname__.endswith("<locals>.Node")
                   for o in gc.get_objects())
