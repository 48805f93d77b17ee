"""The pacing quality benchmark: AUTO against two baselines over the scenario classes of issue 9.

Every case (``matrix``) is one agent group under one kind of difficulty — ordinary traffic over
group sizes 1-500, late, lost, duplicated or reset statistics, acceptance drift, the AUTO switch
at 30/31 agents, short abandons, reactive surges, agents logging off, handle-time shifts, goals
of 1 % and 5 %, BUSY_FACTOR, lognormal patience. The simulator's truth differs from the engine's
priors everywhere, and offers are made at jittered times. Each case runs on ``SEEDS`` seeds and
the runs are pooled. Per case:

- AUTO — what a target without a configured algorithm gets; the criterion is judged on it
  (plus, in some cases, explicit algorithms for comparison);
- ``ready/p``: offer whenever an agent is ready, enough to fill it (lines-per-agent, no margin);
- ``constant``: the best constant (Poisson) offer rate that keeps the goal, by bisection on the
  same pooled seeds — the practical limit of a policy that ignores the state (optimistic: it is
  tuned on the very runs it is scored on).

**One rule for every policy** (``keeps_goal``): pooled abandonment counting every abandon ≤ goal
+ two batch-means standard errors of that pooled run. The constant-rate search accepts a rate by
that rule and AUTO is judged by it. The verdict (``Verdict``) also needs AUTO's occupancy >= 0.9x
the qualifying constant rate's — and says so explicitly when no constant rate keeps the goal
(the check is void, not skipped) — and no agent left ready with nothing waiting, outstanding or
offered for over ``STARVED_AFTER_S``. BUSY_FACTOR cases are judged on occupancy within
``BUSY_TOLERANCE`` of the goal instead. Runs are independent and seeded, so they spread over
processes and the table does not depend on the number of workers.
"""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from multiprocessing import get_context

from streams.engine import PacingSettings
from streams.engine.settings import (
    ALGORITHMS,
    PREDICTIVE_B,
    PREDICTIVE_B_DUAL,
    SUPER_PROGRESSIVE,
    SUPER_PROGRESSIVE_DUAL,
)
from streams.simulation.contact_centre import simulate
from streams.simulation.policies import ConstantRatePolicy, EnginePolicy, ReadyPolicy
from streams.simulation.scenario import (
    CounterReset,
    ReactiveBursts,
    Scenario,
    SimulationResult,
    StatFaults,
    Step,
    pool,
)

#: Reactive bursts in the matrix: 3x for 2-10 minutes, quiet spells of an hour on average.
BURSTS = ReactiveBursts(factor=3.0, min_s=120.0, max_s=600.0, quiet_mean_s=3600.0)
AUTO = "AUTO"
READY = "ready/p"
CONSTANT = "constant"
#: Seeds pooled per case (the issue asks for at least 3).
SEEDS = 3
#: Interactions each seed of a case should handle, and the horizon bounds that follow from it.
_HANDLED_PER_SEED = 400
_MIN_HOURS, _MAX_HOURS = 2.0, 24.0
_SEARCH_STEPS = 10
OCCUPANCY_SHARE = 0.9
#: Tolerance in standard errors: the same for AUTO, every algorithm and every constant rate.
TOLERANCE_SE = 2.0
#: An agent ready with nothing waiting, outstanding or offered for longer than this is starved.
STARVED_AFTER_S = 900.0
#: BUSY_FACTOR cases: occupancy within this many points (as a fraction) of the goal.
BUSY_TOLERANCE = 0.05
#: Offers in the matrix are jittered halfway towards random moments of their period.
MATRIX_OFFER_JITTER = 0.5


@dataclass(frozen=True)
class Case:
    """One benchmark scenario: its class, what makes it hard, and extra algorithms to compare."""

    group: str
    name: str
    scenario: Scenario
    extra: tuple[str, ...] = ()
    #: Seeds pooled at least (the run's ``seeds`` when more): noisy classes ask for more.
    min_seeds: int = 0


