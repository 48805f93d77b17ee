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
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

from streams.engine.distributions import Pmf, binomial, point, poisson
from streams.engine.queueing import QueueCosts

_SLICES = 3
_EXACT_MIN_P = 0.2
_EXACT_MAX_AGENTS = 15
_TINY = 1e-10


def exact_for(logged_in: int, p: float) -> bool:
    """Track accepts exactly where it matters and stays cheap: a high acceptance rate (few
    offers, each likely accepted) in a small group (few accepts to follow). Decided per
    target, not per offer count, so the costs grow smoothly with the offers."""
    return p >= _EXACT_MIN_P and logged_in <= _EXACT_MAX_AGENTS


class Horizon:
    """Expected costs of everything arriving in the horizon (and the reactive tail after it).

    ``exact`` (see ``exact_for``): the accepts are tracked jointly with the agents - the state
    is (free agents minus queue, accepts still to come), and in each slice a binomial share of
    the accepts still to come arrives, so one offer is accepted at most once (taking the slices
    as independent would let two offers at p = 0.4 bring three accepts, which made the first
    version refuse a second offer to a free agent). Otherwise the slices' accepts are taken as
    independent (Poisson thinning: a few percent more variance than the truth, so slightly
    cautious), which is far cheaper.
    """

    def __init__(self, ready: int, busy: int, waiting: int, outstanding: int, p: float, handle_s: float,
                 period_s: float, response_s: float, costs: QueueCosts, exact: bool):
        """``ready`` may be reduced by a reactive reserve: those agents count as taken."""
        self.p = p
        self.exact = exact
        self.queue_costs = costs
        self.outstanding = outstanding
        self.start = point(ready - waiting)  # free agents minus queue; negative: a queue
        self.length_s = period_s + response_s
        self.slice_s = length = self.length_s / _SLICES
        # Arrivals in slice s are met by the agents that finished before the slice's middle.
        self.finishing = [
            binomial(busy, math.exp(-max(0.0, s - 0.5) * length / handle_s) - math.exp(-(s + 0.5) * length / handle_s))
            for s in range(_SLICES)
        ]
        # Which slice an accept arrives in (the last slice also takes the stragglers).
        self.new_share = _slice_shares(lambda t: _uniform_plus_exponential_cdf(t, period_s, response_s), length)
        self.pending_share = _slice_shares(lambda t: 1 - math.exp(-t / response_s), length)
        # The reactive tail: until one more agent would finish with all of them busy, and at
        # least one more horizon, reactive arrivals meet what the offers left.
        agents = costs.agents
        self.tail_s = max(handle_s / max(1, agents), self.length_s)
        self.tail_finishing = binomial(agents, 1 - math.exp(-(length / 2 + self.tail_s / 2) / handle_s))
        self.reactive_span_s = self.length_s + self.tail_s
        self._memo: dict[tuple[int, float], tuple[float, float]] = {}

    def _queue_cost(self, free: Pmf) -> tuple[float, float]:
        """Expected cumulative (abandon, abandon + late) costs of the queue when free = -queue."""
        abandon = bad = 0.0
        at = self.queue_costs.at
        for i, prob in enumerate(free.probs):
            queue = -(free.offset + i)
            if queue > 0:
                a, late = at(queue)
                abandon += prob * a
                bad += prob * (a + late)
        return abandon, bad

    def costs(self, offers: int, reactive_rate: float) -> tuple[float, float]:
        """Expected (abandons, abandons + late answers) of all arrivals, with ``offers`` new offers.

        A slice's arrivals cost what they add to the queue's cumulative cost: they stand behind
        it (FIFO), so their costs are the difference before and after they join.
        """
        key = (offers, reactive_rate)
        cached = self._memo.get(key)
        if cached is not None:
            return cached
        new_mean, pending_mean = offers * self.p, self.outstanding * self.p
        accepts_mean = new_mean + pending_mean
        reactive_slice = poisson(reactive_rate * self.slice_s)
        exact = self.exact
        if exact:
            joint = Joint.start(self.start.offset, binomial(offers, self.p).plus(binomial(self.outstanding, self.p)))
        free = self.start
        abandon = bad = 0.0
        arrived_share = 0.0
        for s in range(_SLICES):
            share = (new_mean * self.new_share[s] + pending_mean * self.pending_share[s]) / accepts_mean \
                if accepts_mean > 0 else 0.0
            if exact:
                conditional = 1.0 if s == _SLICES - 1 else min(1.0, share / max(1e-12, 1 - arrived_share))
                arrived_share += share
                joint.add_free(self.finishing[s])
                free_before = joint.free()
                joint.arrive(conditional, reactive_slice)
                free = joint.free()
            else:
                free_before = free.plus(self.finishing[s])
                arrivals = binomial(offers, self.p * self.new_share[s]).plus(
                    binomial(self.outstanding, self.p * self.pending_share[s])).plus(reactive_slice)
                free = free_before.plus(arrivals.negated())
            before, after = self._queue_cost(free_before), self._queue_cost(free)
            abandon += after[0] - before[0]
            bad += after[1] - before[1]
        if reactive_rate > 0:
            free = free.plus(self.tail_finishing)
            before = self._queue_cost(free)
            after = self._queue_cost(free.plus(poisson(reactive_rate * self.tail_s).negated()))
            abandon += after[0] - before[0]
            bad += after[1] - before[1]
        cached = self._memo[key] = (abandon, bad)
        return cached


