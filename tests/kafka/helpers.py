"""Helpers of the Apache Kafka tests: topic state as the cluster reports it, alarms, Kafka's own tools."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from infra.kafka_broker import java_command
from schemas import decode_alarm
from tests.integration.pipeline import Pipeline


@contextlib.asynccontextmanager
async def admin_client(bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    """A started admin client, closed on exit."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


async def prefixed_topics(bootstrap: str, prefix: str) -> list[str]:
    """Every topic of one deployment (its names start with ``prefix.``), sorted."""
    async with admin_client(bootstrap) as admin:
        return sorted(t for t in await admin.list_topics() if t.startswith(f"{prefix}."))


@dataclass(frozen=True)
class PartitionState:
    """Leader and in-sync replicas (node ids) of one partition."""

    leader: int
    isr: tuple[int, ...]


async def partition_states(bootstrap: str, topics: Iterable[str]) -> dict[tuple[str, int], PartitionState]:
    """Leader and ISR of every partition of ``topics``, as the cluster's metadata says now."""
    async with admin_client(bootstrap) as admin:
        described = await admin.describe_topics(list(topics))
    return {(d["topic"], p["partition"]): PartitionState(p["leader"], tuple(sorted(p["isr"])))
            for d in described for p in d["partitions"]}


async def topic_configs(bootstrap: str, topics: Iterable[str]) -> dict[str, dict[str, str]]:
    """The effective configuration of each topic (``describe_configs``)."""
    async with admin_client(bootstrap) as admin:
        responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t) for t in topics])
    configs: dict[str, dict[str, str]] = {}
    for response in responses:
        for resource in response.to_object()["resources"]:
            configs[resource["resource_name"]] = {entry["config_names"]: entry["config_value"]
                                                 for entry in resource["config_entries"]}
    return configs


def worker_app_id(pipeline: Pipeline) -> str:
    """The workers' Faust app id: their consumer group and the prefix of their internal topics."""
    return f"{pipeline.prefix}.{pipeline.settings.worker.app_id}"


def changelog_topic(pipeline: Pipeline) -> str:
    """The workers' table changelog (Faust: ``<app id>-<table>-changelog``)."""
    return f"{worker_app_id(pipeline)}-target-state-changelog"


async def alarm_history(pipeline: Pipeline) -> dict[tuple[str, str], list[str]]:
    """Every transition on the deployment's alarm topic: ``(name, scope) -> [raised, cleared, …]``."""
    history: dict[tuple[str, str], list[str]] = defaultdict(list)
    for record in await pipeline.read_all(pipeline.topics.alarms, timeout_s=1.0):
        alarm = decode_alarm(record.value)
        history[(alarm.name, alarm.scope)].append(alarm.state.value)
    return dict(history)


def still_raised(history: dict[tuple[str, str], list[str]]) -> list[tuple[str, str]]:
    """The alarms whose last transition is a raise."""
    return sorted(key for key, states in history.items() if states and states[-1] == "raised")


@dataclass(frozen=True)
class ToolRun:
    """What one of Kafka's command-line tools did."""

    returncode: int
    stdout: bytes
    stderr: str

    @property
    def text(self) -> str:
        """Standard output as text."""
        return self.stdout.decode(errors="replace")


async def run_kafka_tool(main_class: str, *args: str, stdin: bytes | None = None,
                         timeout_s: float = 60.0) -> ToolRun:
    """Run one of Kafka's own tools (``java -cp <cache>/lib/* main_class args``) to completion."""
    process = await asyncio.create_subprocess_exec(
        *java_command(main_class, *args, heap="128m", jvm_options=("-XX:TieredStopAtLevel=1",)),
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(process.communicate(stdin), timeout_s)
    except TimeoutError:
        process.kill()
        out, err = await process.communicate()
        raise AssertionError(f"{main_class} did not finish within {timeout_s}s; stderr: "
                             f"{err.decode(errors='replace')[-2000:]}") from None
    assert process.returncode is not None
    return ToolRun(process.returncode, out, err.decode(errors="replace"))
