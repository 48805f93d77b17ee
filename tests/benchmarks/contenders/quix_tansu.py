"""The one local adjustment Quix Streams needs to run on the embedded broker (Tansu).

Quix derives a state store's changelog topic config from its source topic's broker config and
reads ``retention.ms`` with ``extra_config["retention.ms"]`` (``TopicManager.derive_topic_config``;
``retention.bytes`` it reads with a default). Tansu's DescribeConfigs answer has no
``retention.ms``, so ``StreamingDataFrame.update(..., stateful=True)`` raises
``KeyError: 'retention.ms'`` before the app starts. :func:`adjust_for_tansu` wraps that class
method so a source topic without the entry counts as ``retention.ms = -1`` (keep forever, which
is what Tansu's memory storage does). On a broker that reports the value nothing changes.

Not needed to run, but to start in seconds: Tansu answers a new member's JoinGroup only after
half the session timeout, librdkafka's default 45 s makes that 23 s per start.
:data:`GROUP_TIMEOUTS` gives the Quix consumer the group timeouts the pacing node uses
(``kafka.session_timeout_s`` 6 s, ``kafka.heartbeat_interval_s`` 1 s): a 3 s join.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

#: librdkafka consumer settings: the pacing node's group timeouts (streams/runtime/config.py ``KafkaSettings``).
GROUP_TIMEOUTS = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000}


def adjust_for_tansu() -> None:
    """Default a missing ``retention.ms`` of a source topic to ``-1`` when Quix derives a changelog's config."""
    from quixstreams.models.topics.manager import TopicManager

    original = TopicManager.derive_topic_config.__func__  # type: ignore[attr-defined]
    if getattr(original, "_tansu_adjusted", False):
        return

    def derive_topic_config(cls: type[TopicManager], topics: Iterable[Any]) -> Any:
        topics = list(topics)
        for topic in topics:
            topic.broker_config.extra_config.setdefault("retention.ms", "-1")
        return original(cls, topics)

    derive_topic_config._tansu_adjusted = True  # type: ignore[attr-defined]
    TopicManager.derive_topic_config = classmethod(derive_topic_config)  # type: ignore[method-assign,assignment]
