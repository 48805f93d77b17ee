"""The dev-broker workaround a bulk sink gets: attached once, at start-up, or not at all.

:func:`attach_to_sink` is what ``pacing sink`` hands :func:`connectors.sink.run_sink`; the sink
itself consumes as on Apache Kafka (:class:`connectors.sink_topics.SinkTopics`). On Apache Kafka
it attaches nothing.
"""

from __future__ import annotations

import logging

from connectors.sink import BulkSink
from streams.dev_broker.detect import resolve_broker_kind
from streams.dev_broker.sink_topics import TopicRecovery

log = logging.getLogger(__name__)


async def attach_to_sink(sink: BulkSink) -> TopicRecovery | None:
    """Decide once which broker serves (:func:`resolve_broker_kind`); off Apache Kafka, give ``sink`` a
    :class:`TopicRecovery` as its topics (lost topics and logs noticed, recreated, the consumer replaced).

    Returns it (None on Kafka). Call it after building the sink and before it runs.
    """
    settings = sink.settings
    if await resolve_broker_kind(settings) == "kafka":
        log.info("Apache Kafka: no dev-broker workaround")
        return None
    recovery = TopicRecovery(settings, sink.ledger, sink.commits, sink.fence, sink.side_writes, sink.board,
                             sink.scope, sink.new_consumer)
    sink.topics = recovery
    log.info("dev broker (%s): the sink's topics checked every %.1fs", settings.kafka.broker_kind,
             settings.sink.topic_check_interval_s or settings.kafka.topic_check_interval_s)
    return recovery
