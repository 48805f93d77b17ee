"""The discrete-event contact-centre model that scores a pacing policy.

One agent group, one FIFO queue. Every refresh period the centre measures its statistics
(gauges and running counters under the stat-event names, timestamped at that moment), hands the
policy the stat events that have *arrived* by then (``StatFaults``: late, lost, duplicated,
counters restarting from 0), and makes the offers the policy asks for, at the times it asks
(moved at random by ``offer_jitter``). Each offer is answered after the visitor's response time
and, if accepted, becomes an interaction. Reactive interactions arrive as a Poisson process and
are let in with the policy's admission probability. An interaction is answered at once by a
ready agent or waits; it abandons when its patience runs out first (a short abandon within the
threshold). Reactive arrivals may come in bursts (``ReactiveBursts``: a two-state Markov-modulated
rate), handle times from several modes, statistics in batched deliveries (``StatFaults.burst_s``).
``Step`` changes (acceptance, reactive rate, handle time, logged-in agents) take
effect at the first refresh tick at or after their time; agents logging off finish the
interaction they are handling first.

Each kind of randomness has its own seeded stream, so two policies see the same visitors,
patience and handle times in the same order (common random numbers) and a seed reproduces a
run exactly.
"""

from __future__ import annotations

import bisect
import heapq
import math
import random
from collections import deque

from schemas.models import COUNTER_NAMES
from streams.simulation.policies import EnginePolicy, Policy, StatEvent
from streams.simulation.scenario import CounterReset, Scenario, SimulationResult, Step, lognormal_parameters

_TICK, _ARRIVAL, _FINISH, _BURST = 0, 1, 2, 3
_BATCHES = 20
_AHT_SAMPLES = 50
#: A duplicated stat event arrives again up to this many refresh periods after the first copy.
_DUPLICATE_PERIODS = 3.0


