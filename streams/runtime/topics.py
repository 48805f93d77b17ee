"""Topic names (with the configured prefix) and their creation.

Creating topics explicitly, with the partition counts and cleanup policies the contracts need,
keeps producers, workers and the sink from racing to auto-create them with broker defaults.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from streams.runtime.config import Settings
from streams.runtime.kafka import client_options

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicNames:
    """The public topics of one deployment."""

    stats: str
    targets: str
    actiontargets: str
    alarms: str
    stats_dlq: str
    bulk_errors: str
    metrics: str

    @classmethod
    def for_prefix(cls, prefix: str = "") -> TopicNames:
        """Names under a tenant prefix (several deployments can share one cluster)."""
        p = f"{prefix}." if prefix and not prefix.endswith(".") else prefix
        return cls(
            stats=f"{p}pacing.stats",
            targets=f"{p}pacing.targets",
            actiontargets=f"{p}pacing.actiontargets",
            alarms=f"{p}pacing.alarms",
            stats_dlq=f"{p}pacing.stats.dlq",
            bulk_errors=f"{p}pacing.actiontargets.errors",
            metrics=f"{p}pacing.metrics",
        )


def topic_names(settings: Settings) -> TopicNames:
    """The topic names for these settings."""
    return TopicNames.for_prefix(settings.kafka.topic_prefix)


def topic_specs(settings: Settings) -> list[NewTopic]:
    """Every topic the pipeline needs, with partitions and cleanup policy."""
    names = topic_names(settings)
    n = settings.kafka.stats_partitions
    rf = settings.kafka.replication_factor
    common = topic_configs(settings)
    compacted = {**common, "cleanup.policy": "compact"}
    return [
        NewTopic(names.stats, n, rf, topic_configs=common),
        NewTopic(names.targets, n, rf, topic_configs=compacted),
        NewTopic(names.actiontargets, n, rf, topic_configs=compacted),
        NewTopic(names.alarms, 1, rf, topic_configs=common),
        NewTopic(names.stats_dlq, 1, rf, topic_configs=common),
        NewTopic(names.bulk_errors, 1, rf, topic_configs=common),
        NewTopic(names.metrics, 1, rf, topic_configs=common),
    ]


def worker_topic_specs(settings: Settings, changelog_topic: str) -> list[NewTopic]:
    """The topics a worker cannot work without: what it reads, writes and restores from."""
    names = topic_names(settings)
    required = {names.stats, names.targets, names.actiontargets, names.alarms, names.stats_dlq}
    return [*(spec for spec in topic_specs(settings) if spec.name in required),
            changelog_spec(settings, changelog_topic)]


def changelog_spec(settings: Settings, changelog_topic: str) -> NewTopic:
    """A worker table's changelog topic as this deployment creates it (compacted, partitioned as the stats)."""
    kafka = settings.kafka
    return NewTopic(changelog_topic, kafka.stats_partitions, kafka.replication_factor,
                    topic_configs={**topic_configs(settings), "cleanup.policy": "compact"})


def topic_configs(settings: Settings) -> dict[str, str]:
    """Topic-level settings every topic the services create gets (beside its cleanup policy)."""
    configs = {}
    if settings.kafka.min_insync_replicas is not None:
        configs["min.insync.replicas"] = str(settings.kafka.min_insync_replicas)
    return configs


@contextlib.asynccontextmanager
async def admin_client(settings: Settings, admin: AIOKafkaAdminClient | None = None
                       ) -> AsyncIterator[AIOKafkaAdminClient]:
    """``admin`` if the caller has a started one (it stays open), else a client for the block."""
    if admin is not None:
        yield admin
        return
    client = AIOKafkaAdminClient(**client_options(settings))
    await client.start()
    try:
        yield client
    finally:
        await client.close()


async def missing_topics(
    settings: Settings, names: Iterable[str] | None = None, admin: AIOKafkaAdminClient | None = None
) -> list[str]:
    """Which of ``names`` (default: every topic of the deployment) the cluster does not have, sorted.

    A broker restarted on memory storage comes back without topics; long-running processes call
    this periodically to notice. ``admin`` reuses a started client; otherwise one is opened.
    """
    wanted = set(names) if names is not None else {spec.name for spec in topic_specs(settings)}
    async with admin_client(settings, admin) as client:
        existing = set(await client.list_topics())
    return sorted(wanted - existing)


