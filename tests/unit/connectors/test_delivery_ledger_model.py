"""The ledger's commit invariant under any interleaving of intake, batches, outcomes and refreshes.

A stateful hypothesis test drives :class:`DeliveryLedger` as the sink does (records consumed in
offset order per partition, a target always on the same partition, at most one request per
target in flight) and checks, after every step, the invariant the module docstring states: a
committed offset never passes a consumed record that has not been delivered, superseded by a
delivered newer decision of its target, rejected, or skipped. And at the end, with every
request answered, the endpoint holds each target's newest decision and every offset is free.
Derandomized: every run checks the same examples.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka.structs import TopicPartition
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from connectors.delivery import DeliveryLedger, Pending

PARTITIONS = [TopicPartition("pacing.actiontargets", p) for p in range(2)]
TARGETS = ["a", "b", "c", "d", "e"]


def partition_of(target_id: str) -> TopicPartition:
    """Decisions are keyed by target: a target's records are all on one partition."""
    return PARTITIONS[TARGETS.index(target_id) % len(PARTITIONS)]


@dataclass
class Consumed:
    tp: TopicPartition
    offset: int
    target_id: str | None  # None: skipped (unreadable or a tombstone)


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.ledger = DeliveryLedger()
        self.next_offset = {tp: 0 for tp in PARTITIONS}
        self.consumed: list[Consumed] = []
        self.version: dict[str, int] = {}
        self.in_flight: list[list[Pending]] = []
        # Per target: the highest offset of its decisions that the endpoint answered for.
        self.settled_up_to: dict[str, int] = {}
        self.endpoint: dict[str, int] = {}  # target → version the endpoint holds
        self.rejected: set[str] = set()

    @rule(target_id=st.sampled_from(TARGETS))
    def consume(self, target_id: str) -> None:
        tp = partition_of(target_id)
        offset = self.next_offset[tp]
        self.next_offset[tp] += 1
        self.version[target_id] = self.version.get(target_id, 0) + 1
        self.ledger.record(tp, offset, target_id, {"id": target_id, "version": self.version[target_id]}, 10)
        self.consumed.append(Consumed(tp, offset, target_id))

    @rule(partition=st.sampled_from(PARTITIONS))
    def skip(self, partition: TopicPartition) -> None:
        offset = self.next_offset[partition]
        self.next_offset[partition] += 1
        self.ledger.skip(partition, offset)
        self.consumed.append(Consumed(partition, offset, None))

    @rule(size=st.integers(1, 4))
    def take(self, size: int) -> None:
        batch = self.ledger.take_batch(size, 10_000)
        sending = {p.target_id for b in self.in_flight for p in b}
        assert not sending & {p.target_id for p in batch}, "a target in two requests at once"
        if batch:
            self.in_flight.append(batch)

    @precondition(lambda self: self.in_flight)
    @rule(which=st.integers(0, 10), outcome=st.sampled_from(["delivered", "failed", "rejected"]))
    def answer(self, which: int, outcome: str) -> None:
        batch = self.in_flight.pop(which % len(self.in_flight))
        if outcome == "failed":
            self.ledger.failed(batch)
            return
        refused = [p.target_id for p in batch] if outcome == "rejected" else []
        self.ledger.delivered(batch, rejected=refused)
        for sent in batch:
            if sent.offset is not None:
                self.settled_up_to[sent.target_id] = max(self.settled_up_to.get(sent.target_id, -1), sent.offset)
            if outcome == "delivered":
                self.endpoint[sent.target_id] = sent.entity["version"]
                self.rejected.discard(sent.target_id)
            else:
                self.rejected.add(sent.target_id)

    @rule()
    def refresh(self) -> None:
        self.ledger.schedule_refresh()

    @invariant()
    def commits_never_pass_a_newest_decision_not_yet_answered(self) -> None:
        # Older decisions of a target need no delivery once a newer one is consumed (upserts):
        # replaying from the committed offset re-reads the newest, which is what must arrive.
        safe = self.ledger.safe_offsets()
        newest: dict[str, Consumed] = {r.target_id: r for r in self.consumed if r.target_id is not None}
        for target_id, record in newest.items():
            if self.settled_up_to.get(target_id, -1) < record.offset:
                assert safe.get(record.tp, 0) <= record.offset, (record, safe)

    @invariant()
    def safe_offsets_never_pass_what_was_consumed(self) -> None:
        for tp, offset in self.ledger.safe_offsets().items():
            assert offset <= self.next_offset[tp]

    def teardown(self) -> None:
        """Answer everything, then send what is left until nothing is: all newest, all committable."""
        for batch in self.in_flight:
            self.ledger.delivered(batch)
            for sent in batch:
                self.endpoint[sent.target_id] = sent.entity["version"]
                self.rejected.discard(sent.target_id)
        for _ in range(len(TARGETS) + 1):
            batch = self.ledger.take_batch(100, 10_000)
            self.ledger.delivered(batch)
            for sent in batch:
                self.endpoint[sent.target_id] = sent.entity["version"]
                self.rejected.discard(sent.target_id)
        assert self.ledger.pending_count == 0
        # Every target's newest decision reached the endpoint, unless the endpoint refused it.
        assert {t: v for t, v in self.endpoint.items() if t not in self.rejected} == {
            t: v for t, v in self.version.items() if t not in self.rejected}
        assert self.ledger.safe_offsets() == {tp: n for tp, n in self.next_offset.items() if n}


LedgerMachine.TestCase.settings = settings(max_examples=100, stateful_step_count=40, derandomize=True,
                                           deadline=None)
TestLedgerModel = LedgerMachine.TestCase
