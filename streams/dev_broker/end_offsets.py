"""Correct end offsets for table recovery on a broker that under-reports them (Tansu).

Faust restores a table by reading its changelog up to the partition's end offset, asked with
ListOffsets(latest). Tansu (the embedded broker) answers with the base offset of the *last
record batch* + 1 rather than the offset after its last record — measured here: 7 single
records then a batch of 5 give 8, not 12 — so a worker taking over a partition would stop
restoring early and lose the newest state of some targets. The high watermark in a fetch
response is right, so every recovery's end offsets are confirmed by one fetch per partition at
the reported end - 1 (:func:`probe_end_offsets`). Apache Kafka reports them right: the probe is
installed only where :mod:`streams.dev_broker` decided it is needed (``kafka.probe_end_offsets``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from faust.types import AppT

from streams.node.faust_compat import correct_recovery_end_offsets

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


def install_end_offset_probe(app: AppT, client_options: dict[str, Any]) -> None:
    """Make ``app``'s table recovery read up to probed end offsets (that app's consumer only).

    The hook into Faust is :func:`streams.node.faust_compat.correct_recovery_end_offsets`.
    """

    async def correct(reported: Mapping[Any, int]) -> Mapping[Any, int]:
        return await probe_end_offsets(client_options, reported)

    correct_recovery_end_offsets(app, correct)
