"""``pacing worker`` whose agent can be held at a gate, for the consumer-lag test.

Run as ``python -m tests.kafka.gated_worker`` with the worker's usual environment plus
``PACING_TEST_GATE=<path>``: while that file exists, each batch the agent takes from the stream
waits before it is folded -- so nothing new is processed, acknowledged or committed, and a
backlog builds up while the worker stays a healthy group member. The timer (keepalives, the
``pacing_consumer_lag`` gauge) keeps running meanwhile. Removing the file lets the batch through.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Sequence
from typing import Any


def install() -> None:
    """Hold :meth:`PacingNode._take` while the gate file exists (with the node's lock released)."""
    from streams.node.app import PacingNode

    gate = os.environ["PACING_TEST_GATE"]
    take = PacingNode._take

    def closed() -> bool:
        return os.path.exists(gate)  # a stat of a local file: no need to leave the event loop

    async def gated_take(self: PacingNode, events: Sequence[Any]) -> None:
        if closed():
            self._lock.release()  # the agent holds it around _take; the timer needs it meanwhile
            try:
                while closed():  # noqa: ASYNC110 -- the gate is a file the test process controls
                    await asyncio.sleep(0.05)
            finally:
                await self._lock.acquire()
        await take(self, events)

    PacingNode._take = gated_take  # type: ignore[method-assign]


if __name__ == "__main__":
    install()
    from infra.cli import main

    sys.exit(main(["worker", *sys.argv[1:]]))
