"""The progressive algorithm's model of one decision horizon: who arrives when, who waits.

The horizon - the refresh period plus the visitors' mean response time - is cut into three
time slices. In each slice interactions arrive (accepts of pending offers and of the new ones,
binomial; reactive ones, Poisson) and busy agents finish (binomial; arrivals in a slice meet the
agents that finished before its middle). An arrival that finds no free agent queues behind
those already waiting, and a queued interaction at position ``j`` abandons or is answered late
with the chances of ``queueing.position_costs``. Reactive arrivals are followed for a tail
after the horizon too: a group the offers fill up makes them queue until agents finish.

Keeping the order of arrivals and finishes matters: the first version balanced the whole
horizon at its end, let an agent that finishes late serve an interaction that arrived early,
and overshot a 3 % goal by a third.

How it is computed (``_kernels.c``, one call per batch of offer counts). A slice's arrivals cost
what they add to the queue's cumulative cost, so the costs are sums of E[cost(free agents minus
queue)] just before and just after each slice's arrivals (and around the reactive tail): eight
distributions of "free minus queue". Each is a sum of independent binomial and Poisson counts, so
its characteristic function is a product of closed forms (a binomial's is an integer power of a
Bernoulli's). Each expectation is a sum over one window of values that holds all of them (for
several offer counts in the same call), taken in the frequency domain (Parseval): the
distributions' transforms are known, the queue's cost over the window takes one FFT, and the
signed sum over the eight rows is taken before the offers' part multiplies in, so nothing is
transformed back; products below e^-45 in modulus are left out. The fixed rows' transforms are
prepared once per window size and shared by the calls of one decision, each offer column only up
to the frequencies its smallest count needs (wide rows: few); row 0, which no new accept
reaches, is summed directly, and a batch's base (no offers) gets a narrow window of its own when
the other counts are wide (issue 20: the kernel of a 906-agent group's cold decision fell from
6.3 M to 3.2 M instructions, callgrind; its buffers no longer cost page faults). This replaced
a pure-Python convolution of truncated distributions (now the reference kernels'
``reference.HorizonModel``, which tests/unit/engine/test_engine_reference.py compares with
this): the same numbers to ~1e-9 (the window holds each row to 7 standard
deviations, and the little beyond them wraps around it; it held 8, to ~1e-12, until a cold
decision had to cost at most 200 us).

``exact`` (see ``exact_for``): every accept still to come is one event that lands in one slice
(slice s with probability share_s, the same for new and pending offers), so one offer is
accepted at most once; taking the slices as independent instead would let two offers at
p = 0.4 bring three accepts, which made the first version refuse a second offer to a free agent.
The accepts that have arrived by the end of slice s are then Binomial(offers + pending,
p x (share_0 + ... + share_s)) - binomial thinning of a binomial - which is what the joint
(accepts to come, free agents) table of the first implementation computed slice by slice.
Otherwise (large groups, low acceptance) each slice's accepts are taken as independent
binomials (Poisson thinning: a few percent more variance than the truth, so slightly cautious).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

from streams.engine.kernels import kernels as _kernels
from streams.engine.queueing import QueueCosts

_SLICES = 3  # _kernels.c's SLICES: the kernel reads three shares per slice list
_EXACT_MIN_P = 0.2
_EXACT_MAX_AGENTS = 15
#: Slice s's arrivals meet the agents that finished between max(0, s - 1/2) and s + 1/2 slices.
_FINISH_SPANS = tuple((max(0.0, s - 0.5), s + 0.5) for s in range(_SLICES))


def exact_for(logged_in: int, p: float) -> bool:
    """Track accepts exactly where it matters and stays cheap: a high acceptance rate (few
    offers, each likely accepted) in a small group (few accepts to follow). Decided per
    target, not per offer count, so the costs grow smoothly with the offers."""
    return p >= _EXACT_MIN_P and logged_in <= _EXACT_MAX_AGENTS


class Horizon:
    """Expected costs of everything arriving in the horizon (and the reactive tail after it)."""

    def __init__(self, ready: int, busy: int, waiting: int, outstanding: int, p: float, handle_s: float,
                 period_s: float, response_s: float, costs: QueueCosts, exact: bool):
        """``ready`` may be reduced by a reactive reserve: those agents count as taken."""
        self.p = p
        self.exact = exact
        self.queue_costs = costs
        self.outstanding = outstanding
        self.start = ready - waiting  # free agents minus queue; negative: a queue
        self.start_ready = ready
        self.busy = busy
        self.length_s = period_s + response_s
        self.slice_s = length = self.length_s / _SLICES
        # Arrivals in slice s are met by the agents that finished before the slice's middle.
        self.finish_share = finish_share = []  # (a loop, not a comprehension: one call fewer)
        for begin, end in _FINISH_SPANS:
            finish_share.append(math.exp(-begin * length / handle_s) - math.exp(-end * length / handle_s))
        # Which slice an accept arrives in (the last slice also takes the stragglers).
        self.new_share, self.pending_share = _accept_shares(period_s, response_s)
        # The reactive tail: until one more agent would finish with all of them busy, and at
        # least one more horizon, reactive arrivals meet what the offers left.
        self.agents = agents = costs.agents
        tail_s = handle_s / (agents if agents > 1 else 1)  # (max() as conditional expressions: see rates.observe)
        self.tail_s = tail_s = self.length_s if self.length_s > tail_s else tail_s
        self.tail_finish = 1 - math.exp(-(length / 2 + self.tail_s / 2) / handle_s)
        self.reactive_span_s = self.length_s + self.tail_s
        self._memo: dict[tuple[int, float], tuple[float, float]] = {}

    def costs(self, offers: int, reactive_rate: float) -> tuple[float, float]:
        """Expected (abandons, abandons + late answers) of all arrivals, with ``offers`` new offers."""
        return self.costs_of([offers], reactive_rate)[0]

    def costs_of(self, offers: Sequence[int], reactive_rate: float) -> list[tuple[float, float]]:
        """``costs`` for several offer counts, computed in one pass."""
        todo = sorted({n for n in offers if (n, reactive_rate) not in self._memo})
        if todo:
            for n, result in zip(todo, self._compute(todo, reactive_rate), strict=True):
                self._memo[(n, reactive_rate)] = result
        return [self._memo[(n, reactive_rate)] for n in offers]

    def _compute(self, offers: list[int], reactive_rate: float) -> list[tuple[float, float]]:
        """The kernel's costs for several offer counts (its window holds every row of every count)."""
        return _kernels.horizon_costs(offers, self.start, self.model(reactive_rate))

    def model(self, reactive_rate: float) -> tuple:
        """What the kernels need of this horizon at one reactive rate (everything but its start)."""
        return (reactive_rate, self.busy, self.outstanding, self.agents, self.p, self.exact, self.slice_s, self.tail_s,
                self.tail_finish, self.finish_share, self.new_share, self.pending_share, self.queue_costs.table)