def _slice_shares(cdf: Callable[[float], float], length: float) -> list[float]:
    """P(arrival in slice s) from an arrival-time CDF; the last slice takes the rest."""
    edges = [cdf(length * (s + 1)) for s in range(_SLICES - 1)]
    shares, previous = [], 0.0
    for edge in edges:
        shares.append(edge - previous)
        previous = edge
    shares.append(1 - previous)
    return shares


def _uniform_plus_exponential_cdf(t: float, period_s: float, response_s: float) -> float:
    """P(offer made uniformly in the period and answered after an exponential delay is answered by t)."""
    if t <= 0:
        return 0.0
    if t <= period_s:
        return (t - response_s * (1 - math.exp(-t / response_s))) / period_s
    return 1 - response_s / period_s * (math.exp(-(t - period_s) / response_s) - math.exp(-t / response_s))



class Joint:
    """The joint distribution of (accepts still to come, free agents minus queue), dense:
    ``rows[k][i]`` is the probability of k accepts to come and ``offset + i`` free agents."""

    def __init__(self, offset: int, rows: dict[int, list[float]]):
        self.offset = offset
        self.rows = rows

    @classmethod
    def start(cls, free: int, to_come: Pmf) -> Joint:
        """Nothing arrived yet: ``free`` agents, ``to_come`` accepts on their way."""
        return cls(free, {to_come.offset + k: [p] for k, p in enumerate(to_come.probs) if p > _TINY})

    def add_free(self, finishing: Pmf) -> None:
        """Agents that finish (``finishing`` counts them) free up or take the head of the queue."""
        if len(finishing.probs) == 1:
            self.offset += finishing.offset
            return
        self.rows = {k: _convolve(row, finishing.probs) for k, row in self.rows.items()}
        self.offset += finishing.offset

    def arrive(self, share: float, reactive: Pmf) -> None:
        """Each accept to come arrives now with probability ``share``; reactive ones on top."""
        top = max(self.rows)
        width = max(len(row) for row in self.rows.values()) + top
        moved: dict[int, list[float]] = {}
        for k, row in self.rows.items():
            for a, p in enumerate(_binomial_row(k, share)):
                if p < _TINY:
                    continue
                target = moved.get(k - a)
                if target is None:
                    target = moved[k - a] = [0.0] * width
                shift = top - a
                target[shift:shift + len(row)] = [t + p * v for t, v in zip(target[shift:shift + len(row)], row,
                                                                              strict=True)]
        self.offset -= top
        if len(reactive.probs) > 1 or reactive.offset:
            negated = reactive.negated()
            self.rows = {k: _convolve(row, negated.probs) for k, row in moved.items()}
            self.offset += negated.offset
        else:
            self.rows = moved
        self._trim()

    def free(self) -> Pmf:
        """The distribution of free agents minus queue."""
        width = max(len(row) for row in self.rows.values())
        total = [0.0] * width
        for row in self.rows.values():
            total[:len(row)] = [t + v for t, v in zip(total, row, strict=False)]
        return Pmf(self.offset, tuple(total))

    def _trim(self) -> None:
        """Drop negligible rows, and the columns on either side that no row needs."""
        self.rows = {k: row for k, row in self.rows.items() if sum(row) > _TINY}
        needed = [i for row in self.rows.values() for i, v in enumerate(row) if v > _TINY]
        low, high = min(needed), max(needed) + 1
        self.rows = {k: row[low:high] for k, row in self.rows.items()}
        self.offset += low


def _convolve(row: list[float], probs: tuple[float, ...]) -> list[float]:
    """Full convolution of two probability lists (same offset arithmetic as ``Pmf.plus``)."""
    out = [0.0] * (len(row) + len(probs) - 1)
    for i, q in enumerate(probs):
        out[i:i + len(row)] = [o + q * v for o, v in zip(out[i:i + len(row)], row, strict=True)]
    return out


@lru_cache(maxsize=4096)
def _binomial_row(trials: int, p: float) -> tuple[float, ...]:
    """The full Binomial(trials, p) probabilities, for small trial counts."""
    if p >= 1:
        return (0.0,) * trials + (1.0,)
    row = [(1 - p) ** trials]
    ratio = p / (1 - p)
    for a in range(trials):
        row.append(row[-1] * (trials - a) / (a + 1) * ratio)
    return tuple(row)
