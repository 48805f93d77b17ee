"""A decision pass when partitions start to move: it stops deciding, checkpoints, and holds the rest.

The node is the real one (:func:`streams.node.app.create_app`: Faust app and table on the
in-memory store, intake, publisher, outbox); only the Kafka producer under the outbox and the
stream's acknowledgement are stand-ins, since no broker runs here. The rebalance is Faust's own
flag, set as Faust sets it when the group starts to rebalance.
"""

from __future__ import annotations

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
from tests.unit.node_doubles import PARTITIONS, T0, RecordingProducer, node_settings, stat, taken

TARGETS = 2 * DECIDE_SLICE + 50  # three slices


class AckingStream:
    """The agent's stream as the node uses it: acknowledges events."""

    def __init__(self) -> None:
        self.acked: list[EventT] = []

    async def ack(self, event: EventT) -> bool:
        self.acked.append(event)
        return True


def running_node(tmp_path: Path) -> tuple[PacingNode, RecordingProducer, AckingStream]:
    """A node that took one event for each of TARGETS targets, none decided yet."""
    settings = node_settings(kafka={"bootstrap_servers": "127.0.0.1:1"}, worker={"data_dir": str(tmp_path)})
    node = create_app(settings)
    producer = RecordingProducer()
    node._new_outbox = lambda: Outbox(producer, 1.0)  # type: ignore[method-assign]
    node._outbox = node._new_outbox()
    stream = AckingStream()
    node._stream = stream  # type: ignore[assignment]
    node.app.flow_control.resume()  # consuming, as once the worker has started
    node.ownership.lapsed = lambda: None  # type: ignore[method-assign]  # no group here: the lease holds
    node.publisher._caught_up = lambda partition: True  # and no log to replay
    return node, producer, stream


def targets() -> list[str]:
    return [f"vq-{n}" for n in range(TARGETS)]


async def take_one_event_each(node: PacingNode) -> list[EventT]:
    offsets = dict.fromkeys(range(PARTITIONS), 0)
    events = []
    for target_id in targets():
        partition = home_partition(target_id, PARTITIONS)
        events.append(taken(partition, offsets[partition], encode_stat_event(stat(target_id, value=4.0))))
        offsets[partition] += 1
    await node._take(events)
    return events


def settle(node: PacingNode) -> None:
    """What a worker's start-up reaches: its tables restored, the target definitions read."""
    node.app.tables.recovery.completed.set()
    node.definitions._caught_up.set()


def decided(node: PacingNode, producer: RecordingProducer) -> list[str]:
    return [decode_decision(record.value).target_id for record in producer.to(node.names.actiontargets)]


