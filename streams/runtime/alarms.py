"""Alarm state: raised once when a condition starts, cleared once when it ends — no flood.

Both the pacing nodes and the sink keep an :class:`AlarmBoard`; it decides *whether* a
transition happened and builds the Alarm record, and the caller publishes it to
``pacing.alarms`` keyed by ``name:scope``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from schemas import Alarm, AlarmState, encode_alarm

# The seed's alarm names, plus our own.
GC_LATENCY = "GcLatency"
GC_FREQUENCY = "GcFrequency"
HEAP_MEMORY_USAGE = "HeapMemoryUsage"
PACING_REQUESTS_FAILED = "PacingRequestsFailed"
PACING_RESPONSE_TARGET_ERROR = "PacingResponseTargetError"
PACING_RESPONSE_VALIDATION_ERROR = "PacingResponseValidationError"
TARGET_STALE = "TargetStale"
PACING_DECISION_FAILED = "PacingDecisionFailed"
# The topics a process needs are gone (e.g. a broker restarted on memory storage); it recreates them.
TOPICS_MISSING = "PacingTopicsMissing"
# A process cannot write its results to Kafka (sends fail); nothing is committed meanwhile.
KAFKA_UNAVAILABLE = "PacingKafkaUnavailable"


@dataclass(frozen=True)
class AlarmMessage:
    """An encoded alarm transition, ready to publish."""

    key: bytes
    value: bytes
    alarm: Alarm
    #: For a clear: the raised alarm it ends (None when forced), so an unpublished clear can be undone.
    previous: Alarm | None = None


class AlarmBoard:
    """The alarms currently raised by one process, keyed by (name, scope)."""

    def __init__(self, tenant: str, node: str):
        self.tenant = tenant
        self.node = node
        self._raised: dict[tuple[str, str], Alarm] = {}

    @property
    def raised(self) -> list[Alarm]:
        """Every alarm currently raised."""
        return list(self._raised.values())

    def is_raised(self, name: str, scope: str) -> bool:
        """Whether the alarm is currently raised."""
        return (name, scope) in self._raised

    def raise_alarm(
        self,
        name: str,
        scope: str,
        message: str,
        severity: str = "major",
        observed_value: float | None = None,
        threshold: float | None = None,
    ) -> AlarmMessage | None:
        """The record to publish if the alarm was not raised yet, else None."""
        if (name, scope) in self._raised:
            return None
        alarm = self._alarm(name, scope, AlarmState.RAISED, message, severity, observed_value, threshold)
        self._raised[(name, scope)] = alarm
        return self._message(alarm)

    def clear_alarm(
        self, name: str, scope: str, message: str, observed_value: float | None = None, force: bool = False
    ) -> AlarmMessage | None:
        """The record to publish if the alarm was raised here, else None.

        ``force`` clears an alarm this process did not raise: the condition ended for a scope
        that another process (for example the previous owner of a partition) raised it for.
        """
        raised = self._raised.pop((name, scope), None)
        if raised is None and not force:
            return None
        severity = raised.severity if raised else "major"
        threshold = raised.threshold if raised else None
        alarm = self._alarm(name, scope, AlarmState.CLEARED, message, severity, observed_value, threshold)
        return self._message(alarm, previous=raised)

    def revert(self, message: AlarmMessage) -> None:
        """Undo a transition whose record never reached the alarm topic, so that it is published again."""
        key = (message.alarm.name, message.alarm.scope)
        if message.alarm.state is AlarmState.RAISED:
            if self._raised.get(key) is message.alarm:
                del self._raised[key]
        elif message.previous is not None:
            self._raised.setdefault(key, message.previous)

    def _alarm(
        self,
        name: str,
        scope: str,
        state: AlarmState,
        message: str,
        severity: str,
        observed_value: float | None,
        threshold: float | None,
    ) -> Alarm:
        return Alarm(
            name=name, state=state, severity=severity, tenant=self.tenant, node=self.node,
            scope=scope, message=message, observed_value=observed_value, threshold=threshold,
            timestamp=int(time.time() * 1000),
        )

    @staticmethod
    def _message(alarm: Alarm, previous: Alarm | None = None) -> AlarmMessage:
        return AlarmMessage(key=f"{alarm.name}:{alarm.scope}".encode(), value=encode_alarm(alarm), alarm=alarm,
                            previous=previous)
