"""Instructions per cold ``decide`` (callgrind): the engine's cost, independent of the machine's load.

``python -m tests.benchmarks.engine_instructions`` runs, for each size band of
``tests.benchmarks.engine_cost`` and for a sample of its mixed fleet, the same seeded targets
under ``valgrind --tool=callgrind`` twice: once building their states and deciding each one cold
(every engine cache emptied first), once only building the states. The difference, divided by
the number of targets, is the instructions of one cold decision (Python interpreter included).
Timings on this shared machine move by ±30 % with the other work; these counts do not (a few
parts in a thousand from run to run). Needs valgrind; takes a few minutes.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import re
import subprocess
import sys
import tempfile

from tests.benchmarks import engine_cost

_COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")


def _targets(band: str, count: int, seed: int) -> list[engine_cost.Target]:
    """The band's targets as engine_cost draws them ("fleet": the mixed fleet's first ``count``)."""
    if band == "fleet":
        return engine_cost.fleet(count, seed)
    low, high = (int(x) for x in band.split("-"))
    rnd = random.Random(f"{seed}:band:{low}-{high}")
    return [engine_cost.random_target(rnd, low, high) for _ in range(count)]


def child(band: str, count: int, seed: int, decide: bool) -> None:
    """Build the states (and, with ``decide``, decide each cold): the work callgrind counts. The
    garbage collector is off, as in engine_cost: its passes land wherever the allocation count
    happens to trip them, and their cost depends on everything else alive in the process."""
    gc.disable()
    states = [(t.state(f"cold-{i}"), t.settings()) for i, t in enumerate(_targets(band, count, seed))]
    engine_cost.clear_engine_caches()
    for state, settings in states:
        if decide:
            engine_cost.clear_engine_caches()
            engine_cost.decide(state, settings, engine_cost.T_NOW)
        else:
            engine_cost.clear_engine_caches()


def _instructions(band: str, count: int, seed: int, decide: bool) -> int:
    """Instructions callgrind counts for one child run."""
    with tempfile.TemporaryDirectory() as tmp:
        command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/out", sys.executable, "-m",
                   __spec__.name if __spec__ else "tests.benchmarks.engine_instructions", "--child", band,
                   "--count", str(count), "--seed", str(seed)]
        if decide:
            command.append("--decide")
        run = subprocess.run(command, capture_output=True, text=True, check=False,
                             env={**os.environ, "PYTHONHASHSEED": "0"})
        found = _COLLECTED.search(run.stderr)
        if run.returncode != 0 or not found:
            raise RuntimeError(f"callgrind run failed ({run.returncode}): {run.stderr[-2000:]}")
        return int(found.group(1))


def main(argv: list[str] | None = None) -> None:
    """Print instructions per cold decision per band (or run one child)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--count", type=int, default=40, help="targets per band")
    parser.add_argument("--fleet", type=int, default=200, help="targets of the mixed fleet's sample")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--decide", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.count, args.seed, args.decide)
        return
    print(f"instructions per cold decide (callgrind; every engine cache emptied before each call; seed {args.seed})")
    print(f"{'agents':>8} {'targets':>8} {'M instr':>9}")
    bands = [(f"{low}-{high}", str(low) if low == high else f"{low}-{high}", args.count)
             for low, high in engine_cost.BANDS]
    for band, label, count in [*bands, ("fleet", "fleet", args.fleet)]:
        spent = _instructions(band, count, args.seed, True) - _instructions(band, count, args.seed, False)
        print(f"{label:>8} {count:>8} {spent / count / 1e6:>9.2f}", flush=True)


if __name__ == "__main__":
    main()
