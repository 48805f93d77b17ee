"""HAProxy (the shipped infra/haproxy.example.cfg) in front of two real workers, /readyz as its health check.

Requests spread over both workers, both answer alike for the same target, and once HAProxy's health
check has taken a killed worker out, every request succeeds on the survivor. Skipped, with the
reason, where HAProxy is not installed (``.ci/run`` installs it where apt-get is available).
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
import shutil
import signal
import subprocess
from collections import Counter
from pathlib import Path

import aiohttp
import pytest

from infra.broker import die_with_parent, free_port
from tests.integration.pipeline import ROOT, Pipeline, eventually, stat_records
from tests.integration.test_api_cluster import start_api_workers

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("haproxy") is None,
                                 reason="haproxy is not installed (apt-get install haproxy; .ci/run does)")]


def balancer_config(workers: list[str], port: int, stats_port: int) -> str:
    """The example configuration with this test's addresses: its own ports, the workers' API ports."""
    text = (ROOT / "infra" / "haproxy.example.cfg").read_text()
    text = text.replace("bind :8080", f"bind 127.0.0.1:{port}").replace("bind 127.0.0.1:8404",
                                                                         f"bind 127.0.0.1:{stats_port}")
    servers = [line for line in text.splitlines() if re.match(r"\s+server worker-\d ", line)]
    assert len(servers) == len(workers) == 2, servers
    for line, url in zip(servers, workers, strict=True):
        text = text.replace(line, re.sub(r"\S+:6080", url.removeprefix("http://"), line))
    return text


def start_haproxy(config: Path, log: Path) -> subprocess.Popen[bytes]:
    """HAProxy in the foreground on ``config``, its output in ``log``."""
    with open(log, "wb") as out:
        return subprocess.Popen(["haproxy", "-db", "-f", str(config)], stdout=out, stderr=subprocess.STDOUT,
                                preexec_fn=die_with_parent)


async def _node(http: aiohttp.ClientSession, url: str) -> tuple[int, str, dict | None]:
    async with http.get(url) as response:
        body = await response.json(content_type=None) if response.status == 200 else None
        return response.status, response.headers.get("X-Pacing-Node", ""), body


async def _server_states(http: aiohttp.ClientSession, stats: str) -> dict[str, str]:
    async with http.get(f"{stats}/stats;csv") as response:
        rows = csv.DictReader(io.StringIO((await response.text()).lstrip("# ")))
        return {row["svname"]: row["status"] for row in rows if row["svname"].startswith("worker-")}


async def test_haproxy_spreads_requests_and_stops_sending_to_a_killed_worker(
        pipeline: Pipeline, http: aiohttp.ClientSession, tmp_path: Path) -> None:
    workers = await start_api_workers(pipeline, 2)
    targets = [f"vq-{n}" for n in range(6)]
    await pipeline.produce([record for target in targets for record in stat_records(target, ready=3)])
    port, stats_port = free_port(), free_port()
    config = tmp_path / "haproxy.cfg"
    config.write_text(balancer_config(workers, port, stats_port))
    balancer = start_haproxy(config, tmp_path / "haproxy.log")
    try:
        entry, stats = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{stats_port}"

        async def both_up() -> bool:
            try:
                return set((await _server_states(http, stats)).values()) == {"UP"}
            except aiohttp.ClientError:
                return False

        await eventually(both_up, timeout_s=20, message="HAProxy sees both workers UP")

        async def decided_everywhere() -> bool:
            for target in targets:
                for url in workers:
                    status, _, body = await _node(http, f"{url}/v1/targets/{target}")
                    if status != 200 or body["decision"] is None:
                        return False
            return True

        await eventually(decided_everywhere, timeout_s=45, message="every target decided, on both workers")

        answers: dict[str, set[tuple]] = {}
        served_by: Counter[str] = Counter()
        for _ in range(10):
            for target in targets:
                status, node, body = await _node(http, f"{entry}/v1/targets/{target}")
                assert status == 200
                served_by[node] += 1
                decision = body["decision"]
                answers.setdefault(target, set()).add((decision["node"], decision["allowed_offers"],
                                                       decision["ready_agents"], decision["logged_in_agents"]))
        assert set(served_by) == {"node-0", "node-1"} and min(served_by.values()) >= 20, served_by
        assert all(len(seen) == 1 for seen in answers.values()), answers  # both answer the same per target

        # Kill one worker: once the health check took it out, nothing fails and the survivor answers all.
        victim = pipeline.children[0]
        victim.send_signal(signal.SIGKILL)
        victim.wait()

        async def taken_out() -> bool:
            return (await _server_states(http, stats)).get("worker-1") == "DOWN"

        await eventually(taken_out, timeout_s=15, interval_s=0.2, message="HAProxy marks the killed worker DOWN")
        after: Counter[tuple[int, str]] = Counter()
        for _ in range(20):
            for target in targets:
                status, node, _ = await _node(http, f"{entry}/v1/targets/{target}")
                after[(status, node)] += 1
            await asyncio.sleep(0.05)
        assert after == Counter({(200, "node-1"): 120}), after
    finally:
        balancer.send_signal(signal.SIGTERM)
        balancer.wait(10)
