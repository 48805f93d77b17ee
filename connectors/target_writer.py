"""The endpoint as a contract: ``write(batch)`` → what became of each entity.

:class:`ActionTargetWriter` knows HTTP and nothing of Kafka: it posts a batch of pending
decisions through :class:`~connectors.journey_client.JourneyClient` and answers, per entity,

- :class:`Applied` — the endpoint holds it;
- :class:`Rejected` — the endpoint refused it (400/422 for the whole request, a per-target
  error in a 2xx, or one entity alone too large): resending cannot help, it goes to the
  error topic;
- :class:`RetryLater` — the endpoint may take it later (408/429/5xx, transport errors,
  operator errors such as a 401 after a token renewal, a malformed 2xx); ``retry_after_s``
  is the server's ``Retry-After`` (capped at :data:`~connectors.backoff.MAX_RETRY_AFTER_S`),
  a floor for the caller's backoff.

A 413 halves the batch and sends each half (recursively); once a part must be retried, the
parts not sent yet are :class:`RetryLater` too, with the same hint. Every HTTP request made is
kept in :attr:`WriteResult.requests` with its classified answer and duration, because the
sink's alarms and metrics are about requests, not entities. Booking the outcomes (ledger,
error topic, alarms) is the consuming loop's job: :mod:`connectors.settlement`. In the spirit
of Quix Streams' ``BatchingSink.write``, with typed outcomes instead of a backpressure error.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from connectors.backoff import MAX_RETRY_AFTER_S
from connectors.delivery import Pending
from connectors.journey_client import (
    Delivered,
    InvalidResponse,
    JourneyClient,
    OperatorError,
    Outcome,
    PayloadTooLarge,
    RequestRejected,
    RetriableFailure,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Applied:
    """The endpoint holds this entity now."""

    pending: Pending


@dataclass(frozen=True, slots=True)
class Rejected:
    """The endpoint refused this entity; ``error`` (``status``/``message`` or the endpoint's own) says why."""

    pending: Pending
    error: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RetryLater:
    """Not taken this time; try again no sooner than ``retry_after_s`` (a floor under the caller's backoff)."""

    pending: Pending
    retry_after_s: float


EntityOutcome = Applied | Rejected | RetryLater


@dataclass(frozen=True)
class Request:
    """One HTTP request of a write: the endpoint's classified answer, how long it took, and what became
    of the entities it carried (none when a 413 split it: its halves are requests of their own)."""

    outcome: Outcome
    seconds: float
    entities: tuple[EntityOutcome, ...]

    @property
    def split(self) -> bool:
        """A 413 for several entities: the batch was halved and sent again."""
        return isinstance(self.outcome, PayloadTooLarge) and not self.entities


@dataclass(frozen=True)
class WriteResult:
    """The requests one :meth:`ActionTargetWriter.write` made, and the entities it did not send."""

    requests: tuple[Request, ...]
    not_sent: tuple[RetryLater, ...] = ()

    @property
    def outcomes(self) -> list[EntityOutcome]:
        """What became of each entity of the batch (sent ones in request order, then those not sent)."""
        return [entity for request in self.requests for entity in request.entities] + list(self.not_sent)

    @property
    def retry_after_s(self) -> float | None:
        """None when nothing is to be retried, else the retry delay floor."""
        return next((o.retry_after_s for o in self.outcomes if isinstance(o, RetryLater)), None)


def entity_outcomes(batch: list[Pending], outcome: Outcome) -> tuple[EntityOutcome, ...]:
    """What one classified answer means for each entity it was about (a 413 here: the entity alone)."""
    if isinstance(outcome, RetriableFailure | OperatorError):
        floor = min(outcome.retry_after_s or 0.0, MAX_RETRY_AFTER_S)
        return tuple(RetryLater(pending, floor) for pending in batch)
    if isinstance(outcome, InvalidResponse):
        return tuple(RetryLater(pending, 0.0) for pending in batch)
    if isinstance(outcome, PayloadTooLarge):
        return tuple(Rejected(pending, {"status": 413, "message": outcome.reason}) for pending in batch)
    if isinstance(outcome, RequestRejected):
        return tuple(Rejected(pending, {"status": outcome.status, "message": outcome.reason}) for pending in batch)
    assert isinstance(outcome, Delivered)
    errors = {r.id: r.error.model_dump() if r.error else {"message": "success false"}
              for r in outcome.response.results if not r.success}
    return tuple(Rejected(pending, errors[pending.target_id]) if pending.target_id in errors else Applied(pending)
                 for pending in batch)


class ActionTargetWriter:
    """Writes batches of action targets to the bulk endpoint; knows nothing of Kafka or the ledger."""

    def __init__(self, client: JourneyClient):
        self.client = client

    async def write(self, batch: list[Pending]) -> WriteResult:
        """Send ``batch`` (split on 413) and say what became of each entity."""
        requests: list[Request] = []
        not_sent: list[RetryLater] = []
        await self._send(batch, requests, not_sent)
        return WriteResult(tuple(requests), tuple(not_sent))

    async def _send(self, batch: list[Pending], requests: list[Request], not_sent: list[RetryLater]) -> float | None:
        """Post ``batch``, halving it on 413; returns the retry delay floor once a part must be retried.

        The parts not sent yet then go to ``not_sent`` (innermost first, as they are given up).
        """
        started = time.monotonic()
        outcome = await self.client.post_bulk([p.entity for p in batch])
        seconds = time.monotonic() - started
        if not isinstance(outcome, PayloadTooLarge) or len(batch) == 1:
            entities = entity_outcomes(batch, outcome)
            requests.append(Request(outcome, seconds, entities))
            return next((o.retry_after_s for o in entities if isinstance(o, RetryLater)), None)
        requests.append(Request(outcome, seconds, ()))
        half = len(batch) // 2
        log.warning("bulk request of %d targets too large; splitting it in two", len(batch))
        retry_after = await self._send(batch[:half], requests, not_sent)
        if retry_after is not None:
            not_sent.extend(RetryLater(pending, retry_after) for pending in batch[half:])
            return retry_after
        return await self._send(batch[half:], requests, not_sent)
