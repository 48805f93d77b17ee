"""Target definitions written through the API: validated exactly as ``pacing.targets`` records are.

A PUT body is a TargetConfig JSON object, read by the codec's own JSON guards (depth, field count,
integer length, no NaN) and validated by :class:`schemas.TargetConfig`; ``target_id`` and ``tenant``
may be left out (the path's id, the deployment's tenant) but must match when given. The record is
then encoded as Avro and decoded again by :func:`schemas.decode_target_config` — the call every
worker makes when it reads the topic — so what the API accepts, every worker applies. A DELETE is
the topic's tombstone. The answer (202) comes once Kafka acknowledged the record.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from pydantic import ValidationError

from schemas import DecodeError, TargetConfig, decode, decode_target_config, encode_target_config
from streams.api.problems import ProblemError, field_problems

log = logging.getLogger(__name__)

#: ``send(topic, key, value)``: returns once Kafka acknowledged the record, raises if it did not.
Send = Callable[[str, bytes, bytes | None], Awaitable[None]]

_JSON_START = b"{"
_WHITESPACE = b" \t\r\n"


class DefinitionWriter:
    """Validates definitions and writes them (or their deletion) to ``pacing.targets``.

    ``tenant`` is the deployment's (a definition for another is refused), ``topic`` its ``pacing.targets``;
    a write not acknowledged within ``timeout_s`` (``worker.send_timeout_s``) fails.
    """

    def __init__(self, tenant: str, topic: str, send: Send, timeout_s: float):
        self.tenant = tenant
        self.topic = topic
        self._send = send
        self._timeout_s = timeout_s

    def validate(self, target_id: str, body: bytes) -> TargetConfig:
        """The definition ``body`` gives ``target_id``; raises :class:`ProblemError` 400 or 422."""
        if not body.lstrip(_WHITESPACE).startswith(_JSON_START):
            raise ProblemError(400, "the body must be a JSON object (a TargetConfig)",
                               errors=[{"field": "body", "reason": "not a JSON object"}])
        try:
            data = decode("TargetConfig", body, allow_json=True)
        except DecodeError as exc:
            raise ProblemError(400, exc.reason, errors=[{"field": "body", "reason": exc.reason}]) from None
        problems = []
        if data.setdefault("target_id", target_id) != target_id:
            problems.append({"field": "target_id", "reason": "differs from the target id in the path"})
        if data.setdefault("tenant", self.tenant) != self.tenant:
            problems.append({"field": "tenant", "reason": f"this deployment's tenant is {self.tenant!r}"})
        try:
            config = TargetConfig.model_validate(data)
        except ValidationError as exc:
            problems += field_problems(exc)
            config = None
        if problems or config is None:
            raise ProblemError(422, "; ".join(f"{p['field']}: {p['reason']}" for p in problems), errors=problems)
        try:  # what every worker will do with the record: the same decoder
            decode_target_config(encode_target_config(config))
        except DecodeError as exc:
            raise ProblemError(422, exc.reason, errors=[{"field": "body", "reason": exc.reason}]) from None
        return config

    async def put(self, target_id: str, body: bytes) -> dict[str, str]:
        """Validate and write the definition; the :class:`~streams.api.models.DefinitionAccepted` answer."""
        config = self.validate(target_id, body)
        await self._write(target_id, encode_target_config(config))
        return {"target_id": target_id, "operation": "put", "topic": self.topic}

    async def delete(self, target_id: str) -> dict[str, str]:
        """Write the tombstone that deletes ``target_id``'s definition."""
        await self._write(target_id, None)
        return {"target_id": target_id, "operation": "delete", "topic": self.topic}

    async def _write(self, target_id: str, value: bytes | None) -> None:
        try:
            await asyncio.wait_for(self._send(self.topic, target_id.encode(), value), self._timeout_s)
        except Exception as exc:
            log.error("API: definition of %r not written to %s: %s: %s", target_id[:80], self.topic,
                      type(exc).__name__, exc)
            raise ProblemError(503, f"Kafka did not acknowledge the write to {self.topic}; nothing was changed, "
                                    "try again", headers={"Retry-After": "5"}) from None
