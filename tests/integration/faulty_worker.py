"""``pacing worker`` with faults injected below the product code, for the at-least-once tests.

Run as ``python -m tests.integration.faulty_worker`` with the worker's usual environment plus:

- ``PACING_TEST_FOLD_FAILS=<target prefix>:<times>``: folding an event of a matching target
  raises ``RuntimeError`` the first ``times`` times in this process (``-1``: always);
- ``PACING_TEST_SEND_FAILS=<topic suffix>:<times>[,…]``: the first ``times`` records (or record
  batches) sent to a topic ending with the suffix fail at the broker (their delivery future raises
  ``KafkaError``).
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from aiokafka.errors import KafkaError


def _rules(variable: str) -> list[list[Any]]:
    rules = []
    for rule in filter(None, os.environ.get(variable, "").split(",")):
        pattern, _, times = rule.rpartition(":")
        rules.append([pattern, int(times)])
    return rules


def _take(rules: list[list[Any]], matches: Any) -> bool:
    for rule in rules:
        if matches(rule[0]) and rule[1] != 0:
            rule[1] -= 1 if rule[1] > 0 else 0
            return True
    return False


def install() -> None:
    """Patch folding and the producers (Faust's per-record send, aiokafka's batches) as the environment asks."""
    from aiokafka import AIOKafkaProducer
    from faust.transport.drivers.aiokafka import Producer

    from streams.engine.state import TargetState

    fold_rules = _rules("PACING_TEST_FOLD_FAILS")
    send_rules = _rules("PACING_TEST_SEND_FAILS")
    apply = TargetState.apply
    send = Producer.send
    send_batch = AIOKafkaProducer.send_batch

    def failing_apply(self: TargetState, *args: Any, **kwargs: Any) -> bool:
        if _take(fold_rules, self.target_id.startswith):
            raise RuntimeError(f"injected fold failure for {self.target_id}")
        return apply(self, *args, **kwargs)

    async def failing_send(self: Producer, topic: str, *args: Any, **kwargs: Any) -> Any:
        if _take(send_rules, topic.endswith):
            failed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            failed.set_exception(KafkaError(f"injected send failure to {topic}"))
            return failed
        return await send(self, topic, *args, **kwargs)

    async def failing_send_batch(self: AIOKafkaProducer, batch: Any, topic: str, *, partition: int) -> Any:
        if _take(send_rules, topic.endswith):  # the whole batch fails, as a broker refusing it would
            failed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            failed.set_exception(KafkaError(f"injected send failure to {topic}"))
            return failed
        return await send_batch(self, batch, topic, partition=partition)

    TargetState.apply = failing_apply  # type: ignore[method-assign]
    Producer.send = failing_send  # type: ignore[method-assign]
    AIOKafkaProducer.send_batch = failing_send_batch  # type: ignore[method-assign]


if __name__ == "__main__":
    install()
    from infra.cli import main

    sys.exit(main(["worker", *sys.argv[1:]]))
