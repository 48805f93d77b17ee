"""TargetState: folding stat events (gauges, counters with resets, late and repeated events)."""

from __future__ import annotations

import json

from streams.engine import TargetState
from streams.engine.state import BUCKET_MS, COUNTER_INDEX, MAX_BUCKETS, WAITING_AREA

T0 = 1_700_000_000_000


def totals(state: TargetState) -> dict[str, float]:
    values = state.window_totals(0)
    return {name: values[i] for name, i in COUNTER_INDEX.items()} | {"waiting_area": values[WAITING_AREA]}


def test_gauges_keep_the_newest_value_by_timestamp() -> None:
    state = TargetState("vq")
    assert state.apply("ready_agents", 3, T0 + 2000)
    assert not state.apply("ready_agents", 9, T0 + 1000)  # late
    assert not state.apply("ready_agents", 3, T0 + 2000)  # repeated
    assert state.gauge("ready_agents") == 3
    assert state.gauge("busy_agents", default=-1.0) == -1.0
    assert state.last_event_ms == T0 + 2000


def test_counter_increments_land_in_time_buckets_and_the_first_sample_is_a_baseline() -> None:
    state = TargetState("vq")
    state.apply("offers_made", 100, T0)
    state.apply("offers_made", 130, T0 + 10_000)
    state.apply("offers_made", 160, T0 + BUCKET_MS + 10_000)
    assert totals(state)["offers_made"] == 60
    assert state.counter_since_ms == T0
    assert len(state.buckets) == 2


def test_a_counter_reset_counts_the_new_value_as_the_increment() -> None:
    state = TargetState("vq")
    state.apply("interactions_entered", 500, T0)
    state.apply("interactions_entered", 520, T0 + 1000)
    state.apply("interactions_entered", 4, T0 + 2000)  # the ACD restarted: 4 since then
    state.apply("interactions_entered", 10, T0 + 3000)
    assert totals(state)["interactions_entered"] == 20 + 4 + 6


def test_late_and_repeated_counter_samples_neither_lose_nor_double_count() -> None:
    events = [("offers_accepted", v, T0 + i * 1000) for i, v in enumerate((0, 5, 9, 12, 20))]
    in_order = TargetState("vq")
    for event in events:
        in_order.apply(*event)
    shuffled = TargetState("vq")
    for event in [events[0], events[2], events[1], events[4], events[3], events[4], events[2]]:
        shuffled.apply(*event)
    assert totals(shuffled)["offers_accepted"] == totals(in_order)["offers_accepted"] == 20


def test_waiting_interactions_are_integrated_over_time() -> None:
    state = TargetState("vq")
    state.apply("waiting_interactions", 2, T0)
    state.apply("waiting_interactions", 0, T0 + 30_000)
    state.apply("waiting_interactions", 1, T0 + 40_000)
    assert totals(state)["waiting_area"] == 2 * 30


def test_unknown_statistics_are_ignored() -> None:
    state = TargetState("vq")
    assert not state.apply("coffee_breaks", 3, T0)
    assert state.to_dict()["gauges"] == {} and state.last_event_ms == 0


def test_the_state_stays_bounded_however_long_it_runs() -> None:
    state = TargetState("vq")
    for minute in range(10 * MAX_BUCKETS):
        state.apply("offers_made", minute, T0 + minute * BUCKET_MS)
    assert len(state.buckets) <= MAX_BUCKETS
    assert len(json.dumps(state.to_dict())) < 4000


def test_to_dict_round_trips_through_json() -> None:
    state = TargetState("vq", media_type="webchat")
    state.apply("ready_agents", 4, T0, "webchat")
    state.apply("waiting_interactions", 1, T0)
    state.apply("waiting_interactions", 0, T0 + 5500)
    for i in range(3):
        state.apply("interactions_answered", 10 * i, T0 + i * 70_000)
    copy = TargetState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert copy == state
    assert copy.to_dict() == state.to_dict()


def test_from_dict_reads_the_first_format_without_buckets() -> None:
    old = {"target_id": "vq", "media_type": None, "gauges": {"ready_agents": 2.0}, "gauge_ts": {"ready_agents": T0},
           "counters": {"offers_made": 10.0}, "counter_ts": {"offers_made": T0}, "last_event_ms": T0}
    state = TargetState.from_dict(old)
    assert state.gauge("ready_agents") == 2 and state.buckets == {} and state.counter_since_ms is None
    state.apply("offers_made", 15, T0 + 1000)
    assert totals(state)["offers_made"] == 5


def test_a_memory_stored_before_the_30_s_half_life_keeps_its_offers() -> None:
    """States written with three half-lives (six numbers) load with the 2-minute pair standing in
    for the 30 s one, not an empty memory (which would forget an hour of acceptance)."""
    state = TargetState("vq")
    state.apply("offers_made", 100.0, 1_000)
    state.apply("offers_accepted", 30.0, 1_000)
    stored = state.to_dict()
    stored["memory"] = [400.0, 120.0, 200.0, 60.0, 50.0, 15.0]
    loaded = TargetState.from_dict(json.loads(json.dumps(stored)))
    assert loaded.memory == [400.0, 120.0, 200.0, 60.0, 50.0, 15.0, 50.0, 15.0]
