"""A pacing node noticing that the cluster lost this deployment's topics, and recovering from it.

Tansu restarted on memory storage loses every ``pacing.*`` topic and partition log. The watch
recreates what is missing or was auto-created wrong, forgets the old offsets (Faust's read and
commit marks through :func:`streams.node.faust_compat.forget_positions`), writes the state this
node still holds to the new changelog, and raises ``PacingTopicsMissing`` (the node is not ready
meanwhile); cleared at the first check that finds everything in place. Installed by
:func:`streams.dev_broker.worker.attach_to_worker` only where the broker is not Apache Kafka.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiokafka.admin import NewTopic
from faust.serializers import codecs
from faust.types import TP

from streams.node.faust_compat import forget_positions
from streams.node.target_store import TargetStore
from streams.runtime import alarms
from streams.runtime.alarm_publisher import AlarmPublisher
from streams.runtime.config import Settings
from streams.runtime.outbox import Outbox, SendFailed
from streams.runtime.topics import TopicNames, changelog_spec, repair_topics, topic_problems, worker_topic_specs

log = logging.getLogger(__name__)


class TopicWatch:
    """Checks the topics every ``kafka.topic_check_interval_s``; recovers what the cluster lost."""

    def __init__(self, settings: Settings, names: TopicNames, app: object, store: TargetStore,
                 next_offset: dict[int, int], owned_partitions: Callable[[], set[int]],
                 alarm_publisher: AlarmPublisher, new_outbox: Callable[[], Outbox]):
        self._settings = settings
        self._names = names
        self._app = app
        self._store = store
        self._next_offset = next_offset
        self._owned_partitions = owned_partitions
        self._alarms = alarm_publisher
        self._new_outbox = new_outbox
        #: What the cluster lost, while the node recovers from it.
        self.lost: list[str] = []

    def _changelog_spec(self) -> NewTopic:
        return changelog_spec(self._settings, self._store.changelog_topic)

    def _regressed_partitions(self) -> dict[int, tuple[int, int]]:
        """Owned stats partitions whose log end fell below what this node already read: the log was lost."""
        regressed = {}
        consumer = self._app.consumer
        for partition in self._owned_partitions():
            highwater = consumer.highwater(TP(self._names.stats, partition))
            read = self._next_offset.get(partition, 0)
            if highwater is not None and highwater < read:
                regressed[partition] = (read, highwater)
        return regressed

    async def check(self) -> None:
        """One check, and the recovery if something is lost."""
        names = self._names
        node_id = self._settings.node_id
        try:
            problems = await topic_problems(self._settings,
                                            worker_topic_specs(self._settings, self._store.changelog_topic))
        except Exception as exc:  # the broker is away: the next check tries again
            log.warning("topic check failed: %s", exc)
            return
        regressed = self._regressed_partitions()
        if not problems and not regressed:
            if self.lost:
                lost, self.lost = self.lost, []
                await self._alarms.publish_now(self._alarms.board.clear_alarm(
                    alarms.TOPICS_MISSING, node_id, f"topics back in place after: {'; '.join(lost)}"))
            return
        problems += [f"{names.stats}[{partition}] went back from offset {read} to {end}"
                     for partition, (read, end) in regressed.items()]
        self.lost = problems
        log.error("the cluster lost topics: %s; recovering", "; ".join(problems))
        try:
            repaired = await repair_topics(self._settings, [self._changelog_spec()])
        except Exception as exc:
            log.error("could not recreate topics (%s); will try again", exc)
            return
        for partition in regressed:
            self._next_offset.pop(partition, None)
        forget_positions(self._app.consumer, [TP(names.stats, p) for p in regressed])
        reseeded = await self._reseed_changelog()
        await self._alarms.publish_now(self._alarms.board.raise_alarm(
            alarms.TOPICS_MISSING, node_id,
            f"the cluster lost topics ({'; '.join(problems)}); {'; '.join(repaired) or 'nothing to recreate'}; "
            f"state of {reseeded} targets written to the new changelog",
            severity="critical", observed_value=float(len(problems)), threshold=0.0))

    async def _reseed_changelog(self) -> int:
        """Write every owned target's state again, so that the new changelog can restore it.

        The entries carry no ownership epoch (0): whoever owns the target in the group formed after
        the loss writes a newer one, and a restore keeps that (:mod:`streams.runtime.fencing`).
        """
        outbox = self._new_outbox()
        count = 0
        try:
            for target_id, entry in self._store.owned(self._owned_partitions()):
                await outbox.send(self._store.changelog_topic, codecs.dumps("json", target_id),
                                  codecs.dumps("json", entry.to_json()), partition=entry.partition)
                count += 1
            await outbox.confirm()
        except SendFailed as exc:
            log.error("could not write the state again: %s", exc)
            return 0
        return count
