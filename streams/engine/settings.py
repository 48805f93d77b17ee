"""Per-target pacing options, with the defaults a contact centre would start from."""

from __future__ import annotations

from dataclasses import dataclass

from schemas.models import (  # the algorithm names are the records' contract; re-exported for the engine
    ALGORITHMS,
    PREDICTIVE_B,
    PREDICTIVE_B_DUAL,
    SUPER_PROGRESSIVE,
    SUPER_PROGRESSIVE_DUAL,
)

__all__ = [
    "ABANDONMENT_RATE",
    "ALGORITHMS",
    "BUSY_FACTOR",
    "PREDICTIVE_B",
    "PREDICTIVE_B_DUAL",
    "SUPER_PROGRESSIVE",
    "SUPER_PROGRESSIVE_DUAL",
    "PacingSettings",
]
ABANDONMENT_RATE = "ABANDONMENT_RATE"
BUSY_FACTOR = "BUSY_FACTOR"


@dataclass(frozen=True)
class PacingSettings:
    """How one target is paced (defaults come from configuration, overrides from pacing.targets).

    ``algorithm`` None, "" or "AUTO" chooses by group size and predicted occupancy:
    ``SUPER_PROGRESSIVE`` up to ``auto_large_group`` logged-in agents and for larger groups that
    Erlang A would keep less busy than ``auto_predictive_occupancy``, ``PREDICTIVE_B`` otherwise,
    each in its ``_DUAL`` form once reactive traffic is observed. ``optimization_goal`` is a percentage: the abandonment
    ceiling for ``ABANDONMENT_RATE`` (every abandon counted unless ``count_short_abandons`` is
    False), the target agent occupancy for ``BUSY_FACTOR``.
    """

    algorithm: str | None = None
    optimization_target: str = ABANDONMENT_RATE
    optimization_goal: float = 3.0
    #: Dual modes: the share of the group's capacity proactive offers may take (1 = all of it
    #: that the forecast reactive traffic leaves; 0.6 keeps at least 40 % for reactive traffic).
    proactive_ratio: float = 1.0
    #: Offer acceptance rate assumed until offers have been made.
    acceptance_prior: float = 0.3
    #: Service level target: this share of interactions answered within the duration.
    service_level_percentage: float = 0.8
    service_level_duration_ms: int = 20_000
    #: Abandons within this many seconds are short: excluded from abandonment and service level.
    short_abandon_threshold_s: float = 10.0
    #: The allowed offers are for one refresh period.
    refresh_period_s: float = 10.0
    #: Rolling window for the rates derived from counters (at most 1800 s are kept).
    rate_window_s: float = 900.0
    #: Priors used until the statistics say otherwise.
    handle_time_prior_s: float = 300.0
    patience_prior_s: float = 60.0
    #: Mean time a visitor takes to accept or decline an offer.
    offer_response_s: float = 5.0
    #: Hold offers back to keep the service level target as well as the optimization goal.
    enforce_service_level: bool = True
    #: Hard ceiling on offers per agent (ready + busy) in one refresh period.
    max_offers_per_agent: int = 10
    #: Event-time age after which a target is paced inactive (0 disables the check).
    stale_after_s: float = 300.0
    #: AUTO: groups with more logged-in agents than this may use PREDICTIVE_B ...
    auto_large_group: int = 30
    #: ... once Erlang A, which PREDICTIVE_B paces by, keeps them at least this busy within the goal
    #: (its Poisson arrivals make it leave the rest of the capacity unused; SUPER_PROGRESSIVE paces
    #: the group's own variance). 1 keeps every group on SUPER_PROGRESSIVE, 0 restores the plain
    #: size split. At 40 agents PREDICTIVE_B reached 83 % occupancy at 0.0 % abandonment where
    #: SUPER_PROGRESSIVE reached 95 % at 1.5 % (goal 3 %).
    auto_predictive_occupancy: float = 0.95
    #: The abandonment goal counts every abandon, short ones too (True), or only those longer than
    #: ``short_abandon_threshold_s`` (False: the Genesys definition). Excluding them let a
    #: 500-agent group lose 8-9 % of its visitors while 0.3-0.5 % were counted (issue 9); the
    #: decision's figures carry both observed rates either way.
    count_short_abandons: bool = True
    #: Dual forms: reactive visitors come first (True): while capacity is short the period's
    #: proactive offers go to zero before the reactive admission falls below 1, so no reactive
    #: visitor is refused in a period that makes offers. False reverses the order for a business
    #: that prefers its invitations: the period's offers are counted as taking their agents first,
    #: and the admission falls below 1 while they are made (engine v2; a 3-agent group at
    #: acceptance 0.7 with 25 % reactive load then turned away 95 % of its reactive visitors).
    reactive_first: bool = True

    def __post_init__(self) -> None:
        """Reject option values the engine cannot pace with (a clear error, not a silent clamp)."""
        if not 0.0 <= self.auto_predictive_occupancy <= 1.0:
            raise ValueError(f"auto_predictive_occupancy is a share in [0, 1], not {self.auto_predictive_occupancy!r}")
        if not isinstance(self.count_short_abandons, bool):
            raise ValueError(f"count_short_abandons must be true or false, not {self.count_short_abandons!r}")
        if not isinstance(self.reactive_first, bool):
            raise ValueError(f"reactive_first must be true or false, not {self.reactive_first!r}")

    @property
    def optimizes_busy_factor(self) -> bool:
        """True for ``BUSY_FACTOR``; anything else (also the seed's ABANDONEMENT_RATE) is abandonment."""
        return self.optimization_target == BUSY_FACTOR

    @property
    def counted_short_s(self) -> float:
        """The short-abandon threshold the abandonment goal is met with: 0 when every abandon counts."""
        return 0.0 if self.count_short_abandons else self.short_abandon_threshold_s

    @property
    def goal_fraction(self) -> float:
        """The optimization goal as a fraction, kept within sensible bounds."""
        # (min/max as conditional expressions: this runs in every decision, and a builtin min() or
        # max() call costs several times the comparison in CPython 3.11)
        goal = self.optimization_goal / 100
        if self.optimization_target == BUSY_FACTOR:
            goal = goal if goal > 0.05 else 0.05
            return goal if goal < 1.0 else 1.0
        goal = goal if goal > 0.001 else 0.001
        return goal if goal < 0.5 else 0.5
