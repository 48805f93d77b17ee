"""Which ``pacing.stats`` partition is a target's home: Kafka's default partitioner, on the target id.

A target must have exactly one owner. Producers use whatever partitioner their client has —
librdkafka's default (confluent-kafka, kcat) hashes with CRC32, not Kafka's murmur2 — so the
partition a record arrives on is not trusted: the home partition is murmur2 of the UTF-8 target
id, as the Java client and aiokafka compute it for a record keyed by the target id. Events that
arrive elsewhere are forwarded to their home partition before they are folded.
"""

from __future__ import annotations

from functools import lru_cache

from aiokafka.partitioner import murmur2


@lru_cache(maxsize=65_536)
def home_partition(target_id: str, partitions: int) -> int:
    """The partition that owns ``target_id`` among ``partitions``."""
    return (murmur2(target_id.encode()) & 0x7FFFFFFF) % partitions
