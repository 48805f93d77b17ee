"""ActionTargetWriter's contract against the emulator over a real socket, no Kafka: what became of each entity.

2xx applies, a per-target error rejects that target alone, 429/503 ask for a retry no sooner
than ``Retry-After``, a 413 splits the batch, 400/422 reject the request's entities, and a 401
that a new token does not cure is kept for a retry while ``PacingRequestsFailed`` is raised.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
from aiokafka.structs import TopicPartition

from connectors.backoff import MAX_RETRY_AFTER_S, Backoff
from connectors.delivery import DeliveryLedger, Pending
from connectors.journey_client import OperatorError, PayloadTooLarge, RetriableFailure
from connectors.settlement import Settlement
from connectors.side_writes import SideWrites
from connectors.target_writer import ActionTargetWriter, Applied, Rejected, RetryLater, WriteResult
from infra.emulator import JourneyEmulator
from streams.runtime import alarms
from streams.runtime.alarm_publisher import AlarmPublisher
from streams.runtime.alarms import AlarmBoard
from streams.runtime.metrics import SinkMetrics
from tests.unit.connectors.test_journey_client import client_for, entity

TP = TopicPartition("pacing.actiontargets", 0)


def batch(*target_ids: str) -> list[Pending]:
    """Pending decisions of these targets, at offsets 0, 1, …"""
    return [Pending(tid, entity(tid), len(json.dumps(entity(tid))), TP, offset)
            for offset, tid in enumerate(target_ids)]


def per_entity(result: WriteResult) -> dict[str, tuple[str, Any]]:
    """Target id → (outcome kind, its detail: the error's message, the retry floor, or None)."""
    found: dict[str, tuple[str, Any]] = {}
    for outcome in result.outcomes:
        if isinstance(outcome, Rejected):
            found[outcome.pending.target_id] = ("rejected", outcome.error.get("message"))
        elif isinstance(outcome, RetryLater):
            found[outcome.pending.target_id] = ("retry", outcome.retry_after_s)
        else:
            assert isinstance(outcome, Applied)
            found[outcome.pending.target_id] = ("applied", None)
    return found


def writer_for(emulator: JourneyEmulator, http: aiohttp.ClientSession) -> ActionTargetWriter:
    return ActionTargetWriter(client_for(emulator, http))


async def test_a_2xx_applies_every_entity(emulator: JourneyEmulator, http: aiohttp.ClientSession) -> None:
    result = await writer_for(emulator, http).write(batch("vq-1", "vq-2"))
    assert per_entity(result) == {"vq-1": ("applied", None), "vq-2": ("applied", None)}
    assert sorted(emulator.targets) == ["vq-1", "vq-2"] and result.retry_after_s is None
    assert len(result.requests) == 1 and result.requests[0].seconds >= 0


async def test_a_target_the_endpoint_refuses_is_rejected_alone_with_its_reason(
        emulator: JourneyEmulator, http: aiohttp.ClientSession) -> None:
    emulator.faults.set(fail_target_ids=["vq-2"])
    result = await writer_for(emulator, http).write(batch("vq-1", "vq-2", "vq-3"))
    outcomes = per_entity(result)
    assert outcomes["vq-1"] == outcomes["vq-3"] == ("applied", None)
    kind, reason = outcomes["vq-2"]
    assert kind == "rejected" and reason and "vq-2" not in emulator.targets
    assert result.retry_after_s is None  # a rejection is final: nothing to retry


@pytest.mark.parametrize("status", [429, 503])
async def test_a_busy_endpoint_asks_for_a_retry_no_sooner_than_retry_after(
        emulator: JourneyEmulator, http: aiohttp.ClientSession, status: int) -> None:
    emulator.faults.set(status=status, retry_after=7)
    result = await writer_for(emulator, http).write(batch("vq-1", "vq-2"))
    assert per_entity(result) == {"vq-1": ("retry", 7.0), "vq-2": ("retry", 7.0)}
    assert result.retry_after_s == 7.0 and emulator.targets == {}
    assert isinstance(result.requests[0].outcome, RetriableFailure)
    # The send loop's backoff takes the hint as its floor, even under a tiny ceiling.
    assert Backoff(0.01, 0.01).next_delay(result.retry_after_s) == 7.0


async def test_a_bogus_retry_after_is_capped(emulator: JourneyEmulator, http: aiohttp.ClientSession) -> None:
    emulator.faults.set(status=503, retry_after=10 ** 6)
    result = await writer_for(emulator, http).write(batch("vq-1"))
    assert per_entity(result) == {"vq-1": ("retry", MAX_RETRY_AFTER_S)}


@pytest.mark.parametrize("status", [400, 422])
async def test_a_rejected_request_rejects_every_entity_it_carried(
        emulator: JourneyEmulator, http: aiohttp.ClientSession, status: int) -> None:
    emulator.faults.set(status=status)
    result = await writer_for(emulator, http).write(batch("vq-1", "vq-2"))
    assert [o.error["status"] for o in result.outcomes if isinstance(o, Rejected)] == [status, status]
    assert result.retry_after_s is None


async def test_a_413_splits_the_batch_until_each_part_passes(
        emulator: JourneyEmulator, http: aiohttp.ClientSession) -> None:
    one = len(json.dumps({"entities": [entity("vq-0")]}))
    emulator.faults.set(max_body_bytes=one * 2)  # two fit, four do not
    result = await writer_for(emulator, http).write(batch("vq-0", "vq-1", "vq-2", "vq-3"))
    assert [r.status for r in emulator.requests] == [413, 200, 200]
    assert [request.split for request in result.requests] == [True, False, False]
    assert set(per_entity(result).values()) == {("applied", None)} and len(emulator.targets) == 4


async def test_a_single_entity_too_large_is_rejected_alone(
        emulator: JourneyEmulator, http: aiohttp.ClientSession) -> None:
    emulator.faults.set(max_body_bytes=10)
    result = await writer_for(emulator, http).write(batch("vq-1"))
    [outcome] = result.outcomes
    assert isinstance(outcome, Rejected) and outcome.error["status"] == 413
    assert isinstance(result.requests[0].outcome, PayloadTooLarge) and not result.requests[0].split


async def test_after_a_split_part_fails_the_rest_is_not_sent_and_waits_with_the_same_hint(
        emulator: JourneyEmulator, http: aiohttp.ClientSession) -> None:
    one = len(json.dumps({"entities": [entity("vq-0")]}))
    emulator.faults.set(max_body_bytes=one * 2, status=503, retry_after=3)  # four: 413; two: 503
    result = await writer_for(emulator, http).write(batch("vq-0", "vq-1", "vq-2", "vq-3"))
    assert [r.status for r in emulator.requests] == [413, 503]  # the second half never left
    assert per_entity(result) == {f"vq-{n}": ("retry", 3.0) for n in range(4)}
    assert [o.pending.target_id for o in result.not_sent] == ["vq-2", "vq-3"]


async def test_a_401_a_new_token_does_not_cure_is_retried_later_and_raises_the_requests_alarm(
        emulator: JourneyEmulator, http: aiohttp.ClientSession) -> None:
    emulator.faults.set(status=401)
    result = await writer_for(emulator, http).write(batch("vq-1"))
    assert [r.status for r in emulator.requests] == [401, 401]  # a new token was fetched and tried once
    outcome = result.requests[0].outcome
    assert isinstance(outcome, OperatorError) and outcome.status == 401 and "permission" in outcome.reason
    assert per_entity(result) == {"vq-1": ("retry", 0.0)}

    # Settled as the sink's loop does (nothing written to Kafka here: the alarm is only queued).
    ledger, board, metrics = DeliveryLedger(), AlarmBoard("acme", "sink-a"), SinkMetrics()
    side_writes = SideWrites(ledger, AlarmPublisher(board, "alarms", metrics, _no_kafka), _no_kafka, Backoff(1, 1))
    settlement = Settlement(ledger, metrics, side_writes, board, "sink:a", errors_topic="errors", bulk_url="u")
    ledger.record(TP, 0, "vq-1", entity("vq-1"), 10)
    assert settlement.settle(await writer_for(emulator, http).write(ledger.take_batch(10, 10_000))) == 0.0
    [raised] = board.raised
    assert (raised.name, raised.severity) == (alarms.PACING_REQUESTS_FAILED, "critical")
    assert "401" in raised.message and ledger.pending_count == 1  # kept for the retry, offset uncommitted
    assert ledger.safe_offsets() == {TP: 0} and side_writes.pending == 1


def _no_kafka() -> Any:
    raise AssertionError("the writer's tests write nothing to Kafka")
