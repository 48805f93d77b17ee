"""Booking what a write did: the ledger, the error topic, the request metrics and the endpoint's alarms.

:class:`Settlement` takes a :class:`~connectors.target_writer.WriteResult` and, request by
request, in the order they were made:

- *retry later* (408/429/5xx, transport and operator errors, a malformed 2xx): the entities
  go back to the :class:`~connectors.delivery.DeliveryLedger` (nothing is discarded, their
  offsets stay uncommitted) and ``PacingRequestsFailed`` (or, for a malformed answer,
  ``PacingResponseValidationError``) is raised;
- *applied*: the ledger drops them (their offsets may be committed);
- *rejected*: each goes to the error topic, queued in :mod:`connectors.side_writes` and
  holding its decision's offset until Kafka has it; the ledger is done with it (resending
  cannot help) and the refresh will not resend it. ``PacingResponseTargetError`` is raised
  while a rejected target has not been accepted since.

Every alarm transition is queued, never awaited: Kafka being away does not hold up delivery.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiokafka.structs import TopicPartition

from connectors.delivery import DeliveryLedger, Pending
from connectors.journey_client import (
    Delivered,
    InvalidResponse,
    OperatorError,
    PayloadTooLarge,
    RequestRejected,
    RetriableFailure,
)
from connectors.side_writes import SideWrites
from connectors.target_writer import Rejected, Request, WriteResult
from streams.runtime import alarms
from streams.runtime.alarms import AlarmBoard, AlarmMessage
from streams.runtime.metrics import SinkMetrics, SinkOutcome

log = logging.getLogger(__name__)


class Settlement:
    """Books write results; owns the endpoint alarms and the set of targets the endpoint rejected."""

    def __init__(self, ledger: DeliveryLedger, metrics: SinkMetrics, side_writes: SideWrites, board: AlarmBoard,
                 scope: str, *, errors_topic: str, bulk_url: str):
        self.ledger = ledger
        self.metrics = metrics
        self.side_writes = side_writes
        self.board = board
        self.scope = scope  # several sinks: each raises and clears its own
        self.errors_topic = errors_topic
        self.bulk_url = bulk_url
        self._consecutive_failures = 0
        # Targets the endpoint rejected and has not accepted since (→ PacingResponseTargetError).
        self._rejected: dict[str, TopicPartition | None] = {}

    def settle(self, result: WriteResult) -> float | None:
        """Book every request of one write, then the entities it did not send; the retry delay floor, if any."""
        for request in result.requests:
            self._request(request)
        self.ledger.failed([o.pending for o in result.not_sent])
        return result.retry_after_s

    def _request(self, request: Request) -> None:
        """Book one request's answer (see the module docstring)."""
        self.metrics.latency.observe(request.seconds)
        outcome = request.outcome
        if request.split:
            self.metrics.count_request(SinkOutcome.TOO_LARGE)
            return
        batch = [o.pending for o in request.entities]
        if isinstance(outcome, RetriableFailure | OperatorError):
            # Nothing is discarded: the batch stays in the ledger, its offsets uncommitted.
            self.ledger.failed(batch)
            self.metrics.count_request(SinkOutcome.OPERATOR_ERROR if isinstance(outcome, OperatorError)
                                       else SinkOutcome.RETRIABLE_FAILURE)
            self._consecutive_failures += 1
            log.error("bulk request failed: %s", outcome.reason)
            self._alarm(self.board.raise_alarm(
                alarms.PACING_REQUESTS_FAILED, self.scope, f"bulk request to {self.bulk_url} failed: {outcome.reason}",
                severity="critical", observed_value=float(self._consecutive_failures), threshold=1.0,
            ))
            return
        if isinstance(outcome, InvalidResponse):
            self.ledger.failed(batch)
            self.metrics.count_request(SinkOutcome.INVALID_RESPONSE)
            self._alarm(self.board.raise_alarm(
                alarms.PACING_RESPONSE_VALIDATION_ERROR, self.scope, outcome.reason, severity="major"))
            return
        self._consecutive_failures = 0
        self._alarm(self.board.clear_alarm(alarms.PACING_REQUESTS_FAILED, self.scope, "bulk requests succeed again"))
        self.metrics.batch_size.observe(len(batch))
        if isinstance(outcome, PayloadTooLarge):  # one entity alone is too large: only it is rejected
            self.metrics.count_request(SinkOutcome.TOO_LARGE)
            log.error("target %s alone is too large for the endpoint: %s", batch[0].target_id, outcome.reason)
            self._answered(request)
            return
        if isinstance(outcome, RequestRejected):
            self.metrics.count_request(SinkOutcome.REJECTED)
            log.error("bulk request rejected (%s); %d targets to the error topic", outcome.reason, len(batch))
            self._alarm(self.board.raise_alarm(
                alarms.PACING_RESPONSE_VALIDATION_ERROR, self.scope, f"request rejected: {outcome.reason}"))
            self._report_errors([(o.pending, o.error) for o in request.entities if isinstance(o, Rejected)])
            self.ledger.delivered(batch, rejected=[p.target_id for p in batch])  # resending cannot succeed
            return
        assert isinstance(outcome, Delivered)
        self.metrics.count_request(SinkOutcome.SUCCESS)
        self._alarm(self.board.clear_alarm(
            alarms.PACING_RESPONSE_VALIDATION_ERROR, self.scope, "requests and responses are valid again"))
        self._answered(request)

    def _answered(self, request: Request) -> None:
        """The endpoint answered per target: the rejected ones go to the error topic, the batch is done.

        ``PacingResponseTargetError`` is raised once when a target is rejected and cleared once
        when every target rejected so far has been accepted since (a newer decision of it, as
        the rejected one is never re-sent); a batch without those targets changes nothing.
        """
        batch = [o.pending for o in request.entities]
        failures = [(o.pending, o.error) for o in request.entities if isinstance(o, Rejected)]
        self.metrics.entities_sent.inc(len(batch) - len(failures))
        failed = {pending.target_id for pending, _ in failures}
        for pending in batch:
            if pending.target_id not in failed:
                self._rejected.pop(pending.target_id, None)
        for pending, _ in failures:
            self._rejected[pending.target_id] = pending.tp
        if failures:
            self.metrics.entity_errors.inc(len(failures))
            self._report_errors(failures)
            self._alarm(self.board.raise_alarm(
                alarms.PACING_RESPONSE_TARGET_ERROR, self.scope,
                f"{len(failures)} of {len(batch)} targets rejected, e.g. {failures[0][0].target_id}: "
                f"{failures[0][1].get('message')}", observed_value=float(len(self._rejected)), threshold=0.0))
        elif not self._rejected:
            self._alarm(self.board.clear_alarm(
                alarms.PACING_RESPONSE_TARGET_ERROR, self.scope, "every rejected target has been accepted since"))
        log.info("bulk request delivered %d targets (%d rejected)", len(batch), len(failures))
        self.ledger.delivered(batch, rejected=list(failed))

    def forget_rejected(self, revoked: set[TopicPartition]) -> None:
        """Targets of partitions handed to another sink are its concern now; clear if none is left."""
        if not revoked or not self._rejected:
            return
        for target_id in [t for t, tp in self._rejected.items() if tp in revoked]:
            del self._rejected[target_id]
        if not self._rejected:
            self._alarm(self.board.clear_alarm(
                alarms.PACING_RESPONSE_TARGET_ERROR, self.scope, "the rejected targets moved to another sink"))

    def _report_errors(self, failures: list[tuple[Pending, dict[str, Any]]]) -> None:
        """Rejected entities go to the error topic: queued, each holding its decision's offset until on the broker."""
        for pending, error in failures:
            about = (pending.tp, pending.offset) if pending.tp is not None and pending.offset is not None else None
            self.side_writes.record(
                self.errors_topic, pending.target_id.encode(),
                json.dumps({"entity": pending.entity, "error": error}).encode(),
                what=f"error record of {pending.target_id}", about=about)

    def _alarm(self, message: AlarmMessage | None) -> None:
        """Queue one transition (None: none); written in order, retried until Kafka takes it, never awaited here."""
        self.side_writes.alarm(message)