def keeps_goal(run: SimulationResult, goal: float) -> bool:
    """The one rule every policy is judged by: lost customers - every abandon and every refused
    reactive visitor - within goal + ``TOLERANCE_SE`` batch-means standard errors of the (pooled)
    run (``SimulationResult.lost``). Refusals count: a group must not keep its goal by turning
    customers away (issue 20)."""
    return run.lost <= goal + tolerance(run)


def tolerance(run: SimulationResult) -> float:
    """The statistical tolerance of a run's lost-customer rate."""
    return TOLERANCE_SE * run.lost_se


# -- the matrix ----------------------------------------------------------------------------------


def _hours(agents: int, handle_time_s: float = 360.0) -> float:
    """A horizon that handles ~``_HANDLED_PER_SEED`` interactions per seed, within bounds."""
    return min(_MAX_HOURS, max(_MIN_HOURS, _HANDLED_PER_SEED * handle_time_s / (agents * 3600 * 0.8)))


def _reactive(load: float, agents: int, handle_time_s: float = 360.0) -> float:
    """Reactive interactions per hour worth ``load`` of the group's capacity."""
    return load * agents * 3600 / handle_time_s


def matrix(seed: int = 1, scale: float = 1.0) -> list[Case]:
    """The benchmark cases; ``scale`` multiplies every horizon (0.1 for a quick look). Steps and
    resets are placed at fractions of the measured window, so they scale with it."""
    cases: list[Case] = []

    def add(group: str, name: str, agents: int, acceptance: float, *, hours: float | None = None,
            extra: tuple[str, ...] = (), steps: Iterable[tuple[float, str, float]] = (),
            resets: Iterable[tuple[float, tuple[str, ...]]] = (), settings: PacingSettings | None = None,
            min_seeds: int = 0, **knobs: object) -> None:
        length = (hours or _hours(agents)) * scale
        warmup = 1800.0

        def at(fraction: float) -> float:
            return warmup + fraction * length * 3600

        faults = knobs.pop("faults", StatFaults())
        assert isinstance(faults, StatFaults)
        faults = replace(faults, resets=tuple(CounterReset(at(f), names) for f, names in resets))
        scenario = Scenario(agents=agents, acceptance=acceptance, hours=length, warmup_s=warmup, seed=seed,
                            offer_jitter=MATRIX_OFFER_JITTER, faults=faults,
                            steps=tuple(Step(at(f), quantity, value) for f, quantity, value in steps),
                            settings=settings or PacingSettings(), **knobs)  # type: ignore[arg-type]
        cases.append(Case(group, name, scenario, extra, min_seeds))

    for agents in (2, 5, 15, 50, 200):
        for p in (0.1, 0.4):
            add("sizes", f"{agents} agents, p {p:g}", agents, p)
    for agents in (2, 5, 50):  # at 2 agents the reactive traffic alone may break the goal (no constant rate keeps it)
        add("sizes", f"{agents} agents, p 0.3, reactive 25%", agents, 0.3, reactive_per_hour=_reactive(0.25, agents))
    for p in (0.05, 0.1, 0.2, 0.4):
        add("one agent", f"1 agent, p {p:g}", 1, p)
    for delay in (10.0, 30.0):
        for agents in (15, 100):
            add("late stats", f"every statistic {delay:g} s late, {agents} agents", agents, 0.3,
                faults=StatFaults(delay_s=delay))
    add("late stats", "each statistic 0-20 s late at random (out of order), 15 agents", 15, 0.3,
        faults=StatFaults(delay_jitter_s=20.0))
    for agents, before, after in ((15, 0.1, 0.4), (100, 0.1, 0.4), (15, 0.4, 0.1)):
        add("acceptance drift", f"p {before:g} -> {after:g} after 1 h, {agents} agents", agents, before,
            hours=4.0, steps=[(0.25, "acceptance", after)])
    for agents in (30, 31):
        for p in (0.1, 0.4):
            add("AUTO switch", f"{agents} agents, p {p:g}", agents, p, extra=(SUPER_PROGRESSIVE, PREDICTIVE_B))
    add("short abandons", "500 agents, p 0.3", 500, 0.3)
    for agents in (15, 100):
        add("short abandons", f"patience 20 s, {agents} agents", agents, 0.3, patience_s=20.0)
    for agents in (15, 100):
        add("stat faults", f"5% of stat events lost, reactive 25%, {agents} agents", agents, 0.3,
            reactive_per_hour=_reactive(0.25, agents), faults=StatFaults(loss=0.05))
        add("stat faults", f"ACD-only counter resets (entered), reactive 25%, {agents} agents", agents, 0.3,
            reactive_per_hour=_reactive(0.25, agents),
            resets=[(f, ("interactions_entered",)) for f in (0.2, 0.45, 0.7)])
    add("stat faults", "entered counter 30 s behind accepted, reactive 25%, 50 agents", 50, 0.3,
        reactive_per_hour=_reactive(0.25, 50), faults=StatFaults(lagging=(("interactions_entered", 30.0),)))
    add("stat faults", "20% of stat events delivered twice, 15 agents", 15, 0.3,
        faults=StatFaults(duplication=0.2))
    for agents in (15, 50):
        add("reactive surge", f"reactive 10% -> 60% of capacity for 30 min, {agents} agents", agents, 0.3,
            hours=3.0, reactive_per_hour=_reactive(0.1, agents),
            steps=[(1 / 3, "reactive_per_hour", _reactive(0.6, agents)),
                   (1 / 2, "reactive_per_hour", _reactive(0.1, agents))])
    for agents, left in ((15, 5), (50, 25)):
        add("mass log-off", f"{agents} -> {left} agents for 1 h", agents, 0.3, hours=3.0,
            steps=[(1 / 3, "agents", left), (2 / 3, "agents", agents)])
    for agents, after in ((15, 600.0), (100, 600.0), (15, 180.0)):
        add("handle-time shift", f"handle time 360 -> {after:g} s after 1 h, {agents} agents", agents, 0.3,
            hours=3.0, steps=[(1 / 3, "handle_time_s", after)])
    for goal in (1.0, 5.0):
        for agents in (15, 100):
            add("goals", f"goal {goal:g}%, {agents} agents", agents, 0.3,
                settings=PacingSettings(optimization_goal=goal))
    for agents in (15, 100):
        add("BUSY_FACTOR", f"busy factor 80%, {agents} agents", agents, 0.3,
            settings=PacingSettings(optimization_target="BUSY_FACTOR", optimization_goal=80.0))
    for agents in (15, 100):
        add("patience", f"lognormal patience (cv 0.5), {agents} agents", agents, 0.3,
            patience_distribution="lognormal", patience_cv=0.5)
    _issue_20_cases(add)
    return cases


