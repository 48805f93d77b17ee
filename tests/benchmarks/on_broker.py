"""Where a benchmark runs: the cluster of ``KAFKA_BOOTSTRAP_SERVERS``, else an embedded broker of its own."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any

from infra.broker import EmbeddedBroker


def run_on_broker(main: Callable[[str], Coroutine[Any, Any, Any]]) -> None:
    """Run ``main(bootstrap_servers)`` to completion on the configured cluster or a fresh embedded broker."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        asyncio.run(main(external))
    else:
        with EmbeddedBroker() as broker:
            asyncio.run(main(broker.bootstrap_servers))
