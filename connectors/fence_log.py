"""The sink's ownership fence, read back from the decision log when partitions are assigned.

The sink drops a decision whose ownership epoch is older than the newest it applied for the
target (:class:`streams.runtime.fencing.EpochFence`). A sink that restarts, or takes partitions
over from another sink, resumes at the committed offsets: the decisions below them — among them
the newest owner's — are not read again, and a late decision of an older owner above them would
pass. :func:`learn_fence` therefore reads each newly assigned partition back up to its committed
offset, without delivering anything, and takes in each decision's epoch. It starts at the first
record written in the last ``LOOKBACK_MS`` (5 minutes; from the beginning where the broker cannot
look offsets up by time): an older epoch is fenced only within ``FENCE_WINDOW_MS`` (60 s) of the
newer owner's latest decision, so older records could only fence a decision an old owner's
producer held back for minutes. That bounds the read to a few minutes of decisions however long
the topic's uncompacted tail (Tansu does not compact).
"""

from __future__ import annotations

import logging
import time

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from schemas import DecodeError, decode_decision
from streams.runtime.config import Settings
from streams.runtime.fencing import FENCE_WINDOW_MS, EpochFence
from streams.runtime.kafka import consumer_options

log = logging.getLogger(__name__)

#: How far back the fence is read from the log (by record timestamp).
LOOKBACK_MS = 5 * FENCE_WINDOW_MS


async def learn_fence(settings: Settings, fence: EpochFence, ends: dict[TopicPartition, int],
                      timeout_s: float = 30.0) -> int:
    """Take the decisions of each partition below ``ends[tp]`` (its committed offset) into ``fence``.

    Returns how many records were read. Gives up after ``timeout_s`` (logged): the fence then
    holds what was read, and the rest of the log is fenced from the newest records onwards.
    """
    wanted = {tp: end for tp, end in ends.items() if end > 0}
    if not wanted:
        return 0
    consumer = AIOKafkaConsumer(enable_auto_commit=False, group_id=None, auto_offset_reset="earliest",
                                **consumer_options(settings))
    read = 0
    started = time.monotonic()
    await consumer.start()
    try:
        consumer.assign(list(wanted))
        await consumer.seek_to_beginning(*wanted)
        try:
            since = int(time.time() * 1000) - LOOKBACK_MS
            found = await consumer.offsets_for_times(dict.fromkeys(wanted, since))
        except Exception as exc:  # a broker without ListOffsets by time: read from the beginning
            log.info("fence: no offsets by time (%s); reading from the beginning", type(exc).__name__)
        else:
            for tp in list(wanted):
                at = found.get(tp)
                if at is None:
                    del wanted[tp]  # nothing written in the last LOOKBACK_MS
                elif at.offset < wanted[tp]:
                    consumer.seek(tp, at.offset)
                else:
                    del wanted[tp]
        while wanted:
            if time.monotonic() - started > timeout_s:
                log.warning("fence: gave up reading %s back after %.0fs", sorted(tp.partition for tp in wanted),
                            timeout_s)
                break
            batches = await consumer.getmany(*wanted, timeout_ms=500)
            for tp, records in batches.items():
                end = wanted.get(tp)
                if end is None:
                    continue
                for record in records:
                    if record.offset >= end:
                        break
                    read += 1
                    if not record.value:
                        continue
                    try:
                        decision = decode_decision(record.value)
                    except DecodeError:
                        continue
                    fence.learn(decision.target_id, decision.owner_epoch, decision.computed_at)
            for tp in list(wanted):
                if await consumer.position(tp) >= wanted[tp]:
                    del wanted[tp]
    finally:
        await consumer.stop()
    log.info("fence: %d decisions read back in %.1fs, %d targets fenced", read, time.monotonic() - started,
             len(fence))
    return read
