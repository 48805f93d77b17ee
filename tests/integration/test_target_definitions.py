"""Target definitions are read to the end of ``pacing.targets`` before a node may decide."""

from __future__ import annotations

import asyncio
import json

from streams.node.target_definitions import TargetDefinitions
from streams.runtime.kafka import consumer_options
from streams.runtime.topics import ensure_topics
from tests.integration.pipeline import Pipeline


def definition(target_id: str, name: str) -> tuple[bytes, bytes]:
    return target_id.encode(), json.dumps({"tenant": "acme", "target_id": target_id, "name": name,
                                           "supported_media_types": ["webchat"]}).encode()


async def test_caught_up_only_after_the_last_definition_was_read(pipeline: Pipeline) -> None:
    settings = pipeline.settings
    await ensure_topics(settings)
    # Batched records: the embedded broker's ListOffsets under-reports the end of such a log.
    await pipeline.produce([definition(f"vq-{i}", f"Queue {i}") for i in range(5000)], topic=pipeline.topics.targets)
    await pipeline.produce([(b"vq-7", None), definition("vq-last", "Last one")], topic=pipeline.topics.targets)

    definitions = TargetDefinitions(consumer_options(settings), pipeline.topics.targets, settings.tenant)
    assert not definitions.caught_up
    await definitions.start()
    try:
        await asyncio.wait_for(definitions.wait_caught_up(), timeout=30)
        assert definitions.get("vq-last")["name"] == "Last one"
        assert definitions.get("vq-7") is None  # the tombstone was read too
        assert len(definitions) == 5000
    finally:
        await definitions.stop()


async def test_an_empty_topic_is_caught_up_at_once(pipeline: Pipeline) -> None:
    settings = pipeline.settings
    await ensure_topics(settings)
    definitions = TargetDefinitions(consumer_options(settings), pipeline.topics.targets, settings.tenant)
    await definitions.start()
    try:
        await asyncio.wait_for(definitions.wait_caught_up(), timeout=15)
        assert len(definitions) == 0
    finally:
        await definitions.stop()
