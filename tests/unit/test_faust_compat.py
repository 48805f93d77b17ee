"""The Faust internals :mod:`streams.node.faust_compat` relies on are still there, in the pinned version.

If one of these fails after a faust-streaming upgrade, read ``streams/node/faust_compat.py`` before
anything else: the pacing node's at-least-once guarantees go through it.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
from importlib.metadata import version
from types import SimpleNamespace

import faust
from faust.streams import Stream, current_event
from faust.tables.base import Collection
from faust.transport.consumer import Consumer

from streams.node.faust_compat import as_current_event, forget_positions


def test_the_pinned_faust_streaming_version_is_installed() -> None:
    major, minor = (int(part) for part in version("faust-streaming").split(".")[:2])
    assert (major, minor) == (0, 15)


class _Event:
    partition = 3


def test_current_event_is_a_context_variable_faust_reads() -> None:
    event = _Event()
    assert isinstance(faust.streams._current_event, contextvars.ContextVar)
    with as_current_event(event):  # type: ignore[arg-type]
        assert current_event() is event
    assert current_event() is None


def test_the_apis_the_node_uses_keep_their_shape() -> None:
    assert "noack_take" in vars(Stream)
    assert list(inspect.signature(Collection.send_changelog).parameters)[:4] == ["self", "partition", "key", "value"]
    assert {"_read_offset", "_committed_offset", "_unacked_messages"} <= set(Consumer.__annotations__)


def test_forget_positions_resets_faust_marks() -> None:
    consumer = SimpleNamespace(_read_offset={"tp": 41}, _committed_offset={"tp": 40})
    forget_positions(consumer, ["tp"])  # type: ignore[list-item]
    assert consumer._read_offset["tp"] is None and consumer._committed_offset["tp"] is None


def test_the_drain_loop_the_fast_consumer_repeats_is_unchanged_upstream() -> None:
    # FastDrainConsumer copies Faust's _drain_messages with one change; an upstream change to the
    # loop must be merged into the copy (and the digest updated) before upgrading.
    from streams.node.faust_compat import UPSTREAM_DRAIN_SHA256, upstream_drain_digest

    assert upstream_drain_digest() == UPSTREAM_DRAIN_SHA256


def test_the_fast_consumer_is_installed_on_the_app_transport() -> None:
    from streams.node.faust_compat import FastDrainConsumer, install_fast_drain

    app = faust.App("compat-test", broker="kafka://127.0.0.1:1")
    install_fast_drain(app)
    assert app.transport.Consumer is FastDrainConsumer
    assert issubclass(FastDrainConsumer, Consumer)


async def test_a_callback_that_does_not_block_runs_inline_and_one_that_blocks_is_resumed() -> None:
    import asyncio

    from streams.node.faust_compat import _DONE, _resume, _step

    order: list[str] = []

    async def quick() -> None:
        order.append("quick")

    assert _step(quick()) is _DONE and order == ["quick"]  # ran to completion without the loop

    gate: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def blocked() -> None:
        order.append(await gate)

    handling = blocked()
    blocked_on = _step(handling)
    assert blocked_on is gate
    resumed = asyncio.ensure_future(_resume(handling, blocked_on))
    await asyncio.sleep(0)
    assert not resumed.done()
    gate.set_result("released")
    await resumed
    assert order == ["quick", "released"]


async def test_a_blocked_callback_abandoned_by_the_flow_suspension_is_closed() -> None:
    import asyncio

    from streams.node.faust_compat import _resume, _step

    closed: list[bool] = []
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def blocked() -> None:
        try:
            await never
        finally:
            closed.append(True)

    handling = blocked()
    resumed = asyncio.ensure_future(_resume(handling, _step(handling)))
    await asyncio.sleep(0)
    resumed.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await resumed
    assert closed == [True]
