"""An in-process Pacing REST API over real sockets, and the decisions and definitions it serves."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from infra.broker import free_port
from schemas import ActionTargetDecision, TargetConfig, encode_decision, encode_target_config
from streams.api.definitions import DefinitionWriter, Send
from streams.api.directory import TargetDirectory
from streams.api.server import PacingApi, api_url, serve
from streams.node.target_definitions import TargetDefinitions
from streams.runtime.config import Settings, load_settings
from streams.runtime.kafka import consumer_options
from streams.runtime.topics import topic_names

WRITE_TOKEN = "write-token-0123456789abcdef"
READ_TOKEN = "read-token-0123456789abcdef"
TOKENS = [{"name": "ops", "token": WRITE_TOKEN, "access": "write"},
          {"name": "viewer", "token": READ_TOKEN, "access": "read"}]


def decision(target_id: str, *, ready: int = 3, logged_in: int = 10, waiting: int = 0, admission: float = 0.5,
             state: str = "active", media: tuple[str, ...] = ("webchat",), computed_at: int | None = None,
             **figures: str) -> bytes:
    """A decision record as a node publishes it on pacing.actiontargets."""
    return encode_decision(ActionTargetDecision(
        tenant="demo", target_id=target_id, name=f"name of {target_id}", state=state,
        supported_media_types=media, service_level_percentage=0.8, service_level_duration_ms=20_000,
        short_abandon_threshold=10, allowed_offers=2, reactive_admission=admission, ready_agents=ready,
        busy_agents=logged_in - ready, logged_in_agents=logged_in, waiting_interactions=waiting,
        outstanding_offers=1, acceptance_rate=0.3, algorithm="SUPER_PROGRESSIVE",
        computed_at=computed_at or int(time.time() * 1000), node="node-a", figures=figures))


def definition(target_id: str, **fields: Any) -> bytes:
    """A pacing.targets record."""
    config = {"tenant": "demo", "target_id": target_id, "name": f"defined {target_id}",
              "supported_media_types": ("webchat",), **fields}
    return encode_target_config(TargetConfig(**config))


@dataclass
class RecordingSend:
    """The write path's ``send`` for tests that stop before Kafka: it records what reached it."""

    sent: list[tuple[str, bytes, bytes | None]] = field(default_factory=list)

    async def __call__(self, topic: str, key: bytes, value: bytes | None) -> None:
        self.sent.append((topic, key, value))


@dataclass
class ServedApi:
    """An API served on a loopback port, with the objects behind it."""

    settings: Settings
    directory: TargetDirectory
    definitions: TargetDefinitions
    runner: web.AppRunner
    url: str

    async def stop(self) -> None:
        await self.runner.cleanup()


async def serve_api(send: Send | None = None, ready: Callable[[], bool] = lambda: True,
                    **api: Any) -> ServedApi:
    """A PacingApi on a free loopback port (``api``: options of the [api] section)."""
    settings = load_settings(api={"host": "127.0.0.1", "port": free_port(), **api})
    topics = topic_names(settings)
    definitions = TargetDefinitions(consumer_options(settings), topics.targets, settings.tenant)
    directory = TargetDirectory(settings.kafka.stats_partitions, definitions)
    writer = DefinitionWriter(settings.tenant, topics.targets, send or RecordingSend(), settings.worker.send_timeout_s)
    runner = await serve(PacingApi(settings.api, "node-a", directory, writer, ready))
    return ServedApi(settings, directory, definitions, runner, api_url(settings.api))


Factory = Callable[..., Awaitable[ServedApi]]
