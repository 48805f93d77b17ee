"""The soak's invariant checker: what the topics and the endpoint's request log must show after a run.

Pure functions over what the soak (:mod:`tests.kafka.soak`) recorded: the feed's acknowledged
rounds (round ``n`` sets every target's ready agents to ``n``, so a decision's ``ready_agents`` says
which round it was computed from), every decision on ``pacing.actiontargets``, every table entry on
the workers' changelog, every alarm transition, every entity the endpoint stored (in the order it
stored them), and the fault windows. The invariants:

- **reflected**: every acknowledged round of every target reaches a decision (the newest decision
  of each target carries the last round the feed got acknowledged);
- **final**: the endpoint holds, for every target, exactly its newest decision;
- **endpoint-regression**: the endpoint never stores a decision computed before one it already
  stored for the same target;
- **changelog-regression**: no table entry that a restore would keep lands on top of a newer one for
  the same target (its ready-agents statistic older than the entry kept before it). A restore keeps
  the entry of the newest ownership epoch (:func:`streams.node.target_store.newer_entry`), so an
  entry a stale owner wrote after the new owner's is skipped by the restore: it is counted as
  *fenced* in the table, not as a regression;
- **alarms**: every alarm raised is cleared by the end;
- **dlq**: every poison record sent lands on the stats DLQ (at least once).

A violation that only the missing fencing explains (a regression by, or within a minute after, a
worker that was paused or cut off: issue 18 item 1) is *known*: reported, but it does not fail the
run while :data:`KNOWN_FAILING` lists it. Anything else fails the run.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from streams.node.target_store import newer_entry

FENCING_KINDS = frozenset({"worker_pause", "worker_cut"})
"""Faults that leave a worker writing after it lost its partitions: what fencing is for."""
FENCING_GRACE_S = 60.0
"""How long after a pause or cut ends the stale worker may still write (it rejoined 28.5 s after
a heal in the run issue 18 describes)."""

KNOWN_FAILING: dict[str, str] = {}
"""Invariants that fail today for a reason being fixed elsewhere, with that reason. Only violations
inside a pause or cut window (plus :data:`FENCING_GRACE_S`) count as known: for the endpoint and the
final state, only a decision of that window's worker (decisions name their node); for the changelog,
whose entries do not name their writer, any entry landing in the window. Remove an entry when
fencing is on main, and the soak fails on it again."""


@dataclass(frozen=True)
class Window:
    """One fault, from its start to the moment it was undone (wall-clock seconds)."""

    kind: str
    start: float
    end: float
    subject: str = ""  # the worker's node id, the broker node, the targets rejected, …

    def covers(self, at: float, grace_s: float = 0.0) -> bool:
        return self.start <= at <= self.end + grace_s


@dataclass(frozen=True)
class Decision:
    """A decision record on ``pacing.actiontargets`` (``at``: its record timestamp, seconds)."""

    target: str
    ready: int
    computed_at_ms: int
    node: str
    partition: int
    offset: int
    at: float


@dataclass(frozen=True)
class Stored:
    """An entity the endpoint stored: the decision it came from, and when (seconds)."""

    target: str
    ready: int
    computed_at_ms: int
    node: str
    at: float


@dataclass(frozen=True)
class TableEntry:
    """A changelog record of the workers' table (``ready_ts_ms``: when its ready-agents value was measured)."""

    target: str
    ready: int | None
    ready_ts_ms: int
    partition: int
    offset: int
    at: float
    epoch: int = 0  # the writer's ownership epoch (0: written before fencing, or by the re-seed)
    written_ms: int = 0  # when the writer wrote it (wall clock), for the fence's window

    def restore_value(self) -> dict[str, int]:
        """The fields the restore's rule reads (:func:`streams.node.target_store.newer_entry`)."""
        return {"epoch": self.epoch, "written_ms": self.written_ms}


@dataclass
class Violation:
    """One broken invariant; ``known`` is the reason it is expected today, if it is."""

    invariant: str
    target: str
    at: float
    detail: str
    known: str | None = None
    window: int | None = None  # the fault it is attributed to, when known
    lasted_s: float | None = None  # an endpoint regression: until the endpoint stored a newer decision again


@dataclass
class Report:
    """What the checker found, and figures per fault for the table."""

    violations: list[Violation] = field(default_factory=list)
    stall_s: dict[int, float] = field(default_factory=dict)  # window index -> longest ack-to-decision
    alarms_raised: dict[int, int] = field(default_factory=dict)  # window index -> alarms raised in it
    decisions: int = 0
    stored: int = 0
    table_entries: int = 0
    table_fenced: dict[int | None, int] = field(default_factory=dict)  # window index -> entries a restore skips
    rounds: int = 0

    @property
    def failures(self) -> list[Violation]:
        """Violations that fail the run."""
        return [v for v in self.violations if v.known is None]


