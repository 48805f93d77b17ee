"""Decisions as validated models, for tests: what a reader of ``pacing.actiontargets`` gets.

The node builds and publishes plain Avro-shaped records (:func:`streams.node.decisions.decision_record`):
a pydantic model per target per tick cost more than the engine's decision itself, so the product has
no use for the model form. Tests do: validating the record checks it against the schema's model, and
the model's attributes make the assertions read as the contract does.
"""

from __future__ import annotations

from typing import Any

from schemas import ActionTargetDecision
from streams.engine import TargetState
from streams.node.decisions import decision_record, record_fingerprint
from streams.runtime.config import TargetDefaults


def build_decision(
    tenant: str,
    node: str,
    state: TargetState,
    defaults: TargetDefaults,
    now_ms: int,
    definition: dict[str, Any] | None = None,
    stale: bool = False,
) -> ActionTargetDecision:
    """The validated decision model for one target (same content as :func:`decision_record`)."""
    return ActionTargetDecision.model_validate(
        decision_record(tenant, node, state, defaults, now_ms, definition, stale))


def decision_fingerprint(decision: ActionTargetDecision) -> tuple[Any, ...]:
    """The fingerprint of a decision model (see :func:`streams.node.decisions.record_fingerprint`)."""
    return record_fingerprint(decision.to_avro_dict())
