"""Poison records on the real broker: each one is rejected to the DLQ, its batch still flows.

Issue 6, item 1: a record the decoder did not expect (a null value, JSON nested 1,000 deep,
an integer literal of 5,000 digits) crashed the pacing agent and the whole batch it arrived
in was lost. Here the three arrive in one burst with 50 good events for 50 targets (the
worker collects batches for a second, so they share a batch); every target must reach the
endpoint and each poison record must be in the DLQ with its reason in the ``error`` header.
"""

from __future__ import annotations

import asyncio
import json
import time

from aiokafka import AIOKafkaProducer

from schemas import StatEvent, encode_stat_event
from tests.integration.pipeline import Pipeline, eventually, user_data

TARGETS = [f"vq-poison-{i:02d}" for i in range(50)]


def good_events() -> list[tuple[bytes, bytes]]:
    now = int(time.time() * 1000)
    return [
        (target.encode(), encode_stat_event(StatEvent(
            tenant="acme", target_id=target, statistic="ready_agents", value=3, timestamp=now, source="test",
            media_type="webchat")))
        for target in TARGETS
    ]


def poison_records() -> dict[bytes, bytes | None]:
    """Key -> value of the three records that crashed the agent, and the reason each must get."""
    bigint = json.dumps({"tenant": "acme", "target_id": "vq-poison-bigint", "statistic": "ready_agents",
                         "value": 0, "timestamp": 1_700_000_000_000, "source": "test"}).encode()
    return {
        b"poison-null": None,
        b"poison-deep": b'{"a":' * 1000 + b"1" + b"}" * 1000,
        b"poison-bigint": bigint.replace(b'"value": 0', b'"value": ' + b"9" * 5000),
    }


REASONS = {
    b"poison-null": "null value",
    b"poison-deep": "invalid JSON: nested deeper than 32 levels",
    b"poison-bigint": "invalid JSON: integer literal of 5000 digits (limit 640)",
}


async def produce_burst(pipeline: Pipeline, records: list[tuple[bytes, bytes | None]]) -> None:
    """Send every record without waiting for each (one burst), then wait for all of them."""
    producer = AIOKafkaProducer(bootstrap_servers=pipeline.bootstrap, linger_ms=50)
    await producer.start()
    try:
        futures = [await producer.send(pipeline.topics.stats, value, key=key) for key, value in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def test_poison_records_go_to_the_dlq_and_their_batch_still_reaches_the_endpoint(pipeline: Pipeline) -> None:
    # Batches are collected for up to 1 s, so the burst below is one batch of the agent.
    worker, _ = await pipeline.start_worker_and_sink(worker={"PACING_WORKER__BATCH_WITHIN_S": "1"})
    good = good_events()
    poison = poison_records()
    burst: list[tuple[bytes, bytes | None]] = [
        (b"poison-null", poison[b"poison-null"]), *good[:25],
        (b"poison-deep", poison[b"poison-deep"]), *good[25:],
        (b"poison-bigint", poison[b"poison-bigint"]),
    ]
    await produce_burst(pipeline, burst)

    def all_delivered() -> bool:
        return set(TARGETS) <= pipeline.emulator.targets.keys()

    try:
        await eventually(all_delivered, timeout_s=45, message="all 50 targets of the poisoned batch at the endpoint")
    except AssertionError as exc:
        missing = sorted(set(TARGETS) - pipeline.emulator.targets.keys())
        raise AssertionError(f"{exc}\n{len(missing)} targets missing\nworker log:\n"
                             f"{pipeline.log_tail('worker', 40)}") from None
    assert all(user_data(pipeline.emulator.targets[t])["readyAgents"] == "3" for t in TARGETS)

    async def three_rejections() -> list:
        records = await pipeline.read_all(pipeline.topics.stats_dlq, timeout_s=0.5)
        return records if len(records) >= 3 else []

    records = await eventually(three_rejections, message="three DLQ records")
    assert len(records) == 3, [(r.key, dict(r.headers).get("error")) for r in records]
    by_key = {record.key: record for record in records}
    assert by_key.keys() == poison.keys()
    for key, record in by_key.items():
        headers = dict(record.headers)
        assert headers["error"].decode() == REASONS[key]
        assert headers["source.topic"].decode() == pipeline.topics.stats
        assert record.value == poison[key]  # the rejected bytes, unchanged (None for the null value)
    assert worker.poll() is None, "the worker exited"
