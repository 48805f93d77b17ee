"""The reactive admission probability the dual algorithms publish.

Two views, the more generous wins:

- now: an agent is free and not promised to the accepts expected from pending offers and from
  the period's new ones — a reactive interaction is answered at once;
- over the next handle time: Erlang A (``queueing.erlang_a_rate``) says how many interactions per
  second the group can take at the goal and how many it then holds on average, so it can take
  ``rate * handle`` more, less whatever it holds now beyond that average. The share of the
  reactive forecast for that time which fits is admitted (the forecast counts as at least one
  interaction, so a full group refuses even when no reactive traffic was seen lately).

The result is 1 in normal operation, falls when reactive traffic alone exceeds the group or a
burst has filled it, and is 0 while a small group is full and a reactive interaction would wait
for minutes. Looking a handle time ahead keeps it from flickering with every accept, as a
per-period check did (it refused a quarter of the reactive traffic of a 50-agent group that had
room for it).

Reactive visitors come first (``PacingSettings.reactive_first``, the default): a refused visitor
is a lost customer for certain, an admitted one is lost only if they run out of patience, and a
work-conserving group answers no fewer by admitting. So the admission (``first_admission``)
counts no invitation - neither the period's new offers nor those still unanswered - and stays 1
while a newcomer is answered with a chance of at least ``ADMIT_CHANCE`` (0.2): with ``k`` ahead
of them beyond the free agents in a full group of ``c`` agents, handle time ``h`` and exponential
patience ``θ``, that chance is ``c·θ / (c·θ + k·h)`` (each step up the queue races one abandon of
their own against a completion or an abandon ahead: the product telescopes). Below, it falls as
the chance over 0.2. And while it is below 1 the period makes no offers (``reactive_first``): proactive
offers go to zero before any reactive visitor is refused. Counting the offers first (engine v2's
order, the setting False, the two views above) let a small group turn most reactive visitors
away while it kept inviting: 3 agents at acceptance 0.7 with 25 % reactive load refused 94.5 %
of them, 8 agents 14-21 % (issue 20).
"""

from __future__ import annotations

from streams.engine.plan import sizing_acceptance
from streams.engine.queueing import SteadyState
from streams.engine.rates import Observation


def reactive_admission(obs: Observation, steady: SteadyState, offers: int) -> float:
    """Probability that a new reactive interaction is admitted (two decimals), once the
    period's ``offers`` are made: the same free agent is not promised twice."""
    held = obs.busy + obs.waiting + _promised(obs, offers)
    room = steady.arrival_rate * obs.handle_time_s + steady.in_system - held
    forecast = obs.reactive_rate * obs.handle_time_s  # (min/max as conditional expressions: see rates.observe)
    ahead = room / (forecast if forecast > 1.0 else 1.0)
    share = ahead if ahead > 0.0 else 0.0
    free = free_now(obs, offers)
    share = free if free > share else share
    # (0 and 1, the usual answers, are their own rounding: round(x, 2) formats and parses)
    return 1.0 if not share < 1.0 else share if share == 0.0 else round(share, 2)


#: Reactive visitors first: a newcomer is admitted for certain while their chance of being answered
#: is at least this, and with that chance over it below (a refusal is a lost customer for certain:
#: only a nearly hopeless queue is worth refusing into; at one half, 2-agent groups refused 60 % of
#: the visitors who found both agents busy and lost more than with every visitor admitted).
ADMIT_CHANCE = 0.2


def first_admission(obs: Observation) -> float:
    """The admission with reactive visitors first (two decimals): 1 while a free agent waits or a
    newcomer is answered with a chance of at least ``ADMIT_CHANCE``, then that chance over it."""
    k = obs.waiting + 1 - obs.ready  # position beyond the free agents
    if k <= 0:
        return 1.0
    agents = obs.ready + obs.busy
    patience_capacity = agents * obs.patience_s
    share = patience_capacity / (patience_capacity + k * obs.handle_time_s) / ADMIT_CHANCE
    return 1.0 if not share < 1.0 else round(share, 2)


def reactive_first(offers: int, admission: float) -> int:
    """The period's offers when reactive visitors come first: none while any would be refused."""
    return offers if admission >= 1.0 else 0


def free_now(obs: Observation, offers: int) -> float:
    """The "now" view alone, 0 to 1: is an agent free and not promised to expected accepts?"""
    free = obs.ready - obs.waiting - _promised(obs, offers)  # (min/max: see rates.observe)
    # (0 and 1, the usual answers, are their own rounding: round(x, 2) formats and parses)
    return 0.0 if not free > 0.0 else 1.0 if not free < 1.0 else round(free, 2)


def _promised(obs: Observation, offers: int) -> float:
    return (obs.outstanding + offers) * sizing_acceptance(obs)
