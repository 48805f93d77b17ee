"""Every target's newest decision and definition, in memory on every worker: what the API answers from.

Decisions come from ``pacing.actiontargets`` (:mod:`streams.api.decision_feed`), definitions from the
node's own reader of ``pacing.targets`` (:class:`DefinitionSource`). Each worker holds all of them — a
global table — so any worker answers for any target without asking its owner: the topic is compacted
and keyed by target id, so it *is* the table's changelog, and a worker is at most one published
decision behind the owner (plus the fetch wait, ``kafka.fetch_max_wait_ms``).

The worker's API process (:mod:`streams.node.api_process`) reads both topics and answers on one
event loop, so nothing here is shared between threads.

Cheap to keep current: a record costs a dict store (no decoding); a decision is decoded the first
time it is asked for (~10 µs) and cached until the next record of its target. The consolidated
Reactive State and Channel Capacity over *every* target are running integer sums per channel, kept
up to date by the feed in small slices after each batch it reads (:meth:`TargetDirectory.refresh_sums`),
so answering is O(1), not O(all targets) — but only while someone asks for them
(:data:`SUMS_KEPT_S` after the last such request): decoding every decision of the deployment costs
a worker about a tenth of a core at 10,000 targets (py-spy, 2026-12-07), which pacing needs more. The
first request after a quiet spell folds every decision changed meanwhile itself. Ids are kept sorted
for the paged listing (O(log n) seek).
"""

from __future__ import annotations

import bisect
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiokafka.partitioner import murmur2

from schemas import DecodeError, decode_decision
from streams.api.models import CHANNEL_ALIASES

log = logging.getLogger(__name__)

#: Changed decisions a request for every group folds into the sums itself (~3 ms of decoding at most).
REQUEST_REFRESH_LIMIT = 256
#: The consolidated sums are kept current for this long after a request for them (see the module docstring).
SUMS_KEPT_S = 300.0
_NANO = 1_000_000_000  # reactive admission * logged-in agents, summed as exact integers in units of 1e-9


class DefinitionSource(Protocol):
    """The node's definitions (:class:`streams.node.target_definitions.TargetDefinitions`)."""

    def get(self, target_id: str) -> dict[str, Any] | None: ...

    def ids(self) -> Iterable[str]: ...

    def listen(self, listener: Callable[[str, bool], None]) -> None: ...


@dataclass(slots=True)
class _Decision:
    raw: bytes
    view: dict[str, Any] | None = None  # decoded on first use (None: not yet; {} : undecodable)


@dataclass(slots=True)
class _Sums:
    weight: int = 0  # logged-in agents of active groups
    weighted_nano: int = 0  # Σ logged-in * reactive admission, in units of 1e-9
    free: int = 0  # Σ max(0, ready - waiting)
    groups: int = 0


@dataclass(frozen=True, slots=True)
class _Contribution:
    media: tuple[str, ...]
    weight: int
    weighted_nano: int
    free: int


@dataclass
class Consolidated:
    """Reactive State and Channel Capacity over some groups of one channel."""

    reactive_state: float
    capacity: int
    groups_counted: int
    groups_without_decision: list[str] = field(default_factory=list)


def _figure(figures: dict[str, str], name: str) -> float | None:
    try:
        return float(figures[name])
    except (KeyError, ValueError):
        return None


def _contribution(view: dict[str, Any]) -> _Contribution | None:
    """What an active decision adds to the sums of each of its channels (None: nothing)."""
    if not view or view["state"] != "active":
        return None
    weight = view["logged_in_agents"]
    return _Contribution(tuple(view["supported_media_types"]), weight,
                         round(weight * view["reactive_admission"] * _NANO),
                         max(0, view["ready_agents"] - view["waiting_interactions"]))


