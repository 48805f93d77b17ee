"""End offsets as table recovery needs them, on the session's broker."""

from __future__ import annotations

import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition

from streams.dev_broker.end_offsets import probe_end_offsets


async def test_probe_finds_the_offset_after_the_last_record_of_a_batch(kafka_bootstrap: str) -> None:
    topic = f"end-offsets-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, 1, 1)])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    for i in range(7):
        await producer.send_and_wait(topic, b"single %d" % i, partition=0)
    batch = producer.create_batch()
    for i in range(5):
        batch.append(key=None, value=b"batched %d" % i, timestamp=None)
    await (await producer.send_batch(batch, topic, partition=0))
    await producer.stop()

    tp = TopicPartition(topic, 0)
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap)
    await consumer.start()
    reported = await consumer.end_offsets([tp])
    await consumer.stop()
    probed = await probe_end_offsets({"bootstrap_servers": kafka_bootstrap}, reported)
    assert probed[tp] == 12  # Tansu's ListOffsets answers 8 here; Kafka answers 12
