"""The blocks of the README and docs/*.md that need a broker, run as written against the session's broker.

Which blocks these are is registered in ``tests/unit/test_readme.py`` (``how="integration"``).
Each runs in its own deployment (a fresh topic prefix); the only changes made to a block are
the ones a reader makes for their own setup, spelt out in each runner: the broker's address
instead of ``127.0.0.1:9092``, the prefixed topic name where a block names a topic, and this
environment's ``pacing`` script instead of ``.venv/bin/pacing``.
"""

from __future__ import annotations

import asyncio
import shlex
import sys
import time
import uuid
from collections.abc import Awaitable, Callable

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord

from schemas import decode_stat_event, decode_target_config
from streams.node.partitioning import home_partition
from streams.runtime.config import Settings, load_settings
from streams.runtime.kafka import client_options
from streams.runtime.topics import ensure_topics, topic_names
from tests.integration.test_cli_options import ROOT, clean_env, pacing_command
from tests.unit.test_readme import block

pytestmark = pytest.mark.integration


class Deployment:
    """A fresh topic prefix on the session broker, and how to run a README block against it."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.prefix = f"readme-{uuid.uuid4().hex[:8]}"
        self.settings: Settings = load_settings(kafka={"bootstrap_servers": bootstrap, "topic_prefix": self.prefix})
        self.topics = topic_names(self.settings)
        self.env = clean_env(KAFKA_BOOTSTRAP_SERVERS=bootstrap, PACING_KAFKA__TOPIC_PREFIX=self.prefix)

    async def run(self, *argv: str) -> None:
        process = await asyncio.create_subprocess_exec(*argv, cwd=ROOT, env=self.env, stdout=asyncio.subprocess.PIPE,
                                                       stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(process.communicate(), 90)
        assert process.returncode == 0, (out + err).decode()

    async def shell(self, text: str) -> None:
        await self.run("bash", "-ec", text.replace(".venv/bin/pacing", shlex.join(pacing_command())))

    async def python(self, text: str) -> None:
        text = text.replace('"127.0.0.1:9092"', repr(self.bootstrap))
        for name in ("pacing.stats",):
            text = text.replace(f'"{name}"', repr(f"{self.prefix}.{name}"))
        await self.run(sys.executable, "-c", text)

    async def records(self, topic: str, count: int = 1, timeout_s: float = 30) -> list[ConsumerRecord]:
        """The first ``count`` records of ``topic``."""
        consumer = AIOKafkaConsumer(topic, group_id=None, auto_offset_reset="earliest",
                                    **client_options(self.settings))
        await consumer.start()
        found: list[ConsumerRecord] = []
        try:
            deadline = time.monotonic() + timeout_s
            while len(found) < count and time.monotonic() < deadline:
                for batch in (await consumer.getmany(timeout_ms=500)).values():
                    found.extend(batch)
        finally:
            await consumer.stop()
        assert len(found) >= count, f"{len(found)} of {count} record(s) on {topic}"
        return found


async def _produce_a_json_stat_event(deployment: Deployment) -> None:
    await deployment.shell(block("""echo '{"tenant": "demo", "target_id": "vq-sales-chat", "statistic\"""").text)
    [record] = await deployment.records(deployment.topics.stats)
    event = decode_stat_event(record.value)
    assert record.key == b"vq-sales-chat"
    assert (event.tenant, event.target_id, event.statistic, event.value) == ("demo", "vq-sales-chat",
                                                                             "ready_agents", 4)
    assert abs(event.timestamp - time.time() * 1000) < 120_000  # $(date +%s000): now, in milliseconds


async def _produce_a_target_definition(deployment: Deployment) -> None:
    text = block("""echo '{"tenant": "demo", "target_id": "vq-sales-chat", "name\"""").text
    assert "--topic pacing.targets" in text
    await deployment.shell(text.replace("--topic pacing.targets", f"--topic {deployment.topics.targets}"))
    [record] = await deployment.records(deployment.topics.targets)
    definition = decode_target_config(record.value)
    assert record.key == b"vq-sales-chat"
    assert definition is not None
    assert (definition.name, definition.service_level_percentage) == ("Sales chat", 0.9)


async def _produce_avro_with_aiokafka(deployment: Deployment) -> None:
    await ensure_topics(deployment.settings)
    await deployment.python(block("import asyncio, time").text)
    [record] = await deployment.records(deployment.topics.stats)
    event = decode_stat_event(record.value)
    assert record.key == b"vq-sales-chat"
    assert (event.target_id, event.statistic, event.source) == ("vq-sales-chat", "ready_agents", "bridge")


async def _produce_avro_without_the_project(deployment: Deployment) -> None:
    await ensure_topics(deployment.settings)
    await deployment.python(block("import io, time").text)
    [record] = await deployment.records(deployment.topics.stats)
    event = decode_stat_event(record.value)  # the project's codec reads the hand-made single-object bytes
    assert (event.target_id, event.statistic, event.value, event.media_type) == ("vq-sales-chat", "ready_agents",
                                                                                 4, "webchat")
    # murmur2_random: the record is on the target's home partition, no forwarding needed.
    assert record.partition == home_partition("vq-sales-chat", deployment.settings.kafka.stats_partitions)


RUNNERS: dict[str, Callable[[Deployment], Awaitable[None]]] = {
    """echo '{"tenant": "demo", "target_id": "vq-sales-chat", "statistic\"""": _produce_a_json_stat_event,
    """echo '{"tenant": "demo", "target_id": "vq-sales-chat", "name\"""": _produce_a_target_definition,
    "import asyncio, time": _produce_avro_with_aiokafka,
    "import io, time": _produce_avro_without_the_project,
}
"""The README blocks this module runs, by the start of their first line (as registered in test_readme.BLOCKS)."""


@pytest.mark.parametrize("starts", list(RUNNERS), ids=[runner.__name__.lstrip("_") for runner in RUNNERS.values()])
async def test_readme_block_works_as_written(starts: str, kafka_bootstrap: str) -> None:
    await RUNNERS[starts](Deployment(kafka_bootstrap))
