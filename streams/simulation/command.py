"""``pacing simulate``: one contact-centre scenario, or the whole benchmark matrix (``--matrix``)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

from streams.engine import ALGORITHMS, PacingSettings
from streams.simulation.benchmark import (
    AUTO,
    CONSTANT,
    READY,
    SEEDS,
    ScenarioResults,
    best_constant_rate,
    format_table,
    matrix,
    policies_for,
    run_matrix,
    run_policy,
    seeds_of,
)
from streams.simulation.contact_centre import simulate
from streams.simulation.policies import ConstantRatePolicy
from streams.simulation.scenario import (
    PATIENCE_DISTRIBUTIONS,
    STEPPABLE,
    CounterReset,
    ReactiveBursts,
    Scenario,
    StatFaults,
    Step,
    pool,
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pacing simulate",
        description="Simulate a contact centre paced by the engine. Without --matrix: one scenario; "
                    "with --baselines also the ready/p policy and the best constant offer rate.")
    parser.add_argument("--matrix", action="store_true", help="run the whole benchmark matrix and print the table")
    parser.add_argument("--workers", type=int, default=None, help="processes for --matrix (default: all CPUs)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every matrix horizon (0.1: quick look)")
    parser.add_argument("--group", action="append", default=None,
                        help="--matrix: only the cases of this class (repeatable), e.g. 'late stats'")
    parser.add_argument("--seeds", type=int, default=None,
                        help=f"seeds pooled per scenario (default {SEEDS} with --matrix, else 1)")
    parser.add_argument("--all-algorithms", action="store_true",
                        help="also run every explicit algorithm (with --matrix or --baselines)")
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
    parser.add_argument("--handle-time", type=float, default=360.0, help="mean handle time, seconds")
    parser.add_argument("--handle-cv", type=float, default=0.8, help="handle time coefficient of variation")
    parser.add_argument("--patience", type=float, default=45.0, help="mean customer patience, seconds")
    parser.add_argument("--patience-distribution", default="exponential", choices=PATIENCE_DISTRIBUTIONS)
    parser.add_argument("--patience-cv", type=float, default=1.0, help="patience cv (lognormal patience)")
    parser.add_argument("--response", type=float, default=8.0,
                        help="true mean time a visitor takes to answer an offer (the engine is not told)")
    parser.add_argument("--engine-response", type=float, default=None,
                        help="the engine's offer_response_s setting (default: the engine's default)")
    parser.add_argument("--offer-jitter", type=float, default=0.0,
                        help="0: offers exactly when planned; 1: at random moments of their period")
    parser.add_argument("--stat-delay", type=float, default=0.0, help="every stat event arrives this late, s")
    parser.add_argument("--stat-jitter", type=float, default=0.0, help="plus a uniform random delay up to this, s")
    parser.add_argument("--stat-loss", type=float, default=0.0, help="probability a stat event is lost")
    parser.add_argument("--stat-duplication", type=float, default=0.0,
                        help="probability a stat event is delivered twice")
    parser.add_argument("--stat-burst", type=float, default=0.0,
                        help="statistics arrive in batched deliveries about this many seconds apart, out of order")
    parser.add_argument("--bursts", default=None, metavar="FACTOR,MIN_S,MAX_S,QUIET_MEAN_S",
                        help="reactive arrivals in bursts: FACTOR x the rate for MIN_S-MAX_S seconds, quiet spells of "
                             "QUIET_MEAN_S on average (e.g. 3,120,600,3600)")
    parser.add_argument("--handle-modes", default=None, metavar="SHARE:MEAN,...",
                        help="handle times from lognormal modes (cv --handle-cv), e.g. 0.7:150,0.3:850 "
                             "(--handle-time becomes their mean)")
    parser.add_argument("--reset", action="append", default=[], metavar="SECONDS[:COUNTER,...]",
                        help="counters restart from 0 at this simulated time (default all counters); repeatable")
    parser.add_argument("--step", action="append", default=[], metavar="SECONDS:QUANTITY=VALUE",
                        help=f"from this simulated time on, one of {', '.join(STEPPABLE)} takes the value; "
                             "repeatable")
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
    parser = _parser()
    args = parser.parse_args(argv)
    started = time.monotonic()
    if args.matrix:
        cases = matrix(args.seed, args.scale)
        if args.group:
            cases = [case for case in cases if case.group in args.group]
            if not cases:
                parser.error(f"no case in the groups {args.group}; groups: "
                             f"{sorted({case.group for case in matrix()})}")
        results = run_matrix(cases, args.workers, seeds=args.seeds or SEEDS, all_algorithms=args.all_algorithms)
        print(format_table(results))
    else:
        try:
            scenario = _scenario(args)
        except ValueError as error:
            parser.error(str(error))
        print(format_table([_single(scenario, args)]))
    print(f"\n(simulated in {time.monotonic() - started:.1f} s wall time)", file=sys.stderr)
    return 0


def _scenario(args: argparse.Namespace) -> Scenario:
    goal = args.goal if args.goal is not None else (80.0 if args.target == "BUSY_FACTOR" else 3.0)
    settings = PacingSettings(optimization_target=args.target, optimization_goal=goal,
                              proactive_ratio=args.proactive_ratio, refresh_period_s=args.refresh)
    if args.engine_response is not None:
        settings = dataclasses.replace(settings, offer_response_s=args.engine_response)
    reactive = args.reactive_rate
    if args.reactive_load is not None:
        reactive = args.reactive_load * args.agents * 3600 / args.handle_time
    faults = StatFaults(delay_s=args.stat_delay, delay_jitter_s=args.stat_jitter, loss=args.stat_loss,
                        duplication=args.stat_duplication, resets=tuple(_reset(text) for text in args.reset),
                        burst_s=args.stat_burst)
    modes = _modes(args.handle_modes) if args.handle_modes else ()
    handle_time = sum(share * mean for share, mean in modes) if modes else args.handle_time
    return Scenario(agents=args.agents, acceptance=args.acceptance, reactive_per_hour=reactive,
                    bursts=_bursts(args.bursts) if args.bursts else None, handle_time_modes=modes,
                    handle_time_s=handle_time, handle_time_cv=args.handle_cv, patience_s=args.patience,
                    patience_distribution=args.patience_distribution, patience_cv=args.patience_cv,
                    response_s=args.response, offer_jitter=args.offer_jitter, hours=args.hours,
                    warmup_s=args.warmup, seed=args.seed, steps=tuple(_step(text) for text in args.step),
                    faults=faults, settings=settings)


def _bursts(text: str) -> ReactiveBursts:
    """``FACTOR,MIN_S,MAX_S,QUIET_MEAN_S`` as reactive bursts."""
    try:
        factor, low, high, quiet = (float(part) for part in text.split(","))
    except ValueError:
        raise ValueError(f"--bursts {text!r}: expected FACTOR,MIN_S,MAX_S,QUIET_MEAN_S") from None
    return ReactiveBursts(factor, low, high, quiet)


def _modes(text: str) -> tuple[tuple[float, float], ...]:
    """``SHARE:MEAN,...`` as handle-time modes."""
    try:
        return tuple((float(share), float(mean)) for share, mean in (part.split(":") for part in text.split(",")))
    except ValueError:
        raise ValueError(f"--handle-modes {text!r}: expected SHARE:MEAN,...") from None


def _reset(text: str) -> CounterReset:
    """``SECONDS`` or ``SECONDS:counter,counter`` as a counter reset."""
    at, _, names = text.partition(":")
    try:
        seconds = float(at)
    except ValueError:
        raise ValueError(f"--reset {text!r}: expected SECONDS[:COUNTER,...]") from None
    return CounterReset(seconds, tuple(names.split(","))) if names else CounterReset(seconds)


def _step(text: str) -> Step:
    """``SECONDS:quantity=value`` as a step."""
    at, _, change = text.partition(":")
    quantity, _, value = change.partition("=")
    try:
        return Step(float(at), quantity, float(value))
    except ValueError as error:
        raise ValueError(f"--step {text!r}: expected SECONDS:QUANTITY=VALUE ({error})") from None


def _single(scenario: Scenario, args: argparse.Namespace) -> ScenarioResults:
    """The chosen policy (as the 'configured' row), plus the baselines when asked; pooled over seeds."""
    seeds = args.seeds or 1
    runs_of = seeds_of(scenario, seeds)
    if args.algorithm == CONSTANT and args.constant_rate is not None:
        configured = pool([simulate(sc, ConstantRatePolicy(args.constant_rate, sc.seed)) for sc in runs_of])
    elif args.algorithm == CONSTANT:
        configured = best_constant_rate(scenario, seeds=seeds).result
    else:
        configured = pool([run_policy(sc, args.algorithm) for sc in runs_of])
    runs = {args.algorithm: configured}
    constant = None
    if args.baselines:
        for policy in [*policies_for(scenario, args.all_algorithms), READY]:
            if policy not in runs:
                runs[policy] = pool([run_policy(sc, policy) for sc in runs_of])
        constant = best_constant_rate(scenario, seeds=seeds)
    return ScenarioResults(scenario, runs, constant, configured_policy=args.algorithm, seeds=seeds)
