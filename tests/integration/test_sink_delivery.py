"""The sink against a failing endpoint and a crash: nothing lost, alarms raised once and cleared."""

from __future__ import annotations

import json
import signal
import time

from schemas import AlarmState, StatEvent, decode_alarm, decode_decision, encode_stat_event
from tests.integration.pipeline import Pipeline, eventually, user_data


def events_for(targets: range, ready: int) -> list[tuple[bytes, bytes]]:
    now = int(time.time() * 1000)
    records = []
    for i in targets:
        for name, value in (("logged_in_agents", 10), ("ready_agents", ready), ("busy_agents", 10 - ready)):
            event = StatEvent(tenant="acme", target_id=f"vq-{i}", statistic=name, value=value,
                              timestamp=now, source="test")
            records.append((event.target_id.encode(), encode_stat_event(event)))
    return records


async def latest_decisions(pipeline: Pipeline) -> dict[str, dict[str, str]]:
    records = await pipeline.read_all(pipeline.topics.actiontargets, timeout_s=1.0)
    latest = {}
    for record in records:
        decision = decode_decision(record.value)
        latest[decision.target_id] = {"allowedOffers": str(decision.allowed_offers),
                                      "readyAgents": str(decision.ready_agents)}
    return latest


def endpoint_view(pipeline: Pipeline) -> dict[str, dict[str, str]]:
    return {tid: {k: user_data(e)[k] for k in ("allowedOffers", "readyAgents")}
            for tid, e in pipeline.emulator.targets.items()}


async def test_failing_endpoint_raises_one_alarm_then_clears_and_delivers_everything(pipeline: Pipeline) -> None:
    pipeline.emulator.faults.set(status=503)
    await pipeline.start_worker()
    await pipeline.start_sink()
    await pipeline.produce(events_for(range(20), ready=4))

    async def raised():
        alarms = [decode_alarm(r.value) for r in await pipeline.read_all(pipeline.topics.alarms, 0.5)]
        return alarms if any(a.name == "PacingRequestsFailed" for a in alarms) else None

    await eventually(raised, message="PacingRequestsFailed raised")
    # Keep failing for several retries; newer decisions arrive meanwhile.
    await eventually(lambda: sum(r.status == 503 for r in pipeline.emulator.requests) >= 4,
                     message="several failed attempts")
    await pipeline.produce(events_for(range(10, 30), ready=6))
    assert pipeline.emulator.targets == {}
    pipeline.emulator.faults.clear()

    await converged(pipeline, 30)

    async def cleared():
        alarms = [decode_alarm(r.value) for r in await pipeline.read_all(pipeline.topics.alarms, 0.5)]
        failed = [a for a in alarms if a.name == "PacingRequestsFailed"]
        return failed if failed and failed[-1].state == AlarmState.CLEARED else None

    failed = await eventually(cleared, message="PacingRequestsFailed cleared")
    assert [a.state for a in failed] == [AlarmState.RAISED, AlarmState.CLEARED]
    assert failed[0].scope.startswith("sink:") and "503" in failed[0].message
    assert endpoint_view(pipeline)["vq-15"]["readyAgents"] == "6"
    assert endpoint_view(pipeline)["vq-5"]["readyAgents"] == "4"


def _complete(pipeline: Pipeline, count: int) -> bool:
    return len(pipeline.emulator.targets) >= count


async def converged(pipeline: Pipeline, count: int, newest: tuple[str, str] | None = None) -> dict:
    """Wait until the endpoint holds exactly the latest decision of ``count`` targets."""

    async def check():
        expected = await latest_decisions(pipeline)
        if len(expected) != count or (newest and expected[newest[0]]["readyAgents"] != newest[1]):
            return None
        return expected if endpoint_view(pipeline) == expected else None

    return await eventually(check, message=f"endpoint holds the latest decision of {count} targets")


async def test_sink_killed_before_commit_resends_on_restart(pipeline: Pipeline) -> None:
    await pipeline.start_worker()
    # A sink that would commit only after an hour: killed, it has delivered but not committed.
    sink = await pipeline.start_sink(PACING_SINK__COMMIT_INTERVAL_S="3600")
    await pipeline.produce(events_for(range(12), ready=3))
    await eventually(lambda: _complete(pipeline, 12), message="12 targets delivered")
    await pipeline.produce(events_for(range(6), ready=7))
    expected = await converged(pipeline, 12, newest=("vq-5", "7"))
    sink.send_signal(signal.SIGKILL)
    sink.wait(10)
    delivered_before = {tid for r in pipeline.emulator.requests for tid in (r.entity_ids or [])}
    pipeline.emulator.clear_requests()

    await pipeline.start_sink()
    resent = await eventually(
        lambda: {tid for r in pipeline.emulator.requests if r.status == 200 for tid in (r.entity_ids or [])}
        >= expected.keys() or None, message="restarted sink re-sends the uncommitted decisions")
    assert resent
    assert delivered_before >= expected.keys()
    assert endpoint_view(pipeline) == expected


async def test_rejected_targets_and_unreadable_records_reach_the_error_topic(pipeline: Pipeline) -> None:
    pipeline.emulator.faults.set(fail_target_ids=["vq-2"])
    await pipeline.start_worker()
    await pipeline.start_sink()
    await pipeline.produce([(b"vq-x", b"garbage that is no decision")], topic=pipeline.topics.actiontargets)
    await pipeline.produce(events_for(range(4), ready=5))
    await eventually(lambda: {"vq-0", "vq-1", "vq-3"} <= pipeline.emulator.targets.keys(),
                     message="the accepted targets delivered")

    async def errors():
        records = await pipeline.read_all(pipeline.topics.bulk_errors, 0.5)
        return records if len(records) >= 2 else None

    records = await eventually(errors, message="two records on the error topic")
    by_key = {r.key: r for r in records}
    assert dict(by_key[b"vq-x"].headers)["error"] == b"not Avro single-object encoding"
    rejected = json.loads(by_key[b"vq-2"].value)
    assert rejected["entity"]["id"] == "vq-2" and rejected["error"]["code"] == "target.error"
    assert "vq-2" not in pipeline.emulator.targets
    alarms = [decode_alarm(r.value) for r in await pipeline.read_all(pipeline.topics.alarms, 0.5)]
    target_errors = [a for a in alarms if a.name == "PacingResponseTargetError"]
    assert target_errors and target_errors[0].state == AlarmState.RAISED and "vq-2" in target_errors[0].message