def _fencing_window(windows: Sequence[Window], at: float, node: str | None) -> int | None:
    for index in range(len(windows) - 1, -1, -1):
        window = windows[index]
        if window.kind in FENCING_KINDS and window.covers(at, FENCING_GRACE_S) and (
                node is None or window.subject == node):
            return index
    return None


def _violation(invariant: str, target: str, at: float, detail: str, windows: Sequence[Window],
               node: str | None) -> Violation:
    """A regression, known (and attributed to its pause or cut) if fencing explains it."""
    reason = KNOWN_FAILING.get(invariant)
    index = _fencing_window(windows, at, node) if reason else None
    if index is None:
        return Violation(invariant, target, at, detail)
    window = windows[index]
    return Violation(invariant, target, at, detail, f"{reason} ({window.kind} of {window.subject})", index)


def check(targets: Sequence[str], acked: dict[int, float], decisions: Iterable[Decision],
          stored: Iterable[Stored], table: Iterable[TableEntry], alarms: dict[tuple[str, str], list[str]],
          windows: Sequence[Window], alarm_times: Iterable[tuple[float, str]] = (), poison_sent: int = 0,
          dead_letters: int = 0) -> Report:
    """Every invariant of the module docstring over one run's records."""
    report = Report(rounds=max(acked, default=0))
    if dead_letters < poison_sent:
        report.violations.append(Violation("dlq", "-", 0.0, f"{poison_sent} poison records sent, "
                                           f"{dead_letters} on the DLQ"))
    by_target: dict[str, list[Decision]] = defaultdict(list)
    for decision in decisions:
        by_target[decision.target].append(decision)
        report.decisions += 1
    for records in by_target.values():
        records.sort(key=lambda d: (d.partition, d.offset))
    _check_reflected(report, targets, acked, by_target, windows)
    stored = list(stored)
    report.stored = len(stored)
    _check_endpoint(report, targets, by_target, stored, windows)
    table = list(table)
    report.table_entries = len(table)
    _check_changelog(report, table, windows)
    for (name, scope), states in sorted(alarms.items()):
        if states and states[-1] == "raised":
            report.violations.append(Violation("alarms", scope, 0.0, f"{name}[{scope}] still raised at the end "
                                               f"({' > '.join(states)})"))
    for at, _ in alarm_times:
        index = window_of(windows, at, 30.0)
        if index is not None:
            report.alarms_raised[index] = report.alarms_raised.get(index, 0) + 1
    return report


def window_of(windows: Sequence[Window], at: float, grace_s: float) -> int | None:
    """The index of the latest window that began at or before ``at`` and ended at most ``grace_s``
    before it (fencing faults: :data:`FENCING_GRACE_S`, if longer): what ``at`` is attributed to."""
    for index in range(len(windows) - 1, -1, -1):
        window = windows[index]
        if window.start <= at:
            grace = max(grace_s, FENCING_GRACE_S) if window.kind in FENCING_KINDS else grace_s
            return index if at <= window.end + grace else None
    return None


def _check_reflected(report: Report, targets: Sequence[str], acked: dict[int, float],
                     by_target: dict[str, list[Decision]], windows: Sequence[Window]) -> None:
    last = max(acked, default=0)
    rounds = sorted(acked.items())
    for target in targets:
        records = sorted(by_target.get(target, []), key=lambda d: d.at)
        newest = max((d.ready for d in records), default=None)
        if newest is None or newest < last:
            report.violations.append(Violation("reflected", target, 0.0, f"round {last} was acknowledged but the "
                                               f"newest decision reflects round {newest}"))
        # Ack-to-decision delay per round, by fault window: the first decision at or past the round.
        position, best = 0, -1
        for number, acked_at in rounds:
            while position < len(records) and best < number:
                best = max(best, records[position].ready)
                position += 1
            if best < number:
                break
            delay = max(0.0, records[position - 1].at - acked_at)
            index = window_of(windows, acked_at, 10.0)
            if index is not None:
                report.stall_s[index] = max(report.stall_s.get(index, 0.0), delay)