@lru_cache(maxsize=64)  # one entry per (period, response) setting: the same for nearly every target
def _accept_shares(period_s: float, response_s: float) -> tuple[list[float], list[float]]:
    """Which slice the accept of a new offer (made uniformly in the period) and of a pending one
    (exponential response time) arrives in: the arrival-time CDF's steps at the slices' ends, the
    last slice taking the rest. (Lists, as the kernels read them; callers do not change them.
    One loop, no helper calls or comprehensions: this runs in every cold decision.)"""
    length = (period_s + response_s) / _SLICES
    new, pending = [], []
    new_before = pending_before = 0.0
    for s in range(1, _SLICES):
        t = length * s
        new_edge = _uniform_plus_exponential_cdf(t, period_s, response_s)
        pending_edge = 1 - math.exp(-t / response_s)
        new.append(new_edge - new_before)
        pending.append(pending_edge - pending_before)
        new_before, pending_before = new_edge, pending_edge
    new.append(1 - new_before)
    pending.append(1 - pending_before)
    return new, pending


def _uniform_plus_exponential_cdf(t: float, period_s: float, response_s: float) -> float:
    """P(offer made uniformly in the period and answered after an exponential delay is answered by t)."""
    if t <= 0:
        return 0.0
    if t <= period_s:
        return (t - response_s * (1 - math.exp(-t / response_s))) / period_s
    return 1 - response_s / period_s * (math.exp(-(t - period_s) / response_s) - math.exp(-t / response_s))