class TargetDirectory:
    """The newest decision and the definition of every target of the deployment."""

    def __init__(self, stats_partitions: int, definitions: DefinitionSource | None = None):
        self._partitions = stats_partitions
        self._definitions = definitions
        self._decisions: dict[str, _Decision] = {}
        self._ids: list[str] = []  # sorted: every id with a decision or a definition
        self._dirty: set[str] = set()  # decisions changed since the sums were last brought up to date
        self._contributions: dict[str, _Contribution] = {}
        self._sums: dict[str, _Sums] = {}
        self._sums_asked_at = -SUMS_KEPT_S  # monotonic: never asked
        if definitions is not None:
            for target_id in definitions.ids():
                self._add_id(target_id)
            definitions.listen(self.definition_changed)

    def __len__(self) -> int:
        return len(self._ids)

    # -- keeping it current ------------------------------------------------------------------

    def apply_decision(self, key: bytes | None, value: bytes | None) -> None:
        """Fold one record of ``pacing.actiontargets`` (an empty value removes the decision)."""
        if not key:
            return
        target_id = key.decode(errors="replace")
        if not value:
            if self._decisions.pop(target_id, None) is not None:
                self._dirty.add(target_id)
                self._drop_id_if_unknown(target_id)
            return
        entry = self._decisions.get(target_id)
        if entry is None:
            self._decisions[target_id] = _Decision(value)
            self._add_id(target_id)
        else:
            entry.raw = value
            entry.view = None
        self._dirty.add(target_id)

    def definition_changed(self, target_id: str, present: bool) -> None:
        """The node's definitions changed for ``target_id`` (defined, or deleted when not ``present``)."""
        if present:
            self._add_id(target_id)
        else:
            self._drop_id_if_unknown(target_id)

    def _add_id(self, target_id: str) -> None:
        ids = self._ids
        index = bisect.bisect_left(ids, target_id)
        if index == len(ids) or ids[index] != target_id:
            ids.insert(index, target_id)

    def _drop_id_if_unknown(self, target_id: str) -> None:
        if target_id in self._decisions or self._definition(target_id) is not None:
            return
        ids = self._ids
        index = bisect.bisect_left(ids, target_id)
        if index < len(ids) and ids[index] == target_id:
            del ids[index]

    # -- answering ---------------------------------------------------------------------------

    def _definition(self, target_id: str) -> dict[str, Any] | None:
        return None if self._definitions is None else self._definitions.get(target_id)

    def decision(self, target_id: str) -> dict[str, Any] | None:
        """The decision of ``target_id`` as a :class:`~streams.api.models.DecisionView` without its age."""
        entry = self._decisions.get(target_id)
        if entry is None:
            return None
        if entry.view is None:
            entry.view = self._decode(target_id, entry.raw)
        return entry.view or None

    def _decode(self, target_id: str, raw: bytes) -> dict[str, Any]:
        try:
            decision = decode_decision(raw)
        except DecodeError as exc:
            log.warning("decision of %r on pacing.actiontargets not readable: %s", target_id[:80], exc.reason)
            return {}
        figures = decision.figures
        return {
            "name": decision.name, "state": decision.state,
            "supported_media_types": list(decision.supported_media_types),
            "allowed_offers": decision.allowed_offers, "reactive_admission": decision.reactive_admission,
            "algorithm": decision.algorithm, "acceptance_rate": decision.acceptance_rate,
            "abandonment_pct": _figure(figures, "abandonmentPct"),
            "service_level_pct": _figure(figures, "serviceLevelPct"),
            "ready_agents": decision.ready_agents, "busy_agents": decision.busy_agents,
            "logged_in_agents": decision.logged_in_agents, "waiting_interactions": decision.waiting_interactions,
            "outstanding_offers": decision.outstanding_offers,
            "service_level_percentage": decision.service_level_percentage,
            "service_level_duration_ms": decision.service_level_duration_ms,
            "node": decision.node,
            "partition": (murmur2(target_id.encode()) & 0x7FFFFFFF) % self._partitions,
            "computed_at": decision.computed_at, "figures": dict(figures),
        }

    def view(self, target_id: str, now_ms: int | None = None) -> dict[str, Any] | None:
        """A :class:`~streams.api.models.TargetView` of ``target_id``; None when neither decided nor defined."""
        decision = self.decision(target_id)
        definition = self._definition(target_id)
        if decision is None and definition is None:
            return None
        if decision is not None:
            now = time.time() * 1000 if now_ms is None else now_ms
            decision = {**decision, "age_s": round((now - decision["computed_at"]) / 1000, 3)}
        return {"target_id": target_id, "decision": decision, "definition": definition}

    def page(self, prefix: str, after: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
        """Up to ``limit`` targets whose id starts with ``prefix``, after ``after``, in id order; and the
        id to continue after (None: no more)."""
        ids = self._ids
        start = bisect.bisect_left(ids, prefix)
        if after is not None and after >= prefix:
            start = max(start, bisect.bisect_right(ids, after))
        window = ids[start:start + limit + 1]
        now = time.time() * 1000
        matching = [target_id for target_id in window if target_id.startswith(prefix)]
        items = [view for target_id in matching[:limit] if (view := self.view(target_id, now)) is not None]
        more = len(matching) > limit
        return items, (matching[limit - 1] if more else None)

    def consolidated(self, channel: str, groups: list[str]) -> Consolidated:
        """Reactive State and Channel Capacity of ``channel`` over ``groups`` (none: every target)."""
        media = CHANNEL_ALIASES.get(channel, channel)
        if not groups:
            # After a quiet spell nobody kept the sums current: bring them up to date once, in full.
            self.refresh_sums(REQUEST_REFRESH_LIMIT if self.sums_wanted() else len(self._dirty))
            self._sums_asked_at = time.monotonic()
            sums = self._sums.get(media) or _Sums()
            return Consolidated(self._ratio(sums.weighted_nano, sums.weight), sums.free, sums.groups)
        weight = weighted = free = counted = 0
        missing = []
        for group in dict.fromkeys(groups):  # each named group once, in the order given
            decision = self.decision(group)
            if decision is None:
                missing.append(group)
                continue
            contribution = _contribution(decision)
            if contribution is not None and media in contribution.media:
                weight += contribution.weight
                weighted += contribution.weighted_nano
                free += contribution.free
                counted += 1
        return Consolidated(self._ratio(weighted, weight), free, counted, missing)

    @staticmethod
    def _ratio(weighted_nano: int, weight: int) -> float:
        return 0.0 if weight <= 0 else min(1.0, round(weighted_nano / weight / _NANO, 6))

    def sums_wanted(self) -> bool:
        """Whether the consolidated sums were asked for within :data:`SUMS_KEPT_S` (the feed keeps them current)."""
        return time.monotonic() - self._sums_asked_at < SUMS_KEPT_S

    def refresh_sums(self, limit: int) -> int:
        """Fold up to ``limit`` changed decisions into the per-channel sums; how many are left.

        The decision feed calls it after each batch it reads, in slices between which requests are
        served; a request for every group folds at most :data:`REQUEST_REFRESH_LIMIT` more itself. So a
        burst of decisions (the keepalive re-publishes every target) never stalls one request.
        """
        dirty = self._dirty
        for _ in range(min(limit, len(dirty))):
            target_id = dirty.pop()
            old = self._contributions.pop(target_id, None)
            if old is not None:
                self._add(old, -1)
            decision = self.decision(target_id)
            new = None if decision is None else _contribution(decision)
            if new is not None:
                self._contributions[target_id] = new
                self._add(new, 1)
        return len(dirty)

    def _add(self, contribution: _Contribution, sign: int) -> None:
        for media in contribution.media:
            sums = self._sums.get(media)
            if sums is None:
                sums = self._sums[media] = _Sums()
            sums.weight += sign * contribution.weight
            sums.weighted_nano += sign * contribution.weighted_nano
            sums.free += sign * contribution.free
            sums.groups += sign
