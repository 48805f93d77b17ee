"""When a target is decided: at once on a material change, else once per decide period.

Work per target, not per event: over 10,000 targets, each single-statistic record is usually its
target's only new event since the last tick, so deciding every target with news at every tick
costs about a decision per event. Instead each target is decided at most once per *decide
period* (a material change is decided at once, whatever the period: :mod:`streams.node.stat_intake`).
The period starts at ``worker.decide_interval_s``. Under load it grows — by half whenever deciding
took more than :data:`DECIDE_SHARE` of the worker's time since the previous pass — so the intake
keeps the rest; it shrinks back when deciding takes less than half that share. It never passes
:data:`MAX_PERIOD_SHARE` of the refresh period, so a decision still reflects statistics at most
about one refresh period old.
"""

from __future__ import annotations

#: The gauges whose change can make a decision material (:meth:`StatIntake._fold_decoded`).
MATERIAL_GAUGES = frozenset({"ready_agents", "logged_in_agents"})


#: Logged-in agents changing by at least this share (and at least one agent) resize the group materially.
MATERIAL_LOGGED_IN_SHARE = 0.1


def material_gauge_change(statistic: str, before: float | None, after: float | None) -> bool:
    """Whether a gauge's move from ``before`` to ``after`` needs a decision now: ready agents reaching or
    leaving zero, logged-in agents reaching or leaving zero or changing by a tenth (a group opening,
    closing or resizing; one agent more in a group of 500 can wait for the decide period)."""
    before, after = before or 0.0, after or 0.0
    if (before > 0) != (after > 0):
        return True
    return statistic == "logged_in_agents" and abs(after - before) >= max(1.0, MATERIAL_LOGGED_IN_SHARE * before)


#: Under load the decide period grows so that deciding takes at most about this share of the worker's time.
DECIDE_SHARE = 0.25
#: The longest decide period, as a share of ``targets.refresh_period_s`` (the rest is the pipeline's latency).
MAX_PERIOD_SHARE = 0.75
#: How much the period grows (or shrinks) per pass when deciding takes too much (or little) time.
STEP = 1.5


class DecideCadence:
    """The current decide period, adjusted after every decision pass from the time it took."""

    def __init__(self, min_period_s: float, refresh_period_s: float, now_s: float):
        self.min_period_s = min_period_s
        self.max_period_s = max(min_period_s, refresh_period_s * MAX_PERIOD_SHARE)
        self.period_s = min_period_s
        self._since_s = now_s

    def passed(self, deciding_s: float, now_s: float) -> float:
        """A pass (and any urgent ones since the last) spent ``deciding_s``: adjust and return the period."""
        elapsed = now_s - self._since_s
        self._since_s = now_s
        if elapsed <= 0:
            return self.period_s
        share = deciding_s / elapsed
        if share > DECIDE_SHARE:
            self.period_s = min(self.max_period_s, self.period_s * STEP)
        elif share < DECIDE_SHARE / 2:
            self.period_s = max(self.min_period_s, self.period_s / STEP)
        return self.period_s
