"""What every contender of ``make bench`` shares: its command line, the decoder and its report.

Each contender is a child process (``python -m tests.benchmarks.contenders.<name>``) that drains
one stats topic from the beginning with its own consumer group until it has seen ``--records``
records, then prints one JSON line on stdout::

    {"contender": ..., "records": ..., "events": ..., "rejected": ..., "seconds": ...}

``seconds`` runs from the first record the contender received to the last one it finished with,
so start-up, group join and shut-down are not in it; ``events`` counts decoded stat events
(batch items included), ``rejected`` the records the decoder refused.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence

FORMATS = ("single", "batch")


def parse_args(description: str, extra: Callable[[argparse.ArgumentParser], None] | None = None) -> argparse.Namespace:
    """The contenders' common options (and ``extra``'s)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True, help="a consumer group of its own (fresh per run)")
    parser.add_argument("--records", type=int, required=True, help="stop after this many records")
    parser.add_argument("--format", choices=FORMATS, default="single",
                        help="single: one StatEvent per record; batch: one StatBatch per record")
    parser.add_argument("--partitions", type=int, default=12)
    parser.add_argument("--state-dir", default=None)
    if extra:
        extra(parser)
    return parser.parse_args()


def decoder(fmt: str) -> Callable[[Sequence[bytes | None]], tuple[int, int]]:
    """A function decoding a list of record values into (events, rejected records), with the project's codec."""
    if fmt == "single":
        from schemas import DecodeError, decode_stat_events

        def single(values: Sequence[bytes | None]) -> tuple[int, int]:
            decoded = decode_stat_events(values)
            rejected = sum(1 for item in decoded if isinstance(item, DecodeError))
            return len(decoded) - rejected, rejected

        return single
    from schemas import DecodeError, decode_stat_records

    def batch(values: Sequence[bytes | None]) -> tuple[int, int]:
        events = rejected = 0
        for item in decode_stat_records(values):
            if isinstance(item, DecodeError):
                rejected += 1
            else:
                events += sum(1 for event in item if not isinstance(event, DecodeError))
        return events, rejected

    return batch


def decode_records(fmt: str) -> Callable[[Sequence[bytes | None]], list[list]]:
    """A function decoding record values into one list of StatEvents per record (``[]`` for a rejected one)."""
    from schemas import DecodeError

    if fmt == "single":
        from schemas import decode_stat_events

        def single(values: Sequence[bytes | None]) -> list[list]:
            return [[] if isinstance(item, DecodeError) else [item] for item in decode_stat_events(values)]

        return single
    from schemas import decode_stat_records

    def batch(values: Sequence[bytes | None]) -> list[list]:
        return [[] if isinstance(item, DecodeError) else [event for event in item if not isinstance(event, DecodeError)]
                for item in decode_stat_records(values)]

    return batch


class DrainClock:
    """Counts records and events; the clock runs from the first record seen to the last one counted."""

    def __init__(self, name: str, expected_records: int):
        self.name = name
        self.expected = expected_records
        self.records = self.events = self.rejected = 0
        self.first: float | None = None
        self.last = 0.0

    def start(self) -> None:
        """Call when a record arrives, before working on it."""
        if self.first is None:
            self.first = time.perf_counter()

    def count(self, records: int, events: int, rejected: int = 0) -> bool:
        """Call once records are done with; True once every expected record was counted."""
        self.records += records
        self.events += events
        self.rejected += rejected
        self.last = time.perf_counter()
        return self.records >= self.expected

    def report(self) -> None:
        """The one JSON line on stdout."""
        seconds = self.last - self.first if self.first is not None else 0.0
        print(json.dumps({"contender": self.name, "records": self.records, "events": self.events,
                          "rejected": self.rejected, "seconds": round(seconds, 6)}), flush=True)
        sys.stdout.flush()