class ContactCentre:
    """One simulation run of ``scenario`` under ``policy``."""

    def __init__(self, scenario: Scenario, policy: Policy):
        self.sc = scenario
        self.policy = policy
        seed = scenario.seed
        self._offers_rng = random.Random(f"{seed}:offers")
        self._reactive_rng = random.Random(f"{seed}:reactive")
        self._patience_rng = random.Random(f"{seed}:patience")
        self._handle_rng = random.Random(f"{seed}:handle")
        self._stats_rng = random.Random(f"{seed}:stats")
        self._jitter_rng = random.Random(f"{seed}:jitter")
        self._bursts_rng = random.Random(f"{seed}:bursts")
        self._stat_bursts_rng = random.Random(f"{seed}:stat-bursts")
        self._stat_burst_times = [0.0]  # when batched statistics are delivered (StatFaults.burst_s)
        self._bursting = False  # inside a reactive burst (Scenario.bursts)
        settings = scenario.settings
        self.period = settings.refresh_period_s
        self.sl_s = settings.service_level_duration_ms / 1000
        self.short_s = settings.short_abandon_threshold_s
        self.start = scenario.warmup_s
        self.end = scenario.warmup_s + scenario.hours * 3600
        # What the centre is now (steps change it).
        self.agents = scenario.agents
        self.acceptance = scenario.acceptance
        self.reactive_rate = scenario.reactive_per_hour / 3600
        self._handle_mu, self._handle_sigma = lognormal_parameters(scenario.handle_time_s, scenario.handle_time_cv)
        self._handle_modes = [(share, *lognormal_parameters(mean, scenario.handle_time_cv))
                              for share, mean in scenario.handle_time_modes]
        if scenario.patience_distribution == "lognormal":
            self._patience_mu, self._patience_sigma = lognormal_parameters(scenario.patience_s, scenario.patience_cv)
        self._changes: list[Step | CounterReset] = sorted(
            [*scenario.steps, *scenario.faults.resets], key=lambda change: change.at_s)
        self._events: list[tuple[float, int, int, float]] = []  # (time, seq, kind, handle time)
        self._seq = 0
        # (delivered at, shuffle key within a batched delivery (0 otherwise), seq, event)
        self._inbox: list[tuple[float, float, int, StatEvent]] = []
        self.busy = 0
        self.queue: deque[tuple[float, float]] = deque()  # (entered, gives up at)
        self.pending: list[float] = []  # answer times of offers not yet answered
        self.admission = 1.0
        self._next_reactive = math.inf
        self._started = False
        self.now = 0.0
        """Simulated time reached by :meth:`advance`."""
        self.counters = dict.fromkeys(COUNTER_NAMES, 0)
        self._reset_offsets = dict.fromkeys(self.counters, 0)
        self._handle_times: deque[float] = deque(maxlen=_AHT_SAMPLES)
        self._accounted_at = 0.0
        self.busy_agent_s = 0.0
        self.agent_s = 0.0
        self._unserved_since: float | None = None
        self.longest_unserved_idle_s = 0.0
        self._measured = dict.fromkeys(
            ("offers", "accepted", "reactive", "blocked", "answered", "in_sl", "abandoned", "short"), 0)
        self._batch_entered = [0] * _BATCHES
        self._batch_abandoned = [0] * _BATCHES
        self._batch_refused = [0] * _BATCHES

    # -- the run ---------------------------------------------------------------------------

    def run(self) -> SimulationResult:
        """Simulate warm-up plus the measured hours and return the measurements."""
        self.advance(self.end)
        self._account(self.end)
        if self._unserved_since is not None:
            self._note_unserved(self.end)
        return self._result()

    def advance(self, until: float) -> None:
        """Process every event before ``until`` (capped at the scenario's end), in order.

        Called repeatedly with growing times it runs the same simulation as one :meth:`run`
        (``pacing feed`` drives a centre in real time this way, reading :meth:`stats` between).
        """
        if not self._started:  # a tick is always scheduled, so the event heap never runs dry
            self._started = True
            self._push(0.0, _TICK)
            if self.sc.bursts is not None:
                self._push(self._bursts_rng.expovariate(1 / self.sc.bursts.quiet_mean_s), _BURST)
            self._next_reactive = self._draw_reactive(0.0)
        until = min(until, self.end)
        while True:
            time, _, kind, payload = self._events[0]
            reactive = self._next_reactive < time
            if reactive:
                time = self._next_reactive
            if time >= until:
                break
            if reactive:
                kind = -1
                self._next_reactive = self._draw_reactive(time)
            else:
                heapq.heappop(self._events)
            self.now = time
            if kind == _TICK:
                self._tick(time)
            elif kind == _FINISH:
                self._finish(time, payload)
            elif kind == _ARRIVAL:
                self._arrive(time, True)
            elif kind == _BURST:
                self._toggle_burst(time)
            elif self._reactive_rng.random() < self.admission:
                self._arrive(time, False)
            elif time >= self.start:
                self._measured["blocked"] += 1
                self._batch_refused[self._batch(time)] += 1
        self.now = max(self.now, until)

    def _draw_reactive(self, now: float) -> float:
        """The next reactive arrival after ``now`` at the current rate (Poisson: memoryless)."""
        rate = self.reactive_rate * (self.sc.bursts.factor if self._bursting and self.sc.bursts else 1.0)
        return now + self._reactive_rng.expovariate(rate) if rate > 0 else math.inf

    def _toggle_burst(self, now: float) -> None:
        """A reactive burst starts or ends; the next change is drawn (uniform burst, exponential quiet)."""
        bursts = self.sc.bursts
        assert bursts is not None
        self._bursting = not self._bursting
        rng = self._bursts_rng
        self._push(now + (rng.uniform(bursts.min_s, bursts.max_s) if self._bursting
                          else rng.expovariate(1 / bursts.quiet_mean_s)), _BURST)
        self._next_reactive = self._draw_reactive(now)

    def _tick(self, now: float) -> None:
        self._apply_changes(now)
        self._expire(now)
        self.pending = [t for t in self.pending if t > now]
        self._measure(now)
        times, self.admission = self.policy.plan(self._delivered(now), now, self.period)
        for planned in times:
            offer_time = self.offer_time(planned, now)
            answered_at = offer_time + self._offers_rng.expovariate(1 / self.sc.response_s)
            self.pending.append(answered_at)
            if self._offers_rng.random() < self.acceptance:
                self._push(answered_at, _ARRIVAL)
        self.counters["offers_made"] += len(times)
        if now >= self.start:
            self._measured["offers"] += len(times)
            self._track_unserved(now, offered=bool(times))
        self._push(now + self.period, _TICK)

    def offer_time(self, planned: float, now: float) -> float:
        """When an offer planned for ``planned`` in the period starting ``now`` is made: moved
        towards a uniformly random moment of the period by ``offer_jitter``."""
        jitter = self.sc.offer_jitter
        if not jitter:
            return planned
        return (1 - jitter) * planned + jitter * (now + self._jitter_rng.random() * self.period)

    def _apply_changes(self, now: float) -> None:
        """Apply the steps and counter resets whose time has come."""
        while self._changes and self._changes[0].at_s <= now:
            change = self._changes.pop(0)
            if isinstance(change, CounterReset):
                for name in change.counters:
                    self._reset_offsets[name] = self.counters[name]
            elif change.quantity == "acceptance":
                self.acceptance = change.value
            elif change.quantity == "reactive_per_hour":
                self.reactive_rate = change.value / 3600
                self._next_reactive = self._draw_reactive(now)
            elif change.quantity == "handle_time_s":
                self._handle_mu, self._handle_sigma = lognormal_parameters(change.value, self.sc.handle_time_cv)
            else:
                self._account(now)
                self.agents = int(change.value)
                self._serve_queue(now)

    # -- statistics ------------------------------------------------------------------------

    def _measure(self, now: float) -> None:
        """Measure every statistic now and post its events (late, lost or twice, as the faults say)."""
        faults = self.sc.faults
        for name, value in self.stats().items():
            if faults.loss and self._stats_rng.random() < faults.loss:
                continue
            delay = faults.delay_of(name)
            if faults.delay_jitter_s:
                delay += self._stats_rng.random() * faults.delay_jitter_s
            event = (name, value, now)
            self._post(now + delay, event)
            if faults.duplication and self._stats_rng.random() < faults.duplication:
                self._post(now + delay + self._stats_rng.random() * _DUPLICATE_PERIODS * self.period, event)

    def _post(self, delivered_at: float, event: StatEvent) -> None:
        self._seq += 1
        shuffle = 0.0
        if self.sc.faults.burst_s:  # held until the next batched delivery, in random order within it
            delivered_at = self._stat_burst_after(delivered_at)
            shuffle = self._stat_bursts_rng.random()
        heapq.heappush(self._inbox, (delivered_at, shuffle, self._seq, event))

    def _stat_burst_after(self, time: float) -> float:
        """The first batched delivery at or after ``time`` (gaps of 0.5-1.5 x ``burst_s``)."""
        times = self._stat_burst_times
        while times[-1] < time:
            times.append(times[-1] + self.sc.faults.burst_s * self._stat_bursts_rng.uniform(0.5, 1.5))
        return times[bisect.bisect_left(times, time)]

    def _delivered(self, now: float) -> list[StatEvent]:
        """The stat events that have arrived by ``now``, in arrival order."""
        events = []
        while self._inbox and self._inbox[0][0] <= now:
            events.append(heapq.heappop(self._inbox)[3])
        return events

    def stats(self) -> dict[str, float]:
        """The group's gauges and counters now, under the stat-event names a bridge sends (the truth,
        before any statistics fault)."""
        logged_in = max(self.agents, self.busy)  # agents logging off finish their interaction first
        stats = {
            "logged_in_agents": float(logged_in),
            "ready_agents": float(max(0, self.agents - self.busy)),
            "busy_agents": float(self.busy),
            "waiting_interactions": float(len(self.queue)),
            "outstanding_offers": float(len(self.pending)),
        }
        if self._handle_times:  # no handle time is reported before the first interaction ends
            stats["average_handle_time_s"] = round(sum(self._handle_times) / len(self._handle_times), 1)
        for name, value in self.counters.items():
            stats[name] = float(value - self._reset_offsets[name])
        return stats

    # -- interactions ----------------------------------------------------------------------

    def _arrive(self, now: float, proactive: bool) -> None:
        self.counters["interactions_entered"] += 1
        if proactive:
            self.counters["offers_accepted"] += 1
        if now >= self.start:
            self._measured["accepted" if proactive else "reactive"] += 1
        if self.busy < self.agents:
            self._answer(now, now)
        else:
            self.queue.append((now, now + self.draw_patience()))

    def draw_patience(self) -> float:
        """One customer's patience, seconds (exponential or lognormal with the scenario's mean)."""
        if self.sc.patience_distribution == "lognormal":
            return self._patience_rng.lognormvariate(self._patience_mu, self._patience_sigma)
        return self._patience_rng.expovariate(1 / self.sc.patience_s)

    def draw_handle(self) -> float:
        """One handle time, seconds: lognormal, or from one of the scenario's handle-time modes."""
        mu, sigma = self._handle_mu, self._handle_sigma
        if self._handle_modes:
            pick = self._handle_rng.random()
            for share, mu, sigma in self._handle_modes:  # noqa: B007 (the mode picked stays in mu, sigma)
                pick -= share
                if pick < 0:
                    break
        return self._handle_rng.lognormvariate(mu, sigma)

    def _answer(self, now: float, entered: float) -> None:
        self._account(now)
        self.busy += 1
        handle = self.draw_handle()
        self._push(now + handle, _FINISH, handle)
        self.counters["interactions_answered"] += 1
        in_sl = now - entered <= self.sl_s
        if in_sl:
            self.counters["answered_within_sl"] += 1
        if self.start <= entered:
            self._measured["answered"] += 1
            self._measured["in_sl"] += in_sl
            self._batch_entered[self._batch(entered)] += 1

    def _finish(self, now: float, handle_s: float) -> None:
        self._account(now)
        self.busy -= 1
        self._handle_times.append(handle_s)
        self._serve_queue(now)

    def _serve_queue(self, now: float) -> None:
        """Answer waiting interactions while an agent is free (the impatient ones have left)."""
        while self.queue and self.busy < self.agents:
            entered, gives_up = self.queue.popleft()
            if gives_up <= now:
                self._abandon(entered, gives_up)
            else:
                self._answer(now, entered)

    def _expire(self, now: float) -> None:
        """Count the queued interactions whose patience ran out by ``now``."""
        if any(gives_up <= now for _, gives_up in self.queue):
            keep: deque[tuple[float, float]] = deque()
            for item in self.queue:
                if item[1] <= now:
                    self._abandon(item[0], item[1])
                else:
                    keep.append(item)
            self.queue = keep

    def _abandon(self, entered: float, gave_up: float) -> None:
        short = gave_up - entered <= self.short_s
        self.counters["interactions_abandoned"] += 1
        self.counters["short_abandoned"] += short
        if entered >= self.start:
            self._measured["short" if short else "abandoned"] += 1
            batch = self._batch(entered)
            self._batch_entered[batch] += 1
            self._batch_abandoned[batch] += 1

    # -- bookkeeping -----------------------------------------------------------------------

    def _track_unserved(self, now: float, offered: bool) -> None:
        """Time an agent sits ready with nothing waiting, no offer outstanding and none made."""
        unserved = not offered and self.agents > self.busy and not self.queue and not self.pending
        if unserved and self._unserved_since is None:
            self._unserved_since = now
        elif not unserved and self._unserved_since is not None:
            self._note_unserved(now)

    def _note_unserved(self, now: float) -> None:
        assert self._unserved_since is not None
        self.longest_unserved_idle_s = max(self.longest_unserved_idle_s, now - self._unserved_since)
        self._unserved_since = None

    def _push(self, time: float, kind: int, payload: float = 0.0) -> None:
        self._seq += 1
        heapq.heappush(self._events, (time, self._seq, kind, payload))

    def _account(self, now: float) -> None:
        """Add busy and logged-in agent time since the last call (measured window only)."""
        if now > self.start:
            span = now - max(self._accounted_at, self.start)
            self.busy_agent_s += self.busy * span
            self.agent_s += max(self.agents, self.busy) * span
        self._accounted_at = now

    def _batch(self, entered: float) -> int:
        return min(_BATCHES - 1, int((entered - self.start) / (self.end - self.start) * _BATCHES))

    def _result(self) -> SimulationResult:
        m = self._measured
        return SimulationResult(
            policy=self.policy.name,
            offers=m["offers"],
            accepted=m["accepted"],
            reactive=m["reactive"],
            reactive_blocked=m["blocked"],
            answered=m["answered"],
            answered_in_sl=m["in_sl"],
            abandoned=m["abandoned"],
            short_abandoned=m["short"],
            busy_agent_s=self.busy_agent_s,
            agent_s=self.agent_s,
            measured_s=self.end - self.start,
            batch_entered=tuple(self._batch_entered),
            batch_abandoned=tuple(self._batch_abandoned),
            batch_refused=tuple(self._batch_refused),
            longest_unserved_idle_s=self.longest_unserved_idle_s,
            algorithms=dict(self.policy.algorithms) if isinstance(self.policy, EnginePolicy) else {},
        )


def simulate(scenario: Scenario, policy: Policy) -> SimulationResult:
    """Run ``scenario`` under ``policy`` (deterministic for a given scenario seed)."""
    return ContactCentre(scenario, policy).run()
