"""How a process (a pacing node, a sink) publishes alarm transitions: with its batch, or on their own."""

from __future__ import annotations

import logging
from collections.abc import Callable

from streams.runtime.alarms import AlarmBoard, AlarmMessage
from streams.runtime.metrics import ProcessMetrics
from streams.runtime.outbox import Outbox, SendFailed

log = logging.getLogger(__name__)


class AlarmPublisher:
    """Sends the board's transitions to ``pacing.alarms``; a transition Kafka did not take is undone."""

    def __init__(self, board: AlarmBoard, topic: str, metrics: ProcessMetrics, new_outbox: Callable[[], Outbox]):
        self.board = board
        self._topic = topic
        self._metrics = metrics
        self._new_outbox = new_outbox

    async def publish(self, message: AlarmMessage | None, outbox: Outbox) -> None:
        """Add a transition (None: nothing changed) to the records of ``outbox``."""
        if message is None:
            return
        self.announce(message)
        await self.send(message, outbox)

    @staticmethod
    def announce(message: AlarmMessage) -> None:
        """Log the transition (once: a caller that retries its send does not log it again)."""
        alarm = message.alarm
        log.warning("alarm %s %s [%s]: %s", alarm.name, alarm.state.value, alarm.scope, alarm.message)

    async def send(self, message: AlarmMessage, outbox: Outbox) -> None:
        """Add the transition's record to ``outbox``: counted once confirmed, undone on the board if abandoned."""
        alarm = message.alarm

        def published() -> None:
            if alarm.state.value == "raised":
                self._metrics.alarms.labels(alarm.name).inc()

        await outbox.send(self._topic, message.key, message.value,
                          on_confirmed=published, on_failed=lambda: self.board.revert(message))

    async def publish_now(self, *messages: AlarmMessage | None) -> bool:
        """Publish transitions outside a batch; False (and undone) if Kafka did not take them."""
        outbox = self._new_outbox()
        try:
            for message in messages:
                await self.publish(message, outbox)
            await outbox.confirm()
        except SendFailed as exc:
            outbox.abandon()
            log.error("could not publish alarms: %s", exc)
            return False
        return True
