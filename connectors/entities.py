"""The ActionTarget entity the endpoint receives, made from a pacing decision record.

The pacing figures travel in ``userData`` as ``{key, value}`` string pairs, the only place
the Genesys model leaves for them. Keys are stable and documented in docs/contracts.md.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from connectors.bulk_models import ActionTarget
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
    """The JSON entity for ``POST …/actiontargets/bulk``, checked against :class:`ActionTarget`.

    The model is the request's contract (:mod:`connectors.bulk_models`, which the emulator
    enforces too): an entity that breaks it raises ``pydantic.ValidationError`` here, at intake,
    so the sink sends that one decision to the error topic instead of the endpoint rejecting a
    whole batch. The dict is built directly and only validated (no model dump): about 2.8x the
    instructions of the unchecked dict, paid per decision, not per stat event.
    """
    entity = {
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
    ActionTarget.model_validate(entity)
    return entity
