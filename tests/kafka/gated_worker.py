"""``pacing worker`` whose agent can be held at a gate, for the consumer-lag test.

Run as ``python -m tests.kafka.gated_worker`` with the worker's usual environment plus
``PACING_TEST_GATE=<path>``: while that file exists, each batch the agent takes from the stream
waits before it is handed to the node's loop -- so nothing new is processed, acknowledged or
committed, and a backlog builds up while the worker stays a healthy group member. The loop
(keepalives, the ``pacing_consumer_lag`` gauge) keeps running meanwhile. Removing the file lets
the batch through.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any


def install() -> None:
    """Hold the agent's hand-over of each batch to the node's loop while the gate file exists."""
    from streams.node.inbox import Inbox

    gate = os.environ["PACING_TEST_GATE"]
    put = Inbox.put

    def closed() -> bool:
        return os.path.exists(gate)  # a stat of a local file: no need to leave the event loop

    async def gated_put(self: Inbox[Any], batch: Any) -> None:
        while closed():  # noqa: ASYNC110 -- the gate is a file the test process controls
            await asyncio.sleep(0.05)
        await put(self, batch)

    Inbox.put = gated_put  # type: ignore[method-assign]


if __name__ == "__main__":
    install()
    from infra.cli import main

    sys.exit(main(["worker", *sys.argv[1:]]))
