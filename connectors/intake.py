"""From a consumed decision record to a pending entity in the ledger, or to the error topic.

:class:`SinkIntake` decodes one record of ``pacing.actiontargets``, checks its tenant, builds
the ActionTarget entity and asks the :class:`~streams.runtime.fencing.EpochFence` whether its
owner is still the newest; then it books the decision in the :class:`DeliveryLedger` (which
keeps the latest per target). A record that cannot be delivered goes, as received, to the
error topic with its class and reason (queued, holding its offset until Kafka has it); a
tombstone or a fenced decision only moves the position on.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from aiokafka.structs import TopicPartition

from connectors.delivery import DeliveryLedger
from connectors.entities import action_target
from connectors.side_writes import SideWrites
from schemas import DecodeCategory, DecodeError, decode_decision
from streams.runtime.dead_letters import dead_letter_headers
from streams.runtime.fencing import EpochFence
from streams.runtime.metrics import RejectReason, SinkMetrics

log = logging.getLogger(__name__)


class SinkIntake:
    """Books consumed decision records into the ledger; undeliverable ones go to the error topic."""

    def __init__(self, tenant: str, ledger: DeliveryLedger, fence: EpochFence, metrics: SinkMetrics,
                 side_writes: SideWrites, *, errors_topic: str, on_pending: Callable[[], None]):
        self.tenant = tenant
        self.ledger = ledger
        self.fence = fence
        self.metrics = metrics
        self.side_writes = side_writes
        self.errors_topic = errors_topic
        self._on_pending = on_pending  # a decision now waits for delivery (the linger clock starts)

    def book(self, tp: TopicPartition, offset: int, key: bytes | None, value: bytes | None) -> None:
        """Book one consumed record; an undeliverable one is reported to the error topic."""
        problem = self.intake(tp, offset, key, value)
        if problem is not None:
            self.report_unreadable(tp, offset, key, value or b"", *problem)

    def intake(self, tp: TopicPartition, offset: int, key: bytes | None, value: bytes | None
               ) -> tuple[RejectReason, str] | None:
        """Book one consumed record; returns why it cannot be delivered (class and detail), if it cannot."""
        self.metrics.records_in.inc()
        if not value:
            self.ledger.skip(tp, offset)  # a tombstone: nothing to upsert
            return None
        try:
            decision = decode_decision(value)
            if decision.tenant != self.tenant:
                raise DecodeError(f"tenant {decision.tenant!r} is not served here (serves {self.tenant!r})",
                                  DecodeCategory.WRONG_TENANT)
            entity = action_target(decision)
        except DecodeError as exc:
            self.ledger.skip(tp, offset)
            return RejectReason.of(exc.category), exc.reason
        except Exception as exc:  # a record that decodes but cannot become an entity
            self.ledger.skip(tp, offset)
            return RejectReason.INVALID_FIELD, f"cannot build an ActionTarget: {type(exc).__name__}: {exc}"
        if not self.fence.admit(decision.target_id, decision.owner_epoch, decision.computed_at):
            # From a worker that had lost the target's partition (paused, cut off, a late retry):
            # the newer owner's decision stays (streams.runtime.fencing).
            self.ledger.skip(tp, offset)
            self.metrics.fenced.inc()
            log.info("decision for %s from %s (epoch %d) dropped: an owner of a newer epoch published it",
                     decision.target_id, decision.node, decision.owner_epoch)
            return None
        size = len(json.dumps(entity, separators=(",", ":")))
        self.ledger.record(tp, offset, decision.target_id, entity, size)
        self._on_pending()
        return None

    def report_unreadable(
        self, tp: TopicPartition, offset: int, key: bytes | None, value: bytes, category: RejectReason, reason: str
    ) -> None:
        """An undeliverable decision record goes, as received, to the error topic with its class and reason.

        Queued, not awaited; its offset is held in the ledger until the record is on the broker.
        """
        log.error("undeliverable decision at %s@%d (key %r): %s", tp, offset, key, reason)
        self.metrics.entity_errors.inc()
        self.side_writes.record(
            self.errors_topic, key, value, what=f"error record of {tp.topic}[{tp.partition}]@{offset}",
            headers=dead_letter_headers(reason, category.value, tp.topic, tp.partition, offset), about=(tp, offset))
