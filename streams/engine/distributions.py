"""Small integer distributions as (offset, probabilities) pairs, truncated where mass is negligible.

``Pmf(offset, probs)`` gives P(X = offset + i) = probs[i]. Enough for the handful of binomial
and Poisson counts the progressive algorithm combines, without numpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

_TAIL_SIGMAS = 9.0


@dataclass(frozen=True)
class Pmf:
    """An integer distribution: ``probs[i]`` is the probability of ``offset + i``."""

    offset: int
    probs: tuple[float, ...]

    def mean(self) -> float:
        """Expected value."""
        return self.offset + sum(i * p for i, p in enumerate(self.probs))

    def shifted(self, by: int) -> Pmf:
        """The distribution of X + by."""
        return Pmf(self.offset + by, self.probs)

    def negated(self) -> Pmf:
        """The distribution of −X."""
        return Pmf(-(self.offset + len(self.probs) - 1), tuple(reversed(self.probs)))

    def plus(self, other: Pmf) -> Pmf:
        """The distribution of X + Y for independent X and Y."""
        out = [0.0] * (len(self.probs) + len(other.probs) - 1)
        for i, a in enumerate(self.probs):
            if a:
                for j, b in enumerate(other.probs):
                    out[i + j] += a * b
        return Pmf(self.offset + other.offset, tuple(out))


def point(value: int) -> Pmf:
    """A constant."""
    return Pmf(value, (1.0,))


def binomial(trials: int, p: float) -> Pmf:
    """Binomial(trials, p), truncated to the mean ± 9 standard deviations."""
    if trials <= 0 or p <= 0:
        return point(0)
    if p >= 1:
        return point(trials)
    mean = trials * p
    spread = _TAIL_SIGMAS * math.sqrt(mean * (1 - p)) + 2
    low, high = max(0, int(mean - spread)), min(trials, int(mean + spread) + 1)
    log_p, log_q = math.log(p), math.log1p(-p)
    base = math.lgamma(trials + 1)
    probs = [
        math.exp(base - math.lgamma(k + 1) - math.lgamma(trials - k + 1) + k * log_p + (trials - k) * log_q)
        for k in range(low, high + 1)
    ]
    return Pmf(low, tuple(probs))


def poisson(mean: float) -> Pmf:
    """Poisson(mean), truncated to the mean ± 9 standard deviations."""
    if mean <= 0:
        return point(0)
    spread = _TAIL_SIGMAS * math.sqrt(mean) + 3
    low, high = max(0, int(mean - spread)), int(mean + spread) + 1
    log_mean = math.log(mean)
    probs = [math.exp(k * log_mean - mean - math.lgamma(k + 1)) for k in range(low, high + 1)]
    return Pmf(low, tuple(probs))