def rebalance_starts_during_the_first_slice(node: PacingNode) -> None:
    """Faust starts a rebalance while the pass decides its first slice."""
    publish = node.publisher.publish
    calls = 0

    async def publish_then_rebalance(*args: Any, **kwargs: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == DECIDE_SLICE // 2:
            node.app.on_rebalance_start()
        await publish(*args, **kwargs)

    node.publisher.publish = publish_then_rebalance  # type: ignore[method-assign]


async def test_a_rebalance_cuts_the_pass_short_and_its_events_are_checkpointed(tmp_path: Path) -> None:
    node, producer, stream = running_node(tmp_path)
    events = await take_one_event_each(node)
    rebalance_starts_during_the_first_slice(node)

    await node.flush(checkpoint=False)  # a regular tick, not a checkpoint

    # Nothing goes out once partitions move (the slice under way is decided and held: its state is
    # in the checkpoint, and whoever owns the targets next publishes them), the other two slices are
    # not decided ...
    assert len(decided(node, producer)) == DECIDE_SLICE // 2 - 1
    # ... and the pass became a checkpoint: every target's state written, every event acknowledged,
    # so Faust's wait for the delivered events ends now instead of after the whole pass.
    changelog = {record.key for record in producer.to(changelog_topic_name(node.store.table))}
    assert len(changelog) == TARGETS
    assert stream.acked == events
    assert not node.intake.pending


async def test_targets_left_undecided_are_published_once_the_rebalance_settles(tmp_path: Path) -> None:
    node, producer, _ = running_node(tmp_path)
    await take_one_event_each(node)
    rebalance_starts_during_the_first_slice(node)
    await node.flush(checkpoint=False)
    first_slice = decided(node, producer)

    node.app.on_rebalance_end()
    settle(node)
    node.owned_partitions = lambda: set(range(PARTITIONS))  # type: ignore[method-assign]  # kept them all
    await node._publish_held()

    published = decided(node, producer)
    assert published[:len(first_slice)] == first_slice
    assert sorted(published) == sorted(targets())  # each target once: none lost, none twice


async def test_without_a_rebalance_a_tick_decides_everything_and_acknowledges_nothing(tmp_path: Path) -> None:
    node, producer, stream = running_node(tmp_path)
    await take_one_event_each(node)

    await node.flush(checkpoint=False)

    assert sorted(decided(node, producer)) == sorted(targets())
    assert stream.acked == []  # acknowledged at the next checkpoint
    assert producer.to(changelog_topic_name(node.store.table)) == []


async def test_held_decisions_wait_while_partitions_move(tmp_path: Path) -> None:
    node, producer, _ = running_node(tmp_path)
    await take_one_event_each(node)
    rebalance_starts_during_the_first_slice(node)
    await node.flush(checkpoint=False)
    node.app.on_rebalance_end()
    settle(node)
    node.owned_partitions = lambda: set(range(PARTITIONS))  # type: ignore[method-assign]
    publish = node.publisher.publish
    calls = 0

    async def publish_then_rebalance(*args: Any, **kwargs: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            node.app.on_rebalance_start()  # partitions move again while the held ones go out
        await publish(*args, **kwargs)

    node.publisher.publish = publish_then_rebalance  # type: ignore[method-assign]
    await node._publish_held()
    assert len(decided(node, producer)) == DECIDE_SLICE // 2 - 1  # nothing more went out, then it stopped

    node.app.on_rebalance_end()
    await node._publish_held()
    assert sorted(decided(node, producer)) == sorted(targets())


async def test_targets_left_undecided_count_as_heard_from(tmp_path: Path) -> None:
    # Targets silent for longer than worker.stale_after_s get statistics again just before the
    # rebalance: those the pass did not decide must not be paced inactive by the next keepalive.
    node, producer, _ = running_node(tmp_path)
    silent_since = T0 - 10 * node.settings.worker.stale_after_s * 1000
    for target_id in targets():
        entry = TargetEntry.new(target_id, home_partition(target_id, PARTITIONS), silent_since)
        node.store.table.data[target_id] = entry.to_json()
    await take_one_event_each(node)
    rebalance_starts_during_the_first_slice(node)
    await node.flush(checkpoint=False)

    node.app.on_rebalance_end()
    settle(node)
    node.store.forget()  # as after the rebalance: read back from the table
    stale_ms = node.settings.worker.stale_after_s * 1000
    now = max(record_received(node, t) for t in targets())
    assert all(now - record_received(node, t) < stale_ms for t in targets())
    await node.keepalive.run(set(range(PARTITIONS)), now, node._new_outbox())
    states = {decode_decision(r.value).target_id: decode_decision(r.value).state
              for r in producer.to(node.names.actiontargets)}
    assert set(states) == set(targets()) and set(states.values()) == {"active"}


def record_received(node: PacingNode, target_id: str) -> int:
    entry = node.store.get(target_id)
    assert entry is not None
    return entry.received_ms


class BatchStream(AckingStream):
    """The agent's stream: hands the node the given batches, then ends."""

    def __init__(self, batches: list[list[EventT]], after_each: Any) -> None:
        super().__init__()
        self._batches = batches
        self._after_each = after_each

    async def noack_take(self, max_: int, within: float) -> Any:
        for batch in self._batches:
            yield batch
            self._after_each()


async def test_the_agent_decides_a_material_change_at_once_and_leaves_the_rest_to_the_tick(tmp_path: Path) -> None:
    node, producer, _ = running_node(tmp_path)
    settle(node)
    target = targets()[0]
    partition = home_partition(target, PARTITIONS)
    batches = [[taken(partition, offset, encode_stat_event(stat(target, value=ready, at_ms=T0 + offset)))]
               for offset, ready in enumerate((3.0, 4.0, 0.0))]
    seen: list[int] = []
    stream = BatchStream(batches, lambda: seen.append(len(decided(node, producer))))
    node.cadence.min_period_s = 0.0  # the batches come within a millisecond: no floor between urgent decisions

    await node.consume(stream)  # type: ignore[arg-type]

    # A new target: decided at once; 3 -> 4 ready agents: left to the tick; 4 -> 0: decided at once.
    assert seen == [1, 1, 2]
    assert [decode_decision(r.value).ready_agents for r in producer.to(node.names.actiontargets)] == [3, 0]


async def test_a_flapping_target_is_decided_at_most_once_per_decide_interval(tmp_path: Path) -> None:
    node, producer, _ = running_node(tmp_path)
    settle(node)
    target = targets()[0]
    partition = home_partition(target, PARTITIONS)
    flaps = (3.0, 0.0, 3.0, 0.0, 3.0)  # every one a material change, within a millisecond
    batches = [[taken(partition, offset, encode_stat_event(stat(target, value=ready, at_ms=T0 + offset)))]
               for offset, ready in enumerate(flaps)]
    await node.consume(BatchStream(batches, lambda: None))  # type: ignore[arg-type]
    assert len(decided(node, producer)) == 1, "decided at once when new, then not again within the interval"
    assert target in node.intake.undecided and target in node.intake.urgent

    node.cadence.min_period_s = 0.0  # the interval passed
    await node.flush(checkpoint=False)
    assert node.metrics.decided_targets._sum.get() == 2 and not node.intake.undecided


async def test_a_target_silent_under_its_previous_owner_clears_its_stale_alarm_when_statistics_return(
        tmp_path: Path) -> None:
    # The previous owner raised TargetStale; this worker took the target over (its entry in the
    # table) and never raised it itself: the first decision after statistics return clears it anyway.
    node, producer, _ = running_node(tmp_path)
    settle(node)
    target = targets()[0]
    partition = home_partition(target, PARTITIONS)
    silent_since = T0 - 10 * int(node.settings.worker.stale_after_s * 1000)
    node.store.table.data[target] = TargetEntry.new(target, partition, silent_since).to_json()
    await node._take([taken(partition, 0, encode_stat_event(stat(target, value=3.0)))])
    await node.flush(checkpoint=True)

    cleared = [(a.name, a.scope, a.state.value) for a in (decode_alarm(r.value)
                                                          for r in producer.to(node.names.alarms))]
    assert cleared == [(alarms.TARGET_STALE, target, "cleared")]
    entry = node.store.get(target)
    assert entry is not None and entry.received_ms > silent_since, "the arrival is in the stored entry"
