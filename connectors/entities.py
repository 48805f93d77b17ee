"""The ActionTarget entity the endpoint receives, made from a pacing decision record.

The pacing figures travel in ``userData`` as ``{key, value}`` string pairs, the only place
the Genesys model leaves for them. Keys are stable and documented in the README.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from schemas import ActionTargetDecision


def user_data(decision: ActionTargetDecision) -> list[dict[str, str]]:
    """The pacing figures as userData pairs, fixed keys first, engine extras after."""
    figures = {
        "allowedOffers": str(decision.allowed_offers),
        "reactiveAdmission": f"{decision.reactive_admission:.4f}",
        "readyAgents": str(decision.ready_agents),
        "busyAgents": str(decision.busy_agents),
        "loggedInAgents": str(decision.logged_in_agents),
        "waitingInteractions": str(decision.waiting_interactions),
        "outstandingOffers": str(decision.outstanding_offers),
        "acceptanceRate": f"{decision.acceptance_rate:.4f}",
        "algorithm": decision.algorithm,
        "computedAt": datetime.fromtimestamp(decision.computed_at / 1000, UTC).isoformat(timespec="milliseconds"),
        "node": decision.node,
    }
    for key, value in sorted(decision.figures.items()):
        figures.setdefault(key, value)
    return [{"key": key, "value": value} for key, value in figures.items()]


def action_target(decision: ActionTargetDecision) -> dict[str, Any]:
    """The JSON entity for ``POST …/actiontargets/bulk``."""
    return {
        "id": decision.target_id,
        "name": decision.name,
        "state": decision.state,
        "supportedMediaTypes": list(decision.supported_media_types),
        "serviceLevel": {
            "percentage": decision.service_level_percentage,
            "durationMs": decision.service_level_duration_ms,
        },
        "shortAbandonThreshold": decision.short_abandon_threshold,
        "description": decision.description,
        "userData": user_data(decision),
    }
