"""Correct end offsets for table recovery on brokers that under-report them (Tansu).

Faust restores a table by reading its changelog up to the partition's end offset, asked with
ListOffsets(latest). Tansu (the embedded broker) answers with the base offset of the *last
record batch* + 1 rather than the offset after its last record — measured here: 7 single
records then a batch of 5 give 8, not 12 — so a worker taking over a partition would stop
restoring early and lose the newest state of some targets. The high watermark in a fetch
response is right, so when ``kafka.probe_end_offsets`` is on (the default) every recovery's
end offsets are confirmed by one fetch per partition at the reported end - 1.

Apache Kafka reports them right, so the probe runs only where it is needed. ``kafka.broker_kind``
says which broker serves: ``kafka`` turns the probe off in the settings, ``tansu`` keeps it, and
``auto`` (the default) asks the cluster once, at the first recovery (:func:`detect_broker_kind`).
A broker counts as Apache Kafka only on two signs together: a cluster id in Kafka's own format
(a UUID in 22 characters of base64url, which ``kafka-storage format`` enforces; Tansu's default is
``tansu_cluster``, and any string can be configured) and ApiVersions offering DescribeQuorum, an
API of KRaft's controller quorum that Tansu, having no Raft quorum, does not implement. Anything
else -- Tansu, a broker that does not answer, a Kafka in ZooKeeper mode, another implementation --
keeps the probe, since it is harmless where end offsets are right and essential where they are not.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Collection, Mapping
from typing import Any, Literal

from aiokafka import AIOKafkaClient, AIOKafkaConsumer
from aiokafka.errors import KafkaConnectionError, KafkaError
from aiokafka.protocol.admin import ApiVersionRequest
from aiokafka.protocol.metadata import MetadataRequest
from aiokafka.structs import TopicPartition

log = logging.getLogger(__name__)

BrokerKind = Literal["kafka", "tansu", "other"]

_KAFKA_CLUSTER_ID = re.compile(r"^[A-Za-z0-9_-]{22}$")
"""Kafka's ``Uuid.toString()``: 16 bytes in base64url without padding."""
_DESCRIBE_QUORUM = 55
"""ApiKey of DescribeQuorum (KIP-595): answered by Apache Kafka in KRaft mode, not by Tansu."""
_TANSU_CLUSTER_ID = "tansu_cluster"
_detected: dict[str, BrokerKind] = {}
"""Broker kind per bootstrap address, once detected."""


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


async def end_offsets_need_probe(client_options: dict[str, Any], broker_kind: str = "auto") -> bool:
    """Whether end offsets must be confirmed by fetch: not on Apache Kafka, detected once per
    bootstrap address when ``broker_kind`` is ``auto``; yes when the cluster does not answer."""
    if broker_kind != "auto":
        return broker_kind != "kafka"
    servers = str(client_options.get("bootstrap_servers"))
    if servers not in _detected:
        try:
            _detected[servers] = await detect_broker_kind(client_options)
        except (KafkaError, OSError, TimeoutError) as exc:
            log.warning("could not tell which broker serves %s (%s); probing end offsets", servers, exc)
            return True
    return _detected[servers] != "kafka"


async def probe_end_offsets(
    client_options: dict[str, Any], reported: Mapping[TopicPartition, int], timeout_s: float = 5.0
) -> dict[TopicPartition, int]:
    """``reported`` raised to the high watermark a fetch at ``reported - 1`` sees."""
    corrected = dict(reported)
    probed = [tp for tp, end in reported.items() if end > 0]
    if not probed:
        return corrected
    consumer = AIOKafkaConsumer(group_id=None, enable_auto_commit=False, **client_options)
    await consumer.start()
    try:
        consumer.assign([TopicPartition(tp.topic, tp.partition) for tp in probed])
        for tp in probed:
            consumer.seek(TopicPartition(tp.topic, tp.partition), reported[tp] - 1)
        waiting = set(probed)
        deadline = asyncio.get_running_loop().time() + timeout_s
        while waiting and asyncio.get_running_loop().time() < deadline:
            await consumer.getmany(timeout_ms=200)
            for tp in list(waiting):
                highwater = consumer.highwater(TopicPartition(tp.topic, tp.partition))
                if highwater is not None:
                    corrected[tp] = max(reported[tp], highwater)
                    waiting.discard(tp)
        if waiting:
            log.warning("could not confirm end offsets of %s; using the broker's answer", sorted(waiting))
    finally:
        await consumer.stop()
    changed = {tp: (reported[tp], end) for tp, end in corrected.items() if end != reported[tp]}
    if changed:
        log.info("end offsets corrected by fetch probe: %s", changed)
    return corrected


def install_faust_end_offset_probe(client_options: dict[str, Any], broker_kind: str = "auto") -> None:
    """Make Faust's recovery use probed end offsets where the broker needs it (idempotent).

    With ``broker_kind="auto"`` the first recovery asks the cluster which broker it is
    (:func:`end_offsets_need_probe`); on Apache Kafka the reported end offsets are used as they are.
    The hook into Faust is :func:`streams.node.faust_compat.correct_recovery_end_offsets`.
    """
    from streams.node.faust_compat import correct_recovery_end_offsets

    if broker_kind == "kafka":
        return

    async def correct(reported: Mapping[Any, int]) -> Mapping[Any, int]:
        if not await end_offsets_need_probe(client_options, broker_kind):
            return reported
        return await probe_end_offsets(client_options, reported)

    correct_recovery_end_offsets(correct)
