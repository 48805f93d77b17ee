"""The agent-to-loop hand-over: bounded, wakes the loop on a batch or a nudge, and never starves the agent."""

from __future__ import annotations

import asyncio
import time

from streams.node.inbox import Inbox


async def test_the_agent_waits_while_the_inbox_is_full_and_goes_on_once_the_loop_took_a_batch() -> None:
    inbox: Inbox[str] = Inbox(capacity=1)
    await inbox.put("first")
    second = asyncio.ensure_future(inbox.put("second"))
    await asyncio.sleep(0.01)
    assert not second.done(), "back-pressure: the agent waits for room"
    assert await inbox.next(0) == "first"
    await asyncio.wait_for(second, 1.0)
    assert await inbox.next(0) == "second"


async def test_the_loop_wakes_when_a_batch_arrives_or_it_is_nudged_and_otherwise_at_its_deadline() -> None:
    inbox: Inbox[str] = Inbox()
    asyncio.get_running_loop().call_later(0.05, lambda: asyncio.ensure_future(inbox.put("batch")))
    started = time.monotonic()
    assert await inbox.next(5.0) == "batch"
    assert time.monotonic() - started < 1.0, "woken by the batch, not the deadline"

    asyncio.get_running_loop().call_later(0.05, inbox.nudge)
    started = time.monotonic()
    assert await inbox.next(5.0) is None
    assert time.monotonic() - started < 1.0, "woken by the nudge"

    started = time.monotonic()
    assert await inbox.next(0.1) is None
    assert time.monotonic() - started >= 0.09, "nothing came: woken at the deadline"


async def test_a_loop_with_work_due_still_lets_the_agent_hand_over_its_batches() -> None:
    inbox: Inbox[int] = Inbox()
    taken: list[int] = []

    async def agent() -> None:
        for n in range(3):
            await inbox.put(n)

    handing = asyncio.ensure_future(agent())
    for _ in range(10):  # a loop that always has work due: it never waits
        batch = await inbox.next(0)
        if batch is not None:
            taken.append(batch)
    await handing
    assert taken == [0, 1, 2]
