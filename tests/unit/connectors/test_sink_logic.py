"""BulkSink's delivery logic in-process: intake, posting, outcomes, alarms, error records, retry delays.

The real sink's parts (intake, writer, settlement, send loop), ledger, JourneyClient and
emulator over a real local socket; only the Kafka producer under the sink is a recording
stand-in (the consumer loop is not run: records are handed to its ``SinkIntake`` as the consume
loop would). On a broker: ``tests/integration/test_sink_*``.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import aiohttp
import pytest
from aiokafka.structs import TopicPartition

import connectors.intake as intake_module
from connectors.backoff import MAX_RETRY_AFTER_S
from connectors.delivery import Pending
from connectors.entities import action_target
from connectors.journey_client import JourneyClient
from connectors.sink import BulkSink
from connectors.target_writer import ActionTargetWriter
from infra.emulator import JourneyEmulator
from schemas import ActionTargetDecision, decode_alarm, decode_decision, encode_decision
from streams.runtime import alarms
from streams.runtime.alarms import AlarmBoard
from streams.runtime.config import load_settings
from streams.runtime.metrics import RejectReason, SinkOutcome
from tests.unit.node_doubles import T0, TENANT

TP = TopicPartition("pacing.actiontargets", 0)


class RecordingKafkaProducer:
    """aiokafka's producer as the sink uses it (``send``, ``send_and_wait``): keeps every record."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.refuse: dict[str, int] = {}  # topic → how many of its next sends fail (as Tansu's UnknownError)

    async def send(self, topic: str, value: bytes | None = None, key: bytes | None = None,
                   headers: list[tuple[str, bytes]] | None = None, **_: Any) -> asyncio.Future[None]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.refuse.get(topic):
            self.refuse[topic] -= 1
            done.set_exception(RuntimeError("UnknownError"))
            return done
        self.sent.append({"topic": topic, "key": key, "value": value, "headers": dict(headers or [])})
        done.set_result(None)
        return done

    async def send_and_wait(self, topic: str, value: bytes | None = None, key: bytes | None = None,
                            headers: list[tuple[str, bytes]] | None = None, **_: Any) -> None:
        await self.send(topic, value=value, key=key, headers=headers)

    def to(self, topic: str) -> list[dict[str, Any]]:
        return [record for record in self.sent if record["topic"] == topic]


def decision(target_id: str, ready_agents: int = 3, tenant: str = TENANT) -> bytes:
    return encode_decision(ActionTargetDecision(
        tenant=tenant, target_id=target_id, name=f"target {target_id}", state="active",
        supported_media_types=("webchat",), service_level_percentage=0.8, service_level_duration_ms=20_000,
        short_abandon_threshold=10, description="", allowed_offers=3, reactive_admission=1.0,
        ready_agents=ready_agents, busy_agents=5, logged_in_agents=10, waiting_interactions=0,
        outstanding_offers=0, acceptance_rate=0.3, algorithm="SUPER_PROGRESSIVE", computed_at=T0, node="n"))


class Sink:
    """A BulkSink posting to the emulator, with the records it would produce kept in ``producer``."""

    def __init__(self, emulator: JourneyEmulator, http: aiohttp.ClientSession, **sink: Any):
        self.settings = load_settings(
            tenant=TENANT, node_id="sink-a", base_auth_url=emulator.base_auth_url,
            base_service_url=emulator.base_service_url,
            sink={"linger_ms": 0, "retry_initial_backoff_s": 0.01, "retry_max_backoff_s": 0.01, **sink})
        self.sink = BulkSink(self.settings)
        self.producer = RecordingKafkaProducer()
        self.sink._producer = self.producer  # type: ignore[assignment]
        self.writer = ActionTargetWriter(JourneyClient(self.settings.sink, http, auth_url=self.settings.base_auth_url,
                                                       bulk_url=self.settings.bulk_url))
        self.emulator = emulator
        self._offset = 0

    async def consume(self, *values: bytes | None) -> None:
        """Book records as the consume loop does (undeliverable ones to the error topic), then write what it queued."""
        for value in values:
            self.sink.intake.book(TP, self._offset, b"k", value)
            self._offset += 1
        assert await self.sink.side_writes.write_queued()

    async def post(self) -> float | None:
        """Post what is pending as one batch, then write what it queued (error records, alarms);
        the retry delay floor, if it must be retried."""
        retry_after = await self.write(self.sink.ledger.take_batch(500, 4_000_000))
        assert await self.sink.side_writes.write_queued()
        return retry_after

    async def write(self, batch: list[Pending]) -> float | None:
        """Write one batch and settle its outcomes as the send loop does; the retry delay floor, if any."""
        return self.sink.settlement.settle(await self.writer.write(batch))

    def alarms(self) -> list[tuple[str, str]]:
        return [(a.name, a.state.value) for a in (decode_alarm(r["value"])
                                                  for r in self.producer.to(self.sink.names.alarms))]

    def errors(self) -> list[dict[str, Any]]:
        return self.producer.to(self.sink.names.bulk_errors)

    def outcomes(self) -> dict[str, float]:
        return {s.labels["outcome"]: s.value for m in self.sink.metrics.requests.collect()
                for s in m.samples if s.name.endswith("_total")}


