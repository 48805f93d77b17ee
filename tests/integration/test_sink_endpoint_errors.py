"""The sink against a misconfigured or picky endpoint (issue 6, items 4 and 5), on the real broker.

A wrong URL or a missing permission is an operator error: the sink retries it, raises
``PacingRequestsFailed`` naming the status and URL, and commits nothing, so the decisions are
delivered once the configuration is fixed. A 413 splits the batch; only 400/422 reject the
entities sent. ``PacingResponseTargetError`` is raised once while targets keep failing and
cleared once when all of them have been accepted since.
"""

from __future__ import annotations

import json

import pytest

from connectors.entities import action_target
from infra.emulator import JourneyEmulator
from schemas import AlarmState
from tests.integration.pipeline import eventually
from tests.integration.sink_harness import SinkRun, decision, endpoint_ready_agents

pytestmark = pytest.mark.integration


def attempts(run: SinkRun) -> float:
    """How many bulk requests the in-process sink has made (its request-latency histogram's count)."""
    assert run.sink is not None
    return run.sink.metrics.registry.get_sample_value("sink_request_seconds_count") or 0.0


async def nothing_committed(run: SinkRun) -> bool:
    """No committed offset past the first record (the topics are new: their first offset is 0)."""
    return all(offset == 0 for offset in (await run.committed()).values())


async def raised_with(run: SinkRun, name: str, *phrases: str) -> bool:
    transitions = await run.alarms(name)
    return bool(transitions) and transitions[0].state == AlarmState.RAISED and all(
        p in transitions[0].message for p in phrases)


async def test_wrong_endpoint_is_retried_alarmed_and_nothing_is_committed(
        kafka_bootstrap: str, emulator: JourneyEmulator) -> None:
    # A typo in pacingEndpoint.targetEndpoint: the emulator's router answers 404 (405 and the
    # other operator-error statuses are classified alike: tests/unit/connectors/test_journey_client.py).
    status = 404
    wrong = SinkRun(kafka_bootstrap, emulator, pacingEndpoint={"targetEndpoint": "v2/journey/actiontargetz/bulk"})
    async with wrong:
        ends = await wrong.produce(decision(f"vq-{i}", 4) for i in range(6))
        await eventually(lambda: attempts(wrong) >= 3, message="several retried attempts")
        assert await eventually(lambda: raised_with(wrong, "PacingRequestsFailed", str(status),
                                                    wrong.settings.bulk_url),
                                message=f"PacingRequestsFailed naming HTTP {status} and the URL")
        assert await nothing_committed(wrong), "no offset may move while nothing is delivered"
        assert await wrong.errors() == {}, "an operator error must not discard decisions"
        assert wrong.sink is not None and wrong.sink.ledger.pending_count == 6
    assert await nothing_committed(wrong)  # not on the way out either

    # The operator fixes the endpoint and restarts: every decision is still there to deliver.
    async with SinkRun(kafka_bootstrap, emulator, prefix=wrong.prefix) as fixed:
        await eventually(lambda: len(emulator.targets) == 6, message="all six delivered after the fix")
        await eventually(lambda: _at(fixed, ends), message="offsets committed once delivered")


async def _at(run: SinkRun, ends: dict) -> bool:
    return await run.committed() == ends


@pytest.mark.parametrize("status", [401, 403])
async def test_missing_permission_is_retried_until_granted(
        kafka_bootstrap: str, emulator: JourneyEmulator, status: int) -> None:
    emulator.faults.set(status=status)  # 401 stays 401 after the token renewal: credentials lack a permission
    async with SinkRun(kafka_bootstrap, emulator) as run:
        ends = await run.produce(decision(f"vq-{i}", 4) for i in range(5))
        await eventually(lambda: attempts(run) >= 3, message="several retried attempts")
        assert await eventually(lambda: raised_with(run, "PacingRequestsFailed", f"HTTP {status}",
                                                    run.settings.bulk_url), message="alarm with status and URL")
        assert await nothing_committed(run)
        assert await run.errors() == {}
        if status == 401:  # each attempt renewed the token once: two requests per attempt
            assert sum(r.status == 401 for r in emulator.requests) >= 6

        emulator.faults.clear()  # the permission is granted
        await eventually(lambda: endpoint_ready_agents(emulator) == {f"vq-{i}": "4" for i in range(5)},
                         message="everything delivered once permitted")
        await eventually(lambda: _at(run, ends), message="offsets committed once delivered")
        failed = await eventually(lambda: _cleared(run, "PacingRequestsFailed"), message="alarm cleared")
        assert [a.state for a in failed] == [AlarmState.RAISED, AlarmState.CLEARED]


