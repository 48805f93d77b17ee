"""Correct end offsets for table recovery on brokers that under-report them (Tansu).

Faust restores a table by reading its changelog up to the partition's end offset, asked with
ListOffsets(latest). Tansu (the embedded broker) answers with the base offset of the *last
record batch* + 1 rather than the offset after its last record — measured here: 7 single
records then a batch of 5 give 8, not 12 — so a worker taking over a partition would stop
restoring early and lose the newest state of some targets. The high watermark in a fetch
response is right, so when ``kafka.probe_end_offsets`` is on (the default) every recovery's
end offsets are confirmed by one fetch per partition at the reported end - 1. On Apache Kafka
the probe confirms the reported value and costs one small fetch per recovered partition.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

log = logging.getLogger(__name__)


async def probe_end_offsets(
    client_options: dict[str, Any], reported: Mapping[TopicPartition, int], timeout_s: float = 5.0
) -> dict[TopicPartition, int]:
    """``reported`` raised to the high watermark a fetch at ``reported - 1`` sees."""
    corrected = dict(reported)
    probed = [tp for tp, end in reported.items() if end > 0]
    if not probed:
        return corrected
    consumer = AIOKafkaConsumer(group_id=None, enable_auto_commit=False, **client_options)
    await consumer.start()
    try:
        consumer.assign([TopicPartition(tp.topic, tp.partition) for tp in probed])
        for tp in probed:
            consumer.seek(TopicPartition(tp.topic, tp.partition), reported[tp] - 1)
        waiting = set(probed)
        deadline = asyncio.get_running_loop().time() + timeout_s
        while waiting and asyncio.get_running_loop().time() < deadline:
            await consumer.getmany(timeout_ms=200)
            for tp in list(waiting):
                highwater = consumer.highwater(TopicPartition(tp.topic, tp.partition))
                if highwater is not None:
                    corrected[tp] = max(reported[tp], highwater)
                    waiting.discard(tp)
        if waiting:
            log.warning("could not confirm end offsets of %s; using the broker's answer", sorted(waiting))
    finally:
        await consumer.stop()
    changed = {tp: (reported[tp], end) for tp, end in corrected.items() if end != reported[tp]}
    if changed:
        log.info("end offsets corrected by fetch probe: %s", changed)
    return corrected


def install_faust_end_offset_probe(client_options: dict[str, Any]) -> None:
    """Make Faust's recovery use probed end offsets (idempotent)."""
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    original = AIOKafkaConsumerThread._highwaters
    if getattr(original, "_probed", False):
        return

    async def _highwaters(self: AIOKafkaConsumerThread, partitions: list[Any]) -> Mapping[Any, int]:
        reported = await original(self, partitions)
        if self.consumer.in_transaction:
            return reported
        return await probe_end_offsets(client_options, reported)

    _highwaters._probed = True  # type: ignore[attr-defined]
    AIOKafkaConsumerThread._highwaters = _highwaters  # type: ignore[method-assign]
