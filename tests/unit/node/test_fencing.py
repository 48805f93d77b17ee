"""The ownership fence: an older owner's decision or table entry never replaces a newer owner's.

The rule (:mod:`streams.runtime.fencing`), the decision record's epoch (schema v2; v1 records read
as epoch 0), the table restore that keeps the newest owner's entry (a real Faust table and store),
and the worker's lease (:mod:`streams.node.ownership`).
"""

from __future__ import annotations

import inspect
from io import BytesIO
from types import SimpleNamespace
from typing import Any

import faust
from aiokafka.consumer.group_coordinator import GroupCoordinator
from fastavro import schemaless_writer
from faust.serializers import codecs
from faust.transport.drivers import aiokafka as faust_aiokafka

from schemas import REGISTRY, decode_decision
from schemas.registry import MAGIC
from streams.node.faust_compat import group_membership, install_heartbeat_clock, keep_newest_on_restore
from streams.node.ownership import Fenced, Ownership
from streams.node.target_store import newer_entry
from streams.runtime.fencing import FENCE_WINDOW_MS, EpochFence, supersedes
from tests.unit.schemas.test_decision_writer import base_record


def test_an_older_epoch_is_dropped_and_a_newer_one_taken() -> None:
    fence = EpochFence()
    assert fence.admit("t", 5, 1_000)
    assert fence.admit("t", 6, 2_000)          # the new owner
    assert not fence.admit("t", 5, 3_000)      # the old owner after a pause: dropped, though computed later
    assert fence.admit("t", 6, 2_500)          # the new owner's own decisions always pass
    assert fence.admit("u", 5, 3_000)          # another target has its own fence


def test_an_older_epoch_passes_only_well_after_the_newest_write() -> None:
    # The group's generation started again (group deleted, broker state lost): low epochs come back.
    fence = EpochFence()
    assert fence.admit("t", 57, 1_000)
    assert not fence.admit("t", 1, 1_000 + FENCE_WINDOW_MS)
    assert fence.admit("t", 1, 1_001 + FENCE_WINDOW_MS)
    assert fence.admit("t", 2, 1_002 + FENCE_WINDOW_MS)
    assert not fence.admit("t", 1, 1_003 + FENCE_WINDOW_MS)  # the fence is now at epoch 2
    fence.forget()
    assert fence.admit("t", 1, 0)
    assert supersedes(3, 10, 3, 5) and not supersedes(3, 10, 2, 11)


def test_a_decision_carries_its_epoch_and_one_written_before_epochs_reads_as_epoch_0() -> None:
    record = base_record(owner_epoch=42)
    assert decode_decision(REGISTRY.encode("ActionTargetDecision", record)).owner_epoch == 42
    v1 = REGISTRY.versions("ActionTargetDecision")[0]
    assert "owner_epoch" not in v1.canonical_form
    body = BytesIO()
    old = {k: v for k, v in record.items() if k != "owner_epoch"}
    schemaless_writer(body, v1.schema, old)
    decoded = decode_decision(MAGIC + v1.fingerprint + body.getvalue())
    assert decoded.owner_epoch == 0 and decoded.target_id == record["target_id"]


class _Message:
    def __init__(self, key: str, value: dict[str, Any] | None):
        self.key = codecs.dumps("json", key)
        self.value = None if value is None else codecs.dumps("json", value)
        self.partition = 0


class _Event:
    """A changelog event as Faust's recovery hands it to the table (key, value and raw message)."""

    def __init__(self, key: str, value: dict[str, Any] | None):
        self.key, self.value, self.message = key, value, _Message(key, value)


def _entry(epoch: int, written_ms: int, offers: int) -> dict[str, Any]:
    return {"state": {"offers": offers}, "partition": 0, "received_ms": written_ms, "epoch": epoch,
            "written_ms": written_ms}


def test_a_restore_keeps_the_newest_owners_entry_over_a_late_one_of_an_older_owner() -> None:
    app = faust.App("fence-restore-test", broker="kafka://127.0.0.1:1", store="memory://")
    table = app.Table("target-state", default=None, partitions=1)
    keep_newest_on_restore(table, newer_entry)
    table.apply_changelog_batch([_Event("a", _entry(5, 1_000, 1)), _Event("a", _entry(6, 2_000, 2)),
                                 _Event("a", _entry(5, 1_500, 9)),   # A's send, delivered after B's
                                 _Event("b", _entry(5, 1_000, 3))])
    assert table.data["a"]["state"]["offers"] == 2
    table.apply_changelog_batch([_Event("a", _entry(5, 1_600, 9)), _Event("a", _entry(6, 2_100, 4)),
                                 _Event("b", _entry(6, 2_000, 5))])     # a later batch: the store's value counts
    assert table.data["a"]["state"]["offers"] == 4 and table.data["b"]["state"]["offers"] == 5
    table.apply_changelog_batch([_Event("a", {"state": {"offers": 7}, "partition": 0, "received_ms": 1})])
    assert table.data["a"]["state"]["offers"] == 4  # an entry from before epochs (epoch 0) is older too
    table.apply_changelog_batch([_Event("b", None)])  # a tombstone always applies
    assert "b" not in table.data


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _app(generation: int, member_id: str = "m-1", heartbeat_ok_at: float | None = None) -> Any:
    coordinator = SimpleNamespace(generation=generation, member_id=member_id)
    if heartbeat_ok_at is not None:
        coordinator._pacing_heartbeat_ok_at = heartbeat_ok_at
    return SimpleNamespace(consumer=SimpleNamespace(_thread=SimpleNamespace(_consumer=SimpleNamespace(
        _coordinator=coordinator))))


