"""Faust's own floor: a bare Faust agent iterating the topic record by record and only counting.

``--decode`` also decodes each record with the project's codec (the floor of any Faust agent that
reads stat events). No table, no output, default Faust settings apart from the broker, the
partition count, the group timeouts and reading from the earliest offset.
"""

from __future__ import annotations

import logging
import os
import sys

import faust

from tests.benchmarks.contenders.common import DrainClock, decoder, parse_args


def main() -> None:
    args = parse_args(__doc__.splitlines()[0],
                      lambda p: p.add_argument("--decode", action="store_true", help="decode every record too"))
    sys.argv = sys.argv[:1]  # the Faust worker parses the command line too
    app = faust.App(args.group, broker=f"kafka://{args.bootstrap}", topic_partitions=args.partitions,
                    consumer_auto_offset_reset="earliest", web_enabled=False,
                    datadir=args.state_dir or f"/tmp/{args.group}",
                    # the pacing node's group timeouts (streams/runtime/config.py): Tansu answers a JoinGroup
                    # after half the session timeout, and Faust's default would make that 30 s
                    broker_session_timeout=6.0, broker_heartbeat_interval=1.0, broker_rebalance_timeout=6.0)
    topic = app.topic(args.topic, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
                      partitions=args.partitions)
    clock = DrainClock("faust-decode" if args.decode else "faust-count", args.records)
    decode = decoder(args.format) if args.decode else None

    @app.agent(topic, concurrency=1)
    async def count(stream: faust.StreamT) -> None:
        async for value in stream:
            clock.start()
            if decode is None:
                done = clock.count(1, 0)
            else:
                events, rejected = decode([value])
                done = clock.count(1, events, rejected)
            if done:
                clock.report()
                logging.shutdown()
                os._exit(0)  # the numbers are out; a clean Faust shutdown takes seconds and measures nothing

    faust.Worker(app, loglevel="warning", quiet=True, redirect_stdouts=False).execute_from_commandline()


if __name__ == "__main__":
    main()
