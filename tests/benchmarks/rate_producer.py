"""The sustained run's producer, a child process: stat records at a fixed rate, each send time noted.

Record ``i`` is for target ``i % targets`` and sets its ``ready_agents`` to ``i // targets + 1``
(single: one StatEvent; batch: a StatBatch of the 13 statistics, ``logged_in_agents`` 1,000).
Every record is encoded before the clock starts (so encoding costs nothing while it runs) and
sent with librdkafka (confluent-kafka, Kafka's murmur2 partitioner like the Java client), on a
schedule of ``--rate`` events per second, catching up when late. Prints ``ready`` when encoded,
then one JSON line at the end; ``--times`` gets each record's send time (``time.time()``, float64).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from array import array

from confluent_kafka import Producer

from schemas import STATISTICS, StatEvent, encode_stat_event

BATCH_STATS = tuple(sorted(STATISTICS))
LOGGED_IN = 1_000.0


def target_name(index: int) -> str:
    return f"sv-{index:05d}"


def encode_all(fmt: str, records: int, targets: int, start_ms: int, per_record_ms: float) -> list[tuple[bytes, bytes]]:
    out = []
    for i in range(records):
        name = target_name(i % targets)
        ready = float(i // targets + 1)
        stamp = start_ms + int(i * per_record_ms)
        if fmt == "single":
            value = encode_stat_event(StatEvent(tenant="acme", target_id=name, statistic="ready_agents", value=ready,
                                                timestamp=stamp, source="bench"))
        else:
            from schemas import encode_stat_batch

            values = {"ready_agents": ready, "logged_in_agents": LOGGED_IN}
            value = encode_stat_batch([StatEvent(tenant="acme", target_id=name, statistic=stat,
                                                 value=values.get(stat, 0.0), timestamp=stamp, source="bench")
                                       for stat in BATCH_STATS])
        out.append((name.encode(), value))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--format", choices=("single", "batch"), default="single")
    parser.add_argument("--rate", type=int, required=True, help="events per second")
    parser.add_argument("--duration", type=float, required=True, help="seconds")
    parser.add_argument("--targets", type=int, required=True)
    parser.add_argument("--times", required=True, help="file for the send times")
    args = parser.parse_args()
    per_record = 1 if args.format == "single" else len(BATCH_STATS)
    record_rate = args.rate / per_record
    records = int(record_rate * args.duration)
    start_ms = int(time.time() * 1000)
    payloads = encode_all(args.format, records, args.targets, start_ms, 1000 / record_rate)
    producer = Producer({"bootstrap.servers": args.bootstrap, "linger.ms": 5, "partitioner": "murmur2_random",
                         "queue.buffering.max.messages": 1_000_000})
    print("ready", flush=True)
    sys.stdin.readline()  # the parent says go
    times = array("d", bytes(8 * records))
    sent = 0
    started = time.monotonic()
    while sent < records:
        due = min(records, int((time.monotonic() - started) * record_rate))
        while sent < due:
            key, value = payloads[sent]
            times[sent] = time.time()
            try:
                producer.produce(args.topic, value, key)
            except BufferError:
                producer.poll(0.01)
                continue
            sent += 1
        producer.poll(0)
        time.sleep(0.005)
    seconds = time.monotonic() - started
    producer.flush(60)
    with open(args.times, "wb") as out:
        times.tofile(out)
    print(json.dumps({"records": records, "events": records * per_record, "seconds": round(seconds, 3)}), flush=True)


if __name__ == "__main__":
    main()
