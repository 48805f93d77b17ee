"""A broker killed (-9) under load on three brokers loses nothing and gives no target two owners.

The deployment's topics (and the workers' internal ones) have replication factor 3 and
``min.insync.replicas=2``; every writer in the pipeline uses ``acks=all`` (the workers' Faust
producer by default, the sink explicitly) and so does the test's stat feed. Two workers and the
sink run while a steady feed of stat events for 40 targets goes on; one broker, the leader of
the most partitions of the deployment, is killed with SIGKILL and the feed goes on. The test then
shows:

- every target reaches the endpoint with the newest value fed after the kill, and, once the feed
  stops, with the very last value fed (nothing acknowledged to a producer was lost);
- after the cluster settled, every target's decisions come from one worker only;
- every alarm raised meanwhile (by workers or sink) is cleared by the end;
- the broker, restarted, is back in the in-sync replicas of every partition of the deployment.

Figures (targets, missing, duplicate owners, seconds from the kill to every target current at
the endpoint, alarms seen, seconds for the restarted broker to catch up) are printed on one line
(``pytest -s`` shows them). With Kafka's default ``broker.session.timeout.ms`` (9 s) the killed
broker's partitions have no leader until the controller fences it; the feed's acks=all sends in
flight wait for the new leaders (they are not lost and need no resend), so the time to every
target current is that fencing time plus one decision tick and one sink batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, defaultdict

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from infra.kafka_broker import KafkaCluster
from schemas import decode_decision
from tests.integration.pipeline import Pipeline, eventually, stat_records, user_data
from tests.kafka.helpers import (
    alarm_history,
    partition_states,
    prefixed_topics,
    still_raised,
    topic_configs,
)

TARGETS = [f"vq-{i:02d}" for i in range(40)]
LOGGED_IN = 1000
ROUND_EVERY_S = 0.5
"""The feed's pace: one round (three stat events per target) every half second."""


class StatFeed:
    """A steady feed: round ``n`` sets every target's ready agents to ``n`` (acks=all, idempotent).

    A round is resent until the cluster acknowledged all of it, so :attr:`acked` is the newest
    value of every target that Kafka accepted.
    """

    def __init__(self, bootstrap: str, topic: str):
        self.bootstrap = bootstrap
        self.topic = topic
        self.acked = 0
        self.failed_sends = 0
        self.longest_round_s = 0.0
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> int:
        """Stop after the round in flight; returns the last acknowledged round."""
        self._stop.set()
        if self._task is not None:
            await self._task
        return self.acked

    async def _run(self) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=True,
                                    linger_ms=5, request_timeout_ms=15_000)
        await producer.start()
        try:
            round_number = 0
            while not self._stop.is_set():
                round_number += 1
                records = [r for t in TARGETS for r in stat_records(t, round_number, logged_in=LOGGED_IN)]
                started = time.monotonic()
                while True:
                    try:
                        sent = [await producer.send(self.topic, value, key=key) for key, value in records]
                        await asyncio.gather(*sent)
                        break
                    except KafkaError:
                        self.failed_sends += 1  # resent: same events, same timestamps
                self.acked = round_number
                self.longest_round_s = max(self.longest_round_s, time.monotonic() - started)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), ROUND_EVERY_S)
        finally:
            await producer.stop()


def endpoint_ready(pipeline: Pipeline) -> dict[str, int]:
    """Ready agents per target as the endpoint holds them now."""
    return {t: int(user_data(entity)["readyAgents"]) for t, entity in pipeline.emulator.targets.items()}


async def _leader_of_most(bootstrap: str, topics: list[str]) -> tuple[int, Counter[int]]:
    leaders = Counter(state.leader for state in (await partition_states(bootstrap, topics)).values())
    return leaders.most_common(1)[0][0], leaders


async def _all_in_sync(bootstrap: str, topics: list[str], node_id: int) -> bool:
    try:
        states = await partition_states(bootstrap, topics)
    except Exception:  # metadata not there yet
        return False
    return bool(states) and all(node_id in s.isr and len(s.isr) == 3 for s in states.values())


