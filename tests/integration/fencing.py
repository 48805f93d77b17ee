"""What the fencing tests drive and check: a stepping feed, and regressions at the endpoint and in the changelog.

The feed reports, every ``period_s``, each target's logged-in agents as a *step* that only
grows (10, 11, 12, …), so every decision and every table entry shows which step it was computed
from. A worker that no longer owns a target and still gets its decision or entry applied shows
up as a step going backwards:

- at the endpoint: in the emulator's request log (accepted requests, in the order received), a
  target's ``loggedInAgents`` lower than one it received before;
- in the changelog: in log order, a target's entry with a lower step than an earlier entry —
  either any such entry (``raw``), or only one a restore would apply
  (:func:`streams.node.target_store.newer_entry`, the rule Faust's restore runs through).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from infra.emulator import JourneyEmulator
from schemas import StatEvent, encode_stat_event
from tests.integration.pipeline import Pipeline, eventually, user_data


@dataclass
class SteppingFeed:
    """Every ``period_s``: each target's logged-in agents at the current step (2 ready, the rest busy)."""

    pipeline: Pipeline
    targets: list[str]
    period_s: float = 1.0
    step: int = 10
    _task: asyncio.Task[None] | None = field(default=None, repr=False)

    def records(self) -> list[tuple[bytes, bytes]]:
        now = int(time.time() * 1000)
        values = {"logged_in_agents": self.step, "ready_agents": 2, "busy_agents": self.step - 2}
        return [(t.encode(), encode_stat_event(StatEvent(tenant="acme", target_id=t, statistic=name, value=value,
                                                         timestamp=now, source="test")))
                for t in self.targets for name, value in values.items()]

    async def _run(self) -> None:
        while True:
            await self.pipeline.produce(self.records())
            await asyncio.sleep(self.period_s)
            self.step += 1

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> int:
        """Stop stepping; the last step sent is the final value each target must reach."""
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self.pipeline.produce(self.records())  # the final step, surely on the log
        return self.step


def endpoint_steps(emulator: JourneyEmulator) -> dict[str, list[tuple[int, str]]]:
    """Per target, (loggedInAgents, node) of every accepted upsert, in the order the endpoint got them."""
    seen: dict[str, list[tuple[int, str]]] = {}
    for request in emulator.requests:
        if request.status != 200 or not isinstance(request.body, dict):
            continue
        for entity in request.body.get("entities", []):
            pairs = {item["key"]: item["value"] for item in entity.get("userData", [])}
            seen.setdefault(entity["id"], []).append((int(pairs["loggedInAgents"]), pairs["node"]))
    return seen


def regressions(steps: dict[str, list[tuple[int, Any]]]) -> list[str]:
    """Each place a target's step went below one applied before it: ``target: 23 (node-b) then 17 (node-a)``."""
    found = []
    for target, sequence in sorted(steps.items()):
        top: tuple[int, Any] | None = None
        for step, source in sequence:
            if top is not None and step < top[0]:
                found.append(f"{target}: {top[0]} ({top[1]}) then {step} ({source})")
            if top is None or step >= top[0]:
                top = (step, source)
    return found


async def changelog_steps(pipeline: Pipeline, *, raw: bool) -> dict[str, list[tuple[int, str]]]:
    """Per target, (logged-in step, epoch) of each changelog entry in log order.

    ``raw``: every entry; else only those the restore applies (an entry of an older owner that
    landed after its successor's is skipped, as Faust's restore now does).
    """
    from streams.node.target_store import newer_entry  # here: the raw check also runs on trees without it

    topic = await _changelog_topic(pipeline)
    records = await pipeline.read_all(topic, timeout_s=2.0)
    records.sort(key=lambda r: (r.partition, r.offset))
    steps: dict[str, list[tuple[int, str]]] = {}
    applied: dict[str, dict[str, Any]] = {}
    for record in records:
        if record.value is None:
            continue
        key = json.loads(record.key)
        value = json.loads(record.value)
        if not raw:
            old = applied.get(key)
            if old is not None and not newer_entry(old, value):
                continue
            applied[key] = value
        step = int(value["state"]["gauges"].get("logged_in_agents", 0))
        steps.setdefault(key, []).append((step, f"epoch {value.get('epoch', 0)}"))
    return steps


async def _changelog_topic(pipeline: Pipeline) -> str:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=pipeline.bootstrap)
    await admin.start()
    try:
        topics = await admin.list_topics()
    finally:
        await admin.close()
    names = [t for t in topics if t.startswith(pipeline.prefix) and t.endswith("-changelog")]
    assert len(names) == 1, names
    return names[0]


async def all_final_values_delivered(emulator: JourneyEmulator, targets: list[str], final: int) -> bool:
    """Whether the endpoint holds the final step for every target."""
    stored = emulator.targets
    return all(t in stored and int(user_data(stored[t])["loggedInAgents"]) == final for t in targets)


async def assert_nothing_went_back(pipeline: Pipeline, targets: list[str], final: int, *, timeout_s: float,
                                   raw_changelog: bool) -> None:
    """Every target reaches its final step at the endpoint, which never went back, nor did the changelog
    (``raw_changelog``: as written; else as a restore reads it, the newest epoch winning)."""
    await eventually(lambda: all_final_values_delivered(pipeline.emulator, targets, final), timeout_s=timeout_s,
                     message=f"every target at the final step {final}")
    endpoint = regressions(endpoint_steps(pipeline.emulator))
    assert not endpoint, "the endpoint went back:\n" + "\n".join(endpoint)
    changelog = regressions(await changelog_steps(pipeline, raw=raw_changelog))
    what = "the changelog went back" if raw_changelog else "a restore would go back"
    assert not changelog, f"{what}:\n" + "\n".join(changelog)
