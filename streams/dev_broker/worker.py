"""The dev-broker workarounds a pacing node gets: attached once, at start-up, or not at all.

:func:`attach_to_worker` is what ``pacing worker`` hands :func:`streams.node.app.run_worker`; the
node itself knows nothing of the embedded broker. On Apache Kafka it attaches nothing.
"""

from __future__ import annotations

import logging

from streams.dev_broker.detect import ResolvedKind, resolve_broker_kind
from streams.dev_broker.end_offsets import install_end_offset_probe
from streams.dev_broker.topic_watch import TopicWatch
from streams.node.app import PacingNode
from streams.runtime.kafka import client_options

log = logging.getLogger(__name__)


def probes_end_offsets(kind: ResolvedKind, configured: bool | None) -> bool:
    """Whether table recovery confirms end offsets by fetch: ``kafka.probe_end_offsets`` when set,
    else only on a broker that is not Apache Kafka."""
    return configured if configured is not None else kind != "kafka"


async def attach_to_worker(node: PacingNode) -> TopicWatch | None:
    """Decide once which broker serves (:func:`resolve_broker_kind`) and give ``node`` what that broker needs.

    Not on Apache Kafka: Tansu's end-offset probe for table recovery (unless ``kafka.probe_end_offsets``
    is false), and a :class:`TopicWatch` every ``kafka.topic_check_interval_s`` (a Faust timer) that
    recovers topics the broker lost, the node not ready meanwhile. Returns the watch (None on Kafka).
    Call it after :func:`streams.node.app.create_app` and before the worker starts.
    """
    settings = node.settings
    kind = await resolve_broker_kind(settings)
    if probes_end_offsets(kind, settings.kafka.probe_end_offsets):
        install_end_offset_probe(node.app, client_options(settings))
    if kind == "kafka":
        log.info("Apache Kafka: no dev-broker workaround%s",
                 " but the end-offset probe (kafka.probe_end_offsets)" if settings.kafka.probe_end_offsets else "")
        return None
    # The state written again is unfenced: after a broker lost its state the group is gone too, and
    # the entries carry epoch 0, which any owner's entry supersedes (streams.runtime.fencing).
    watch = TopicWatch(settings, node.names, node.app, node.store, node.intake.next_offset,
                       node.owned_partitions, node.alarm_publisher, node.unfenced_outbox)
    node.readiness.append(lambda: not watch.lost)

    async def topic_watch() -> None:
        """Recover when the cluster lost the deployment's topics."""
        await watch.check()

    node.app.timer(settings.kafka.topic_check_interval_s, name="topic-watch")(topic_watch)
    log.info("dev broker (%s): end-offset probe %s, topic watch every %.1fs", settings.kafka.broker_kind,
             "on" if probes_end_offsets(kind, settings.kafka.probe_end_offsets) else "off",
             settings.kafka.topic_check_interval_s)
    return watch
