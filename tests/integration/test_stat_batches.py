"""StatBatch records on the real broker: each event lands on its target, a bad one goes to the DLQ alone.

Issue 8, item 2: ``pacing.stats`` takes StatBatch records beside single StatEvents. A batch of one
target is folded at its home partition; a batch carrying several targets is accepted, its events
routed each to its own target; an invalid event or one of another tenant inside a batch is
rejected alone (that event, as JSON, with its position), and the batch's other events still count.
"""

from __future__ import annotations

import json
import time

from schemas import StatEvent, encode_stat_batch, encode_stat_event
from tests.integration.pipeline import Pipeline, eventually, user_data
from tests.integration.test_poison_records import produce_burst

TARGETS = [f"vq-batch-{i:02d}" for i in range(12)]


def event(target: str, statistic: str, value: float, now: int, tenant: str = "acme") -> StatEvent:
    return StatEvent(tenant=tenant, target_id=target, statistic=statistic, value=value, timestamp=now,
                     source="test", media_type="webchat")


async def test_batches_reach_every_target_and_a_bad_event_is_rejected_alone(pipeline: Pipeline) -> None:
    await pipeline.start_worker_and_sink()
    now = int(time.time() * 1000)
    records: list[tuple[bytes, bytes]] = []
    for i, target in enumerate(TARGETS[:10]):  # one target per batch, keyed by it: the intended use
        records.append((target.encode(), encode_stat_batch([
            event(target, "logged_in_agents", 12, now), event(target, "busy_agents", 7, now),
            event(target, "ready_agents", i + 1, now)])))
    # One batch for two targets, keyed by neither; with a bad event (JSON: value below 0) and one of
    # another tenant between good ones.
    mixed = {"events": [
        json.loads(event(TARGETS[10], "ready_agents", 31, now).model_dump_json()),
        {**json.loads(event(TARGETS[10], "busy_agents", 1, now).model_dump_json()), "value": -1},
        json.loads(event(TARGETS[11], "ready_agents", 41, now, tenant="other").model_dump_json()),
        json.loads(event(TARGETS[11], "ready_agents", 32, now).model_dump_json()),
    ]}
    records.append((b"mixed", json.dumps(mixed).encode()))
    records.append((TARGETS[0].encode(), encode_stat_event(event(TARGETS[0], "waiting_interactions", 2, now + 1))))
    await produce_burst(pipeline, records)

    expected = {target: str(i + 1) for i, target in enumerate(TARGETS[:10])}
    expected |= {TARGETS[10]: "31", TARGETS[11]: "32"}

    def all_delivered() -> bool:
        targets = pipeline.emulator.targets
        return all(t in targets and user_data(targets[t])["readyAgents"] == v for t, v in expected.items())

    await eventually(all_delivered, timeout_s=45, message="every target of the batches at the endpoint")
    assert user_data(pipeline.emulator.targets[TARGETS[0]])["busyAgents"] == "7"

    async def two_rejections() -> list:
        found = await pipeline.read_all(pipeline.topics.stats_dlq, timeout_s=0.5)
        return found if len(found) >= 2 else []

    rejected = await eventually(two_rejections, message="two DLQ records")
    assert len(rejected) == 2
    by_index = {dict(r.headers)["source.index"].decode(): r for r in rejected}
    assert by_index.keys() == {"1", "2"}
    negative = by_index["1"]
    assert json.loads(negative.value)["value"] == -1 and json.loads(negative.value)["target_id"] == TARGETS[10]
    assert "value" in dict(negative.headers)["error"].decode()
    foreign = by_index["2"]
    assert json.loads(foreign.value)["tenant"] == "other"
    assert dict(foreign.headers)["error"].decode() == "tenant 'other' is not served here (serves 'acme')"
