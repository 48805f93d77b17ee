"""Stat events from simulated contact centres that follow the published decisions (``pacing feed``).

Each target is a :class:`~streams.simulation.contact_centre.ContactCentre` — the discrete-event
model ``pacing simulate`` scores the engine with — running in real time: agents take
interactions and go ready again, reactive interactions queue and are answered or abandoned,
offers are made and some accepted. Every ``interval_s`` each centre reports its gauges and
running counters, as a Stat Server bridge would, in Avro single-object encoding (or JSON): by
default one StatBatch record per target and report (its 13 events;
:class:`schemas.batching.StatBatcher`), with ``single`` one StatEvent record per event.

The loop is closed through the decisions topic: the feed reads ``pacing.actiontargets`` like
any consumer and each refresh period makes the offers (and applies the reactive admission) of
the newest decision published for its target, as Journey would with the action target the sink
delivers. So the numbers move for a reason: a decision that allows too many offers shows up as
waiting interactions and abandons a few periods later, and the next decisions answer that.

Why real time and not faster: the pacing node decides on its own wall clock and measures rates
over the events' timestamps, so a centre whose simulated time ran ahead of the clock would
report rates the engine mistakes by the same factor. What is accelerated is the start: each
centre first runs one rate window (15 simulated minutes by default) off-line, paced by the
engine in-process with the worker's target defaults, so ``make run`` opens on busy agents and
queues rather than an empty floor.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field, replace

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from schemas import ActionTargetDecision, DecodeError, StatBatcher, StatEvent, decode_decision, encode_stat_event
from streams.node.decisions import pacing_settings
from streams.runtime.config import Settings, TargetDefaults
from streams.runtime.kafka import client_options
from streams.runtime.topics import ensure_topics, topic_names
from streams.simulation.contact_centre import ContactCentre
from streams.simulation.policies import EnginePolicy, spread
from streams.simulation.policies import StatEvent as SimulatedStat  # (name, value, measured at s)
from streams.simulation.scenario import Scenario

log = logging.getLogger(__name__)

#: Simulated hours a centre may run: longer than any feed (the simulator stops at its scenario's end).
_HORIZON_HOURS = 24 * 365


@dataclass(frozen=True)
class Profile:
    """One kind of agent group in the demo: its name stem, media type and traffic."""

    name: str
    media_type: str
    scenario: Scenario


#: The demo floor: groups of different sizes, acceptance and reactive traffic (``pacing feed --targets N``
#: cycles through them). Times in seconds, reactive traffic per hour.
PROFILES: tuple[Profile, ...] = (
    Profile("chat-2-low", "webchat",
            Scenario(agents=2, acceptance=0.08, handle_time_s=180, patience_s=60, response_s=8)),
    Profile("queue-15-reactive", "webchat",
            Scenario(agents=15, acceptance=0.3, reactive_per_hour=120, handle_time_s=300, patience_s=90)),
    Profile("callback-60", "callback",
            Scenario(agents=60, acceptance=0.7, handle_time_s=240, patience_s=300, response_s=20)),
    Profile("messaging-8", "messaging",
            Scenario(agents=8, acceptance=0.2, reactive_per_hour=30, handle_time_s=400, patience_s=180)),
    Profile("sales-5-high", "webchat",
            Scenario(agents=5, acceptance=0.55, handle_time_s=150, patience_s=45)),
)


class PublishedDecisionPolicy:
    """Journey's side of the loop: each refresh period, the offers the newest decision allows.

    Before any decision arrives the centre makes no offers and admits every reactive
    interaction, as a journey without an action target would. An inactive decision allows none.
    """

    name = "published"

    def __init__(self) -> None:
        self.allowed_offers = 0
        self.reactive_admission = 1.0
        self.decisions = 0
        """Decisions followed so far."""

    def follow(self, decision: ActionTargetDecision) -> None:
        """Take ``decision`` as the one in force from the next refresh period on."""
        self.allowed_offers = decision.allowed_offers if decision.state == "active" else 0
        self.reactive_admission = decision.reactive_admission
        self.decisions += 1

    def plan(self, events: list[SimulatedStat], now_s: float, period_s: float) -> tuple[list[float], float]:
        """The period's offers, evenly spread, and the reactive admission in force (the centre's own
        statistics are not needed: the worker decides on the ones the feed publishes)."""
        return spread(self.allowed_offers, now_s, period_s), self.reactive_admission


@dataclass
class SimulatedTarget:
    """One pacing target: a simulated agent group and the decisions it follows."""

    target_id: str
    media_type: str
    centre: ContactCentre
    policy: PublishedDecisionPolicy = field(default_factory=PublishedDecisionPolicy)

    def events(self, tenant: str, now_ms: int) -> list[StatEvent]:
        """The group's gauges and counters now, as a Stat Server bridge would report them."""
        return [StatEvent(tenant=tenant, target_id=self.target_id, statistic=statistic, value=float(value),
                          timestamp=now_ms, source="pacing-feed", media_type=self.media_type)
                for statistic, value in self.centre.stats().items()]


