"""The sink's bookkeeping: latest decision per target and safe commit offsets."""

from __future__ import annotations

from aiokafka.structs import TopicPartition

from connectors.delivery import DeliveryLedger

P0 = TopicPartition("pacing.actiontargets", 0)
P1 = TopicPartition("pacing.actiontargets", 1)


def entity(target: str, version: int) -> dict:
    return {"id": target, "version": version}


def test_nothing_pending_commits_the_next_offset_to_consume() -> None:
    ledger = DeliveryLedger()
    ledger.record(P0, 0, "a", entity("a", 1), 10)
    batch = ledger.take_batch(10, 1000)
    ledger.delivered(batch)
    assert ledger.safe_offsets() == {P0: 1}
    assert ledger.pending_count == 0


def test_undelivered_record_holds_back_its_partition_only() -> None:
    ledger = DeliveryLedger()
    ledger.record(P0, 5, "a", entity("a", 1), 10)
    ledger.record(P0, 6, "b", entity("b", 1), 10)
    ledger.record(P1, 3, "c", entity("c", 1), 10)
    batch = ledger.take_batch(10, 1000)
    ledger.delivered([p for p in batch if p.target_id != "a"])
    ledger.failed([p for p in batch if p.target_id == "a"])
    assert ledger.safe_offsets() == {P0: 5, P1: 4}


def test_newer_decision_supersedes_older_and_only_the_latest_is_sent() -> None:
    ledger = DeliveryLedger()
    ledger.record(P0, 0, "a", entity("a", 1), 10)
    ledger.record(P0, 1, "a", entity("a", 2), 10)
    batch = ledger.take_batch(10, 1000)
    assert [p.entity["version"] for p in batch] == [2]
    ledger.delivered(batch)
    assert ledger.safe_offsets() == {P0: 2}


def test_decision_arriving_while_older_is_in_flight_stays_pending() -> None:
    ledger = DeliveryLedger()
    ledger.record(P0, 0, "a", entity("a", 1), 10)
    in_flight = ledger.take_batch(10, 1000)
    ledger.record(P0, 1, "a", entity("a", 2), 10)
    assert ledger.take_batch(10, 1000) == []  # one request per target at a time
    ledger.delivered(in_flight)
    assert ledger.safe_offsets() == {P0: 1}  # offset 1 not delivered yet
    batch = ledger.take_batch(10, 1000)
    assert [p.entity["version"] for p in batch] == [2]


def test_failed_batch_is_retried_with_the_newest_data() -> None:
    ledger = DeliveryLedger()
    ledger.record(P0, 0, "a", entity("a", 1), 10)
    ledger.failed(ledger.take_batch(10, 1000))
    ledger.record(P0, 1, "a", entity("a", 2), 10)
    assert [p.entity["version"] for p in ledger.take_batch(10, 1000)] == [2]
    assert ledger.safe_offsets() == {P0: 1}


def test_batches_respect_count_and_bytes_but_always_carry_one() -> None:
    ledger = DeliveryLedger()
    for i in range(5):
        ledger.record(P0, i, f"t{i}", entity(f"t{i}", 1), 100)
    assert len(ledger.take_batch(2, 10_000)) == 2
    assert len(ledger.take_batch(10, 250)) == 2
    assert len(ledger.take_batch(10, 1)) == 1


def test_full_refresh_requeues_delivered_targets_without_holding_commits() -> None:
    ledger = DeliveryLedger()
    ledger.record(P0, 0, "a", entity("a", 1), 10)
    ledger.delivered(ledger.take_batch(10, 1000))
    assert ledger.schedule_refresh() == 1
    assert ledger.safe_offsets() == {P0: 1}
    assert [p.target_id for p in ledger.take_batch(10, 1000)] == ["a"]


def test_revoked_partitions_are_forgotten() -> None:
    ledger = DeliveryLedger()
    ledger.record(P0, 0, "a", entity("a", 1), 10)
    ledger.record(P1, 0, "b", entity("b", 1), 10)
    ledger.revoke([P1])
    assert ledger.safe_offsets() == {P0: 0}
    assert [p.target_id for p in ledger.take_batch(10, 1000)] == ["a"]


def test_skipped_records_advance_the_position() -> None:
    ledger = DeliveryLedger()
    ledger.skip(P0, 7)
    assert ledger.safe_offsets() == {P0: 8}


def test_revoked_partition_is_not_refreshed_nor_kept_after_an_in_flight_request() -> None:
    ledger = DeliveryLedger()
    ledger.record(P0, 0, "a", entity("a", 1), 10)
    ledger.record(P1, 0, "b", entity("b", 1), 10)
    ledger.delivered(ledger.take_batch(10, 1000))
    ledger.record(P1, 1, "b", entity("b", 2), 10)
    in_flight = ledger.take_batch(10, 1000)
    ledger.revoke([P1])
    assert ledger.ready_count == 0
    ledger.failed(in_flight)
    assert ledger.pending_count == 0
    assert ledger.schedule_refresh() == 1  # only "a": "b" now belongs to another sink
    assert [p.target_id for p in ledger.take_batch(10, 1000)] == ["a"]