async def _cleared(run: SinkRun, name: str) -> list | None:
    transitions = await run.alarms(name)
    return transitions if transitions and transitions[-1].state == AlarmState.CLEARED else None


async def test_too_large_splits_the_batch_and_rejects_only_an_entity_too_large_alone(
        kafka_bootstrap: str, emulator: JourneyEmulator) -> None:
    small = [decision(f"vq-{i}", 4) for i in range(8)]
    huge = decision("vq-huge", 4, description="x" * 5000)
    one = len(json.dumps({"entities": [action_target(small[0])]}))
    emulator.faults.set(max_body_bytes=3 * one)  # about three small entities per request, never the huge one
    async with SinkRun(kafka_bootstrap, emulator) as run:
        ends = await run.produce([*small[:4], huge, *small[4:]])
        await eventually(lambda: endpoint_ready_agents(emulator).keys() == {d.target_id for d in small},
                         message="every small target delivered through split batches")
        errors = await eventually(run.errors, message="the huge target on the error topic")
        assert list(errors) == ["vq-huge"] and errors["vq-huge"]["error"]["status"] == 413
        assert any(r.status == 413 and r.entity_count > 3 for r in emulator.requests)  # a batch that was split
        await eventually(lambda: _at(run, ends), message="everything committed (the huge one rejected)")
        assert await eventually(lambda: raised_with(run, "PacingResponseTargetError", "vq-huge"),
                                message="PacingResponseTargetError naming vq-huge")


@pytest.mark.parametrize("status", [400, 422])
async def test_invalid_request_rejects_the_entities_sent(
        kafka_bootstrap: str, emulator: JourneyEmulator, status: int) -> None:
    # One fault per decision: however the sink batches the three (one request or three), each is rejected.
    emulator.faults.set(status=status, remaining=3)
    async with SinkRun(kafka_bootstrap, emulator) as run:
        ends = await run.produce(decision(f"vq-{i}", 4) for i in range(3))
        errors = await eventually(lambda: _errors_for(run, 3), message="three entities on the error topic")
        assert {e["error"]["status"] for e in errors.values()} == {status}
        await eventually(lambda: _at(run, ends), message="rejected records committed")
        assert emulator.targets == {}
        assert await eventually(lambda: raised_with(run, "PacingResponseValidationError", str(status)),
                                message=f"PacingResponseValidationError naming HTTP {status}")


async def _errors_for(run: SinkRun, count: int) -> dict | None:
    errors = await run.errors()
    return errors if len(errors) >= count else None


async def test_target_error_alarm_is_raised_once_and_cleared_once(
        kafka_bootstrap: str, emulator: JourneyEmulator) -> None:
    failing = [f"vq-bad-{i}" for i in range(10)]
    good = [f"vq-good-{i}" for i in range(10)]
    emulator.faults.set(fail_target_ids=failing)
    async with SinkRun(kafka_bootstrap, emulator, sink={"batch_max_entities": 5}) as run:
        for round_ in range(3):
            # The failing targets keep failing with new decisions; batches of only good targets succeed.
            emulator.clear_requests()
            await run.produce(decision(t, round_) for t in failing)
            await eventually(lambda: run.idle() and sum(r.error_count for r in emulator.requests) == 10,
                             message=f"round {round_}: the ten failing targets answered")
            await run.produce(decision(t, round_) for t in good)
            await eventually(lambda r=round_: endpoint_ready_agents(emulator) == {t: str(r) for t in good}
                             and run.idle(), message=f"round {round_}: the good targets delivered")
            good_only = [r.error_count for r in emulator.requests if set(r.entity_ids or ()) <= set(good)]
            assert good_only and not any(good_only), "batches of only good targets, all-success"
        transitions = await run.alarms("PacingResponseTargetError")
        assert [a.state for a in transitions] == [AlarmState.RAISED], "raised once, never cleared meanwhile"

        emulator.faults.clear()
        await run.produce(decision(t, 9) for t in failing[:9])
        await eventually(lambda: run.idle() and len(emulator.targets) == 19, message="nine of ten accepted")
        assert [a.state for a in await run.alarms("PacingResponseTargetError")] == [AlarmState.RAISED]
        await run.produce([decision(failing[9], 9)])
        cleared = await eventually(lambda: _cleared(run, "PacingResponseTargetError"),
                                   message="cleared once the last rejected target is accepted")
        assert [a.state for a in cleared] == [AlarmState.RAISED, AlarmState.CLEARED]
