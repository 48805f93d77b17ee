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
closed forms. Each expectation is a sum over one window of values that holds all of them (for
several offer counts in the same call), taken in the frequency domain (Parseval): the
distributions' transforms are known, the queue's cost over the window takes one FFT, and the
signed sum over the eight rows is taken before the offers' part multiplies in, so nothing is
transformed back. This replaced a pure-Python convolution of truncated distributions
(``distributions``, now the reference of tests/unit/test_engine_reference.py): the same numbers
to ~1e-12, and a decision for a 500-agent group forced onto SUPER_PROGRESSIVE takes a few ms
instead of 50-200 ms.

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

import bisect
import copy
import math
from collections.abc import Callable, Sequence

import numpy as np

from streams.engine.queueing import QueueCosts

_SLICES = 3
_EXACT_MIN_P = 0.2
_EXACT_MAX_AGENTS = 15
#: Each distribution's window reaches this many standard deviations (plus _WINDOW_PAD values) to
#: either side of its mean; beyond, binomial and Poisson mass is below 1e-15 (a Poisson count of
#: mean 1 exceeds 16 with probability 1e-15, of mean 0.5 with 1e-20).
_WINDOW_SIGMAS = 8.0
_WINDOW_PAD = 16


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
        self._layouts: dict[float, _Layout] = {}

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

    def with_ready(self, ready: int) -> Horizon:
        """The same horizon with another number of ready agents (a reactive reserve taken off).
        Only the constant part of the sums differs, so both share their prepared transforms."""
        other = copy.copy(self)
        other.start = ready - (self.start_ready - self.start)
        other.start_ready = ready
        other._memo = {}
        return other

    def _compute(self, offers: list[int], reactive_rate: float) -> list[tuple[float, float]]:
        layout = self._layouts.get(reactive_rate)
        if layout is None:
            layout = self._layouts[reactive_rate] = _Layout(self, reactive_rate)
        return layout.costs(offers, self.start)


