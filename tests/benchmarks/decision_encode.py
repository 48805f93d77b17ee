"""Cost of encoding ActionTargetDecision records: fastavro against the hand-written writer.

``python -m tests.benchmarks.decision_encode`` builds the decision records of a mixed fleet
(``tests.benchmarks.engine_cost.fleet``: 1-500 agents, every algorithm, some targets with a
definition giving a name, a description and media types) with ``streams.node.decisions.decision_record``,
as the pacing node does, and prints CPU µs per record of

- ``REGISTRY.encode("ActionTargetDecision", record)`` (fastavro; what ``encode_decision_record``
  called before);
- ``encode_decision_fields(record)`` with its caches emptied before the pass (a node's first tick);
- the second tick (a later ``computed_at``, every state drifted a little) after the first: many
  figure values not seen yet;
- the 11th tick after the ten before it: most values seen before, as in a node that has run a while;
- the first tick's records again (every value seen before).

Each pass is checked byte for byte against fastavro first. Times are CPU time of this process
(``time.process_time_ns``), the best of ``--rounds`` interleaved rounds: the machine is shared.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from typing import Any

import schemas.codec as codec
from schemas import REGISTRY, encode_decision_fields
from streams.node.decisions import decision_record
from streams.runtime.config import load_settings
from tests.benchmarks.engine_cost import T_NOW, fleet

TICK_MS = 10_000


def ticks(targets: int, seed: int, count: int) -> list[list[dict[str, Any]]]:
    """The decision records of ``targets`` targets over ``count`` ticks, each state drifted from the last."""
    defaults = load_settings().targets
    rnd = random.Random(f"{seed}:records")
    fleet_now = fleet(targets, seed)
    definitions = [
        {"name": f"Sales queue {i} (Köln)", "description": "Outbound sales, German speakers",
         "supported_media_types": rnd.choice((["webchat"], ["call", "callback"], ["email"]))}
        if rnd.random() < 0.5 else None
        for i in range(targets)
    ]
    out = []
    for tick in range(count):
        if tick:
            fleet_now = [target.drifted(rnd) for target in fleet_now]
        out.append([decision_record("acme", "pacing-node-1", target.state(f"vq-{i:05d}"), defaults,
                                    T_NOW + tick * TICK_MS, definitions[i], stale=rnd.random() < 0.02)
                    for i, target in enumerate(fleet_now)])
    return out


def empty_caches() -> None:
    """Forget every value the hand-written writer has cached."""
    codec._clear_decision_caches()


def cpu_us_per_record(function: Callable[[dict[str, Any]], bytes], batch: list[dict[str, Any]],
                      before: Callable[[], None] | None = None) -> float:
    if before is not None:
        before()
    started = time.process_time_ns()
    for record in batch:
        function(record)
    return (time.process_time_ns() - started) / 1000 / len(batch)


def fastavro(record: dict[str, Any]) -> bytes:
    return REGISTRY.encode("ActionTargetDecision", record)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    history = ticks(args.targets, args.seed, 11)
    first, second, eleventh = history[0], history[1], history[10]
    empty_caches()
    for batch in history:
        for record in batch:
            assert encode_decision_fields(record) == fastavro(record), record
    sizes = sorted(len(fastavro(record)) for record in first)

    def write(batches: list[list[dict[str, Any]]]) -> None:
        empty_caches()
        for batch in batches:
            for record in batch:
                encode_decision_fields(record)

    cases: list[tuple[str, Callable[[], float]]] = [
        ("fastavro (REGISTRY.encode)", lambda: cpu_us_per_record(fastavro, first)),
        ("hand, first tick (caches empty)", lambda: cpu_us_per_record(encode_decision_fields, first, empty_caches)),
        ("hand, second tick", lambda: cpu_us_per_record(encode_decision_fields, second, lambda: write(history[:1]))),
        ("hand, 11th tick", lambda: cpu_us_per_record(encode_decision_fields, eleventh, lambda: write(history[:10]))),
        ("hand, first tick again", lambda: cpu_us_per_record(encode_decision_fields, first, lambda: write([first]))),
    ]
    best = {name: float("inf") for name, _ in cases}
    for _ in range(args.rounds):
        for name, run in cases:
            best[name] = min(best[name], run())
    print(f"{args.targets} decision records, {sizes[len(sizes) // 2]} bytes (median); CPU µs per record, "
          f"best of {args.rounds} rounds")
    reference = best[cases[0][0]]
    for name, _ in cases:
        print(f"  {name:34s} {best[name]:7.2f} µs  ({reference / best[name]:.1f}x)")


if __name__ == "__main__":
    main()
