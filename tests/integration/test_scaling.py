"""Workers share partitions, and a dead worker's targets continue on another with their state."""

from __future__ import annotations

import signal
import time

from schemas import StatEvent, decode_decision, encode_stat_event
from tests.integration.pipeline import Pipeline, eventually

TARGETS = [f"vq-{i}" for i in range(16)]


def events(stats: dict[str, float]) -> list[tuple[bytes, bytes]]:
    now = int(time.time() * 1000)
    return [(t.encode(), encode_stat_event(StatEvent(tenant="acme", target_id=t, statistic=name, value=value,
                                                     timestamp=now, source="test")))
            for t in TARGETS for name, value in stats.items()]


async def decisions_since(pipeline: Pipeline, since_ms: int) -> dict[str, object]:
    records = await pipeline.read_all(pipeline.topics.actiontargets, timeout_s=0.5)
    latest = {}
    for record in records:
        decision = decode_decision(record.value)
        if decision.computed_at >= since_ms:
            latest[decision.target_id] = decision
    return latest


async def test_two_workers_split_targets_and_survivor_keeps_dead_workers_state(pipeline: Pipeline) -> None:
    first = await pipeline.start_worker(PACING_NODE_ID="node-a")
    await pipeline.produce(events({"logged_in_agents": 10, "ready_agents": 4, "busy_agents": 6,
                                   "offers_made": 200, "offers_accepted": 20}))
    await eventually(lambda: _all(decisions_since(pipeline, 0)), message="node-a decided every target")

    await pipeline.start_worker(PACING_NODE_ID="node-b")
    started = int(time.time() * 1000)
    await pipeline.produce(events({"ready_agents": 5}))

    async def both_nodes_decide():
        latest = await decisions_since(pipeline, started)
        return latest if len(latest) == len(TARGETS) and {d.node for d in latest.values()} == {
            "node-a", "node-b"} else None

    shared = await eventually(both_nodes_decide, timeout_s=45, message="targets split between two nodes")
    # State moved with the partitions: node-b knows the acceptance rate learnt by node-a.
    assert {round(d.acceptance_rate, 2) for d in shared.values()} == {0.1}

    first.send_signal(signal.SIGKILL)
    first.wait(10)
    killed = int(time.time() * 1000)
    await pipeline.produce(events({"ready_agents": 3}))

    async def survivor_decides_all():
        latest = await decisions_since(pipeline, killed)
        return latest if len(latest) == len(TARGETS) and all(
            d.node == "node-b" and d.ready_agents == 3 for d in latest.values()) else None

    survived = await eventually(survivor_decides_all, timeout_s=60, message="node-b took over every target")
    assert {round(d.acceptance_rate, 2) for d in survived.values()} == {0.1}
    assert all(d.logged_in_agents == 10 for d in survived.values())


async def _all(pending) -> bool:
    return len(await pending) == len(TARGETS)


async def test_rocksdb_store_keeps_state_across_a_worker_restart(pipeline: Pipeline) -> None:
    rocks = {"PACING_WORKER__STORE": "rocksdb://", "PACING_NODE_ID": "node-r"}
    worker = await pipeline.start_worker(**rocks)
    await pipeline.produce(events({"logged_in_agents": 10, "ready_agents": 4, "busy_agents": 6,
                                   "offers_made": 200, "offers_accepted": 20}))
    await eventually(lambda: _all(decisions_since(pipeline, 0)), message="every target decided")
    worker.send_signal(signal.SIGTERM)
    worker.wait(20)

    await pipeline.start_worker(**rocks)
    restarted = int(time.time() * 1000)
    await pipeline.produce(events({"ready_agents": 2}))

    async def decided_after_restart():
        latest = await decisions_since(pipeline, restarted)
        return latest if len(latest) == len(TARGETS) and all(d.ready_agents == 2 for d in latest.values()) else None

    latest = await eventually(decided_after_restart, timeout_s=45, message="decisions after the restart")
    assert {round(d.acceptance_rate, 2) for d in latest.values()} == {0.1}
    assert all(d.logged_in_agents == 10 for d in latest.values())