async def test_delivered_decisions_free_their_offsets(emulator: JourneyEmulator, http: aiohttp.ClientSession) -> None:
    s = Sink(emulator, http)
    await s.consume(decision("vq-1", 3), decision("vq-2"), decision("vq-1", 7))
    assert await s.post() is None
    assert sorted(emulator.targets) == ["vq-1", "vq-2"]
    assert [r.entity_count for r in emulator.requests] == [2]  # only vq-1's latest decision is sent
    assert s.sink.ledger.safe_offsets() == {TP: 3} and s.sink.ledger.pending_count == 0
    assert s.outcomes() == {"success": 1.0}


async def test_undeliverable_records_go_to_the_error_topic_with_their_class(
        emulator: JourneyEmulator, http: aiohttp.ClientSession) -> None:
    s = Sink(emulator, http)
    alarm = AlarmBoard(TENANT, "node").raise_alarm("X", "s", "m").value
    await s.consume(b"garbage", decision("vq-1", tenant="globex"), alarm, None, decision("vq-2"))
    errors = s.errors()
    assert [e["headers"]["error.class"] for e in errors] == [b"unknown_format", b"wrong_tenant", b"wrong_record"]
    assert all(e["headers"]["error"] and e["headers"]["source.topic"] == TP.topic.encode() for e in errors)
    assert b"globex" in errors[1]["headers"]["error"]  # the detail stays in the error header
    assert errors[0]["value"] == b"garbage"  # as received
    assert s.sink.ledger.pending_count == 1  # the tombstone needs nothing; vq-2 waits to be sent
    assert s.sink.ledger.safe_offsets() == {TP: 4}  # unreadable records do not hold the partition back


async def test_an_error_record_kafka_refuses_holds_its_offset_and_does_not_stop_delivery(
        emulator: JourneyEmulator, http: aiohttp.ClientSession) -> None:
    emulator.faults.set(fail_target_ids=["vq-2"])
    s = Sink(emulator, http)
    s.producer.refuse[s.sink.names.bulk_errors] = 1
    for offset, value in enumerate([decision("vq-1"), decision("vq-2"), decision("vq-3")]):
        assert s.sink.intake.intake(TP, offset, b"k", value) is None
    assert await s.write(s.sink.ledger.take_batch(500, 4_000_000)) is None  # nothing awaited Kafka
    assert sorted(emulator.targets) == ["vq-1", "vq-3"] and s.sink.ledger.pending_count == 0
    assert s.sink.ledger.safe_offsets() == {TP: 1}  # vq-2's error record is not on Kafka yet
    assert not await s.sink.side_writes.write_queued()  # Kafka refuses it
    assert s.sink.ledger.safe_offsets() == {TP: 1} and s.errors() == []
    assert await s.sink.side_writes.write_queued()  # the retry
    assert s.sink.ledger.safe_offsets() == {TP: 3}
    assert [e["key"] for e in s.errors()] == [b"vq-2"]