async def test_killing_a_broker_under_load_loses_no_decision_and_gives_no_target_two_owners(
        kafka_cluster: KafkaCluster, cluster_pipeline: Pipeline) -> None:
    pipeline = cluster_pipeline
    bootstrap = kafka_cluster.bootstrap_servers
    # Every topic the services create (Faust's internal ones included) gets min.insync.replicas=2.
    pipeline.env["PACING_KAFKA__MIN_INSYNC_REPLICAS"] = "2"

    worker_env = {"PACING_WORKER__KEEPALIVE_S": "1"}  # keepalives would expose a second owner quickly
    await pipeline.start_worker(PACING_NODE_ID="node-a", **worker_env)
    await pipeline.start_worker(PACING_NODE_ID="node-b", **worker_env)
    await pipeline.start_sink(PACING_NODE_ID="sink-1")
    topics = await prefixed_topics(bootstrap, pipeline.prefix)
    configs = await topic_configs(bootstrap, topics)
    assert {t: c["min.insync.replicas"] for t, c in configs.items() if c["min.insync.replicas"] != "2"} == {}
    assert await eventually(lambda: _all_in_sync(bootstrap, topics, 1), message="every partition on 3 replicas")

    feed = StatFeed(bootstrap, pipeline.topics.stats)
    feed.start()
    victim = None
    try:
        await eventually(lambda: len(endpoint_ready(pipeline)) == len(TARGETS), timeout_s=45,
                         message="every target at the endpoint before the kill")
        victim_id, leaders = await _leader_of_most(bootstrap, topics)
        victim = victim_id - 1
        kafka_cluster.kill(victim)
        killed_at = time.monotonic()
        first_round_after_kill = feed.acked + 1

        def current_after_kill() -> bool:
            ready = endpoint_ready(pipeline)
            return len(ready) == len(TARGETS) and min(ready.values()) >= first_round_after_kill

        await eventually(current_after_kill, timeout_s=60, message="every target current at the endpoint after "
                         f"the kill (round >= {first_round_after_kill}); feed at {feed.acked}")
        recovery_s = time.monotonic() - killed_at
        survivors = ",".join(kafka_cluster.node_address(i) for i in range(3) if i != victim)
        await eventually(lambda: _out_of_every_isr(survivors, topics, victim_id), timeout_s=30,
                         message=f"node {victim_id} fenced: out of every ISR")

        # Settled: from now on, a second owner of a target would show up within a keepalive.
        settled_ms = int(time.time() * 1000)
        settled_round = feed.acked
        await eventually(lambda: min(endpoint_ready(pipeline).values()) >= settled_round + 4, timeout_s=30,
                         message="four more rounds at the endpoint after the cluster settled")
        last_round = await feed.stop()
        final = await eventually(lambda: (r := endpoint_ready(pipeline)) and all(
            r.get(t) == last_round for t in TARGETS) and r, timeout_s=30,
            message=f"every target's last value ({last_round}) at the endpoint")
        missing = [t for t in TARGETS if final.get(t) != last_round]

        owners: dict[str, set[str]] = defaultdict(set)
        for record in await pipeline.read_all(pipeline.topics.actiontargets, timeout_s=1.5):
            decision = decode_decision(record.value)
            if decision.computed_at >= settled_ms:
                owners[decision.target_id].add(decision.node)
        duplicates = {t: nodes for t, nodes in owners.items() if len(nodes) > 1}
        assert set(owners) == set(TARGETS)
        assert duplicates == {}
        assert {node for nodes in owners.values() for node in nodes} == {"node-a", "node-b"}

        (history,) = await eventually(lambda: _alarms_settled(pipeline), timeout_s=30,
                                      message="every alarm raised during the failure cleared")

        restarted_at = time.monotonic()
        await asyncio.to_thread(kafka_cluster.restart, victim)
        await eventually(lambda: _all_in_sync(bootstrap, topics, victim_id), timeout_s=60,
                         message=f"node {victim_id} back in the ISR of every partition of the deployment")
        catch_up_s = time.monotonic() - restarted_at
        victim = None
    finally:
        if not feed._stop.is_set():
            await feed.stop()
        if victim is not None and not kafka_cluster.alive(victim):
            await asyncio.to_thread(kafka_cluster.restart, victim)

    alarms = ", ".join(f"{name}[{scope}] {'>'.join(states)}" for (name, scope), states in sorted(history.items()))
    print(f"\nbroker kill: killed node {victim_id} (leader of {leaders[victim_id]} of {sum(leaders.values())} "
          f"partitions); targets checked {len(TARGETS)}, missing {len(missing)}, duplicate owners {len(duplicates)}, "
          f"every target current {recovery_s:.1f}s after the kill; {last_round} rounds fed, longest round "
          f"{feed.longest_round_s:.1f}s to acknowledge, {feed.failed_sends} resends; alarms: {alarms or 'none'}; "
          f"restarted node up and in every ISR {catch_up_s:.1f}s after its restart began")
    assert missing == []


async def _alarms_settled(pipeline: Pipeline) -> tuple[dict[tuple[str, str], list[str]]] | None:
    history = await alarm_history(pipeline)
    return None if still_raised(history) else (history,)


async def _out_of_every_isr(bootstrap: str, topics: list[str], node_id: int) -> bool:
    states = await partition_states(bootstrap, topics)
    return all(node_id not in s.isr and s.leader != node_id for s in states.values())
