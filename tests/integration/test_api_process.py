"""The worker's API process on a real broker: its /readyz follows the worker's readiness over the pipe,
and it reads the definitions itself and writes them with its own producer."""

from __future__ import annotations

import uuid

import aiohttp

from infra.broker import free_port
from streams.node.api_process import start_api_process
from streams.runtime.config import load_settings
from streams.runtime.topics import ensure_topics
from tests.integration.pipeline import eventually
from tests.unit.api.api_doubles import TOKENS, WRITE_TOKEN


async def test_readyz_follows_the_workers_readiness_and_definitions_round_trip(kafka_bootstrap: str) -> None:
    settings = load_settings(kafka={"bootstrap_servers": kafka_bootstrap, "topic_prefix": f"t{uuid.uuid4().hex[:8]}"},
                             api={"host": "127.0.0.1", "port": free_port(), "tokens": TOKENS})
    await ensure_topics(settings)
    worker_ready = False
    api = await start_api_process(settings, lambda: worker_ready)
    url = f"http://127.0.0.1:{settings.api.port}"
    try:
        async with aiohttp.ClientSession() as http:
            async def readyz_is(expected: int) -> bool:
                async with http.get(f"{url}/readyz") as response:
                    return response.status == expected

            assert await readyz_is(503)
            worker_ready = True
            await eventually(lambda: readyz_is(200), timeout_s=30, message="/readyz 200 once the worker is ready")
            worker_ready = False  # the API process has read everything: only the worker's readiness changed
            await eventually(lambda: readyz_is(503), timeout_s=10, message="/readyz 503 once the worker is not")

            body = {"name": "Sales chat", "supported_media_types": ["webchat"], "service_level_percentage": 0.9}
            async with http.put(f"{url}/v1/targets/vq-7/definition", json=body,
                                headers={"Authorization": f"Bearer {WRITE_TOKEN}"}) as response:
                assert response.status == 202, await response.text()

            async def defined() -> bool:
                async with http.get(f"{url}/v1/targets/vq-7") as response:
                    return response.status == 200 and (await response.json())["definition"]["name"] == "Sales chat"

            await eventually(defined, timeout_s=30, message="the written definition read back by the API process")
    finally:
        await api.stop()
