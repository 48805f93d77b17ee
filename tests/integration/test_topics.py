"""Topic set-up: what start-up creates, and the mismatch it refuses."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.runtime.config import load_settings
from streams.runtime.topics import TopicMismatch, ensure_topics, topic_names
from tests.integration.pipeline import ROOT


async def test_stats_topic_with_other_partition_count_stops_start_up(kafka_bootstrap: str) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    settings = load_settings(kafka={"bootstrap_servers": kafka_bootstrap, "topic_prefix": prefix,
                                    "stats_partitions": 6})
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic_names(settings).stats, 3, 1)])
    await admin.close()
    with pytest.raises(TopicMismatch, match=r"has 3 partitions but option 'kafka\.stats_partitions' is 6"):
        await ensure_topics(settings)

    worker = subprocess.run(  # noqa: ASYNC221 - the test waits for the process on purpose
        [sys.executable, "-m", "infra.cli", "worker"], cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
             "PACING_KAFKA__TOPIC_PREFIX": prefix, "PACING_KAFKA__STATS_PARTITIONS": "6"},
    )
    assert worker.returncode == 2
    assert "option 'kafka.stats_partitions'" in worker.stderr


async def test_start_up_creates_every_topic(kafka_bootstrap: str) -> None:
    settings = load_settings(kafka={"bootstrap_servers": kafka_bootstrap, "topic_prefix": f"t{uuid.uuid4().hex[:8]}"})
    await ensure_topics(settings)
    await ensure_topics(settings)  # idempotent
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    names = set(await admin.list_topics())
    described = {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics([topic_names(settings).stats])}
    await admin.close()
    expected = topic_names(settings)
    assert {expected.stats, expected.targets, expected.actiontargets, expected.alarms, expected.stats_dlq,
            expected.bulk_errors, expected.metrics} <= names
    assert described[expected.stats] == 12
