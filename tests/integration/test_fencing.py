"""A worker that lost its partitions never gets a decision or a table entry applied after the new owner's.

Two workers, the sink and the emulator; every target's logged-in agents step up each second
(:mod:`tests.integration.fencing`). One worker is paused (SIGSTOP) past the session timeout:
the other takes its partitions over and publishes newer steps; the paused one resumes holding
the old steps. The endpoint must never receive a lower step after a higher one, no changelog
entry may go backwards, and every target must end at the final step.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

from tests.integration.fencing import (
    SteppingFeed,
    all_final_values_delivered,
    changelog_steps,
    endpoint_steps,
    regressions,
)
from tests.integration.pipeline import Pipeline, eventually

TARGETS = [f"ft-{i:02d}" for i in range(16)]
#: Every decision goes out (no publish interval), and a keepalive pass republishes every target
#: every 2 s: a worker resuming after a pause publishes whatever it holds at once.
FAST = {"PACING_WORKER__KEEPALIVE_S": "2", "PACING_WORKER__PUBLISH_INTERVAL_S": "0",
        "PACING_WORKER__CHECKPOINT_INTERVAL_S": "1"}


async def _owners(pipeline: Pipeline, nodes: set[str]) -> dict[str, str]:
    """Which node the endpoint last heard each target from, once both nodes decide targets."""
    latest = {target: steps[-1][1] for target, steps in endpoint_steps(pipeline.emulator).items()}
    return latest if len(latest) == len(TARGETS) and set(latest.values()) == nodes else {}


async def pause_past_the_session(pipeline: Pipeline, pause_s: float) -> None:
    """The scenario: two workers; the one owning the first target is stopped ``pause_s``; checks."""
    a = await pipeline.start_worker(PACING_NODE_ID="node-a", **FAST)
    b = await pipeline.start_worker(PACING_NODE_ID="node-b", **FAST)
    await pipeline.start_sink()
    feed = SteppingFeed(pipeline, TARGETS)
    feed.start()
    try:
        owners = await eventually(lambda: _owners(pipeline, {"node-a", "node-b"}), timeout_s=60,
                                  message="both workers deciding targets")
        victim, survivor = (a, "node-b") if owners[TARGETS[0]] == "node-a" else (b, "node-a")
        moved = [t for t, node in owners.items() if node != survivor]
        await asyncio.sleep(3)  # a few steps decided by both
        os.kill(victim.pid, signal.SIGSTOP)
        paused_at = time.monotonic()
        try:
            # The survivor takes the paused worker's targets over and publishes newer steps.
            async def survivor_took_over() -> bool:
                latest = {t: s[-1] for t, s in endpoint_steps(pipeline.emulator).items()}
                return all(latest[t][1] == survivor for t in moved)

            await eventually(survivor_took_over, timeout_s=pause_s, message=f"{survivor} took the targets over")
            await asyncio.sleep(max(0.0, pause_s - (time.monotonic() - paused_at)))
        finally:
            os.kill(victim.pid, signal.SIGCONT)
        await asyncio.sleep(12)  # the resumed worker's timers, its failed heartbeat, the rebalance
        final = await feed.stop()
    finally:
        if feed._task is not None and not feed._task.done():
            await feed.stop()
    await eventually(lambda: all_final_values_delivered(pipeline.emulator, TARGETS, final), timeout_s=60,
                     message=f"every target at the final step {final}")
    endpoint = regressions(endpoint_steps(pipeline.emulator))
    assert not endpoint, "the endpoint went back:\n" + "\n".join(endpoint)
    changelog = regressions(await changelog_steps(pipeline, raw=True))
    assert not changelog, "the changelog went back:\n" + "\n".join(changelog)
    assert victim.poll() is None, "the paused worker died"


@pytest.mark.timeout(300)
async def test_a_worker_paused_past_its_session_gets_nothing_applied_after_the_new_owner(
        pipeline: Pipeline) -> None:
    await pause_past_the_session(pipeline, 20)


@pytest.mark.timeout(400)
@pytest.mark.skipif(os.environ.get("PACING_TEST_BROKER") != "kafka",
                    reason="the 30 s and 60 s pauses run in `make test-kafka` (PACING_TEST_BROKER=kafka)")
@pytest.mark.parametrize("pause_s", [30, 60])
async def test_longer_pauses_past_the_session(pipeline: Pipeline, pause_s: float) -> None:
    await pause_past_the_session(pipeline, pause_s)