async def topic_problems(settings: Settings, specs: Iterable[NewTopic], admin: AIOKafkaAdminClient | None = None
                         ) -> list[str]:
    """What is wrong with these topics on the cluster: missing, or keyed with another partition count.

    After a broker lost its topics, clients may have auto-created some of them again with the
    broker's default partition count before anyone checks, so "present" is not enough.
    """
    specs = list(specs)
    async with admin_client(settings, admin) as client:
        existing = set(await client.list_topics())
        keyed = [spec for spec in specs if spec.name in existing and spec.num_partitions > 1]
        counts = {d["topic"]: len(d["partitions"])
                  for d in (await client.describe_topics([s.name for s in keyed]) if keyed else [])}
    problems = [f"{spec.name} missing" for spec in specs if spec.name not in existing]
    problems += [f"{spec.name} has {counts[spec.name]} partitions, expected {spec.num_partitions}"
                 for spec in keyed if counts.get(spec.name, spec.num_partitions) != spec.num_partitions]
    return sorted(problems)


class TopicMismatch(RuntimeError):
    """An existing topic cannot serve the configuration (for example its partition count)."""


async def ensure_topics(settings: Settings, extra: Iterable[NewTopic] = ()) -> None:
    """Create the missing topics (``extra``: a process's internal ones), and check the stats topic's partitions.

    The pacing nodes' table changelog must have as many partitions as ``pacing.stats``; a stats
    topic created elsewhere (say, auto-created by a producer) with another count would make every
    worker crash-loop, so start-up stops with a message naming the option instead.
    """
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in [*topic_specs(settings), *extra] if t.name not in existing]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass  # another process created them first
            log.info("created topics %s", ", ".join(t.name for t in missing))
        stats = topic_names(settings).stats
        if stats in existing:
            described = await admin.describe_topics([stats])
            actual = len(described[0]["partitions"])
            if actual != settings.kafka.stats_partitions:
                raise TopicMismatch(
                    f"topic {stats} has {actual} partitions but option 'kafka.stats_partitions' is "
                    f"{settings.kafka.stats_partitions}; set the option to {actual} (or recreate the topic)"
                )
    finally:
        await admin.close()


async def repair_topics(settings: Settings, extra: Iterable[NewTopic] = (), *,
                        admin: AIOKafkaAdminClient | None = None) -> list[str]:
    """After the cluster lost topics: recreate the missing ones and those auto-created with the wrong partitions.

    A broker restarted on memory storage comes back empty, and the first client that asks for a
    topic gets it auto-created with the broker's default partition count. Keyed topics must have
    the configured count (the table changelog is co-partitioned with ``pacing.stats``), so such
    a topic is deleted and created again: it can only hold the few records written since the
    loss. Returns what was done, one phrase per topic.
    """
    specs = [*topic_specs(settings), *extra]
    done: list[str] = []
    async with admin_client(settings, admin) as client:
        existing = set(await client.list_topics())
        present = [spec for spec in specs if spec.name in existing]
        described = {d["topic"]: len(d["partitions"]) for d in await client.describe_topics([s.name for s in present])}
        wrong = [spec for spec in present if spec.num_partitions > 1
                 and described.get(spec.name, spec.num_partitions) != spec.num_partitions]
        if wrong:
            await client.delete_topics([spec.name for spec in wrong])
            done += [f"{spec.name} recreated ({described[spec.name]} partitions, expected {spec.num_partitions})"
                     for spec in wrong]
        missing = [spec for spec in specs if spec.name not in existing]
        to_create = [*missing, *wrong]
        if to_create:
            for attempt in range(20):  # a deleted topic can take a moment to go
                try:
                    await client.create_topics(to_create)
                    break
                except TopicAlreadyExistsError:
                    existing = set(await client.list_topics())
                    to_create = [spec for spec in to_create if spec.name not in existing]
                    if not to_create or attempt == 19:
                        break
                    await asyncio.sleep(0.25)
            done += [f"{spec.name} created" for spec in missing]
    if done:
        log.warning("topics repaired: %s", "; ".join(done))
    return done
