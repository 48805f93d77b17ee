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

How it is computed. A slice's arrivals cost what they add to the queue's cumulative cost, so
the costs are sums of E[cost(free agents minus queue)] just before and just after each slice's
arrivals (and around the reactive tail): eight distributions of "free minus queue". Each is a
sum of independent binomial and Poisson counts, so its characteristic function is a product of
closed forms; one inverse FFT gives all eight probability vectors at once (for several offer
counts in the same call), and a dot product with the queue's cost gives each expectation. This
replaced a pure-Python convolution of truncated distributions (the same numbers to ~1e-12,
at 10-1,000x less CPU: a 500-agent group took 50-200 ms per decision).

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
from collections.abc import Callable, Sequence

import numpy as np

from streams.engine.queueing import QueueCosts

_SLICES = 3
_EXACT_MIN_P = 0.2
_EXACT_MAX_AGENTS = 15
#: Each distribution's window reaches this many standard deviations (plus _WINDOW_PAD values) to
#: either side of its mean; beyond, binomial and Poisson mass is below 1e-15.
_WINDOW_SIGMAS = 8.0
_WINDOW_PAD = 24


def exact_for(logged_in: int, p: float) -> bool:
    """Track accepts exactly where it matters and stays cheap: a high acceptance rate (few
    offers, each likely accepted) in a small group (few accepts to follow). Decided per
    target, not per offer count, so the costs grow smoothly with the offers."""
    return p >= _EXACT_MIN_P and logged_in <= _EXACT_MAX_AGENTS


#: One independent count in a sum of counts: ("binomial", trials, q), ("poisson", 0, mean) or
#: ("constant", 0, value), with a sign (-1: subtracted).
_Term = tuple[str, int, float, int]


def _binomial(trials: int, q: float, sign: int) -> list[_Term]:
    return [("binomial", trials, q, sign)] if trials > 0 and q > 0 else []


def _poisson(mean: float, sign: int) -> list[_Term]:
    return [("poisson", 0, mean, sign)] if mean > 0 else []


