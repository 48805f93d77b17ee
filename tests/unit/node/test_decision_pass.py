"""The node's loop: material changes at once, a decision pass in slices, and what partitions moving do to it.

The node is the real one (:func:`streams.node.app.create_app`: Faust app and table on the
in-memory store, intake, publisher, outbox, loop); only the Kafka producer under the outbox, the
stream's acknowledgement and the clock are stand-ins, given through the node's constructor,
since no broker runs here. A rebalance is Faust's own flag and signal, set and sent as Faust
does when the group starts to rebalance.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from faust.types import EventT

from schemas import decode_alarm, decode_decision, encode_stat_event
from streams.node.app import DECIDE_SLICE, PacingNode, create_app
from streams.node.faust_compat import changelog_topic_name
from streams.node.partitioning import home_partition
from streams.node.target_entry import TargetEntry
from streams.runtime import alarms
from streams.runtime.outbox import Outbox
from tests.unit.node_doubles import PARTITIONS, T0, ManualClock, RecordingProducer, node_settings, stat, taken

TARGETS = 2 * DECIDE_SLICE + 50  # three slices


class AckingStream:
    """The agent's stream as the node uses it: acknowledges events."""

    def __init__(self) -> None:
        self.acked: list[EventT] = []

    async def ack(self, event: EventT) -> bool:
        self.acked.append(event)
        return True


