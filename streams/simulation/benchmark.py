"""The pacing quality benchmark: every algorithm against two baselines over a scenario matrix.

Scenarios: group sizes 2, 5, 15, 50 and 200 agents; acceptance 0.1 and 0.4; no reactive
traffic, or reactive traffic worth a quarter of the group's capacity. Per scenario:

- AUTO — what a target without a configured algorithm gets (the done-criterion is judged on it),
  and each explicit algorithm that makes sense there (dual forms only with reactive traffic);
- ``ready/p``: offer whenever an agent is ready, enough to fill it (lines-per-agent, no margin);
- ``constant``: the best constant (Poisson) offer rate that still keeps the abandonment goal,
  found by bisection on the same seed — the practical limit of a policy that ignores the state.

Each scenario is simulated long enough to handle ~1,200 interactions (``_HANDLED``), at least
two hours; the ± figure is two batch-means standard errors of the abandonment rate, the stated
statistical tolerance. Runs are independent and seeded, so they spread over processes and the
table does not depend on the number of workers.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, replace
from multiprocessing import get_context

from streams.engine.settings import PREDICTIVE_B, PREDICTIVE_B_DUAL, SUPER_PROGRESSIVE, SUPER_PROGRESSIVE_DUAL
from streams.simulation.contact_centre import simulate
from streams.simulation.policies import ConstantRatePolicy, EnginePolicy, ReadyPolicy
from streams.simulation.scenario import Scenario, SimulationResult

GROUP_SIZES = (2, 5, 15, 50, 200)
ACCEPTANCE_RATES = (0.1, 0.4)
REACTIVE_LOADS = (0.0, 0.25)
AUTO = "AUTO"
READY = "ready/p"
CONSTANT = "constant"
#: Interactions each scenario should handle, and the horizon bounds that follow from it.
_HANDLED = 1200
_MIN_HOURS, _MAX_HOURS = 2.0, 80.0
_SEARCH_STEPS = 10
_OCCUPANCY_SHARE = 0.9


def matrix(seed: int = 1, scale: float = 1.0) -> list[Scenario]:
    """The benchmark scenarios; ``scale`` multiplies every horizon (0.1 for a quick look)."""
    scenarios = []
    for agents in GROUP_SIZES:
        hours = min(_MAX_HOURS, max(_MIN_HOURS, _HANDLED * 300 / (agents * 3600 * 0.8))) * scale
        for acceptance in ACCEPTANCE_RATES:
            for load in REACTIVE_LOADS:
                scenarios.append(Scenario(agents=agents, acceptance=acceptance,
                                          reactive_per_hour=load * agents * 3600 / 300, hours=hours, seed=seed))
    return scenarios


def policies_for(scenario: Scenario) -> list[str]:
    """The engine policies benchmarked in a scenario (AUTO first)."""
    if scenario.reactive_per_hour:
        return [AUTO, SUPER_PROGRESSIVE, SUPER_PROGRESSIVE_DUAL, PREDICTIVE_B, PREDICTIVE_B_DUAL]
    return [AUTO, SUPER_PROGRESSIVE, PREDICTIVE_B]


def run_policy(scenario: Scenario, policy: str) -> SimulationResult:
    """One simulation of ``scenario`` under an engine algorithm (or AUTO) or the ready baseline."""
    if policy == READY:
        return simulate(scenario, ReadyPolicy(scenario.acceptance))
    settings = replace(scenario.settings, algorithm=None if policy == AUTO else policy)
    return simulate(replace(scenario, settings=settings), EnginePolicy(settings))


@dataclass(frozen=True)
class ConstantSearch:
    """The best constant offer rate keeping the goal, and its run (rate None: none keeps it)."""

    offers_per_hour: float | None
    result: SimulationResult


def best_constant_rate(scenario: Scenario, steps: int = _SEARCH_STEPS) -> ConstantSearch:
    """Bisection on the offer rate for the highest rate whose abandonment stays within the goal.

    Abandonment grows with the rate; common random numbers (see ``ConstantRatePolicy``) keep
    that true run to run. Without any offers the reactive traffic may already break the goal;
    then no rate keeps it and the zero-offer run is returned.
    """
    goal = scenario.settings.goal_fraction

    def run(rate: float) -> SimulationResult:
        return simulate(scenario, ConstantRatePolicy(rate, scenario.seed))

    best = run(0.0)
    if best.abandonment > goal:
        return ConstantSearch(None, best)
    low, high = 0.0, 1.5 * scenario.agents * 3600 / scenario.handle_time_s / scenario.acceptance
    for _ in range(steps):
        mid = (low + high) / 2
        result = run(mid)
        if result.abandonment <= goal:
            low, best = mid, result
        else:
            high = mid
    return ConstantSearch(low, best)


def _task(job: tuple[int, Scenario, str]) -> tuple[int, str, SimulationResult | ConstantSearch]:
    index, scenario, policy = job
    if policy == CONSTANT:
        return index, policy, best_constant_rate(scenario)
    return index, policy, run_policy(scenario, policy)


#: Relative run time per policy (a constant-rate search is ~11 cheap runs; progressive plans cost most).
_WEIGHTS = {CONSTANT: 3.0, READY: 0.1, AUTO: 2.0, SUPER_PROGRESSIVE: 2.0, SUPER_PROGRESSIVE_DUAL: 2.0}


def _cost(job: tuple[int, Scenario, str]) -> float:
    """A rough run time, to start the longest runs first."""
    _, scenario, policy = job
    return _WEIGHTS.get(policy, 1.0) * scenario.hours * math.sqrt(scenario.agents / scenario.acceptance)


@dataclass(frozen=True)
class ScenarioResults:
    """Everything measured in one scenario."""

    scenario: Scenario
    runs: dict[str, SimulationResult]
    constant: ConstantSearch | None
    configured_policy: str = AUTO

    @property
    def configured(self) -> SimulationResult:
        """The run the done-criterion is judged on (AUTO in the matrix)."""
        return self.runs[self.configured_policy]

    def verdict(self) -> str:
        """"ok", or what the configured algorithm misses (abandonment beyond goal + tolerance,
        occupancy below 90 % of the best constant rate)."""
        run, goal = self.configured, self.scenario.settings.goal_fraction
        misses = []
        if run.abandonment > goal + 2 * run.abandonment_se:
            misses.append("abandonment")
        if self.constant is not None and self.constant.offers_per_hour is not None and \
                run.occupancy < _OCCUPANCY_SHARE * self.constant.result.occupancy:
            misses.append("occupancy")
        return "MISSES " + " and ".join(misses) if misses else "ok"


def run_matrix(scenarios: Iterable[Scenario], workers: int | None = None) -> list[ScenarioResults]:
    """Simulate every policy and baseline of every scenario, in parallel processes."""
    scenarios = list(scenarios)
    jobs = [(i, sc, policy) for i, sc in enumerate(scenarios) for policy in [*policies_for(sc), READY, CONSTANT]]
    jobs.sort(key=_cost, reverse=True)
    workers = workers or os.cpu_count() or 1
    if workers > 1:
        with get_context("spawn").Pool(workers) as pool:
            done = list(pool.imap_unordered(_task, jobs))
    else:
        done = [_task(job) for job in jobs]
    runs: dict[int, dict[str, SimulationResult]] = {i: {} for i in range(len(scenarios))}
    constants: dict[int, ConstantSearch] = {}
    for index, policy, outcome in done:
        if isinstance(outcome, ConstantSearch):
            constants[index] = outcome
        else:
            runs[index][policy] = outcome
    return [ScenarioResults(sc, {p: runs[i][p] for p in [*policies_for(sc), READY]}, constants[i])
            for i, sc in enumerate(scenarios)]


def format_table(results: list[ScenarioResults]) -> str:
    """The benchmark as a plain-text table, with the criterion's verdict per scenario."""
    first = results[0].scenario
    s = first.settings
    lines = [
        f"Pacing quality benchmark: goal abandonment <= {s.optimization_goal:g}% (short abandons, "
        f"<= {s.short_abandon_threshold_s:g} s, excluded); service level {100 * s.service_level_percentage:g}% "
        f"in {s.service_level_duration_ms / 1000:g} s",
        f"handle time lognormal mean {first.handle_time_s:g} s cv {first.handle_time_cv:g}; patience exponential "
        f"mean {first.patience_s:g} s; visitors answer offers after {first.response_s:g} s on average; "
        f"refresh {s.refresh_period_s:g} s; seed {first.seed}",
        "+- = two batch-means standard errors of the abandonment rate (the tolerance). AUTO is the configured "
        "algorithm; verdict: AUTO keeps goal + tolerance and reaches 90% of the constant rate's occupancy.",
        "",
        f"{'agents':>6} {'p':>4} {'reactive':>8}  {'policy':<32} {'abandon %':>12} {'occup %':>8} {'SL %':>6} "
        f"{'offers/h':>9} {'refused %':>9}  verdict",
    ]
    met = 0
    for sr in results:
        sc = sr.scenario
        verdict = sr.verdict()
        met += verdict == "ok"
        rows = [(_label(sr.configured_policy, sr.configured), sr.configured)]
        rows += [(name, run) for name, run in sr.runs.items() if name != sr.configured_policy]
        rate = None if sr.constant is None else sr.constant.offers_per_hour
        if sr.constant is not None:
            rows.append((f"constant {rate:.0f}/h" if rate is not None else "constant: none keeps goal (0/h)",
                         sr.constant.result))
        for i, (name, run) in enumerate(rows):
            head = (f"{sc.agents:>6} {sc.acceptance:>4g} {_reactive(sc):>8}" if i == 0 else " " * 20)
            tail = f"  {verdict}" + ("" if rate is None else f" (occupancy {_ratio(sr)})") if i == 0 else ""
            lines.append(
                f"{head}  {name:<32} {100 * run.abandonment:>6.2f} +-{200 * run.abandonment_se:<4.2f} "
                f"{100 * run.occupancy:>8.1f} {100 * run.service_level:>6.1f} {run.offers_per_hour:>9.0f} "
                f"{_refused(sc, run):>9}{tail}")
        lines.append("")
    lines.append(f"criterion met in {met} of {len(results)} scenarios")
    return "\n".join(lines)


def _label(policy: str, run: SimulationResult) -> str:
    """The policy's name; for AUTO with the algorithm it chose most often."""
    if policy != AUTO or not run.algorithms:
        return policy
    return f"AUTO -> {max(run.algorithms, key=lambda name: run.algorithms[name])}"


def _reactive(scenario: Scenario) -> str:
    return f"{100 * scenario.reactive_load:.0f}%" if scenario.reactive_per_hour else "none"


def _refused(scenario: Scenario, run: SimulationResult) -> str:
    return f"{100 * run.blocked_share:.1f}" if scenario.reactive_per_hour else "-"


def _ratio(sr: ScenarioResults) -> str:
    constant = sr.constant.result.occupancy if sr.constant else 0.0
    return f"{sr.configured.occupancy / constant:.2f}x constant" if constant else "constant idle"
