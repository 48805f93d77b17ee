"""The REST API of real workers on a real broker: any worker answers for any target, definitions round trip."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from infra.broker import free_port
from streams.api.models import TargetView
from tests.integration.pipeline import Pipeline, eventually, stat_records
from tests.unit.api_doubles import READ_TOKEN, TOKENS, WRITE_TOKEN

pytestmark = pytest.mark.integration


async def start_api_workers(pipeline: Pipeline, count: int, **env: str) -> list[str]:
    """``count`` workers, each with its API on its own port; their base URLs."""
    urls = []
    for number in range(count):
        port = free_port()
        await pipeline.start_worker(PACING_API__PORT=str(port), PACING_API__HOST="127.0.0.1",
                                    PACING_API__TOKENS=json.dumps(TOKENS), PACING_NODE_ID=f"node-{number}", **env)
        urls.append(f"http://127.0.0.1:{port}")
    for url in urls:  # /readyz of the API: the worker is ready and has read every decision and definition
        await eventually(lambda url=url: _status(f"{url}/readyz", 200), timeout_s=30, message=f"{url} ready")
    return urls


async def _status(url: str, wanted: int) -> bool:
    try:
        async with aiohttp.ClientSession() as http, http.get(url) as response:
            return response.status == wanted
    except aiohttp.ClientError:
        return False


async def _view(http: aiohttp.ClientSession, url: str, target_id: str) -> dict[str, Any] | None:
    async with http.get(f"{url}/v1/targets/{target_id}") as response:
        if response.status == 404:
            return None
        assert response.status == 200, await response.text()
        return TargetView.model_validate(await response.json()).model_dump()


async def test_every_worker_answers_the_same_for_every_target_and_definitions_round_trip(
        pipeline: Pipeline, http: aiohttp.ClientSession) -> None:
    first, second = await start_api_workers(pipeline, 2)
    targets = [f"vq-{n}" for n in range(6)]  # spread over both workers' partitions
    await pipeline.produce([record for target in targets for record in stat_records(target, ready=3)])

    async def both_answer_the_same() -> bool:
        for target in targets:
            views = [await _view(http, url, target) for url in (first, second)]
            if any(view is None or view["decision"] is None for view in views):
                return False
            a, b = (view["decision"] for view in views)  # type: ignore[index]
            if (a["computed_at"], a["node"]) != (b["computed_at"], b["node"]):
                return False
        return True

    await eventually(both_answer_the_same, timeout_s=45, message="both workers answer every target alike")
    owners = {(await _view(http, first, target))["decision"]["node"] for target in targets}  # type: ignore[index]
    assert len(owners) == 2, "the targets are owned by both workers, and each answers for the other's"

    # A definition written through one worker is read by the other, and the owner decides with it.
    body = {"name": "Sales chat", "supported_media_types": ["webchat"], "service_level_percentage": 0.9}
    async with http.put(f"{first}/v1/targets/vq-1/definition", json=body,
                        headers={"Authorization": f"Bearer {WRITE_TOKEN}"}) as response:
        assert response.status == 202, await response.text()
        assert (await response.json())["topic"] == pipeline.topics.targets

    async def defined_everywhere() -> bool:
        for url in (first, second):
            view = await _view(http, url, "vq-1")
            if view is None or view["definition"] is None or view["definition"]["name"] != "Sales chat":
                return False
        return True

    await eventually(defined_everywhere, timeout_s=20, message="the definition on both workers")

    async def decided_with_it() -> bool:
        view = await _view(http, second, "vq-1")
        return view is not None and view["decision"]["name"] == "Sales chat" \
            and view["decision"]["service_level_percentage"] == 0.9  # type: ignore[index]

    await eventually(decided_with_it, timeout_s=30, message="a decision with the new definition")

    # Deleted through the other worker: gone from both (the target itself stays: it has decisions).
    async with http.delete(f"{second}/v1/targets/vq-1/definition",
                           headers={"Authorization": f"Bearer {READ_TOKEN}"}) as response:
        assert response.status == 403
    async with http.delete(f"{second}/v1/targets/vq-1/definition",
                           headers={"Authorization": f"Bearer {WRITE_TOKEN}"}) as response:
        assert response.status == 202, await response.text()

    async def deleted_everywhere() -> bool:
        views = [await _view(http, url, "vq-1") for url in (first, second)]
        return all(view is not None and view["definition"] is None for view in views)

    await eventually(deleted_everywhere, timeout_s=20, message="the deletion on both workers")
    async with http.get(f"{second}/v1/pacing/channelCapacity", params={"channel": "chat"}) as response:
        assert (await response.json())["channelCapacity"] == 6 * 3
