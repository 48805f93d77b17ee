"""TargetStore: live entries in front of a real (in-memory) Faust table, and their changelog records."""

from __future__ import annotations

import time

from faust.serializers import codecs

from streams.node.target_entry import TargetEntry
from streams.node.target_store import TargetStore
from streams.runtime.outbox import Outbox
from tests.unit.node_doubles import T0, RecordingProducer, memory_table, taken


def entry_on(target_id: str, partition: int, ready: float = 3.0) -> TargetEntry:
    entry = TargetEntry.new(target_id, partition, T0)
    entry.state.apply("ready_agents", ready, T0)
    return entry


def test_a_target_is_parsed_from_the_table_once_and_then_kept_live() -> None:
    store = TargetStore(memory_table())
    assert store.get("vq-1") is None
    store.table.data["vq-1"] = entry_on("vq-1", 2).to_json()
    first = store.get("vq-1")
    assert first is not None and first.partition == 2 and first.state.gauge("ready_agents") == 3.0
    store.table.data["vq-1"] = entry_on("vq-1", 2, ready=9.0).to_json()
    assert store.get("vq-1") is first  # live: the table is not read again ...
    store.forget(["vq-1"])
    assert store.get("vq-1").state.gauge("ready_agents") == 9.0  # ... until the live entry is forgotten


async def test_write_stores_locally_and_sends_the_changelog_record_to_the_entrys_partition() -> None:
    store = TargetStore(memory_table(), epoch=lambda: 4)
    producer = RecordingProducer()
    entry = entry_on("vq-1", 3)
    store.add("vq-1", entry)
    assert store.table.get("vq-1") is None  # added, not written yet
    outbox = Outbox(producer, 1.0)
    before = int(time.time() * 1000)
    await store.write("vq-1", entry, taken(3, 17, b"x"), outbox)
    await outbox.confirm()
    # The value carries the writer's ownership epoch and when it was written (the restore's fence).
    stored = store.table.get("vq-1")
    assert stored["epoch"] == 4 and before <= stored["written_ms"] <= time.time() * 1000
    assert {k: v for k, v in stored.items() if k not in ("epoch", "written_ms")} == entry.to_json()
    [record] = producer.sent
    assert (record.topic, record.partition) == (store.changelog_topic, 3)
    assert store.changelog_topic.endswith("targets-changelog")
    assert codecs.loads("json", record.key) == "vq-1" and codecs.loads("json", record.value) == stored
    store.forget()
    assert TargetEntry.from_json(store.table.get("vq-1")).state.gauge("ready_agents") == 3.0


def test_owned_yields_the_entries_of_the_given_partitions_live_or_from_the_table() -> None:
    store = TargetStore(memory_table())
    for target_id, partition in (("a", 0), ("b", 1), ("c", 2)):
        store.table.data[target_id] = entry_on(target_id, partition).to_json()
    live = store.get("b")
    owned = dict(store.owned({1, 2}))
    assert sorted(owned) == ["b", "c"] and owned["b"] is live
    assert dict(store.owned({3})) == {}
    assert [t for t, _ in store.owned({0})] == ["a"]