class _Layout:
    """The distributions of free-minus-queue of one horizon at one reactive rate, whose expected
    queue costs make up its costs: before and after each slice's arrivals, then before and after
    the reactive tail. Each is ``start`` plus a sum of independent counts; the counts that do not
    depend on the offers are fixed here (``fixed`` rows x terms: how often a row adds (+1) or
    subtracts (-1) each), the offers' binomials are added per evaluation."""

    def __init__(self, horizon: Horizon, reactive_rate: float):
        h = horizon
        self.h = h
        p, o = h.p, h.outstanding
        reactive = reactive_rate * h.slice_s
        index: dict[tuple[str, int, float, int], int] = {}  # (kind, trials, q, sign) -> column

        def term(kind: str, trials: int, q: float, sign: int) -> int | None:
            if q <= 0 or (kind == "binomial" and trials <= 0):
                return None
            return index.setdefault((kind, trials, q, sign), len(index))

        finishing = [term("binomial", h.busy, q, 1) for q in h.finish_share]
        rows: list[list[tuple[int | None, int]]] = []  # per row: (term, multiplicity)
        selects: list[int] = []  # exact: which cumulative share the row's accepts use (-1: none)
        if h.exact:
            one_slice = term("poisson", 0, reactive, -1)
            for s in range(_SLICES):
                before = [(f, 1) for f in finishing[:s + 1]] + [(one_slice, s)]
                rows += [before, [*before[:-1], (one_slice, s + 1)]]
                selects += [s - 1, s]
            new: list[int | None] = []
        else:
            arrivals: list[tuple[int | None, int]] = []
            new = [term("binomial", 1, p * share, -1) for share in h.new_share]  # per offer
            for s in range(_SLICES):
                before = [(f, 1) for f in finishing[:s + 1]] + arrivals
                arrivals += [(term("binomial", o, p * h.pending_share[s], -1), 1),
                             (term("poisson", 0, reactive, -1), 1)]
                rows += [before, [(f, 1) for f in finishing[:s + 1]] + arrivals]
                selects += [s - 1, s]
        if reactive_rate > 0:
            tail_before = [*rows[-1], (term("binomial", h.agents, h.tail_finish, 1), 1)]
            rows += [tail_before, [*tail_before, (term("poisson", 0, reactive_rate * h.tail_s, -1), 1)]]
            selects += [_SLICES - 1, _SLICES - 1]
        self.terms = terms = list(index)
        self.fixed = np.zeros((len(rows), len(terms)))
        for r, row in enumerate(rows):
            for t, times in row:
                if t is not None:
                    self.fixed[r, t] += times
        means, variances = zip(*(_moments(t) for t in terms), strict=True) if terms else ((), ())
        self.mean0 = _product(self.fixed, np.array(means, dtype=float))  # plus the start, per call
        self.var0 = _product(self.fixed, np.array(variances, dtype=float))
        self.sign = np.array([1.0 if r % 2 else -1.0 for r in range(len(rows))])  # after - before
        # Offers: non-exact, row r subtracts Binomial(n, p·new_share[s]) for every slice s <= selects[r];
        # exact, Binomial(n + pending, p·(share_0 + ... + share_selects[r])).
        self.selects = np.array(selects)
        self.columns = self.selects + 1  # exact: column of the arrived shares (0: none yet)
        self.new = [t for t in new if t is not None]
        self.slices = np.array([[1.0 if 0 <= s <= selects[r] else 0.0 for s in range(_SLICES)]
                                for r in range(len(rows))])
        if not h.exact:
            per_offer = [p * share for share in h.new_share]
            self.mean_n = -_product(self.slices, np.array(per_offer))
            self.var_n = _product(self.slices, np.array([q * (1 - q) for q in per_offer]))
        # Which offer column each row takes, signed (after +1, before -1): a (columns, rows) matrix.
        self.signed_columns = np.zeros((_SLICES + 1, len(rows)))
        self.signed_columns[self.columns, np.arange(len(rows))] = self.sign
        self._transforms: dict[int, tuple[np.ndarray, ...]] = {}  # by window size

    def _prepared(self, needed: float) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                                np.ndarray]:
        """A window size of at least ``needed`` and, on its rfft grid: sin θ and cos θ; per offer column,
        the signed sum of the fixed transforms (exponentiated) of the rows that take it; (non-exact)
        the log transforms of one offer's accepts by the end of each slice, and the transforms
        themselves; the size's roots of unity; Parseval's weights of the rfft's frequencies. A size
        prepared before is reused while it is at most twice what is needed."""
        for size, ready in self._transforms.items():
            if needed <= size <= 2 * needed:
                return (size, *ready)
        size = _fft_size(needed)
        frequencies = size // 2 + 1
        theta = np.arange(frequencies) * (2 * np.pi / size)
        terms = list(self.terms)
        if not self.h.exact:
            terms += [("binomial", 1, self.h.p * share, -1) for share in self.h.new_share]
        logs = _log_transforms(terms, theta)
        fixed = np.exp(_product(self.fixed, logs[:len(self.terms)]))
        per_offer = np.cumsum(logs[len(self.terms):], axis=0) if not self.h.exact else fixed[:0]
        roots = np.exp(-2j * np.pi * np.arange(size) / size)
        # Σ_m p[m] c[m] = (p̂_0 ĉ_0 + 2 Σ Re p̂_f conj(ĉ_f) [+ p̂_N/2 ĉ_N/2 for an even size]) / size for
        # real p and c: the other half of the spectrum mirrors the rfft's.
        weights = np.full(frequencies, 2.0 / size)
        weights[0] = 1.0 / size
        if size % 2 == 0:
            weights[-1] = 1.0 / size
        ready = self._transforms[size] = (np.stack((np.sin(theta), np.cos(theta))), self.signed_columns @ fixed,
                                          per_offer, np.exp(per_offer), roots, weights)
        return (size, *ready)

    def costs(self, offers: list[int], start: int) -> list[tuple[float, float]]:
        """(abandons, abandons + late answers) for each offer count, ``start`` free agents minus
        queue at the beginning.

        Every row's expectation Σ_x P(X = x)·cost(x) is taken in the frequency domain (Parseval)
        over one window that holds every row of every offer count: the rows' transforms are known
        in closed form, the queue's cost over the window needs one rfft, and no distribution is
        ever transformed back."""
        h = self.h
        n = np.array(offers, dtype=float)[:, None]
        if h.exact:
            # Row r subtracts Binomial(n + pending, p·C) with C the share arrived by its slice
            # (column 0: none yet); the columns' transforms are computed once per offer count.
            shares = np.array([[0.0, *self._cumulative_shares(m)] for m in offers])  # (K, 1 + slices)
            q = h.p * shares[:, self.columns]  # (K, rows)
            trials = n + h.outstanding
            means, variances = start + self.mean0 - trials * q, self.var0 + trials * q * (1 - q)
        else:
            means, variances = start + self.mean0 + n * self.mean_n, self.var0 + n * self.var_n
        half = _WINDOW_SIGMAS * math.sqrt(float(variances.max())) + _WINDOW_PAD
        low = math.floor(float(means.min()) - half)  # the window: free minus queue = low, low + 1, ...
        needed = math.ceil(float(means.max()) + half) - low + 1
        size, sin_cos, signed_fixed, per_offer, one_offer, roots, weights = self._prepared(needed)
        # The offers' part, once per distinct arrived share (column 0: no accepts, transform 1).
        frequencies = sin_cos.shape[1]
        offer_part = np.empty((len(offers), _SLICES + 1, frequencies), dtype=complex)
        offer_part[:, 0] = 1.0
        if h.exact:
            accepts = h.p * shares[:, 1:, None]
            offer_part[:, 1:] = np.exp(trials[:, :, None] * _log_bernoulli(accepts, sin_cos[0], sin_cos[1], -1.0))
        else:
            # n + 1 offers (counts come in neighbouring pairs) take one offer's transform times n's:
            # a product costs a fraction of a complex exp.
            following = {k for k in range(1, len(offers)) if offers[k] == offers[k - 1] + 1}
            fresh = [k for k in range(len(offers)) if k not in following]
            offer_part[fresh, 1:] = np.exp(n[fresh, :, None] * per_offer)
            for k in sorted(following):
                np.multiply(offer_part[k - 1, 1:], one_offer, out=offer_part[k, 1:])
        # The queue's costs over the window (queue length -x; x >= 0: free agents, no cost), transformed,
        # conjugated, times z^(start - low) (z = e^(-iθ), a root of unity of the size): the
        # window's pmf has the transform of X - start times that.
        cost = h.queue_costs.cumulative(-(low + np.arange(size)))  # (2, size): abandons, abandons + late answers
        turns = ((start - low) * np.arange(frequencies)) % size
        cost_part = np.conj(np.fft.rfft(cost, axis=1)) * (roots[turns] * weights)
        totals = np.einsum("kcf,cf,tf->tk", offer_part, signed_fixed, cost_part).real
        # Costs only grow with arrivals: FFT noise must not make a zero cost -1e-17.
        return [(max(0.0, float(a)), max(0.0, float(b))) for a, b in totals.T.tolist()]

    def _cumulative_shares(self, offers: int) -> list[float]:
        """Exact: the share of all accepts to come that has arrived by the end of each slice."""
        h = self.h
        mean_new, mean_pending = offers * h.p, h.outstanding * h.p
        accepts = mean_new + mean_pending
        out, arrived = [], 0.0
        for s in range(_SLICES):
            share = (mean_new * h.new_share[s] + mean_pending * h.pending_share[s]) / accepts if accepts > 0 else 0.0
            arrived = 1.0 if s == _SLICES - 1 else min(1.0, arrived + share)
            out.append(arrived)
        return out


