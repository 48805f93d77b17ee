"""``pacing simulate``: one contact-centre scenario, or the whole benchmark matrix (``--matrix``)."""

from __future__ import annotations

import argparse
import sys
import time

from streams.engine import ALGORITHMS, PacingSettings
from streams.simulation.benchmark import (
    AUTO,
    CONSTANT,
    READY,
    ScenarioResults,
    best_constant_rate,
    format_table,
    matrix,
    policies_for,
    run_matrix,
    run_policy,
)
from streams.simulation.contact_centre import simulate
from streams.simulation.policies import ConstantRatePolicy
from streams.simulation.scenario import Scenario


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pacing simulate",
        description="Simulate a contact centre paced by the engine. Without --matrix: one scenario; "
                    "with --baselines also the ready/p policy and the best constant offer rate.")
    parser.add_argument("--matrix", action="store_true", help="run the whole benchmark matrix and print the table")
    parser.add_argument("--workers", type=int, default=None, help="processes for --matrix (default: all CPUs)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every matrix horizon (0.1: quick look)")
    parser.add_argument("--agents", type=int, default=15)
    parser.add_argument("--acceptance", type=float, default=0.3, help="probability a visitor accepts an offer")
    load = parser.add_mutually_exclusive_group()
    load.add_argument("--reactive-rate", type=float, default=0.0, help="reactive interactions per hour")
    load.add_argument("--reactive-load", type=float, default=None, help="reactive traffic as a share of capacity")
    parser.add_argument("--algorithm", default=AUTO,
                        choices=[AUTO, *ALGORITHMS, READY, CONSTANT], help="who paces (default: AUTO)")
    parser.add_argument("--constant-rate", type=float, default=None,
                        help="offers per hour for --algorithm constant (default: search the best)")
    parser.add_argument("--baselines", action="store_true", help="also run ready/p and the constant-rate search")
    parser.add_argument("--hours", type=float, default=8.0, help="measured hours (after the warm-up)")
    parser.add_argument("--warmup", type=float, default=1800.0, help="seconds simulated before measuring")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--handle-time", type=float, default=300.0, help="mean handle time, seconds")
    parser.add_argument("--handle-cv", type=float, default=0.8, help="handle time coefficient of variation")
    parser.add_argument("--patience", type=float, default=60.0, help="mean customer patience, seconds")
    parser.add_argument("--response", type=float, default=5.0, help="mean time a visitor takes to answer an offer")
    parser.add_argument("--target", default="ABANDONMENT_RATE", choices=["ABANDONMENT_RATE", "BUSY_FACTOR"])
    parser.add_argument("--goal", type=float, default=None, help="optimization goal, percent (default 3 / 80)")
    parser.add_argument("--proactive-ratio", type=float, default=1.0)
    parser.add_argument("--refresh", type=float, default=10.0, help="refresh period, seconds")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``pacing simulate``; prints a table and returns the exit status.

    A leading ``--`` is dropped: ``pacing simulate -- --matrix`` passes options through a
    parent parser that would otherwise claim them."""
    if argv and argv[0] == "--":
        argv = argv[1:]
    args = _parser().parse_args(argv)
    started = time.monotonic()
    if args.matrix:
        results = run_matrix(matrix(args.seed, args.scale), args.workers)
        print(format_table(results))
    else:
        scenario = _scenario(args)
        print(format_table([_single(scenario, args)]))
    print(f"\n(simulated in {time.monotonic() - started:.1f} s wall time)", file=sys.stderr)
    return 0


def _scenario(args: argparse.Namespace) -> Scenario:
    goal = args.goal if args.goal is not None else (80.0 if args.target == "BUSY_FACTOR" else 3.0)
    settings = PacingSettings(optimization_target=args.target, optimization_goal=goal,
                              proactive_ratio=args.proactive_ratio, refresh_period_s=args.refresh,
                              offer_response_s=args.response)
    reactive = args.reactive_rate
    if args.reactive_load is not None:
        reactive = args.reactive_load * args.agents * 3600 / args.handle_time
    return Scenario(agents=args.agents, acceptance=args.acceptance, reactive_per_hour=reactive,
                    handle_time_s=args.handle_time, handle_time_cv=args.handle_cv, patience_s=args.patience,
                    response_s=args.response, hours=args.hours, warmup_s=args.warmup, seed=args.seed,
                    settings=settings)


def _single(scenario: Scenario, args: argparse.Namespace) -> ScenarioResults:
    """The chosen policy (as the 'configured' row), plus the baselines when asked."""
    if args.algorithm == CONSTANT and args.constant_rate is not None:
        configured = simulate(scenario, ConstantRatePolicy(args.constant_rate, scenario.seed))
    elif args.algorithm == CONSTANT:
        configured = best_constant_rate(scenario).result
    else:
        configured = run_policy(scenario, args.algorithm)
    runs = {args.algorithm: configured}
    constant = None
    if args.baselines:
        for policy in [*policies_for(scenario), READY]:
            runs.setdefault(policy, run_policy(scenario, policy))
        constant = best_constant_rate(scenario)
    return ScenarioResults(scenario, runs, constant, configured_policy=args.algorithm)