class RunningNode:
    """A node built by the production wiring with a recording producer and a manual clock."""

    def __init__(self, tmp_path: Path, **settings: Any):
        worker = {"data_dir": str(tmp_path), **settings.pop("worker", {})}
        self.settings = node_settings(kafka={"bootstrap_servers": "127.0.0.1:1"}, worker=worker, **settings)
        self.producer = RecordingProducer()
        self.clock = ManualClock()
        self.node = create_app(self.settings, producer=self.producer, clock=self.clock)
        self.stream = AckingStream()
        self.node.attach(self.stream)
        self.node.app.flow_control.resume()  # consuming, as once the worker has started
        self.node.ownership.lapsed = lambda: None  # type: ignore[method-assign]  # no group here: the lease holds
        self.node.publisher._caught_up = lambda partition: True  # and no log to replay

    def decided(self) -> list[str]:
        return [decode_decision(record.value).target_id for record in self.producer.to(self.node.names.actiontargets)]

    def changelog(self) -> set[bytes | None]:
        return {record.key for record in self.producer.to(changelog_topic_name(self.node.store.table))}

    def settle(self) -> None:
        """What a worker's start-up reaches: its tables restored, the target definitions read, all partitions."""
        self.node.app.tables.recovery.completed.set()
        self.node.definitions._caught_up.set()
        self.node.owned_partitions = lambda: set(range(PARTITIONS))  # type: ignore[method-assign]

    async def tick(self) -> None:
        """Let a decide interval pass and run turns until the pass it starts is done."""
        self.clock.advance(self.settings.worker.decide_interval_s)
        for _ in range(TARGETS // DECIDE_SLICE + 2):  # a slice per turn
            await self.node.turn()

    async def rebalance_starts(self) -> None:
        """Faust starts a rebalance: the flag, then the revocation signal."""
        self.node.app.on_rebalance_start()
        await self.node.on_partitions_moved()

    async def rebalance_ends(self) -> None:
        self.node.app.on_rebalance_end()
        await self.node.on_partitions_moved()


def targets() -> list[str]:
    return [f"vq-{n}" for n in range(TARGETS)]


def one_event_each(value: float = 4.0) -> list[EventT]:
    offsets = dict.fromkeys(range(PARTITIONS), 0)
    events = []
    for target_id in targets():
        partition = home_partition(target_id, PARTITIONS)
        events.append(taken(partition, offsets[partition], encode_stat_event(stat(target_id, value=value))))
        offsets[partition] += 1
    return events


def rebalance_starts_during_the_first_slice(running: RunningNode) -> None:
    """Faust starts a rebalance while the node decides its first slice."""
    node = running.node
    publish = node.publisher.publish
    calls = 0

    async def publish_then_rebalance(*args: Any, **kwargs: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == DECIDE_SLICE // 2:
            await running.rebalance_starts()
        await publish(*args, **kwargs)

    node.publisher.publish = publish_then_rebalance  # type: ignore[method-assign]


async def test_new_targets_are_decided_a_slice_per_turn_with_a_batch_taken_between_slices(tmp_path: Path) -> None:
    running = RunningNode(tmp_path)
    node = running.node
    await node.turn(one_event_each())
    assert len(running.decided()) == DECIDE_SLICE, "one slice, then the loop takes the next batch"
    late = targets()[-1]
    partition = home_partition(late, PARTITIONS)
    await node.turn([taken(partition, 1_000, encode_stat_event(stat(late, value=0.0, at_ms=T0 + 1)))])
    assert len(running.decided()) == 2 * DECIDE_SLICE
    await node.turn()  # the last 50
    assert sorted(set(running.decided())) == sorted(targets())
    assert running.stream.acked == [] and running.changelog() == set(), "acknowledged at the checkpoint"


async def test_a_rebalance_stops_deciding_and_checkpoints_every_event_taken(tmp_path: Path) -> None:
    running = RunningNode(tmp_path)
    events = one_event_each()
    rebalance_starts_during_the_first_slice(running)

    await running.node.turn(events)  # the first slice: the rebalance starts half-way through it
    await running.node.turn()  # the loop wakes (Faust's signal nudged it) and checkpoints

    # Nothing goes out once partitions move (the slice under way is decided and held: its state is
    # in the checkpoint, and whoever owns the targets next publishes them), the others are not
    # decided ...
    assert len(running.decided()) == DECIDE_SLICE // 2 - 1
    # ... every target's state written, every event acknowledged: Faust's wait for the delivered
    # events ends now instead of after the whole pass.
    assert len(running.changelog()) == TARGETS
    assert running.stream.acked == events
    assert not running.node.intake.pending


async def test_targets_left_undecided_are_published_once_the_rebalance_settles(tmp_path: Path) -> None:
    running = RunningNode(tmp_path)
    rebalance_starts_during_the_first_slice(running)
    await running.node.turn(one_event_each())
    await running.node.turn()
    first_slice = running.decided()

    await running.rebalance_ends()
    running.settle()
    await running.tick()

    published = running.decided()
    assert published[:len(first_slice)] == first_slice
    assert sorted(published) == sorted(targets())  # each target once: none lost, none twice


async def test_held_decisions_wait_while_partitions_move(tmp_path: Path) -> None:
    running = RunningNode(tmp_path)
    node = running.node
    rebalance_starts_during_the_first_slice(running)
    await node.turn(one_event_each())
    await node.turn()
    await running.rebalance_ends()
    running.settle()
    publish = node.publisher.publish
    calls = 0

    async def publish_then_rebalance(*args: Any, **kwargs: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            await running.rebalance_starts()  # partitions move again while the held ones go out
        await publish(*args, **kwargs)

    node.publisher.publish = publish_then_rebalance  # type: ignore[method-assign]
    await running.tick()
    assert len(running.decided()) == DECIDE_SLICE // 2 - 1  # nothing more went out, then it stopped

    await running.rebalance_ends()
    await running.tick()
    assert sorted(running.decided()) == sorted(targets())


async def test_targets_left_undecided_count_as_heard_from(tmp_path: Path) -> None:
    # Targets silent for longer than worker.stale_after_s get statistics again just before the
    # rebalance: those the node did not decide must not be paced inactive by the next keepalive.
    running = RunningNode(tmp_path)
    node = running.node
    silent_since = T0 - 10 * node.settings.worker.stale_after_s * 1000
    for target_id in targets():
        entry = TargetEntry.new(target_id, home_partition(target_id, PARTITIONS), silent_since)
        node.store.table.data[target_id] = entry.to_json()
    rebalance_starts_during_the_first_slice(running)
    await node.turn(one_event_each())
    await node.turn()

    await running.rebalance_ends()
    running.settle()
    stale_ms = node.settings.worker.stale_after_s * 1000
    now = max(record_received(node, t) for t in targets())
    assert all(now - record_received(node, t) < stale_ms for t in targets())
    await node.keepalive.run(set(range(PARTITIONS)), now, Outbox(running.producer, 1.0))
    states = {decode_decision(r.value).target_id: decode_decision(r.value).state
              for r in running.producer.to(node.names.actiontargets)}
    assert set(states) == set(targets()) and set(states.values()) == {"active"}


def decided_count(node: PacingNode) -> float:
    """Targets decided so far, as the node's metrics report them."""
    return node.metrics.registry.get_sample_value("pacing_decided_targets_sum") or 0.0


def record_received(node: PacingNode, target_id: str) -> int:
    entry = node.store.get(target_id)
    assert entry is not None
    return entry.received_ms


async def test_a_checkpoint_waits_for_its_interval_then_writes_and_acknowledges_everything_taken(
        tmp_path: Path) -> None:
    running = RunningNode(tmp_path)
    node = running.node
    events = one_event_each()
    await node.turn(events)
    running.clock.advance(node.settings.worker.checkpoint_interval_s / 2)
    await node.turn()
    assert running.stream.acked == []
    running.clock.advance(node.settings.worker.checkpoint_interval_s / 2)
    await node.turn()
    assert running.stream.acked == events and len(running.changelog()) == TARGETS


async def test_a_failed_write_acknowledges_nothing_and_the_work_is_redone_once_kafka_takes_it(
        tmp_path: Path) -> None:
    running = RunningNode(tmp_path, worker={"checkpoint_interval_s": 0.5})
    node = running.node
    changelog = changelog_topic_name(node.store.table)
    running.producer.failing.add(changelog)
    events = one_event_each()
    await node.turn(events)
    running.clock.advance(1.0)
    await node.turn()  # the checkpoint fails: nothing acknowledged, alarm raised
    assert running.stream.acked == [] and not node.ready
    raised = [decode_alarm(r.value) for r in running.producer.to(node.names.alarms)]
    assert [(a.name, a.state.value) for a in raised] == [(alarms.KAFKA_UNAVAILABLE, "raised")]

    running.producer.failing.clear()
    running.clock.advance(1.0)
    await node.turn()  # rebuilt from the table and the pending events, then checkpointed
    assert running.stream.acked == events and len(running.changelog()) == TARGETS


async def test_kafka_unavailable_is_cleared_even_when_its_raise_was_not_acknowledged(tmp_path: Path) -> None:
    """A cut-off worker's raise times out, yet its producer may still deliver it after the heal
    (seen in the soak: raised, never cleared): once writes succeed the clear goes out regardless."""
    running = RunningNode(tmp_path, worker={"checkpoint_interval_s": 0.5})
    node = running.node
    running.producer.failing |= {changelog_topic_name(node.store.table), node.names.alarms}
    await node.turn(one_event_each())
    running.clock.advance(1.0)
    await node.turn()  # the checkpoint fails, and so does the alarm's raise
    assert running.producer.to(node.names.alarms) == []

    running.producer.failing.clear()
    running.clock.advance(1.0)
    await node.turn()
    published = [decode_alarm(r.value) for r in running.producer.to(node.names.alarms)]
    assert [(a.name, a.state.value) for a in published] == [(alarms.KAFKA_UNAVAILABLE, "cleared")]


class BatchStream(AckingStream):
    """The agent's stream: hands the node the given batches, then ends."""

    def __init__(self, batches: list[list[EventT]]) -> None:
        super().__init__()
        self._batches = batches

    async def noack_take(self, max_: int, within: float) -> Any:
        for batch in self._batches:
            yield batch


async def test_the_agent_hands_batches_to_the_loop_which_decides_a_material_change_at_once(tmp_path: Path) -> None:
    running = RunningNode(tmp_path)
    node = running.node
    running.settle()
    target = targets()[0]
    partition = home_partition(target, PARTITIONS)
    batches = [[taken(partition, offset, encode_stat_event(stat(target, value=ready, at_ms=T0 + offset)))]
               for offset, ready in enumerate((3.0, 4.0, 0.0))]
    node.cadence.min_period_s = 0.0  # the batches come within a millisecond: no floor between urgent decisions
    seen: list[int] = []
    agent = asyncio.ensure_future(node.consume(BatchStream(batches)))  # type: ignore[arg-type]
    for _ in batches:
        await node.turn(await node.inbox.next(1.0))
        seen.append(len(running.decided()))
    await agent

    # A new target: decided at once; 3 -> 4 ready agents: left to the tick; 4 -> 0: decided at once.
    assert seen == [1, 1, 2]
    assert [decode_decision(r.value).ready_agents for r in running.producer.to(node.names.actiontargets)] == [3, 0]


async def test_a_flapping_target_is_decided_at_most_once_per_decide_interval(tmp_path: Path) -> None:
    running = RunningNode(tmp_path)
    node = running.node
    running.settle()
    target = targets()[0]
    partition = home_partition(target, PARTITIONS)
    for offset, ready in enumerate((3.0, 0.0, 3.0, 0.0, 3.0)):  # every one a material change, within a millisecond
        await node.turn([taken(partition, offset, encode_stat_event(stat(target, value=ready, at_ms=T0 + offset)))])
    assert len(running.decided()) == 1, "decided at once when new, then not again within the interval"
    assert target in node.intake.undecided and target in node.intake.urgent

    running.clock.advance(node.settings.worker.decide_interval_s)  # the interval passed
    await node.turn()
    assert decided_count(node) == 2 and not node.intake.undecided


async def test_a_target_silent_under_its_previous_owner_clears_its_stale_alarm_when_statistics_return(
        tmp_path: Path) -> None:
    # The previous owner raised TargetStale; this worker took the target over (its entry in the
    # table) and never raised it itself: the first decision after statistics return clears it anyway.
    running = RunningNode(tmp_path)
    node = running.node
    running.settle()
    target = targets()[0]
    partition = home_partition(target, PARTITIONS)
    silent_since = T0 - 10 * int(node.settings.worker.stale_after_s * 1000)
    node.store.table.data[target] = TargetEntry.new(target, partition, silent_since).to_json()
    await node.turn([taken(partition, 0, encode_stat_event(stat(target, value=3.0)))])
    running.clock.advance(node.settings.worker.checkpoint_interval_s)
    await node.turn()

    cleared = [(a.name, a.scope, a.state.value) for a in (decode_alarm(r.value)
                                                          for r in running.producer.to(node.names.alarms))]
    assert cleared == [(alarms.TARGET_STALE, target, "cleared")]
    entry = node.store.get(target)
    assert entry is not None and entry.received_ms > silent_since, "the arrival is in the stored entry"


async def test_a_keepalive_pass_goes_out_a_slice_per_turn_and_a_material_change_does_not_wait_for_it(
        tmp_path: Path) -> None:
    running = RunningNode(tmp_path)
    node = running.node
    running.settle()
    for target_id in targets():  # owned targets, never published by this worker: all due for a keepalive
        entry = TargetEntry.new(target_id, home_partition(target_id, PARTITIONS), T0)
        node.store.table.data[target_id] = entry.to_json()
    running.clock.advance(node.settings.worker.keepalive_s)
    await node.turn()
    assert len(running.decided()) == DECIDE_SLICE, "the pass is planned, and its first slice published"

    newcomer = "vq-new"
    partition = home_partition(newcomer, PARTITIONS)
    await node.turn([taken(partition, 0, encode_stat_event(stat(newcomer, value=5.0)))])
    assert running.decided()[DECIDE_SLICE] == newcomer, "decided before the rest of the keepalive pass"
    for _ in range(3):
        await node.turn()
    assert sorted(running.decided()) == sorted([*targets(), newcomer])


async def test_a_worker_that_lost_its_partitions_is_not_ready_until_it_owns_or_takes_again(tmp_path: Path) -> None:
    running = RunningNode(tmp_path)
    node = running.node
    node.owned_partitions = lambda: set()  # type: ignore[method-assign]  # before any assignment
    await node.turn(one_event_each())
    assert node.ready, "it takes events: it serves"
    await running.rebalance_starts()  # Faust revokes every partition, and assigns none back
    await running.rebalance_ends()
    assert not node.ready
