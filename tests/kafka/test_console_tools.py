"""Kafka's own console producer and consumer (from the project's Maven cache) as outside clients.

- ``kafka-console-producer`` (``org.apache.kafka.tools.ConsoleProducer``) types JSON stat events
  into ``pacing.stats``, once keyed by target id (``--reader-property parse.key=true``, Kafka's
  murmur2 partitioner: the target's home partition) and once without a key (Kafka's sticky
  partitioner: any partition, which the worker forwards to the target's home partition when it is
  another). Both reach the endpoint.
- ``kafka-console-consumer`` (``org.apache.kafka.tools.consumer.ConsoleConsumer``) reads the
  alarm topic after the sink raised and cleared ``PacingRequestsFailed`` (the endpoint answered
  503 for a while): with ``print.key=true`` the key ``name:scope`` is plain text, and the value
  bytes it prints are the Avro single-object alarm record itself.
"""

from __future__ import annotations

import json
import time

from infra.kafka_broker import KafkaCluster
from schemas import decode_alarm
from tests.integration.pipeline import Pipeline, eventually, stat_records, user_data
from tests.kafka.helpers import alarm_history, run_kafka_tool

CONSOLE_PRODUCER = "org.apache.kafka.tools.ConsoleProducer"
CONSOLE_CONSUMER = "org.apache.kafka.tools.consumer.ConsoleConsumer"
KEY_END = b"<key-end>"
RECORD_END = b"<record-end>"


def json_events(target_id: str, ready: int) -> list[str]:
    """JSON stat events of one target as a person would type them (docs/contracts.md, "Produce a JSON stat event")."""
    now = int(time.time() * 1000)
    return [json.dumps({"tenant": "acme", "target_id": target_id, "statistic": name, "value": value,
                        "timestamp": now, "source": "console", "media_type": "webchat"})
            for name, value in (("logged_in_agents", 10), ("ready_agents", ready))]


async def test_console_producer_events_reach_the_endpoint_and_console_consumer_reads_alarms(
        kafka_cluster: KafkaCluster, cluster_pipeline: Pipeline) -> None:
    pipeline = cluster_pipeline
    await pipeline.start_worker(PACING_NODE_ID="node-1")
    await pipeline.start_sink(PACING_NODE_ID="sink-1")
    bootstrap = kafka_cluster.bootstrap_servers
    producer_args = ("--bootstrap-server", bootstrap, "--topic", pipeline.topics.stats)

    keyed = await run_kafka_tool(
        CONSOLE_PRODUCER, *producer_args, "--reader-property", "parse.key=true",
        "--reader-property", "key.separator=|",
        stdin="".join(f"vq-console-keyed|{line}\n" for line in json_events("vq-console-keyed", 4)).encode())
    assert keyed.returncode == 0, keyed.stderr
    unkeyed = await run_kafka_tool(
        CONSOLE_PRODUCER, *producer_args,
        stdin="".join(f"{line}\n" for line in json_events("vq-console-unkeyed", 6)).encode())
    assert unkeyed.returncode == 0, unkeyed.stderr

    def delivered() -> bool:
        targets = pipeline.emulator.targets
        return all(t in targets and user_data(targets[t])["readyAgents"] == ready
                   for t, ready in (("vq-console-keyed", "4"), ("vq-console-unkeyed", "6")))

    await eventually(delivered, timeout_s=45, message="both console-produced targets at the endpoint")

    # An alarm: the endpoint fails every bulk request until the fault is cleared.
    pipeline.emulator.faults.set(status=503)
    await pipeline.produce(stat_records("vq-console-keyed", 3))
    await eventually(lambda: _alarm_states(pipeline, ["raised"]), timeout_s=30,
                     message="PacingRequestsFailed raised by the sink")
    pipeline.emulator.faults.clear()
    await eventually(lambda: _alarm_states(pipeline, ["raised", "cleared"]), timeout_s=30,
                     message="PacingRequestsFailed cleared by the sink")

    consumed = await run_kafka_tool(
        CONSOLE_CONSUMER, "--bootstrap-server", bootstrap, "--topic", pipeline.topics.alarms, "--from-beginning",
        "--max-messages", "2", "--timeout-ms", "30000",
        "--formatter-property", "print.key=true",
        "--formatter-property", f"key.separator={KEY_END.decode()}",
        "--formatter-property", f"line.separator={RECORD_END.decode()}")
    assert consumed.returncode == 0, consumed.stderr
    records = [record.split(KEY_END, 1) for record in consumed.stdout.split(RECORD_END) if record]
    assert [key for key, _ in records] == [b"PacingRequestsFailed:sink:sink-1"] * 2, consumed.stdout[:500]
    alarms = [decode_alarm(value) for _, value in records]
    assert [a.state.value for a in alarms] == ["raised", "cleared"]
    assert "503" in alarms[0].message and alarms[0].node == "sink-1"


async def _alarm_states(pipeline: Pipeline, states: list[str]) -> bool:
    history = await alarm_history(pipeline)
    return history.get(("PacingRequestsFailed", "sink:sink-1")) == states
