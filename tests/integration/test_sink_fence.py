"""The sink drops a decision of an older owner, also after it restarted (the fence is read back from the log).

Decisions are produced straight onto the sink's topic, as two workers would: the new owner of a
target (epoch 7) and the worker that lost it (epoch 6), whose decision arrives last though it
was computed later (a paused worker resuming, a send held during a network cut).
"""

from __future__ import annotations

import time

from infra.emulator import JourneyEmulator
from tests.integration.pipeline import eventually
from tests.integration.sink_harness import SinkRun, decision, endpoint_ready_agents


def owned(target_id: str, ready_agents: int, epoch: int, node: str) -> object:
    """A decision of ``node`` under ownership ``epoch``."""
    return decision(target_id, ready_agents).model_copy(update={"owner_epoch": epoch, "node": node,
                                                               "computed_at": int(time.time() * 1000)})


def ready_values_sent(emulator: JourneyEmulator, target_id: str) -> list[str]:
    """readyAgents of every accepted upsert of ``target_id``, in the order the endpoint got them."""
    return [next(item["value"] for item in entity["userData"] if item["key"] == "readyAgents")
            for request in emulator.requests if request.status == 200 and isinstance(request.body, dict)
            for entity in request.body["entities"] if entity["id"] == target_id]


async def test_a_decision_of_an_older_owner_is_dropped_also_after_a_sink_restart(
        kafka_bootstrap: str, emulator: JourneyEmulator) -> None:
    run = SinkRun(kafka_bootstrap, emulator)
    async with run:
        ends = await run.produce([owned("vq-1", 3, 6, "node-a"), owned("vq-2", 3, 6, "node-a"),
                                  owned("vq-1", 5, 7, "node-b")])
        await eventually(lambda: endpoint_ready_agents(emulator) == {"vq-1": "5", "vq-2": "3"},
                         message="the new owner's decision delivered")
        await run.produce([owned("vq-1", 4, 6, "node-a")])  # the old owner, late: dropped
        await run.produce([owned("vq-2", 8, 7, "node-b")])  # behind it on the log: proves it was read
        await eventually(lambda: endpoint_ready_agents(emulator).get("vq-2") == "8", message="vq-2 at 8")
        assert ready_values_sent(emulator, "vq-1") == ["5"]
        assert run.sink is not None and run.sink.metrics.fenced._value.get() == 1

        async def committed_past(ends: dict) -> bool:
            committed = await run.committed()
            return all(committed.get(tp, 0) >= end for tp, end in ends.items())

        await eventually(lambda: committed_past(ends), message="the sink committed past the new owner's decision")

    # A new sink starts at the committed offsets, past the new owner's decision: the fence comes
    # from reading the log back, not from what this process saw.
    restarted = SinkRun(kafka_bootstrap, emulator, prefix=run.prefix)
    async with restarted:
        emulator.clear_requests()
        await restarted.produce([owned("vq-1", 2, 6, "node-a"), owned("vq-2", 9, 7, "node-b")])
        await eventually(lambda: endpoint_ready_agents(emulator).get("vq-2") == "9", message="vq-2 at 9")
        assert endpoint_ready_agents(emulator)["vq-1"] == "5"
        assert ready_values_sent(emulator, "vq-1") == []
        # A decision of the new owner, or of a newer one, goes through as ever.
        await restarted.produce([owned("vq-1", 6, 7, "node-b"), owned("vq-1", 1, 8, "node-a")])
        await eventually(lambda: endpoint_ready_agents(emulator).get("vq-1") == "1", message="vq-1 at 1")