def make_targets(count: int, seed: int, defaults: TargetDefaults | None = None) -> list[SimulatedTarget]:
    """``count`` targets cycling through :data:`PROFILES`, each warmed up and then following decisions.

    The warm-up runs each centre for one rate window (``defaults.rate_window_s``, 15 simulated
    minutes by default: the engine's rates are full by then) with the engine in-process (settings
    from ``defaults``, the worker's target defaults); after it the centre makes only the offers
    the published decisions allow. Reproducible from ``seed``.
    """
    if count < 1:
        raise ValueError(f"a feed needs at least one target, got {count}")
    defaults = defaults or TargetDefaults()
    engine_settings = pacing_settings(defaults)
    targets = []
    for i in range(count):
        profile = PROFILES[i % len(PROFILES)]
        target_id = profile.name if i < len(PROFILES) else f"{profile.name}-{i // len(PROFILES) + 1:02d}"
        scenario = replace(profile.scenario, seed=seed * 1000 + i, hours=_HORIZON_HOURS, settings=engine_settings,
                           warmup_s=defaults.rate_window_s)
        centre = ContactCentre(scenario, EnginePolicy(engine_settings, target_id))
        centre.advance(scenario.warmup_s)
        target = SimulatedTarget(target_id, profile.media_type, centre)
        centre.policy = target.policy
        targets.append(target)
    return targets


def report_events(targets: list[SimulatedTarget], tenant: str, now_ms: int) -> list[StatEvent]:
    """One report: every target's 13 events, in target order."""
    return [event for target in targets for event in target.events(tenant, now_ms)]


def encode_report(events: list[StatEvent], as_json: bool = False, single: bool = False) -> list[tuple[bytes, bytes]]:
    """A report's events as ``pacing.stats`` records ``(key, value)``, keyed by target id.

    Batched (the default): one StatBatch per target. ``single``: one StatEvent record per event.
    """
    if single:
        return [(event.target_id.encode(),
                 json.dumps(event.model_dump(mode="json")).encode() if as_json else encode_stat_event(event))
                for event in events]
    batcher = StatBatcher(as_json=as_json)
    return batcher.extend(events) + batcher.flush()


def follow_decision(targets: dict[str, SimulatedTarget], tenant: str, value: bytes | None) -> str | None:
    """Apply one ``pacing.actiontargets`` record to its target; the target id it moved, else None.

    Decisions of other tenants or targets and tombstones are not ours and are skipped; so are
    undecodable records (logged at debug level: the sink, reading the same topic, reports each one
    on ``pacing.actiontargets.errors``).
    """
    if value is None:
        return None
    try:
        decision = decode_decision(value)
    except DecodeError as exc:
        log.debug("skipping a decision record: %s", exc)
        return None
    target = targets.get(decision.target_id)
    if target is None or decision.tenant != tenant:
        return None
    target.policy.follow(decision)
    return decision.target_id


async def _follow_decisions(settings: Settings, targets: dict[str, SimulatedTarget]) -> None:
    consumer = AIOKafkaConsumer(topic_names(settings).actiontargets, group_id=None, auto_offset_reset="latest",
                                enable_auto_commit=False, **client_options(settings))
    await consumer.start()
    try:
        async for record in consumer:
            follow_decision(targets, settings.tenant, record.value)
    finally:
        await consumer.stop()


async def run_feed(
    settings: Settings, targets: int = len(PROFILES), interval_s: float = 1.0, duration_s: float = 0,
    as_json: bool = False, seed: int = 7, single: bool = False,
) -> int:
    """Report the simulated centres every ``interval_s`` until ``duration_s`` passes (0 = forever).

    Returns how many stat events were sent.
    """
    if interval_s <= 0:
        raise ValueError(f"the report interval must be positive, got {interval_s}")
    await ensure_topics(settings)
    topic = topic_names(settings).stats
    simulated = make_targets(targets, seed, settings.targets)
    by_id = {target.target_id: target for target in simulated}
    producer = AIOKafkaProducer(acks="all", linger_ms=20, **client_options(settings))
    await producer.start()
    follower = asyncio.create_task(_follow_decisions(settings, by_id))
    sent = 0
    started = next_report = time.monotonic()
    deadline = started + duration_s if duration_s else None
    try:
        while deadline is None or time.monotonic() < deadline:
            if follower.done():
                follower.result()  # the decisions consumer failed: raise its error rather than feed blind
            elapsed = time.monotonic() - started
            for target in simulated:
                target.centre.advance(target.centre.sc.warmup_s + elapsed)
            events = report_events(simulated, settings.tenant, int(time.time() * 1000))
            for key, value in encode_report(events, as_json, single):
                await producer.send(topic, value, key=key)
            sent += len(events)
            next_report += interval_s
            await asyncio.sleep(max(0.0, next_report - time.monotonic()))
    finally:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower
        await producer.stop()
    return sent
