"""The discrete-event contact-centre model that scores a pacing policy.

One agent group, one FIFO queue. Every refresh period the centre reports its statistics to the
policy (gauges and running counters under the stat-event names) and makes the offers the policy
asks for at the times it asks; each offer is answered after the visitor's response time and, if
accepted, becomes an interaction. Reactive interactions arrive as a Poisson process and are let
in with the policy's admission probability. An interaction is answered at once by a ready agent
or waits; it abandons when its patience runs out first (a short abandon within the threshold).

Each kind of randomness has its own seeded stream, so two policies see the same visitors,
patience and handle times in the same order (common random numbers) and a seed reproduces a
run exactly.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque

from schemas.models import COUNTER_NAMES
from streams.simulation.policies import EnginePolicy, Policy
from streams.simulation.scenario import Scenario, SimulationResult, lognormal_parameters

_TICK, _ARRIVAL, _FINISH = 0, 1, 2
_BATCHES = 20
_AHT_SAMPLES = 50


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
        self._handle_mu, self._handle_sigma = lognormal_parameters(scenario.handle_time_s, scenario.handle_time_cv)
        settings = scenario.settings
        self.period = settings.refresh_period_s
        self.sl_s = settings.service_level_duration_ms / 1000
        self.short_s = settings.short_abandon_threshold_s
        self.start = scenario.warmup_s
        self.end = scenario.warmup_s + scenario.hours * 3600
        self._events: list[tuple[float, int, int, float]] = []  # (time, seq, kind, handle time)
        self._seq = 0
        self.busy = 0
        self.queue: deque[tuple[float, float]] = deque()  # (entered, gives up at)
        self.pending: list[float] = []  # answer times of offers not yet answered
        self.admission = 1.0
        self.counters = dict.fromkeys(COUNTER_NAMES, 0)
        self._handle_times: deque[float] = deque(maxlen=_AHT_SAMPLES)
        self._busy_since = 0.0
        self.busy_agent_s = 0.0
        self._measured = dict.fromkeys(
            ("offers", "accepted", "reactive", "blocked", "answered", "in_sl", "abandoned", "short"), 0)
        self._batch_handled = [0] * _BATCHES
        self._batch_abandoned = [0] * _BATCHES
        self._reactive_rate = scenario.reactive_per_hour / 3600
        self._next_reactive: float | None = None  # set by the first advance()
        self.now = 0.0
        """Simulated time reached by :meth:`advance`."""

    # -- the run ---------------------------------------------------------------------------

    def run(self) -> SimulationResult:
        """Simulate warm-up plus the measured hours and return the measurements."""
        self.advance(self.end)
        self._account_busy(self.end)
        return self._result()

    def advance(self, until: float) -> None:
        """Process every event before ``until`` (capped at the scenario's end), in order.

        Called repeatedly with growing times it runs the same simulation as one :meth:`run`
        (``pacing feed`` drives a centre in real time this way, reading :meth:`stats` between).
        """
        if self._next_reactive is None:  # first call: a tick is always scheduled, so the heap never runs dry
            self._push(0.0, _TICK)
            self._next_reactive = self._reactive_rng.expovariate(self._reactive_rate) if self._reactive_rate > 0 \
                else math.inf
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
                self._next_reactive += self._reactive_rng.expovariate(self._reactive_rate)
            else:
                heapq.heappop(self._events)
            self.now = time
            if kind == _TICK:
                self._tick(time)
            elif kind == _FINISH:
                self._finish(time, payload)
            elif kind == _ARRIVAL:
                self._arrive(time, True)
            elif self._reactive_rng.random() < self.admission:
                self._arrive(time, False)
            elif time >= self.start:
                self._measured["blocked"] += 1
        self.now = max(self.now, until)

    def _tick(self, now: float) -> None:
        self._expire(now)
        self.pending = [t for t in self.pending if t > now]
        times, self.admission = self.policy.plan(self.stats(), now, self.period)
        for offer_time in times:
            answered_at = offer_time + self._offers_rng.expovariate(1 / self.sc.response_s)
            self.pending.append(answered_at)
            if self._offers_rng.random() < self.sc.acceptance:
                self._push(answered_at, _ARRIVAL)
        self.counters["offers_made"] += len(times)
        if now >= self.start:
            self._measured["offers"] += len(times)
        self._push(now + self.period, _TICK)

    def stats(self) -> dict[str, float]:
        """The group's gauges and running counters now, under the stat-event names a bridge sends."""
        agents = self.sc.agents
        aht = sum(self._handle_times) / len(self._handle_times) if self._handle_times else self.sc.handle_time_s
        return {
            "logged_in_agents": agents,
            "ready_agents": agents - self.busy,
            "busy_agents": self.busy,
            "waiting_interactions": len(self.queue),
            "outstanding_offers": len(self.pending),
            "average_handle_time_s": round(aht, 1),
            **{name: float(value) for name, value in self.counters.items()},
        }

    # -- interactions ----------------------------------------------------------------------

    def _arrive(self, now: float, proactive: bool) -> None:
        self.counters["interactions_entered"] += 1
        if proactive:
            self.counters["offers_accepted"] += 1
        if now >= self.start:
            self._measured["accepted" if proactive else "reactive"] += 1
        if self.busy < self.sc.agents:
            self._answer(now, now)
        else:
            patience = self._patience_rng.expovariate(1 / self.sc.patience_s)
            self.queue.append((now, now + patience))

    def _answer(self, now: float, entered: float) -> None:
        self._account_busy(now)
        self.busy += 1
        handle = self._handle_rng.lognormvariate(self._handle_mu, self._handle_sigma)
        self._push(now + handle, _FINISH, handle)
        self.counters["interactions_answered"] += 1
        in_sl = now - entered <= self.sl_s
        if in_sl:
            self.counters["answered_within_sl"] += 1
        if self.start <= entered:
            self._measured["answered"] += 1
            self._measured["in_sl"] += in_sl
            self._batch_handled[self._batch(entered)] += 1

    def _finish(self, now: float, handle_s: float) -> None:
        self._account_busy(now)
        self.busy -= 1
        self._handle_times.append(handle_s)
        while self.queue:
            entered, gives_up = self.queue.popleft()
            if gives_up <= now:
                self._abandon(entered, gives_up)
            else:
                self._answer(now, entered)
                break

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
            if short:
                self._measured["short"] += 1
            else:
                self._measured["abandoned"] += 1
                batch = self._batch(entered)
                self._batch_handled[batch] += 1
                self._batch_abandoned[batch] += 1

    # -- bookkeeping -----------------------------------------------------------------------

    def _push(self, time: float, kind: int, payload: float = 0.0) -> None:
        self._seq += 1
        heapq.heappush(self._events, (time, self._seq, kind, payload))

    def _account_busy(self, now: float) -> None:
        if now > self.start:
            self.busy_agent_s += self.busy * (now - max(self._busy_since, self.start))
        self._busy_since = now

    def _batch(self, entered: float) -> int:
        return min(_BATCHES - 1, int((entered - self.start) / (self.end - self.start) * _BATCHES))

    def _result(self) -> SimulationResult:
        m = self._measured
        measured_s = self.end - self.start
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
            agent_s=self.sc.agents * measured_s,
            measured_s=measured_s,
            abandonment_se=_batch_means_se(self._batch_handled, self._batch_abandoned),
            algorithms=dict(self.policy.algorithms) if isinstance(self.policy, EnginePolicy) else {},
        )


def _batch_means_se(handled: list[int], abandoned: list[int]) -> float:
    """Standard error of the abandonment rate from batch means (runs are autocorrelated)."""
    rates = [a / h for a, h in zip(abandoned, handled, strict=True) if h]
    if len(rates) < 2:
        return 0.0
    mean = sum(rates) / len(rates)
    variance = sum((r - mean) ** 2 for r in rates) / (len(rates) - 1)
    return math.sqrt(variance / len(rates))


def simulate(scenario: Scenario, policy: Policy) -> SimulationResult:
    """Run ``scenario`` under ``policy`` (deterministic for a given scenario seed)."""
    return ContactCentre(scenario, policy).run()