def _moments(term: _Term) -> tuple[float, float]:
    """(mean with its sign, variance) of one term."""
    kind, trials, q, sign = term
    if kind == "binomial":
        return sign * trials * q, trials * q * (1 - q)
    return sign * q, q if kind == "poisson" else 0.0


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
        self.busy = busy
        self.length_s = period_s + response_s
        self.slice_s = length = self.length_s / _SLICES
        # Arrivals in slice s are met by the agents that finished before the slice's middle.
        self.finish_share = [math.exp(-max(0.0, s - 0.5) * length / handle_s) - math.exp(-(s + 0.5) * length / handle_s)
                             for s in range(_SLICES)]
        # Which slice an accept arrives in (the last slice also takes the stragglers).
        self.new_share = _slice_shares(lambda t: _uniform_plus_exponential_cdf(t, period_s, response_s), length)
        self.pending_share = _slice_shares(lambda t: 1 - math.exp(-t / response_s), length)
        # The reactive tail: until one more agent would finish with all of them busy, and at
        # least one more horizon, reactive arrivals meet what the offers left.
        self.agents = agents = costs.agents
        self.tail_s = max(handle_s / max(1, agents), self.length_s)
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

    def _rows(self, offers: int, reactive_rate: float) -> list[list[_Term]]:
        """The distributions of free-minus-queue whose expected queue costs make up the costs:
        before and after each slice's arrivals, then before and after the reactive tail."""
        p, o = self.p, self.outstanding
        reactive = reactive_rate * self.slice_s
        start: list[_Term] = [("constant", 0, float(self.start), 1)]
        finishing = [_binomial(self.busy, q, 1) for q in self.finish_share]
        rows: list[list[_Term]] = []
        if self.exact:
            total = offers + o
            mean_new, mean_pending = offers * p, o * p
            accepts = mean_new + mean_pending
            arrived = 0.0
            for s in range(_SLICES):
                share = (mean_new * self.new_share[s] + mean_pending * self.pending_share[s]) / accepts \
                    if accepts > 0 else 0.0
                finished = [t for f in finishing[:s + 1] for t in f]
                before = [*start, *finished, *_poisson(reactive * s, -1),
                          *_binomial(total, p * min(1.0, arrived), -1)]
                arrived = 1.0 if s == _SLICES - 1 else arrived + share
                after = [*start, *finished, *_poisson(reactive * (s + 1), -1),
                         *_binomial(total, p * min(1.0, arrived), -1)]
                rows += [before, after]
        else:
            arrivals: list[_Term] = []
            for s in range(_SLICES):
                before = [*start, *(t for f in finishing[:s + 1] for t in f), *arrivals]
                arrivals += [*_binomial(offers, p * self.new_share[s], -1),
                             *_binomial(o, p * self.pending_share[s], -1), *_poisson(reactive, -1)]
                rows += [before, [*start, *(t for f in finishing[:s + 1] for t in f), *arrivals]]
        if reactive_rate > 0:
            tail_before = [*rows[-1], *_binomial(self.agents, self.tail_finish, 1)]
            rows += [tail_before, [*tail_before, *_poisson(reactive_rate * self.tail_s, -1)]]
        return rows

    def _compute(self, offers: list[int], reactive_rate: float) -> list[tuple[float, float]]:
        rows = [row for n in offers for row in self._rows(n, reactive_rate)]
        # Window: the same power-of-two size for every row, centred on each row's mean.
        means, spread = [], 0.0
        for row in rows:
            moments = [_moments(t) for t in row]
            means.append(sum(m for m, _ in moments))
            spread = max(spread, sum(v for _, v in moments))
        half = _WINDOW_SIGMAS * math.sqrt(spread) + _WINDOW_PAD
        size = 1 << max(5, math.ceil(math.log2(2 * half + 1)))
        offsets = np.array([math.floor(m) - size // 2 for m in means], dtype=float)
        # Every distinct random count once; each row's transform is the product of its counts'
        # (a sum of logs: one matrix product), times z^(constants - offset) to place its window.
        index: dict[_Term, int] = {}
        constants = np.zeros(len(rows))
        pairs: list[tuple[int, int]] = []
        for r, row in enumerate(rows):
            for term in row:
                if term[0] == "constant":
                    constants[r] += term[3] * term[2]
                else:
                    pairs.append((r, index.setdefault(term, len(index))))
        terms = list(index)
        frequency = np.arange(size // 2 + 1) * (2 * np.pi / size)
        logs = np.zeros((len(terms), len(frequency)), dtype=complex)
        if terms:
            q = np.array([t[2] for t in terms])[:, None]
            signed = np.array([t[3] for t in terms], dtype=float)[:, None] * frequency[None, :]
            w = np.exp(-1j * signed)  # E[w^X] = E[e^(-iθ sign X)]
            binomial = np.array([t[0] == "binomial" for t in terms])
            trials = np.array([t[1] for t in terms], dtype=float)[:, None]
            base = np.where(binomial[:, None], 1 - q + q * w, 1.0)
            base[base == 0] = 1e-300  # Binomial(n, 1/2) at θ = π: the power is 0
            logs = np.where(binomial[:, None], trials * np.log(base), q * (w - 1))
        counts = np.zeros((len(rows), len(terms)))
        for r, t in pairs:
            counts[r, t] += 1
        exponent = counts @ logs - 1j * (constants - offsets)[:, None] * frequency[None, :]
        # P(X = offset + j) for j in the window; FFT noise leaves values of ~1e-17 anywhere.
        pmf = np.fft.irfft(np.exp(exponent), n=size, axis=1)
        queue = -(offsets.astype(np.int64)[:, None] + np.arange(size)[None, :])
        abandon_cost, bad_cost = self.queue_costs.along(queue)
        abandon = (pmf * abandon_cost).sum(axis=1)
        bad = (pmf * bad_cost).sum(axis=1)
        per = len(rows) // len(offers)
        out = []
        for i in range(len(offers)):
            a, b = abandon[i * per:(i + 1) * per], bad[i * per:(i + 1) * per]
            # Costs only grow with arrivals: FFT noise must not make a zero cost -1e-17.
            out.append((max(0.0, float(a[1::2].sum() - a[0::2].sum())),
                        max(0.0, float(b[1::2].sum() - b[0::2].sum()))))
        return out


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
