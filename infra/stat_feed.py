"""A synthetic but plausible stream of stat events for a few dozen targets (``pacing feed``).

Each target is an agent group whose agents log in and out, take interactions and go ready
again; reactive interactions queue and are answered or abandoned; proactive offers are made and
some accepted. Every tick, each target reports its gauges and running counters — as a
Stat Server bridge would — in Avro single-object encoding (or JSON): by default one StatBatch
record per target and tick (its 13 events; :class:`schemas.batching.StatBatcher`), with
``single`` one StatEvent record per event, as producers that predate StatBatch do.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer

from schemas import StatBatcher, StatEvent, encode_stat_event
from schemas.models import COUNTER_NAMES
from streams.runtime.config import Settings
from streams.runtime.kafka import client_options
from streams.runtime.topics import ensure_topics, topic_names

log = logging.getLogger(__name__)


@dataclass
class SyntheticGroup:
    """One agent group evolving by small random steps."""

    target_id: str
    agents: int
    media_type: str
    rng: random.Random
    busy: int = 0
    waiting: int = 0
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTER_NAMES, 0))

    def step(self) -> None:
        """Advance one tick: arrivals, answers, completions, abandons, offers."""
        rng = self.rng
        arrivals = rng.randint(0, max(1, self.agents // 4))
        self.waiting += arrivals
        self.counters["interactions_entered"] += arrivals
        finished = sum(rng.random() < 0.2 for _ in range(self.busy))
        self.busy -= finished
        answered = min(self.waiting, self.agents - self.busy)
        self.busy += answered
        self.waiting -= answered
        self.counters["interactions_answered"] += answered
        self.counters["answered_within_sl"] += sum(rng.random() < 0.85 for _ in range(answered))
        abandoned = sum(rng.random() < 0.1 for _ in range(self.waiting))
        self.waiting -= abandoned
        self.counters["interactions_abandoned"] += abandoned
        self.counters["short_abandoned"] += sum(rng.random() < 0.3 for _ in range(abandoned))
        offers = rng.randint(0, max(1, self.agents - self.busy))
        self.counters["offers_made"] += offers
        self.counters["offers_accepted"] += sum(rng.random() < 0.3 for _ in range(offers))

    def stats(self) -> dict[str, float]:
        """Gauges and counters as a Stat Server bridge would report them."""
        return {
            "logged_in_agents": self.agents, "ready_agents": self.agents - self.busy,
            "busy_agents": self.busy, "waiting_interactions": self.waiting,
            "outstanding_offers": 0, "average_handle_time_s": 180.0, **self.counters,
        }


def make_groups(count: int, seed: int) -> list[SyntheticGroup]:
    """``count`` groups of 2 to 60 agents, reproducible from ``seed``."""
    rng = random.Random(seed)
    media = ("webchat", "callback", "messaging")
    return [
        SyntheticGroup(f"vq-{i:03d}", rng.choice((2, 3, 5, 8, 12, 20, 35, 60)), media[i % 3], random.Random(seed + i))
        for i in range(count)
    ]


def report_events(groups: list[SyntheticGroup], tenant: str, now_ms: int) -> list[StatEvent]:
    """One tick: every group steps, then reports its gauges and counters (13 events per group)."""
    events = []
    for group in groups:
        group.step()
        for statistic, value in group.stats().items():
            events.append(StatEvent(tenant=tenant, target_id=group.target_id, statistic=statistic,
                                    value=float(value), timestamp=now_ms, source="pacing-feed",
                                    media_type=group.media_type))
    return events


def encode_report(events: list[StatEvent], as_json: bool = False, single: bool = False) -> list[tuple[bytes, bytes]]:
    """A tick's events as ``pacing.stats`` records ``(key, value)``, keyed by target id.

    Batched (the default): one StatBatch per target. ``single``: one StatEvent record per event.
    """
    if single:
        return [(event.target_id.encode(),
                 json.dumps(event.model_dump(mode="json")).encode() if as_json else encode_stat_event(event))
                for event in events]
    batcher = StatBatcher(as_json=as_json)
    return batcher.extend(events) + batcher.flush()


async def run_feed(
    settings: Settings, targets: int = 36, interval_s: float = 1.0, duration_s: float = 0,
    as_json: bool = False, seed: int = 7, single: bool = False,
) -> int:
    """Produce stat events until ``duration_s`` passes (0 = forever); returns how many were sent."""
    await ensure_topics(settings)
    topic = topic_names(settings).stats
    producer = AIOKafkaProducer(acks="all", linger_ms=20, **client_options(settings))
    await producer.start()
    groups = make_groups(targets, seed)
    sent = 0
    deadline = time.monotonic() + duration_s if duration_s else None
    try:
        while deadline is None or time.monotonic() < deadline:
            events = report_events(groups, settings.tenant, int(time.time() * 1000))
            for key, value in encode_report(events, as_json, single):
                await producer.send(topic, value, key=key)
            sent += len(events)
            await asyncio.sleep(interval_s)
    finally:
        await producer.stop()
    return sent
