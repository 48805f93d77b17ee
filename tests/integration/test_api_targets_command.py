"""``pacing targets`` against a real worker: set, get, list, delete, the JSON form and the errors people see."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.integration.pipeline import Pipeline, eventually, stat_records
from tests.integration.test_api_cluster import start_api_workers
from tests.integration.test_cli_options import ROOT, clean_env, pacing_command
from tests.unit.api_doubles import WRITE_TOKEN

pytestmark = pytest.mark.integration


async def pacing_targets(*args: str, **env: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *pacing_command(), "targets", *args, cwd=ROOT, env=clean_env(**env),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, out.decode(), err.decode()


async def test_set_get_list_and_delete_a_definition_from_the_command_line(pipeline: Pipeline, tmp_path: Path) -> None:
    [url] = await start_api_workers(pipeline, 1)
    await pipeline.produce(stat_records("vq-1", ready=3) + stat_records("vq-2", ready=1))
    definition = tmp_path / "def.json"
    definition.write_text(json.dumps({"name": "Sales chat", "supported_media_types": ["webchat", "callback"]}))

    status, _, err = await pacing_targets("set", "vq-1", "--file", str(definition), "--url", url)
    assert status == 1 and "401" in err and "need a bearer token" in err  # no token: refused, said so
    status, out, err = await pacing_targets("set", "vq-1", "--file", str(definition), "--url", url,
                                            PACING_API_TOKEN=WRITE_TOKEN)
    assert status == 0 and f"written to {pipeline.topics.targets}" in out, err

    async def shown() -> str | None:
        status, out, _ = await pacing_targets("get", "vq-1", "--url", url)
        return out if status == 0 and "Sales chat: active" in out and "name=Sales chat" in out else None

    text = await eventually(shown, timeout_s=30, message="the defined target's decision")
    assert "agents: 3 ready" in text and "decided by node-0" in text

    status, out, _ = await pacing_targets("list", "--url", url, "--json")
    assert status == 0 and [item["target_id"] for item in json.loads(out)["items"]] == ["vq-1", "vq-2"]
    status, out, _ = await pacing_targets("list", "--url", url, "--prefix", "vq-2")
    assert status == 0 and out.splitlines()[0].split()[:3] == ["TARGET", "STATE", "OFFERS"]
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["vq-2"]

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "x", "supported_media_types": ["fax"], "proactive_ratio": 3}))
    status, _, err = await pacing_targets("set", "vq-1", "--file", str(bad), "--url", url, "--token", WRITE_TOKEN)
    assert status == 1 and "422" in err and "supported_media_types" in err and "proactive_ratio" in err

    status, out, _ = await pacing_targets("delete", "vq-1", "--url", url, "--token", WRITE_TOKEN, "--json")
    assert status == 0 and json.loads(out)["operation"] == "delete"

    async def deleted() -> bool:
        status, out, _ = await pacing_targets("get", "vq-1", "--url", url, "--json")
        return status == 0 and json.loads(out)["definition"] is None

    await eventually(deleted, timeout_s=30, message="the definition deleted")
    status, _, err = await pacing_targets("get", "nobody", "--url", url)
    assert status == 1 and "404" in err
