"""Which broker serves: ``kafka.broker_kind`` as configured, or asked of the cluster once at start-up.

The answer decides whether a process installs the dev-broker workarounds at all
(:mod:`streams.dev_broker`). ``kafka`` and ``tansu`` are taken as they are, with no question to the
cluster. ``auto`` (the default) asks once, when the process starts (:func:`detect_broker_kind`),
never afterwards: a broker counts as Apache Kafka only on two signs together: a cluster id in
Kafka's own format (a UUID in 22 characters of base64url, which ``kafka-storage format``
enforces; Tansu's default is ``tansu_cluster``, and any string can be configured) and ApiVersions
offering DescribeQuorum, an API of KRaft's controller quorum that Tansu, having no Raft quorum,
does not implement. Anything else -- Tansu, a broker that does not answer, a Kafka in ZooKeeper
mode, another implementation -- counts as ``tansu``: the workarounds are harmless where they are
not needed and essential where they are.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Collection
from typing import Any, Literal

from aiokafka import AIOKafkaClient
from aiokafka.errors import KafkaConnectionError, KafkaError
from aiokafka.protocol.admin import ApiVersionRequest
from aiokafka.protocol.metadata import MetadataRequest

from streams.runtime.config import Settings
from streams.runtime.kafka import client_options

log = logging.getLogger(__name__)

BrokerKind = Literal["kafka", "tansu", "other"]
#: What a process runs on once decided: Apache Kafka, or a broker that gets the workarounds.
ResolvedKind = Literal["kafka", "tansu"]

_KAFKA_CLUSTER_ID = re.compile(r"^[A-Za-z0-9_-]{22}$")
"""Kafka's ``Uuid.toString()``: 16 bytes in base64url without padding."""
_DESCRIBE_QUORUM = 55
"""ApiKey of DescribeQuorum (KIP-595): answered by Apache Kafka in KRaft mode, not by Tansu."""
_TANSU_CLUSTER_ID = "tansu_cluster"


def classify_broker(cluster_id: str | None, api_keys: Collection[int]) -> BrokerKind:
    """``kafka`` when both signs of Apache Kafka (KRaft) are there; ``tansu`` for Tansu's default
    cluster id; ``other`` otherwise (see the module docstring)."""
    if cluster_id and _KAFKA_CLUSTER_ID.match(cluster_id) and _DESCRIBE_QUORUM in api_keys:
        return "kafka"
    if cluster_id == _TANSU_CLUSTER_ID:
        return "tansu"
    return "other"


async def detect_broker_kind(client_options: dict[str, Any], timeout_s: float = 10.0) -> BrokerKind:
    """Ask the cluster (Metadata for its id, ApiVersions for its APIs) which broker it is.

    Raises :class:`aiokafka.errors.KafkaError`, ``OSError`` or ``TimeoutError`` if it does not answer.
    """
    client = AIOKafkaClient(**client_options, request_timeout_ms=int(timeout_s * 1000))
    try:
        await asyncio.wait_for(client.bootstrap(), timeout_s)
        node_id = client.get_random_node()
        if node_id is None:
            raise KafkaConnectionError("the cluster's metadata names no broker")
        metadata = await client.send(node_id, MetadataRequest(topics=[]))
        versions = await client.send(node_id, ApiVersionRequest())
    finally:
        await client.close()
    cluster_id = getattr(metadata, "cluster_id", None)
    kind = classify_broker(cluster_id, {api_key for api_key, *_ in versions.api_versions})
    log.info("broker at %s is %s (cluster id %r)", client_options.get("bootstrap_servers"),
             {"kafka": "Apache Kafka", "tansu": "Tansu"}.get(kind, "not known to be Apache Kafka"), cluster_id)
    return kind


async def resolve_broker_kind(settings: Settings) -> ResolvedKind:
    """``kafka.broker_kind`` decided: as configured, or for ``auto`` asked of the cluster (once: call it
    at start-up). A cluster that does not answer, or is not recognised as Apache Kafka, is ``tansu``."""
    configured = settings.kafka.broker_kind
    if configured != "auto":
        return configured
    try:
        kind = await detect_broker_kind(client_options(settings), settings.kafka.connect_timeout_s)
    except (KafkaError, OSError, TimeoutError) as exc:
        log.warning("could not tell which broker serves %s (%s); the dev-broker workarounds stay on",
                    settings.kafka.bootstrap_servers, exc)
        return "tansu"
    return "kafka" if kind == "kafka" else "tansu"