def _product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b without BLAS: for these small matrices its threads spin longer than the work takes."""
    return np.einsum("ij,j...->i...", a, b)


def _moments(term: tuple[str, int, float, int]) -> tuple[float, float]:
    """(mean with its sign, variance) of one count."""
    kind, trials, q, sign = term
    if kind == "binomial":
        return sign * trials * q, trials * q * (1 - q)
    return sign * q, q


def _log_transforms(terms: list[tuple[str, int, float, int]], theta: np.ndarray) -> np.ndarray:
    """log E[e^(-iθ·sign·X)] of each count (rows) at the angles ``theta``."""
    if not terms:
        return np.zeros((0, len(theta)), dtype=complex)
    q = np.array([t[2] for t in terms])[:, None]
    trials = np.array([t[1] for t in terms], dtype=float)[:, None]
    sign = np.array([t[3] for t in terms], dtype=float)[:, None]
    binomial = np.array([t[0] == "binomial" for t in terms])[:, None]
    cos, sin = np.cos(theta), np.sin(theta)
    poisson = q * (cos - 1) - 1j * sign * q * sin
    return np.where(binomial, trials * _log_bernoulli(q, sin, cos, sign), poisson)


def _log_bernoulli(q: np.ndarray, sin: np.ndarray, cos: np.ndarray, sign: np.ndarray | float) -> np.ndarray:
    """log(1 - q + q·e^(-iθ·sign)) from real functions (glibc's complex log sorts its terms
    for accuracy and costs several times more): log|·| = log1p(-2q(1-q)(1 - cos θ)) / 2."""
    modulus = np.maximum(1 - 2 * q * (1 - q) * (1 - cos), 1e-300)  # 0: Binomial(n, 1/2) at θ = π
    return 0.5 * np.log(modulus) + 1j * np.arctan2(-sign * q * sin, 1 - q + q * cos)


def _fft_size(at_least: float) -> int:
    """The smallest 2^a·3^b (at least 16) of at least ``at_least``: sizes the FFT handles fast."""
    return _FFT_SIZES[bisect.bisect_left(_FFT_SIZES, at_least)]


#: Every 2^a·3^b from 16 to 2^40: the window sizes (a constant table, not a cache).
_FFT_SIZES = sorted(2 ** a * 3 ** b for a in range(41) for b in range(26) if 16 <= 2 ** a * 3 ** b <= 2 ** 40)


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
