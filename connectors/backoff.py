"""Retry spacing shared by the sink's bulk requests and its writes to Kafka: exponential, full jitter."""

from __future__ import annotations

import random

# Never wait longer than this for a server's Retry-After: a bogus value must not park the sink.
MAX_RETRY_AFTER_S = 300.0


def full_jitter_delay(ceiling_s: float, retry_after_s: float | None = None, rng: random.Random | None = None) -> float:
    """Seconds to wait before the next attempt: "full jitter" — uniform over [0, ceiling].

    Spreading retries over the whole interval keeps many sinks from retrying in step after a
    shared outage. The server's ``Retry-After`` (capped at :data:`MAX_RETRY_AFTER_S`) is a floor.
    """
    floor = min(retry_after_s or 0.0, MAX_RETRY_AFTER_S)
    return max(floor, (rng or random).uniform(0.0, ceiling_s))


class Backoff:
    """The delays of one retried operation: full jitter under a ceiling that doubles from
    ``initial_s`` to ``maximum_s`` with each failure and starts over after a success."""

    def __init__(self, initial_s: float, maximum_s: float):
        self._initial_s = initial_s
        self._maximum_s = maximum_s
        self._ceiling_s = initial_s

    def next_delay(self, retry_after_s: float | None = None) -> float:
        """The wait before the next attempt after a failure (``retry_after_s``: a floor), and doubles the ceiling."""
        delay = full_jitter_delay(self._ceiling_s, retry_after_s)
        self._ceiling_s = min(self._ceiling_s * 2, self._maximum_s)
        return delay

    def reset(self) -> None:
        """The operation succeeded: the next failure starts from the initial ceiling again."""
        self._ceiling_s = self._initial_s