def _check_endpoint(report: Report, targets: Sequence[str], by_target: dict[str, list[Decision]],
                    stored: list[Stored], windows: Sequence[Window]) -> None:
    final: dict[str, Stored] = {}
    newest_seen: dict[str, Stored] = {}
    regressed: dict[str, Violation] = {}
    for entity in stored:
        before = newest_seen.get(entity.target)
        if before is not None and entity.computed_at_ms >= before.computed_at_ms and entity.target in regressed:
            started = regressed.pop(entity.target)
            started.lasted_s = entity.at - started.at
        if before is not None and entity.computed_at_ms < before.computed_at_ms:
            if entity.target in regressed:
                continue  # still regressed: one violation until a newer decision is stored again
            regressed[entity.target] = _violation(
                "endpoint-regression", entity.target, entity.at,
                f"stored {entity.node}'s decision computed at {entity.computed_at_ms} (round {entity.ready}) after "
                f"{before.node}'s computed at {before.computed_at_ms} (round {before.ready})", windows, entity.node)
            report.violations.append(regressed[entity.target])
        if before is None or entity.computed_at_ms >= before.computed_at_ms:
            newest_seen[entity.target] = entity
        final[entity.target] = entity
    for target in targets:
        records = by_target.get(target)
        if not records:
            continue
        # The newest decision is the one computed last, whatever its offset: a stale owner's decision
        # written after it must not count as the target's final state.
        newest = max(records, key=lambda d: (d.computed_at_ms, d.partition, d.offset))
        held = final.get(target)
        if held is None or (held.computed_at_ms, held.node, held.ready) != (
                newest.computed_at_ms, newest.node, newest.ready):
            shown = "nothing" if held is None else f"{held.node}@{held.computed_at_ms} (round {held.ready})"
            detail = (f"the endpoint holds {shown}; the newest decision is {newest.node}@{newest.computed_at_ms} "
                      f"(round {newest.ready})")
            report.violations.append(
                Violation("final", target, 0.0, detail) if held is None
                else _violation("final", target, held.at, detail, windows, held.node))


def _check_changelog(report: Report, table: list[TableEntry], windows: Sequence[Window]) -> None:
    """Replays the changelog as a restore does: an entry of an older owner is skipped (fenced), and
    an entry kept must not carry an older statistic than the one it replaces."""
    kept: dict[str, TableEntry] = {}
    for entry in sorted(table, key=lambda e: (e.partition, e.offset)):
        before = kept.get(entry.target)
        if before is not None and not newer_entry(before.restore_value(), entry.restore_value()):
            index = _fencing_window(windows, entry.at, None)
            report.table_fenced[index] = report.table_fenced.get(index, 0) + 1
            continue
        if before is not None and entry.ready_ts_ms < before.ready_ts_ms:
            report.violations.append(_violation(
                "changelog-regression", entry.target, entry.at,
                f"entry at p{entry.partition} offset {entry.offset} (round {entry.ready}, measured "
                f"{entry.ready_ts_ms}, epoch {entry.epoch}) on top of offset {before.offset} (round "
                f"{before.ready}, measured {before.ready_ts_ms}, epoch {before.epoch})", windows, None))
            continue
        kept[entry.target] = entry


def table_rows(report: Report, windows: Sequence[Window]) -> list[tuple[str, ...]]:
    """One row per fault kind: count, longest stall, regressions, alarms, violations (known ones apart)."""
    kinds: dict[str, list[int]] = defaultdict(list)
    for index, window in enumerate(windows):
        kinds[window.kind].append(index)
    rows = [("fault", "count", "longest stall s", "endpoint regr. (longest)", "changelog regr. (fenced)",
             "alarms raised", "violations (known)")]
    attributed: dict[int | None, list[Violation]] = defaultdict(list)
    for violation in report.violations:
        index = violation.window if violation.window is not None else (
            window_of(windows, violation.at, 30.0) if violation.at else None)
        attributed[index].append(violation)

    def counts(found: list[Violation], fenced: int) -> tuple[str, str, str]:
        endpoint = [v for v in found if v.invariant == "endpoint-regression"]
        lasted = max((v.lasted_s for v in endpoint if v.lasted_s is not None), default=None)
        return (f"{len(endpoint)}" + (f" ({lasted:.1f}s)" if lasted is not None else ""),
                f"{sum(v.invariant == 'changelog-regression' for v in found)} ({fenced})",
                f"{sum(v.known is None for v in found)} ({sum(v.known is not None for v in found)})")

    for kind in sorted(kinds):
        indexes = kinds[kind]
        regressions, changelog, violations = counts([v for i in indexes for v in attributed.get(i, [])],
                                                    sum(report.table_fenced.get(i, 0) for i in indexes))
        rows.append((kind, str(len(indexes)),
                     f"{max((report.stall_s.get(i, 0.0) for i in indexes), default=0.0):.1f}",
                     regressions, changelog, str(sum(report.alarms_raised.get(i, 0) for i in indexes)), violations))
    regressions, changelog, violations = counts(attributed.get(None, []), report.table_fenced.get(None, 0))
    rows.append(("(none/end)", "-", "-", regressions, changelog, "-", violations))
    return rows


def format_table(rows: list[tuple[str, ...]]) -> str:
    """The rows as an aligned text table."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
                     for row in rows)
