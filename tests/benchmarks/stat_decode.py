"""Cost of decoding ``pacing.stats`` records: single StatEvents and 13-event StatBatches.

``python -m tests.benchmarks.stat_decode`` prints events per second of
``decode_stat_records`` (Avro and JSON, batched and single), of ``decode_stat_events``
(single records) and, for comparison, of the reference path (fastavro + pydantic).
Best of several rounds: the machine is shared, the best round is the least disturbed one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from schemas import StatEvent, decode_stat_events, decode_stat_records, encode_stat_batch, encode_stat_event
from schemas.models import COUNTERS, GAUGES

STATISTICS = sorted(GAUGES) + sorted(COUNTERS)  # the 13 a target reports per tick


def target_events(target: int, now_ms: int = 1_700_000_000_123) -> list[StatEvent]:
    """The 13 events of one report of one target, as ``pacing feed`` makes them."""
    return [StatEvent(tenant="acme", target_id=f"vq-{target:03d}", statistic=name, value=float(i * 3 + target),
                      timestamp=now_ms, source="pacing-feed", media_type="webchat")
            for i, name in enumerate(STATISTICS)]


def best_rate(function: Callable[[], object], events: int, rounds: int = 40) -> float:
    """Events per second of the fastest of ``rounds`` calls."""
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    return events / best


def main() -> None:
    targets = 100
    events = [event for target in range(targets) for event in target_events(target)]
    batches = [encode_stat_batch(target_events(target)) for target in range(targets)]
    json_batches = [json.dumps({"events": [e.model_dump() for e in target_events(t)]}).encode()
                    for t in range(targets)]
    singles = [encode_stat_event(event) for event in events]
    json_singles = [json.dumps(event.model_dump()).encode() for event in events]
    n = len(events)
    rows = [
        ("decode_stat_records, 13-event Avro StatBatch", best_rate(lambda: decode_stat_records(batches), n)),
        ("decode_stat_records, single Avro StatEvent", best_rate(lambda: decode_stat_records(singles), n)),
        ("decode_stat_events, single Avro StatEvent", best_rate(lambda: decode_stat_events(singles), n)),
        ("decode_stat_records, 13-event JSON StatBatch", best_rate(lambda: decode_stat_records(json_batches), n)),
        ("decode_stat_records, single JSON StatEvent", best_rate(lambda: decode_stat_records(json_singles), n)),
    ]
    import schemas.codec as codec

    reference_batch = lambda: [codec._batch_events(codec.REGISTRY._decode_avro("StatBatch", p, None)["events"],  # noqa: E731
                                                   False) for p in batches]
    reference_single = lambda: [StatEvent.model_validate(codec.REGISTRY._decode_avro("StatEvent", p, None),  # noqa: E731
                                                         strict=True) for p in singles]
    rows.append(("reference (fastavro + hand check), 13-event Avro StatBatch", best_rate(reference_batch, n)))
    rows.append(("reference (fastavro + pydantic), single Avro StatEvent", best_rate(reference_single, n)))
    for name, rate in rows:
        print(f"{name:62} {rate:>12,.0f} events/s   {1e6 / rate:6.2f} µs/event")


if __name__ == "__main__":
    main()