def test_failed_batch_goes_behind_the_others() -> None:
    ledger = DeliveryLedger()
    for i in range(4):
        ledger.record(P0, i, f"t{i}", entity(f"t{i}", 1), 10)
    ledger.failed(ledger.take_batch(2, 1000))
    assert [p.target_id for p in ledger.take_batch(4, 1000)] == ["t2", "t3", "t0", "t1"]


def test_rejected_targets_are_not_refreshed() -> None:
    ledger = DeliveryLedger()
    ledger.record(P0, 0, "good", entity("good", 1), 10)
    ledger.record(P0, 1, "bad", entity("bad", 1), 10)
    ledger.delivered(ledger.take_batch(10, 1000), rejected=["bad"])
    assert ledger.safe_offsets() == {P0: 2}
    assert ledger.schedule_refresh() == 1


def test_reset_positions_keeps_undelivered_decisions_without_offsets() -> None:
    # The topic was recreated (a broker lost its data): old offsets mean nothing on the new one.
    ledger = DeliveryLedger()
    ledger.record(P0, 40, "a", entity("a", 1), 10)
    ledger.record(P1, 7, "b", entity("b", 1), 10)
    ledger.reset_positions([P0])
    assert ledger.safe_offsets() == {P1: 7}  # P0 neither held back at 40 nor pushed to 41
    assert ledger.position(P0) is None and ledger.position(P1) == 8
    assert sorted(p.target_id for p in ledger.take_batch(10, 1000)) == ["a", "b"]  # "a" still delivered
    ledger.reset_positions()
    assert ledger.safe_offsets() == {}
    ledger.record(P0, 0, "c", entity("c", 1), 10)  # the new topic starts again at 0
    assert ledger.safe_offsets() == {P0: 0}


def test_a_hold_keeps_its_offset_uncommitted_until_released() -> None:
    # A rejected target's error record is not on the broker yet: its offset must not be committed.
    ledger = DeliveryLedger()
    ledger.record(P0, 3, "a", entity("a", 1), 10)
    ledger.record(P0, 4, "b", entity("b", 1), 10)
    batch = ledger.take_batch(10, 1000)
    hold = ledger.hold(P0, 3)
    ledger.delivered(batch, rejected=["a"])
    assert ledger.safe_offsets() == {P0: 3} and ledger.held_count == 1
    ledger.release(hold)
    assert ledger.safe_offsets() == {P0: 5} and ledger.held_count == 0


def test_two_holds_of_one_offset_are_released_separately() -> None:
    ledger = DeliveryLedger()
    ledger.skip(P0, 2)
    first, second = ledger.hold(P0, 2), ledger.hold(P0, 2)
    ledger.release(first)
    assert ledger.safe_offsets() == {P0: 2}
    ledger.release(second)
    ledger.release(second)  # twice: nothing more happens
    assert ledger.safe_offsets() == {P0: 3}


def test_a_reset_bumps_the_incarnation_and_drops_the_holds_of_the_old_topic() -> None:
    ledger = DeliveryLedger()
    ledger.skip(P0, 9)
    ledger.skip(P1, 4)
    old_p0, old_p1 = ledger.hold(P0, 9), ledger.hold(P1, 4)
    assert ledger.incarnation == 0
    ledger.reset_positions([P0])
    assert ledger.incarnation == 1 and ledger.safe_offsets() == {P1: 4}
    ledger.skip(P0, 0)  # the new topic's first record, reported too
    new_p0 = ledger.hold(P0, 0)
    ledger.release(old_p0)  # the old topic's error record acknowledged late: it frees nothing new
    assert ledger.safe_offsets() == {P0: 0, P1: 4}
    ledger.release(new_p0)
    ledger.reset_positions()
    assert ledger.incarnation == 2 and ledger.safe_offsets() == {} and ledger.held_count == 0
    ledger.release(old_p1)


def test_revoked_partitions_drop_their_holds() -> None:
    # The next owner re-reads from the committed offset, which the hold kept below the record.
    ledger = DeliveryLedger()
    ledger.skip(P0, 5)
    ledger.hold(P0, 5)
    ledger.revoke([P0])
    assert ledger.safe_offsets() == {} and ledger.held_count == 0


def test_start_at_makes_the_beginning_of_a_recreated_topic_committable() -> None:
    ledger = DeliveryLedger()
    ledger.reset_positions()
    ledger.start_at(P0, 0)
    assert ledger.safe_offsets() == {P0: 0}
    ledger.record(P0, 0, "a", entity("a", 1), 10)
    ledger.start_at(P0, 0)  # records came first: the position they set stays
    ledger.delivered(ledger.take_batch(10, 1000))
    assert ledger.safe_offsets() == {P0: 1}