def test_every_intake_rejection_is_a_reject_reason(emulator: JourneyEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(tenant=TENANT, base_auth_url=emulator.base_auth_url,
                             base_service_url=emulator.base_service_url)
    sink = BulkSink(settings)
    cases = {b"\xc3\x01" + b"\x00" * 8: RejectReason.UNKNOWN_SCHEMA, b"{}": RejectReason.UNKNOWN_FORMAT,
             decision("a", tenant="x"): RejectReason.WRONG_TENANT, decision("a")[:-3]: RejectReason.MALFORMED_AVRO}
    for offset, (value, expected) in enumerate(cases.items()):
        category, reason = sink.intake.intake(TP, offset, None, value) or (None, "")
        assert category is expected and reason and reason != category.value

    def cannot_build(*_: Any) -> Any:
        raise KeyError("name")

    monkeypatch.setattr(intake_module, "action_target", cannot_build)  # decodes, but is no ActionTarget
    category, reason = sink.intake.intake(TP, 9, None, decision("a")) or (None, "")
    assert category is RejectReason.INVALID_FIELD and "cannot build an ActionTarget" in reason


async def test_a_revoked_token_is_renewed_and_the_request_repeated_once(
        emulator: JourneyEmulator, http: aiohttp.ClientSession) -> None:
    s = Sink(emulator, http)
    await s.consume(decision("vq-1"))
    await s.post()
    emulator.revoke_tokens()
    await s.consume(decision("vq-1", 9))
    assert await s.post() is None
    assert [r.status for r in emulator.requests] == [200, 401, 200]
    assert s.outcomes() == {"success": 2.0} and s.alarms() == []


@pytest.mark.parametrize("status", [429, 503])
async def test_a_retriable_answer_keeps_the_batch_and_its_retry_after_is_the_floor(
        emulator: JourneyEmulator, http: aiohttp.ClientSession, status: int) -> None:
    s = Sink(emulator, http)
    emulator.faults.set(status=status, retry_after=7)
    await s.consume(decision("vq-1"))
    assert await s.post() == 7.0
    assert s.sink.ledger.pending_count == 1 and s.sink.ledger.safe_offsets() == {TP: 0}
    assert s.alarms() == [(alarms.PACING_REQUESTS_FAILED, "raised")]
    emulator.faults.clear()
    assert await s.post() is None
    assert s.alarms()[-1] == (alarms.PACING_REQUESTS_FAILED, "cleared")
    assert s.outcomes() == {"retriable_failure": 1.0, "success": 1.0}


@pytest.mark.parametrize("retry_after", ["100000", "date"])
async def test_retry_after_is_bounded(emulator: JourneyEmulator, http: aiohttp.ClientSession, retry_after: str) -> None:
    if retry_after == "date":
        retry_after = format_datetime(datetime.now(UTC) + timedelta(days=2), usegmt=True)
    emulator.faults.set(status=503, retry_after=retry_after)
    s = Sink(emulator, http)
    await s.consume(decision("vq-1"))
    assert await s.post() == MAX_RETRY_AFTER_S


async def test_the_send_loop_waits_at_least_retry_after_before_the_next_attempt(
        emulator: JourneyEmulator, http: aiohttp.ClientSession) -> None:
    emulator.faults.set(status=503, retry_after=1, remaining=1)
    s = Sink(emulator, http)
    await s.consume(decision("vq-1"))
    loop = asyncio.create_task(s.sink.sending.run(s.writer))
    try:
        started = time.monotonic()
        while "vq-1" not in emulator.targets:
            assert time.monotonic() - started < 10, "never delivered"
            await asyncio.sleep(0.02)
    finally:
        loop.cancel()
    first, second = emulator.requests
    assert (first.status, second.status) == (503, 200)
    assert second.received_at - first.received_at >= 1.0  # the backoff ceiling is 0.01 s: Retry-After won


async def test_a_malformed_2xx_is_not_a_success(emulator: JourneyEmulator, http: aiohttp.ClientSession) -> None:
    emulator.faults.set(malformed_response=True, remaining=1)
    s = Sink(emulator, http)
    await s.consume(decision("vq-1"))
    assert await s.post() == 0.0
    assert s.sink.ledger.pending_count == 1 and s.sink.ledger.safe_offsets() == {TP: 0}
    assert s.alarms() == [(alarms.PACING_RESPONSE_VALIDATION_ERROR, "raised")]
    assert s.outcomes() == {"invalid_response": 1.0}
    assert await s.post() is None  # the endpoint answers properly again
    assert s.alarms()[-1] == (alarms.PACING_RESPONSE_VALIDATION_ERROR, "cleared")


async def test_a_timeout_keeps_the_batch_for_a_retry(emulator: JourneyEmulator, http: aiohttp.ClientSession) -> None:
    emulator.faults.set(delay_s=0.5, remaining=1)
    s = Sink(emulator, http, request_timeout_s=0.1)
    await s.consume(decision("vq-1"))
    assert await s.post() == 0.0
    assert s.sink.ledger.pending_count == 1
    assert s.outcomes() == {"retriable_failure": 1.0}
    [(name, state)] = s.alarms()
    assert (name, state) == (alarms.PACING_REQUESTS_FAILED, "raised")


async def test_a_413_splits_the_batch_until_it_passes(emulator: JourneyEmulator, http: aiohttp.ClientSession) -> None:
    s = Sink(emulator, http)
    await s.consume(*(decision(f"vq-{n}") for n in range(4)))
    one = len(json.dumps(action_target(decode_decision(decision("vq-0")))))
    emulator.faults.set(max_body_bytes=one * 2 + 50)  # two fit, four do not
    assert await s.post() is None
    assert sorted(emulator.targets) == [f"vq-{n}" for n in range(4)]
    assert [r.status for r in emulator.requests] == [413, 200, 200]
    assert s.outcomes() == {"too_large": 1.0, "success": 2.0}


async def test_a_single_entity_too_large_goes_to_the_error_topic_alone(
        emulator: JourneyEmulator, http: aiohttp.ClientSession) -> None:
    emulator.faults.set(max_body_bytes=10)
    s = Sink(emulator, http)
    await s.consume(decision("vq-1"))
    assert await s.post() is None
    [error] = s.errors()
    assert error["key"] == b"vq-1" and json.loads(error["value"])["error"]["status"] == 413
    assert s.sink.ledger.pending_count == 0 and s.sink.ledger.safe_offsets() == {TP: 1}


@pytest.mark.parametrize("status", [400, 422])
async def test_a_rejected_request_sends_its_entities_to_the_error_topic(
        emulator: JourneyEmulator, http: aiohttp.ClientSession, status: int) -> None:
    emulator.faults.set(status=status)
    s = Sink(emulator, http)
    await s.consume(decision("vq-1"), decision("vq-2"))
    assert await s.post() is None  # resending cannot succeed
    assert sorted(e["key"] for e in s.errors()) == [b"vq-1", b"vq-2"]
    assert s.sink.ledger.safe_offsets() == {TP: 2}
    assert s.outcomes() == {"rejected": 1.0}
    assert (alarms.PACING_RESPONSE_VALIDATION_ERROR, "raised") in s.alarms()


async def test_a_target_the_endpoint_rejects_is_reported_alone_and_alarmed_until_accepted(
        emulator: JourneyEmulator, http: aiohttp.ClientSession) -> None:
    emulator.faults.set(fail_target_ids=["vq-2"])
    s = Sink(emulator, http)
    await s.consume(decision("vq-1"), decision("vq-2"))
    assert await s.post() is None
    assert [e["key"] for e in s.errors()] == [b"vq-2"] and "vq-1" in emulator.targets
    assert s.alarms() == [(alarms.PACING_RESPONSE_TARGET_ERROR, "raised")]
    assert s.sink.metrics.registry.get_sample_value("sink_entity_errors_total") == 1
    emulator.faults.clear()
    await s.consume(decision("vq-2", 8))
    await s.post()
    assert s.alarms()[-1] == (alarms.PACING_RESPONSE_TARGET_ERROR, "cleared")


def test_sink_request_outcomes_are_a_fixed_set(emulator: JourneyEmulator) -> None:
    settings = load_settings(tenant=TENANT, base_auth_url=emulator.base_auth_url,
                             base_service_url=emulator.base_service_url)
    metrics = BulkSink(settings).metrics
    with pytest.raises(ValueError):
        metrics.count_request("HTTP 503 from https://example/api")  # type: ignore[arg-type]
    metrics.count_request(SinkOutcome.SUCCESS)
    assert [s.labels for m in metrics.requests.collect() for s in m.samples if s.name.endswith("_total")] == [
        {"outcome": "success"}]
