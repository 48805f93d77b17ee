"""CPU per record an :class:`~streams.runtime.outbox.Outbox` spends sending and confirming, one record at a
time through Faust's producer against whole batches through the aiokafka producer under it.

Run ``python -m tests.benchmarks.outbox_send`` (an embedded broker of its own, or
``KAFKA_BOOTSTRAP_SERVERS``). Decisions of ~300 bytes keyed by 10,000 targets over 12 partitions, as a
pacing node sends them; CPU time of this process (``time.process_time``), so a busy machine slows the
run but barely moves the figures. Prints one row per way and round.
"""

from __future__ import annotations

import argparse
import os
import time

import faust
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.node.faust_compat import BatchingTransport
from streams.runtime.outbox import Outbox
from tests.benchmarks.on_broker import run_on_broker

TOPIC = "bench-outbox"
PARTITIONS = 12


async def _cpu_us_per_record(outbox_for: object, keys: list[bytes], value: bytes) -> float:
    started = time.process_time()
    outbox = Outbox(outbox_for, 30.0)  # type: ignore[arg-type]
    for key in keys:
        await outbox.send(TOPIC, key, value)
    await outbox.confirm()
    return (time.process_time() - started) * 1e6 / len(keys)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)

    async def run(bootstrap: str) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        await admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])
        await admin.close()
        app = faust.App("bench-outbox", broker=f"kafka://{bootstrap}")
        await app.producer.start()
        keys = [f"vq-{n % 10_000}".encode() for n in range(args.records)]
        value = os.urandom(300)
        ways = {"one record at a time (Faust's producer)": app.producer,
                "batches per partition (BatchingTransport)": BatchingTransport(app)}
        await _cpu_us_per_record(app.producer, keys[:100], value)  # metadata and connections
        print(f"{'way':<46} | round | CPU µs per record")
        for round_ in range(1, args.rounds + 1):
            for name, producer in ways.items():
                print(f"{name:<46} | {round_:>5} | {await _cpu_us_per_record(producer, keys, value):>8.1f}")
        await app.producer.stop()

    run_on_broker(run)


if __name__ == "__main__":
    main()