def _issue_20_cases(add: Callable[..., None]) -> None:
    """The classes issue 20 added: refusals counted, reactive bursts, a morning ramp, bimodal handle
    times, statistics in jittered bursts, acceptance by the time of day, 1,000 agents, tiny groups
    at 5 % acceptance, short patience with more seeds."""
    add("refusals", "3 agents, p 0.7, reactive 25%", 3, 0.7, reactive_per_hour=_reactive(0.25, 3))
    add("refusals", "8 agents, p 0.3, reactive 25%", 8, 0.3, reactive_per_hour=_reactive(0.25, 8))
    add("refusals", "reactive 25% -> 60% of capacity for 30 min, 8 agents", 8, 0.3, hours=6.0,
        reactive_per_hour=_reactive(0.25, 8),
        steps=[(1 / 3, "reactive_per_hour", _reactive(0.6, 8)), (5 / 12, "reactive_per_hour", _reactive(0.25, 8))])
    for agents in (15, 50, 100):
        add("reactive bursts", f"reactive 40% base, 3x bursts of 2-10 min, {agents} agents", agents, 0.3,
            hours=6.0, reactive_per_hour=_reactive(0.4, agents), bursts=BURSTS, min_seeds=6)
    for agents in (30, 100):
        first = max(1, agents // 10)
        ramp = [(i / 15 * 0.75 / 2, agents_at) for i, agents_at in
                enumerate(round(first + (agents - first) * k / 15) for k in range(1, 16))]
        add("morning ramp", f"{first} -> {agents} agents logging in over 45 min, reactive 25% with them", first, 0.3,
            hours=2.0, reactive_per_hour=_reactive(0.25, first),
            steps=[step for at, n in ramp for step in ((at, "agents", n), (at, "reactive_per_hour",
                                                                           _reactive(0.25, n)))])
    for agents in (15, 100):
        add("bimodal handle", f"handle times 70% ~150 s, 30% ~850 s, {agents} agents", agents, 0.3,
            handle_time_modes=((0.7, 150.0), (0.3, 850.0)), handle_time_cv=0.5)
    for agents in (15, 100):
        add("stat bursts", f"statistics in bursts ~30 s apart, each 0-15 s jittered (out of order), {agents} agents",
            agents, 0.3, reactive_per_hour=_reactive(0.25, agents),
            faults=StatFaults(delay_jitter_s=15.0, burst_s=30.0))
    for agents in (15, 100):
        add("time of day", f"acceptance 0.15 -> 0.45 -> 0.15 over the day, {agents} agents", agents, 0.15,
            hours=4.0, steps=[(k / 24, "acceptance", round(0.3 - 0.15 * math.cos(2 * math.pi * k / 24), 3))
                              for k in range(1, 24)])
    add("sizes", "1000 agents, p 0.3", 1000, 0.3)
    for agents in (2, 3):
        add("tiny groups", f"{agents} agents, p 0.05", agents, 0.05)
    add("patience", "exponential patience 20 s, 15 agents, 6 seeds", 15, 0.3, patience_s=20.0, min_seeds=6)


def policies_for(scenario: Scenario, everything: bool = False) -> list[str]:
    """The engine policies for ``--baselines`` and ``--all-algorithms`` (AUTO first)."""
    if not everything:
        return [AUTO]
    if scenario.reactive_per_hour:
        return [AUTO, SUPER_PROGRESSIVE, SUPER_PROGRESSIVE_DUAL, PREDICTIVE_B, PREDICTIVE_B_DUAL]
    return [AUTO, SUPER_PROGRESSIVE, PREDICTIVE_B]


# -- running -------------------------------------------------------------------------------------


def run_policy(scenario: Scenario, policy: str) -> SimulationResult:
    """One simulation of ``scenario`` under an engine algorithm (or AUTO) or the ready baseline."""
    if policy == READY:
        return simulate(scenario, ReadyPolicy(scenario.acceptance))
    if policy != AUTO and policy not in ALGORITHMS:
        raise ValueError(f"unknown policy {policy!r}: AUTO, {', '.join(ALGORITHMS)} or {READY}")
    settings = replace(scenario.settings, algorithm=None if policy == AUTO else policy)
    return simulate(replace(scenario, settings=settings), EnginePolicy(settings))


def seeds_of(scenario: Scenario, seeds: int) -> list[Scenario]:
    """The scenario on ``seeds`` consecutive seeds from its own."""
    if seeds < 1:
        raise ValueError(f"at least one seed, got {seeds}")
    return [replace(scenario, seed=scenario.seed + i) for i in range(seeds)]


@dataclass(frozen=True)
class ConstantSearch:
    """The best constant offer rate keeping the goal and its pooled run (rate None: none keeps it)."""

    offers_per_hour: float | None
    result: SimulationResult


def best_constant_rate(scenario: Scenario, steps: int = _SEARCH_STEPS, seeds: int = 1) -> ConstantSearch:
    """Bisection on the offer rate for the highest rate that keeps the goal by ``keeps_goal``.

    Each candidate rate runs on ``seeds`` seeds, pooled. Abandonment grows with the rate, and
    common random numbers (see ``ConstantRatePolicy``) keep that true run to run. Without any
    offers the reactive traffic may already break the goal; then no rate keeps it and the
    zero-offer run is returned with rate None.
    """
    goal = scenario.settings.goal_fraction
    runs = seeds_of(scenario, seeds)

    def run(rate: float) -> SimulationResult:
        return pool([simulate(sc, ConstantRatePolicy(rate, sc.seed)) for sc in runs])

    best = run(0.0)
    if not keeps_goal(best, goal):
        return ConstantSearch(None, best)
    lowest_acceptance = min([scenario.acceptance, *(s.value for s in scenario.steps if s.quantity == "acceptance")])
    shortest_handle = min([scenario.handle_time_s,
                           *(s.value for s in scenario.steps if s.quantity == "handle_time_s")])
    most_agents = max([scenario.agents, *(s.value for s in scenario.steps if s.quantity == "agents")])
    low, high = 0.0, 1.5 * most_agents * 3600 / shortest_handle / max(lowest_acceptance, 0.01)
    for _ in range(steps):
        mid = (low + high) / 2
        result = run(mid)
        if keeps_goal(result, goal):
            low, best = mid, result
        else:
            high = mid
    return ConstantSearch(low, best)


_Job = tuple[int, str, int]  # (case index, policy, seed index); CONSTANT jobs carry seed index -1


def _task(job: tuple[_Job, Scenario, int]) -> tuple[_Job, SimulationResult | ConstantSearch]:
    (index, policy, seed_index), scenario, seeds = job
    if policy == CONSTANT:
        return (index, policy, seed_index), best_constant_rate(scenario, seeds=seeds)
    return (index, policy, seed_index), run_policy(seeds_of(scenario, seed_index + 1)[seed_index], policy)


#: Relative run time per policy (a constant-rate search is ~11 cheap pooled runs).
_WEIGHTS = {READY: 0.1, AUTO: 1.0, SUPER_PROGRESSIVE: 1.0, SUPER_PROGRESSIVE_DUAL: 1.0}


def _cost(job: tuple[_Job, Scenario, int]) -> float:
    """A rough run time, to start the longest runs first."""
    (_, policy, _), scenario, seeds = job
    weight = 0.3 * seeds if policy == CONSTANT else _WEIGHTS.get(policy, 0.6)
    return weight * scenario.hours * (10 + scenario.agents)


@dataclass(frozen=True)
class Verdict:
    """The criterion's outcome for one case."""

    misses: tuple[str, ...]
    occupancy_ratio: float | None
    note: str

    @property
    def ok(self) -> bool:
        """True when the configured policy meets every part of the criterion."""
        return not self.misses

    def __str__(self) -> str:
        head = "ok" if self.ok else "MISSES " + " and ".join(self.misses)
        return f"{head} ({self.note})" if self.note else head


@dataclass(frozen=True)
class ScenarioResults:
    """Everything measured in one case (runs pooled over its seeds)."""

    scenario: Scenario
    runs: dict[str, SimulationResult]
    constant: ConstantSearch | None
    configured_policy: str = AUTO
    case: Case | None = None
    seeds: int = 1

    @property
    def configured(self) -> SimulationResult:
        """The run the criterion is judged on (AUTO in the matrix)."""
        return self.runs[self.configured_policy]

    def _no_worse_than_no_offers(self, run: SimulationResult) -> bool:
        """Where not even zero offers keep the goal (the reactive traffic alone loses more), the
        policy is held to losing no more than making no offers does, within its tolerance."""
        search = self.constant
        return search is not None and search.offers_per_hour is None and \
            run.lost <= search.result.lost + tolerance(run)

    def verdict(self) -> Verdict:
        """Abandonment (every abandon) within goal + tolerance, occupancy >= 0.9x the best constant
        rate that keeps the goal by the same rule (void, and said, when none does), no starvation."""
        run, settings = self.configured, self.scenario.settings
        misses: list[str] = []
        notes: list[str] = []
        ratio = None
        if settings.optimizes_busy_factor:
            if abs(run.occupancy - settings.goal_fraction) > BUSY_TOLERANCE:
                misses.append("busy factor")
            notes.append(f"occupancy goal {100 * settings.goal_fraction:g}% +-{100 * BUSY_TOLERANCE:g}")
        else:
            if not keeps_goal(run, settings.goal_fraction) and not self._no_worse_than_no_offers(run):
                misses.append("abandonment")
            if self.constant is None:
                notes.append("no constant-rate search")
            elif self.constant.offers_per_hour is None:
                notes.append("occupancy check void: no constant rate keeps the goal")
            elif self.constant.result.occupancy > 0:
                ratio = run.occupancy / self.constant.result.occupancy
                if ratio < OCCUPANCY_SHARE:
                    misses.append("occupancy")
                notes.append(f"occupancy {ratio:.2f}x constant")
            else:
                notes.append("constant rate idle")
        if run.longest_unserved_idle_s > STARVED_AFTER_S and not _has_reactive(self.scenario):
            misses.append("starved")
            notes.append(f"agent idle unserved {run.longest_unserved_idle_s / 60:.0f} min")
        return Verdict(tuple(misses), ratio, "; ".join(notes))


def _has_reactive(scenario: Scenario) -> bool:
    """True when the case has reactive traffic: an agent kept free for it is its reserve, not starved."""
    return bool(scenario.reactive_per_hour or scenario.bursts
                or any(step.quantity == "reactive_per_hour" and step.value for step in scenario.steps))


def run_matrix(cases: Iterable[Case | Scenario], workers: int | None = None, seeds: int = SEEDS,
               all_algorithms: bool = False) -> list[ScenarioResults]:
    """Simulate every policy and baseline of every case on ``seeds`` seeds, in parallel processes."""
    cases = [c if isinstance(c, Case) else Case("custom", "", c) for c in cases]
    policies = {i: list(dict.fromkeys([*policies_for(c.scenario, all_algorithms), *c.extra, READY]))
                for i, c in enumerate(cases)}
    jobs: list[tuple[_Job, Scenario, int]] = []
    seeds_of_case = [max(seeds, case.min_seeds) for case in cases]
    for i, case in enumerate(cases):
        n = seeds_of_case[i]
        jobs += [((i, policy, s), case.scenario, n) for policy in policies[i] for s in range(n)]
        if not case.scenario.settings.optimizes_busy_factor:
            jobs.append(((i, CONSTANT, -1), case.scenario, n))
    jobs.sort(key=_cost, reverse=True)
    workers = workers or os.cpu_count() or 1
    if workers > 1:
        with get_context("spawn").Pool(workers) as worker_pool:
            done = list(worker_pool.imap_unordered(_task, jobs))
    else:
        done = [_task(job) for job in jobs]
    runs: dict[tuple[int, str], list[tuple[int, SimulationResult]]] = {}
    constants: dict[int, ConstantSearch] = {}
    for (index, policy, seed_index), outcome in done:
        if isinstance(outcome, ConstantSearch):
            constants[index] = outcome
        else:
            runs.setdefault((index, policy), []).append((seed_index, outcome))
    return [ScenarioResults(case.scenario, {p: pool([r for _, r in sorted(runs[i, p])]) for p in policies[i]},
                            constants.get(i), case=case, seeds=seeds_of_case[i])
            for i, case in enumerate(cases)]


# -- the table -----------------------------------------------------------------------------------


@dataclass
class Summary:
    """How many cases pass, why the others miss, and the occupancy ratios."""

    cases: int = 0
    passed: int = 0
    misses: dict[str, int] = field(default_factory=dict)
    void: int = 0
    ratios: list[float] = field(default_factory=list)
    by_group: dict[str, list[int]] = field(default_factory=dict)  # group -> [passed, cases]

    def add(self, sr: ScenarioResults) -> None:
        """Count one case's verdict."""
        verdict = sr.verdict()
        self.cases += 1
        self.passed += verdict.ok
        for miss in verdict.misses:
            self.misses[miss] = self.misses.get(miss, 0) + 1
        self.void += "void" in verdict.note
        if verdict.occupancy_ratio is not None:
            self.ratios.append(verdict.occupancy_ratio)
        group = self.by_group.setdefault(sr.case.group if sr.case else "custom", [0, 0])
        group[0] += verdict.ok
        group[1] += 1

    def lines(self) -> list[str]:
        """The summary as table lines."""
        misses = ", ".join(f"{name} {count}" for name, count in sorted(self.misses.items())) or "none"
        out = [f"criterion met in {self.passed} of {self.cases} scenarios (misses: {misses}); "
               f"occupancy check void in {self.void} (no constant rate keeps the goal)"]
        if self.ratios:
            median = statistics.median(self.ratios)
            out.append(f"occupancy vs the best constant rate keeping the goal: median {median:.2f}x, "
                       f"min {min(self.ratios):.2f}x over {len(self.ratios)} scenarios "
                       f"(done when >= {OCCUPANCY_SHARE}x each, median >= 1.0x)")
        out.append("by class: " + ", ".join(f"{g} {p}/{n}" for g, (p, n) in self.by_group.items()))
        return out


def format_table(results: list[ScenarioResults]) -> str:
    """The benchmark as a plain-text table, with the criterion's verdict per case and a summary."""
    first = results[0].scenario
    s = first.settings
    lines = [
        f"Pacing quality benchmark: goal lost customers <= {s.optimization_goal:g}% (unless the case says otherwise): "
        f"lost = every abandon + every refused reactive visitor, over interactions + refused visitors; abandon % "
        f"counts every abandon of the interactions, refused % the share of reactive visitors turned away; the "
        f"Genesys figure excludes short abandons (<= {s.short_abandon_threshold_s:g} s)",
        f"truth: handle time lognormal mean {first.handle_time_s:g} s cv {first.handle_time_cv:g}, patience "
        f"{first.patience_distribution} mean {first.patience_s:g} s, offers answered after {first.response_s:g} s, "
        f"offer jitter {first.offer_jitter:g}; engine priors: handle {s.handle_time_prior_s:g} s, patience "
        f"{s.patience_prior_s:g} s, response {s.offer_response_s:g} s, acceptance {s.acceptance_prior:g}; "
        f"refresh {s.refresh_period_s:g} s",
        f"runs pooled over {results[0].seeds} seed(s) from {first.seed} (more where a case says x N). "
        f"+- = {TOLERANCE_SE:g} batch-means standard errors of the pooled lost rate: the tolerance of ONE rule for "
        f"every policy (the constant rate is the highest keeping goal + its tolerance).",
        f"verdict: AUTO keeps goal + tolerance (where not even 0 offers/h does: loses no more than 0 offers/h), "
        f"reaches {OCCUPANCY_SHARE}x the occupancy of that constant rate, and (without reactive traffic, which a free "
        f"agent is kept for) leaves no agent ready with nothing waiting, outstanding or offered for "
        f"{STARVED_AFTER_S / 60:g} min.",
        "",
        f"{'policy':<34} {'lost %':>12} {'abandon %':>9} {'refused %':>9} {'genesys %':>9} {'occup %':>8} "
        f"{'SL %':>6} {'offers/h':>9} {'idle min':>8}",
    ]
    summary = Summary()
    for sr in results:
        sc = sr.scenario
        summary.add(sr)
        case = sr.case
        title = f"[{case.group}] {case.name}" if case and case.name else (
            f"{sc.agents} agents, p {sc.acceptance:g}, reactive {100 * sc.reactive_load:.0f}%")
        lines.append(f"{title} (goal {sc.settings.optimization_goal:g}%"
                     f"{' busy factor' if sc.settings.optimizes_busy_factor else ''}, {sc.hours:g} h x {sr.seeds})"
                     f" -> {sr.verdict()}")
        rows = [(_label(sr.configured_policy, sr.configured), sr.configured)]
        rows += [(name, run) for name, run in sr.runs.items() if name != sr.configured_policy]
        if sr.constant is not None:
            rate = sr.constant.offers_per_hour
            rows.append((f"constant {rate:.0f}/h" if rate is not None else "constant: none keeps goal (0/h)",
                         sr.constant.result))
        for name, run in rows:
            lines.append(
                f"  {name:<32} {100 * run.lost:>6.2f} +-{100 * tolerance(run):<4.2f} {100 * run.abandonment:>9.2f} "
                f"{100 * run.blocked_share:>9.1f} {100 * run.abandonment_genesys:>9.2f} {100 * run.occupancy:>8.1f} "
                f"{100 * run.service_level:>6.1f} {run.offers_per_hour:>9.0f} {run.longest_unserved_idle_s / 60:>8.1f}")
        lines.append("")
    lines += summary.lines()
    return "\n".join(lines)


def _label(policy: str, run: SimulationResult) -> str:
    """The policy's name; for AUTO with the algorithm it chose most often."""
    if policy != AUTO or not run.algorithms:
        return policy
    return f"AUTO -> {max(run.algorithms, key=lambda name: run.algorithms[name])}"

