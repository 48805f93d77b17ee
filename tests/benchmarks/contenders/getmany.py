"""The ceiling: a raw aiokafka consumer, ``getmany`` + the project's bulk decode, nothing else.

No state, no output, no commits: what consuming and decoding the topic costs in Python at all.
"""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer

from tests.benchmarks.contenders.common import DrainClock, decoder, parse_args


async def drain(args) -> DrainClock:
    decode = decoder(args.format)
    clock = DrainClock("getmany", args.records)
    consumer = AIOKafkaConsumer(args.topic, bootstrap_servers=args.bootstrap, group_id=args.group,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        done = False
        while not done:
            batches = await consumer.getmany(timeout_ms=200, max_records=5000)
            for records in batches.values():
                clock.start()
                events, rejected = decode([record.value for record in records])
                done = clock.count(len(records), events, rejected)
    finally:
        await consumer.stop()
    return clock


if __name__ == "__main__":
    asyncio.run(drain(parse_args(__doc__.splitlines()[0]))).report()
