"""Queueing formulas with customer patience: what happens to an interaction that has to wait.

Model: ``agents`` agents, exponential handle times with mean ``handle_s``, FIFO queue,
exponential patience with mean ``patience_s``. An abandon within ``short_s`` seconds is short
and does not count (numerator or denominator); an answer after ``sl_s`` seconds misses the
service level. Two views:

- ``position_costs``: for an interaction that finds ``j`` others ahead of it in the queue with
  every agent busy — the chance it abandons (not short) and the chance it is answered late.
  Its virtual wait is a sum of exponential stages (rate agents/handle + i/patience while ``i``
  are ahead), approximated by a gamma distribution with the same mean and stage count; the
  gamma tails are exact Poisson sums up to 60 stages, Wilson-Hilferty beyond.
- ``erlang_a_rate``: the steady state for Poisson arrivals — Erlang C (domain.md §6) extended
  with exponential patience, i.e. Erlang A — and the largest arrival rate that keeps an
  abandonment goal and a service level. (Plain Erlang C ignores abandonment, needs load < agents
  and made PREDICTIVE_B ten points of occupancy too cautious at 50 agents.)

Cost: the arithmetic runs in the compiled kernels (``_kernels.c``), one call per question with
plain numbers: a cold decision used to spend its time on a few hundred small numpy calls, not on
arithmetic. Position tables are priced on demand (a decision rarely looks past the first few
dozen of a 500-agent table's 1,060 positions). ``erlang_a_rate`` finds the rate by Newton's
method on log(rate) with exact derivatives (the birth-death weights are c_k·rate^k, so every
figure is a weighted mean whose derivative is a covariance with k): 3-5 evaluations of the
steady state (the last, tiny step is extrapolated to first order), each one pass over the
weights from the chain's mode out to the first negligible queue weight. Both are cached on their
arguments here: decide() calls them for every changed target.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from functools import lru_cache

from streams.engine.kernels import kernels as _kernels


class QueueCosts:
    """Cumulative costs of a queue of length z: expected counted (not short) abandons, late
    answers and abandons of any length among its z interactions (``abandon``, ``late``,
    ``lost``: arrays indexed by z = 0..positions).

    The kernels price the positions as lookups reach them; ``table`` is what the other kernels
    (``horizon``) are given to find the same table.
    """

    def __init__(self, agents: int, handle_s: float, patience_s: float, short_s: float, sl_s: float,
                 positions: int):
        if agents < 1 or positions < 1 or handle_s <= 0 or patience_s <= 0 or short_s < 0 or sl_s < 0:
            raise ValueError(f"position costs need agents >= 1, positions >= 1, handle and patience > 0, "
                             f"thresholds >= 0: {(agents, handle_s, patience_s, short_s, sl_s, positions)}")
        self.agents = agents
        self.positions = positions
        #: The kernels' key of this table: (agents, handle_s, patience_s, short_s, sl_s, positions).
        self.table = (agents, float(handle_s), float(patience_s), float(short_s), float(sl_s), positions)
        self._full: tuple[tuple[float, ...], ...] | None = None

    def _rows(self) -> tuple[tuple[float, ...], ...]:
        """The whole table, rows abandon, late, lost (every position priced)."""
        if self._full is None:
            values = array("d", _kernels.position_table(*self.table, self.positions))
            width = self.positions + 1
            self._full = tuple(tuple(values[r * width:(r + 1) * width]) for r in range(3))
        return self._full

    @property
    def abandon(self) -> tuple[float, ...]:
        """The full cumulative table of counted abandons."""
        return self._rows()[0]

    @property
    def late(self) -> tuple[float, ...]:
        """The full cumulative table of late answers."""
        return self._rows()[1]

    @property
    def lost(self) -> tuple[float, ...]:
        """The full cumulative table of abandons of any length."""
        return self._rows()[2]

    def at(self, length: int) -> tuple[float, float]:
        """Expected (abandons, late answers) among ``length`` queued interactions; beyond the table
        every further position costs like the last one."""
        return _kernels.position_at(*self.table, length)


@lru_cache(maxsize=256)
def position_costs(agents: int, handle_s: float, patience_s: float, short_s: float, sl_s: float,
                   positions: int) -> QueueCosts:
    """Cumulative abandon, late-answer and any-abandon chances of queue positions 0..positions-1
    (priced as they are looked up)."""
    return QueueCosts(agents, handle_s, patience_s, short_s, sl_s, positions)


@dataclass(frozen=True, init=False)
class SteadyState:
    """Erlang A figures at one arrival rate (per second).

    Frozen, with its own ``__init__`` (the generated one's parameters): it stores the fields in one
    call, not one ``object.__setattr__`` each, as a cold decision's interpreter time counts."""

    arrival_rate: float
    in_system: float
    abandonment: float
    service_level: float

    def __init__(self, arrival_rate: float, in_system: float, abandonment: float, service_level: float) -> None:
        self.__dict__.update(arrival_rate=arrival_rate, in_system=in_system, abandonment=abandonment,
                             service_level=service_level)


def steady_state(agents: int, arrival_rate: float, handle_s: float, patience_s: float,
                 costs: QueueCosts) -> SteadyState:
    """Erlang A (M/M/N+M): the birth-death steady state, costs of each queue position by PASTA.

    ``abandonment`` counts abandons that are not short, over answered + those abandons; the
    service level is answered in time over the same denominator.
    """
    _, _, _, short_s, sl_s, positions = costs.table
    return SteadyState(*_kernels.steady_state(agents, arrival_rate, handle_s, patience_s, short_s, sl_s, positions))


@lru_cache(maxsize=16384)  # a SteadyState is ~100 bytes: a pass over a 10,000-target fleet stays cached
def erlang_a_rate(agents: int, handle_s: float, patience_s: float, short_s: float, sl_s: float,
                  max_abandonment: float, min_service_level: float) -> SteadyState:
    """The largest Poisson arrival rate whose Erlang A steady state keeps both targets.

    Searched up to twice the group's service rate. Safeguarded Newton on u = log λ for the
    tighter of the two conditions (log abandonment = log goal, log(1 - SL) = log(1 - target)):
    a step that leaves the bracket of known good and bad rates bisects it instead. Stops when a
    step moves u by less than 1e-10, at a rate that keeps both targets.
    """
    return SteadyState(*_kernels.erlang_a_rate(agents, handle_s, patience_s, short_s, sl_s, max_abandonment,
                                               min_service_level))
