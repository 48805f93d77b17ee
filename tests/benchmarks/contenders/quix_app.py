"""Quix Streams: per record, decode with the project's codec, read and write the target's state.

A Streaming DataFrame over the stats topic (raw bytes in) whose one stateful step decodes the
record (``schemas.decode_stat_events`` for a single event, ``schemas.decode_stat_records`` for a
StatBatch), reads the target's state (the record key's: RocksDB, changelog-backed, Quix's
defaults), folds the events into it and writes it back: one state read and one write per record.
No output topic.
"""

from __future__ import annotations

import logging
from typing import Any

from tests.benchmarks.contenders.common import DrainClock, decode_records, parse_args


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    from quixstreams import Application, State

    from tests.benchmarks.contenders.quix_tansu import GROUP_TIMEOUTS, adjust_for_tansu

    adjust_for_tansu()
    app = Application(broker_address=args.bootstrap, consumer_group=args.group, auto_offset_reset="earliest",
                      state_dir=args.state_dir or f"/tmp/{args.group}", loglevel="WARNING",
                      consumer_extra_config=GROUP_TIMEOUTS)
    topic = app.topic(args.topic, key_deserializer="bytes", value_deserializer="bytes")
    clock = DrainClock("quix", args.records)
    decode = decode_records(args.format)

    def fold(value: bytes, state: State) -> None:
        clock.start()
        events = decode([value])[0]
        stats: dict[str, Any] = state.get("stats") or {}
        for event in events:
            stats[event.statistic] = (event.value, event.timestamp)
        state.set("stats", stats)
        if clock.count(1, len(events), 0 if events else 1):
            app.stop()

    app.dataframe(topic).update(fold, stateful=True)
    app.run()
    clock.report()
    logging.shutdown()


if __name__ == "__main__":
    main()
