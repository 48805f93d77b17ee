"""Cost of the sink's entity per decision: the bare dict against the one checked by ``ActionTarget``.

``python -m tests.benchmarks.sink_entity`` builds the bulk entity of one decision (13 userData
pairs, as the node writes them) ``--count`` times, both ways, and prints CPU µs per decision,
the best of ``--rounds`` interleaved rounds (``time.process_time_ns``: the machine is shared):

- ``bare dict``: the entity as the sink built it before, unchecked;
- ``checked``: :func:`connectors.entities.action_target`, the same dict validated against
  :class:`connectors.bulk_models.ActionTarget` (what the sink does now, once per decision).

For a load-independent count, run one side under callgrind with ``--only bare|checked`` and
subtract a ``--count 0`` run: 62k instructions per decision bare, 177k checked (2026-11-26).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from connectors.entities import action_target, user_data
from schemas import ActionTargetDecision


def _decision() -> ActionTargetDecision:
    return ActionTargetDecision(
        tenant="acme", target_id="vq-sales-chat", name="Sales chat", state="active",
        supported_media_types=["webchat", "messaging"], service_level_percentage=0.8,
        service_level_duration_ms=20_000, short_abandon_threshold=10, description="the sales queue",
        allowed_offers=4, reactive_admission=0.75, ready_agents=3, busy_agents=12, logged_in_agents=15,
        waiting_interactions=2, outstanding_offers=1, acceptance_rate=0.62, algorithm="SUPER_PROGRESSIVE",
        computed_at=1_700_000_000_000, node="node-1", figures={"horizonS": "30", "forecast": "2.5"},
    )


def bare(decision: ActionTargetDecision) -> dict[str, Any]:
    """The entity as the sink built it before it was checked against the model."""
    return {
        "id": decision.target_id, "name": decision.name, "state": decision.state,
        "supportedMediaTypes": list(decision.supported_media_types),
        "serviceLevel": {"percentage": decision.service_level_percentage,
                         "durationMs": decision.service_level_duration_ms},
        "shortAbandonThreshold": decision.short_abandon_threshold,
        "description": decision.description, "userData": user_data(decision),
    }


def main(argv: list[str] | None = None) -> None:
    """Print the table (or, with ``--only``, run one side for callgrind)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", choices=["bare", "checked"])
    args = parser.parse_args(argv)
    decision = _decision()
    assert bare(decision) == action_target(decision)  # the same entity either way
    sides: dict[str, Callable[[ActionTargetDecision], dict[str, Any]]] = {"bare": bare, "checked": action_target}
    if args.only:
        for _ in range(args.count):
            sides[args.only](decision)
        return
    best = dict.fromkeys(sides, float("inf"))
    for _ in range(args.rounds):
        for name, build in sides.items():
            started = time.process_time_ns()
            for _ in range(args.count):
                build(decision)
            best[name] = min(best[name], (time.process_time_ns() - started) / args.count / 1000)
    print(f"| entity per decision | CPU µs (best of {args.rounds}) |\n|---|---:|")
    print(f"| bare dict | {best['bare']:.2f} |\n| checked (ActionTarget) | {best['checked']:.2f} |")


if __name__ == "__main__":
    main()