def test_the_lease_lapses_past_the_session_timeout_without_an_acknowledged_heartbeat() -> None:
    clock = _Clock()
    app = _app(7)
    ownership = Ownership(app, 6.0, lambda: {"decisions", "changelog"}, clock=clock)
    assert not ownership.holds()  # nothing assigned yet
    ownership.on_assigned()
    assert ownership.epoch == 8 and ownership.holds()
    clock.now += 5.9
    assert ownership.holds()
    clock.now += 0.2  # paused past the session timeout: no heartbeat acknowledged since
    assert "no heartbeat acknowledged" in (ownership.lapsed() or "")
    try:
        ownership.guard("changelog")
        raise AssertionError("a changelog write passed an expired lease")
    except Fenced:
        pass
    ownership.guard("alarms")  # other topics are not fenced
    app.consumer._thread._consumer._coordinator._pacing_heartbeat_ok_at = clock.now - 1.0
    assert ownership.holds()
    app.consumer._thread._consumer._coordinator.member_id = ""  # a heartbeat failed: UnknownMemberId
    assert not ownership.holds()
    app.consumer._thread._consumer._coordinator.member_id = "m-2"
    app.consumer._thread._consumer._coordinator.generation = 8  # rejoined, not assigned yet
    assert "generation 7 to 8" in (ownership.lapsed() or "")
    ownership.on_assigned()
    assert ownership.epoch == 9 and ownership.holds()


def test_the_first_generation_of_tansu_is_0_and_its_epoch_is_1() -> None:
    ownership = Ownership(_app(0), 6.0, lambda: set(), clock=_Clock())
    ownership.on_assigned()
    assert ownership.epoch == 1 and ownership.holds()
    ownership = Ownership(_app(-1), 6.0, lambda: set(), clock=_Clock())
    ownership.on_assigned()  # not in a generation (aiokafka's -1): nothing assigned
    assert ownership.epoch == 0 and not ownership.holds()


def test_the_aiokafka_and_faust_internals_the_lease_reads_are_there() -> None:
    # Canary: Faust's consumer thread keeps its aiokafka consumer as ``_consumer``; aiokafka's
    # coordinator keeps ``generation`` and ``member_id`` (reset to "" when the broker forgot the
    # member) and sends heartbeats through ``_do_heartbeat``, True when acknowledged.
    assert "self._consumer = self._create_consumer(" in inspect.getsource(faust_aiokafka.AIOKafkaConsumerThread)
    source = inspect.getsource(GroupCoordinator)
    assert "self.generation = " in source and "self.member_id = " in source
    assert "success = await self._do_heartbeat()" in inspect.getsource(GroupCoordinator._heartbeat_routine)
    assert "self.member_id = JoinGroupRequest.UNKNOWN_MEMBER_ID" in inspect.getsource(GroupCoordinator.reset_generation)
    # The catch-up check asks the aiokafka consumer for the committed offset through Faust's thread.
    assert callable(getattr(faust_aiokafka.AIOKafkaConsumerThread, "call_thread", None))
    from aiokafka import AIOKafkaConsumer
    assert inspect.iscoroutinefunction(AIOKafkaConsumer.committed)
    install_heartbeat_clock()
    install_heartbeat_clock()  # idempotent
    assert getattr(GroupCoordinator._do_heartbeat, "_pacing_clock", False)
    assert group_membership(SimpleNamespace(consumer=SimpleNamespace())) is None
    assert group_membership(_app(3, heartbeat_ok_at=1.5)) == (3, True, 1.5)


async def test_a_newly_assigned_partition_is_caught_up_once_read_to_its_end_at_assignment() -> None:
    from faust.types import TP

    from streams.node.catch_up import CatchUp

    ends = {0: 40, 1: 7, 2: None}
    committed_at = {0: 12, 1: 7, 2: 0}
    catch_up = CatchUp("stats")

    def highwater(tp: TP) -> int | None:
        return ends[tp.partition]

    async def committed(tp: TP) -> int | None:
        return committed_at[tp.partition]

    taken: dict[int, int] = {}
    # 0 has a backlog to replay; 1 has nothing to replay; 2 was not fetched yet (its end unknown).
    assert await catch_up.caught_up({0, 1, 2}, taken, highwater, committed) == {1}
    ends[0] = 55  # the log grows meanwhile: the end to reach stays the one first seen
    taken[0] = 40
    ends[2] = 3
    assert await catch_up.caught_up({0, 1, 2}, taken, highwater, committed) == {0, 1}
    committed_at[2] = 3
    assert await catch_up.caught_up({0, 1, 2}, taken, highwater, committed) == {0, 1, 2}
    catch_up.assigned()  # partitions moved: every one is checked again
    assert await catch_up.caught_up({0, 1, 2}, taken, highwater, committed) == {1, 2}


def test_the_publisher_asks_whether_the_intake_took_a_partition_to_its_end_at_assignment() -> None:
    from streams.node.catch_up import CatchUp

    ends: dict[int, int | None] = {0: 40, 1: None}
    taken: dict[int, int] = {0: 12}
    catch_up = CatchUp("stats", taken, lambda tp: ends[tp.partition])
    assert not catch_up.reached(0)  # a backlog to replay: decisions from it wait
    assert not catch_up.reached(1)  # not fetched yet
    ends[0] = 90
    taken[0] = 40
    assert catch_up.reached(0)  # the end when first asked, not the growing one
    ends[1] = 5
    taken[1] = 5
    assert catch_up.reached(1)
    assert CatchUp("stats").reached(3)  # without a consumer to ask (tests): never held
