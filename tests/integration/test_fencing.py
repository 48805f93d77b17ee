"""A worker that lost its partitions never gets a decision or a table entry applied after the new owner's.

Two workers, the sink and the emulator; every target's logged-in agents step up each second
(:mod:`tests.integration.fencing`). One worker is paused (SIGSTOP) past the session timeout, or
its network link is cut (a Linux network namespace, :mod:`tests.integration.netns`): the other
takes its partitions over and publishes newer steps; the first comes back holding the old steps
and the sends it had under way. The endpoint must never receive a lower step after a higher one,
no changelog entry may go backwards (raw after a pause; as a restore applies them after a cut,
whose in-flight records still land), and every target must end at the final step.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.broker import EmbeddedBroker
from infra.emulator import JourneyEmulator
from tests.integration.fencing import (
    SteppingFeed,
    assert_nothing_went_back,
    endpoint_steps,
)
from tests.integration.netns import NetworkNamespace, netns_unavailable_reason
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
    await assert_nothing_went_back(pipeline, TARGETS, final, timeout_s=60, raw_changelog=True)
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


# -- a network cut ----------------------------------------------------------------------------------


async def cut_off_past_the_session(pipeline: Pipeline, namespace: NetworkNamespace, cut_s: float) -> None:
    """Worker A runs in ``namespace``, B and the sink on the host; A's link is down ``cut_s``; checks.

    Records A handed to its producer before it noticed are delivered when the link heals: they
    may land on the changelog after B's (the restore skips them) and reach the sink after B's
    decisions (the sink drops them). What a user sees must not go back.
    """
    a = pipeline.spawn("worker-a", "worker", wrap=namespace.wrap, PACING_NODE_ID="node-a",
                       PACING_WORKER__WEB_PORT="0", **FAST)
    await pipeline.start_worker(PACING_NODE_ID="node-b", **FAST)
    await pipeline.start_sink()
    feed = SteppingFeed(pipeline, TARGETS)
    feed.start()
    try:
        owners = await eventually(lambda: _owners(pipeline, {"node-a", "node-b"}), timeout_s=90,
                                  message="both workers deciding targets")
        moved = [t for t, node in owners.items() if node == "node-a"]
        await asyncio.sleep(3)
        namespace.cut()
        cut_at = time.monotonic()
        try:
            async def b_took_over() -> bool:
                latest = {t: s[-1] for t, s in endpoint_steps(pipeline.emulator).items()}
                return all(latest[t][1] == "node-b" for t in moved)

            await eventually(b_took_over, timeout_s=cut_s + 30, message="node-b took node-a's targets over")
            await asyncio.sleep(max(0.0, cut_s - (time.monotonic() - cut_at)))
        finally:
            namespace.heal()
        await asyncio.sleep(20)  # A's held sends go out, its heartbeat fails, it rejoins
        final = await feed.stop()
    finally:
        if feed._task is not None and not feed._task.done():
            await feed.stop()
    await assert_nothing_went_back(pipeline, TARGETS, final, timeout_s=90, raw_changelog=False)
    assert a.poll() is None, "the cut-off worker died"


@pytest.fixture
def namespace() -> Iterator[NetworkNamespace]:
    """A network namespace with a veth link to the host (skipped, with the reason, where not permitted)."""
    reason = netns_unavailable_reason()
    if reason:
        pytest.skip(reason)
    ns = NetworkNamespace(subnet=os.getpid() % 250)
    try:
        ns.create()
    except RuntimeError as exc:
        pytest.skip(f"cannot build a network namespace: {exc}")
    yield ns
    ns.delete()


@pytest.mark.timeout(400)
async def test_a_worker_cut_off_past_its_session_gets_nothing_applied_after_the_new_owner(
        namespace: NetworkNamespace, emulator: JourneyEmulator, tmp_path: Path) -> None:
    if os.environ.get("PACING_TEST_BROKER") == "kafka":
        from infra.kafka_broker import KafkaCluster

        broker: Any = KafkaCluster(nodes=1, host=namespace.host_address, data_dir=tmp_path / "kafka")
    else:
        broker = EmbeddedBroker(host=namespace.host_address)  # reachable from inside the namespace
    await asyncio.to_thread(broker.start)
    deployment = Pipeline(broker.bootstrap_servers, emulator, tmp_path)
    try:
        await cut_off_past_the_session(deployment, namespace, 30)
    finally:
        deployment.stop()
        await asyncio.to_thread(broker.stop)
