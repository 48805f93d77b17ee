"""The sink against a failing endpoint and a crash: nothing lost, alarms raised once and cleared."""

from __future__ import annotations

import json
import signal
import time

from infra.emulator import JourneyEmulator
from schemas import AlarmState, StatEvent, decode_alarm, decode_decision, encode_stat_event
from tests.integration.pipeline import Pipeline, eventually, user_data
from tests.integration.sink_harness import (
    SinkRun,
    committed_offsets,
    decision,
    endpoint_ready_agents,
    produce_decisions,
)


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
    await pipeline.start_worker_and_sink()
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

    # vq-10..19 changed within their publish interval: their newest decision comes when it ends.
    await converged(pipeline, 30, newest=("vq-15", "6"))

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


async def test_offsets_are_committed_only_after_delivery(kafka_bootstrap: str, emulator: JourneyEmulator) -> None:
    # Commits every 0.1 s: a sink that committed what it consumed rather than what it delivered
    # would move the group offset past the undelivered decisions within the first attempts.
    async with SinkRun(kafka_bootstrap, emulator, sink={"commit_interval_s": 0.1}) as run:
        delivered = await run.produce(decision(f"vq-{i}", 3) for i in range(8))
        await eventually(lambda: _committed_at(run, delivered), message="first decisions delivered and committed")

        emulator.faults.set(status=503)
        undelivered = await run.produce(decision(f"vq-{i}", 7) for i in range(4))
        newer = {f"vq-{i}" for i in range(4)}
        # Failed attempts are spaced by backoff (up to 0.4 s): eight of them span many commit intervals.
        await eventually(lambda: sum(r.status == 503 and newer <= set(r.entity_ids or ()) for r in emulator.requests)
                         >= 8, message="eight failed attempts with the newer decisions")
        assert run.sink is not None and run.sink.ledger.pending_count == 4  # consumed, not delivered
        committed = await run.committed()
        for tp in undelivered:
            assert committed.get(tp, 0) <= delivered.get(tp, 0), (
                f"{tp} committed at {committed.get(tp)} past undelivered records starting at {delivered.get(tp, 0)}")
        assert endpoint_ready_agents(emulator) == {f"vq-{i}": "3" for i in range(8)}

        emulator.faults.clear()
        await eventually(lambda: endpoint_ready_agents(emulator)
                         == {f"vq-{i}": "7" if i < 4 else "3" for i in range(8)}, message="newer decisions delivered")
        await eventually(lambda: _committed_at(run, {**delivered, **undelivered}),
                         message="offsets committed once delivered")


async def _committed_at(run: SinkRun, ends: dict) -> bool:
    return await run.committed() == ends


async def test_sink_killed_with_undelivered_decisions_resends_exactly_those_on_restart(
        pipeline: Pipeline, kafka_bootstrap: str) -> None:
    fast_group = {"PACING_KAFKA__SESSION_TIMEOUT_S": "3", "PACING_KAFKA__REBALANCE_TIMEOUT_S": "3",
                  "PACING_KAFKA__HEARTBEAT_INTERVAL_S": "0.5", "PACING_SINK__COMMIT_INTERVAL_S": "0.1",
                  "PACING_SINK__GROUP_ID": f"{pipeline.prefix}.sink"}  # no rebalances with other tests' sinks
    topic = pipeline.topics.actiontargets
    group = fast_group["PACING_SINK__GROUP_ID"]
    partitions = pipeline.settings.kafka.stats_partitions
    sink = await pipeline.start_sink(**fast_group)
    delivered = await produce_decisions(kafka_bootstrap, topic, (decision(f"vq-{i}", 3) for i in range(12)))
    await eventually(lambda: endpoint_ready_agents(pipeline.emulator) == {f"vq-{i}": "3" for i in range(12)},
                     message="12 targets delivered")

    async def committed_at(ends: dict) -> bool:
        return await committed_offsets(kafka_bootstrap, group, topic, partitions) == ends

    await eventually(lambda: committed_at(delivered), message="the delivered decisions committed")

    # Newer decisions for six targets meet a failing endpoint; the sink is killed before delivering them.
    pipeline.emulator.faults.set(status=503)
    undelivered = await produce_decisions(kafka_bootstrap, topic, (decision(f"vq-{i}", 7) for i in range(6)))
    newer = {f"vq-{i}" for i in range(6)}
    await eventually(lambda: sum(r.status == 503 and newer <= set(r.entity_ids or ())
                                 for r in pipeline.emulator.requests) >= 3, message="three failed attempts")
    sink.send_signal(signal.SIGKILL)
    sink.wait(10)
    pipeline.emulator.faults.clear()
    pipeline.emulator.clear_requests()

    await pipeline.start_sink(**fast_group)
    expected = {f"vq-{i}": "7" if i < 6 else "3" for i in range(12)}
    await eventually(lambda: endpoint_ready_agents(pipeline.emulator) == expected,
                     message="the restarted sink delivered the six newer decisions")
    sent = [(entity["id"], user_data_of(entity)["readyAgents"])
            for r in pipeline.emulator.requests if r.status == 200 and isinstance(r.body, dict)
            for entity in r.body["entities"]]
    # Exactly the uncommitted decisions, with their values: not the committed older ones.
    assert sorted(sent) == sorted((f"vq-{i}", "7") for i in range(6))
    await eventually(lambda: committed_at({**delivered, **undelivered}), message="offsets committed after resend")


def user_data_of(entity: dict) -> dict[str, str]:
    """A request entity's userData as a dict."""
    return {item["key"]: item["value"] for item in entity["userData"]}


async def test_rejected_targets_and_unreadable_records_reach_the_error_topic(pipeline: Pipeline) -> None:
    pipeline.emulator.faults.set(fail_target_ids=["vq-2"])
    await pipeline.start_worker_and_sink()
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

    async def target_error_alarms():
        alarms = [decode_alarm(r.value) for r in await pipeline.read_all(pipeline.topics.alarms, 0.5)]
        return [a for a in alarms if a.name == "PacingResponseTargetError"] or None

    target_errors = await eventually(target_error_alarms, message="PacingResponseTargetError on the alarm topic")
    assert target_errors[0].state == AlarmState.RAISED and "vq-2" in target_errors[0].message
