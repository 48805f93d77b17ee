"""GC and memory self-monitoring raise and clear the seed's alarms."""

from __future__ import annotations

import gc

from schemas import AlarmState, decode_alarm
from streams.runtime.alarms import AlarmBoard
from streams.runtime.config import MetricsSettings
from streams.runtime.process_health import ProcessHealth, memory_limit_bytes, resident_bytes


def health(**metrics) -> ProcessHealth:
    return ProcessHealth(MetricsSettings(**metrics), AlarmBoard("acme", "n1"))


def test_memory_over_threshold_raises_heap_alarm_once() -> None:
    watch = health(HeapMemoryUsage={"threshold": 0.001})
    first = [decode_alarm(m.value) for m in watch.check()]
    assert [(a.name, a.state) for a in first] == [("HeapMemoryUsage", AlarmState.RAISED)]
    assert first[0].observed_value > 0.001
    assert watch.check() == []


def test_alarm_clears_when_back_under_threshold() -> None:
    watch = health(HeapMemoryUsage={"threshold": 0.001})
    watch.check()
    watch.settings = MetricsSettings(HeapMemoryUsage={"threshold": 99.9})
    cleared = [decode_alarm(m.value) for m in watch.check()]
    assert [(a.name, a.state) for a in cleared] == [("HeapMemoryUsage", AlarmState.CLEARED)]


def test_gc_pauses_and_full_collections_are_observed() -> None:
    watch = health(GcLatency={"threshold": 1e-9}, GcFrequency={"threshold": 0.5})
    watch.install()
    try:
        garbage = [[i] for i in range(50_000)]
        del garbage
        gc.collect()
        gc.collect()
    finally:
        watch.uninstall()
    sample = watch.sample()
    assert sample.max_gc_pause_ms > 0 and sample.full_collections_per_min >= 2
    names = {decode_alarm(m.value).name for m in watch.check()}
    assert {"GcLatency", "GcFrequency"} <= names


def test_memory_figures_are_plausible() -> None:
    assert 0 < resident_bytes() < memory_limit_bytes()
    assert memory_limit_bytes(512) == 512 * 1024 * 1024
