"""Are the engine's decisions unchanged? Dump every decision of the engine_cost fleet, or compare with a dump.

``python -m tests.benchmarks.engine_same_decisions dump FILE`` (before a change) and
``... compare FILE`` (after it) decide ``--fleet`` targets of ``tests.benchmarks.engine_cost``'s
mixed fleet (seed ``--seed``) cold (every engine cache emptied) and again warm, each as configured
and with the algorithm AUTO picks, plus 200 AUTO targets per size band (``--bands``: each band's
200 targets also with ``SUPER_PROGRESSIVE`` and ``SUPER_PROGRESSIVE_DUAL`` forced and as
configured, which the fleet never does on 501-1,000 agents), and compare every
``PacingDecision`` field exactly (``repr`` of the field tuple: floats to the last bit, figures
as published). A speed change to the engine must leave them all identical. Exit status 1 on any
difference, with the first few printed.
"""

from __future__ import annotations

import argparse
import dataclasses
import pickle
import random
import sys

from tests.benchmarks import engine_cost

FORCED = ("SUPER_PROGRESSIVE", "SUPER_PROGRESSIVE_DUAL")


def decisions(fleet: int, seed: int, bands: bool = False) -> list[tuple]:
    """Every decision of the check, as field tuples, in a fixed order."""
    out = []
    for i, target in enumerate(engine_cost.fleet(fleet, seed)):
        for variant in (target, dataclasses.replace(target, algorithm=None)):
            state, settings = variant.state(f"vq-{i}"), variant.settings()
            engine_cost.clear_engine_caches()
            out.append(dataclasses.astuple(engine_cost.decide(state, settings, engine_cost.T_NOW)))
            out.append(dataclasses.astuple(engine_cost.decide(state, settings, engine_cost.T_NOW)))  # warm
    for low, high in engine_cost.BANDS:
        rnd = random.Random(f"{seed}:band:{low}-{high}")
        for _ in range(200):
            target = dataclasses.replace(engine_cost.random_target(rnd, low, high), algorithm=None)
            engine_cost.clear_engine_caches()
            out.append(dataclasses.astuple(engine_cost.decide(target.state("c"), target.settings(), engine_cost.T_NOW)))
    if bands:
        out += forced_bands(seed)
    return out


def forced_bands(seed: int) -> list[tuple]:
    """Each band's 200 targets decided cold with the costly algorithms forced, and as configured."""
    out = []
    for low, high in engine_cost.BANDS:
        rnd = random.Random(f"{seed}:band:{low}-{high}")
        for _ in range(200):
            target = engine_cost.random_target(rnd, low, high)
            for algorithm in (*FORCED, target.algorithm):
                variant = dataclasses.replace(target, algorithm=algorithm)
                engine_cost.clear_engine_caches()
                out.append(
                    dataclasses.astuple(engine_cost.decide(variant.state("c"), variant.settings(), engine_cost.T_NOW))
                )
    return out


def main(argv: list[str] | None = None) -> int:
    """Dump or compare; 0 when the decisions are identical."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("dump", "compare"))
    parser.add_argument("file")
    parser.add_argument("--fleet", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--bands", action="store_true", help="also force the costly algorithms on every band")
    args = parser.parse_args(argv)
    now = decisions(args.fleet, args.seed, args.bands)
    if args.mode == "dump":
        with open(args.file, "wb") as out:
            pickle.dump(now, out)
        print(f"{len(now)} decisions written to {args.file}")
        return 0
    with open(args.file, "rb") as source:
        before = pickle.load(source)  # a file this tool wrote
    if len(before) != len(now):
        print(f"{len(before)} decisions before, {len(now)} now: not the same check")
        return 1
    differ = [i for i, (a, b) in enumerate(zip(before, now, strict=True)) if repr(a) != repr(b)]
    print(f"compared {len(now)} decisions: {len(differ)} differ")
    for i in differ[:5]:
        print(f"  before {before[i]}\n  now    {now[i]}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
