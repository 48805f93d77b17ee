"""Small integer distributions as (offset, probabilities) pairs, truncated where mass is negligible.

``Pmf(offset, probs)`` gives P(X = offset + i) = probs[i]. The progressive algorithm's first
implementation combined its binomial and Poisson counts with these; the compiled kernels now work
on their characteristic functions, and these straightforward convolutions are the reference
kernels' (``streams.engine.reference``): what runs where the compiled ones cannot, and what
tests/unit/engine/test_engine_reference.py checks the compiled ones against.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

_TAIL_SIGMAS = 9.0
_NEGLIGIBLE = 1e-13


@dataclass(frozen=True)
class Pmf:
    """An integer distribution: ``probs[i]`` is the probability of ``offset + i``."""

    offset: int
    probs: tuple[float, ...]

    def shifted(self, by: int) -> Pmf:
        """The distribution of X + by."""
        return Pmf(self.offset + by, self.probs)

    def negated(self) -> Pmf:
        """The distribution of -X."""
        return Pmf(-(self.offset + len(self.probs) - 1), tuple(reversed(self.probs)))

    def plus(self, other: Pmf) -> Pmf:
        """The distribution of X + Y for independent X and Y (negligible tails dropped)."""
        if len(other.probs) == 1 and other.probs[0] == 1.0:
            return Pmf(self.offset + other.offset, self.probs)
        if len(self.probs) == 1 and self.probs[0] == 1.0:
            return Pmf(self.offset + other.offset, other.probs)
        out = [0.0] * (len(self.probs) + len(other.probs) - 1)
        theirs = other.probs
        for i, a in enumerate(self.probs):
            for j, b in enumerate(theirs, i):
                out[j] += a * b
        low, high = 0, len(out)
        while low < high - 1 and out[low] < _NEGLIGIBLE:
            low += 1
        while high - 1 > low and out[high - 1] < _NEGLIGIBLE:
            high -= 1
        return Pmf(self.offset + other.offset + low, tuple(out[low:high]))


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
