"""``pacing top``: a live terminal view of every pacing target and the raised alarms.

What an operations team keeps open on a screen: per target the agents (logged in, ready, busy),
the interactions waiting, the offers the newest decision allows and its reactive admission, the
acceptance, abandonment and service level the engine measured, the algorithm, and its owner —
the node and the ``pacing.actiontargets`` partition that decided it — and below, the alarms
raised and not yet cleared.

It reads the decisions and alarms topics from the beginning as an ordinary consumer (no group,
nothing committed) and needs nothing of the worker's internals: the decisions topic is
compacted, so its newest record per target is the target's current decision, and replaying the
alarm transitions tells which alarms are raised now.

The screen is redrawn in place (curses) once a second and when records arrive; on a narrow
terminal the least needed columns go first, on a short one the rows that do not fit are
counted. ``q`` or Ctrl-C quits. :func:`render` is the whole layout, a pure function of the
:class:`Board`, so it is tested without a terminal.
"""

from __future__ import annotations

import asyncio
import contextlib
import curses
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from aiokafka import AIOKafkaConsumer

from schemas import ActionTargetDecision, Alarm, AlarmState, DecodeError, decode_alarm, decode_decision
from streams.runtime.config import Settings
from streams.runtime.kafka import client_options
from streams.runtime.topics import TopicNames, missing_topics, topic_names

#: How a line is drawn: the title, the column header, a target, a raised alarm, or plain.
Style = str
TITLE, HEADER, ROW, ALARM, PLAIN = "title", "header", "row", "alarm", "plain"


@dataclass
class TargetView:
    """A target's newest decision and the partition it was published on (its owner's)."""

    decision: ActionTargetDecision
    partition: int


@dataclass
class Board:
    """What ``pacing top`` knows: the newest decision per target and the alarms raised now."""

    targets: dict[tuple[str, str], TargetView] = field(default_factory=dict)
    alarms: dict[tuple[str, str, str], Alarm] = field(default_factory=dict)
    unreadable: int = 0
    """Records that could not be decoded (counted on screen, not dropped silently)."""
    problem: str = ""
    """Why the view may be out of date (the consumer failed), shown under the title."""

    def apply_decision(self, partition: int, key: bytes | None, value: bytes | None) -> None:
        """Take one ``pacing.actiontargets`` record; a tombstone removes its target."""
        if value is None:
            target_id = (key or b"").decode(errors="replace")
            for name in [name for name in self.targets if name[1] == target_id]:
                del self.targets[name]
            return
        try:
            decision = decode_decision(value)
        except DecodeError:
            self.unreadable += 1
            return
        self.targets[(decision.tenant, decision.target_id)] = TargetView(decision, partition)

    def apply_alarm(self, value: bytes | None) -> None:
        """Take one ``pacing.alarms`` transition: raised alarms are kept until cleared."""
        try:
            alarm = decode_alarm(value)
        except DecodeError:
            self.unreadable += 1
            return
        name = (alarm.tenant, alarm.name, alarm.scope)
        if alarm.state is AlarmState.RAISED:
            self.alarms[name] = alarm
        else:
            self.alarms.pop(name, None)


@dataclass(frozen=True)
class Column:
    """One column of the target table: heading, width, and how a target fills it."""

    heading: str
    width: int
    cell: Callable[[TargetView, int], str]
    drop_rank: int
    """Narrow terminals drop the highest rank first; 0 is never dropped."""
    left: bool = False


def _pct(value: float) -> str:
    return f"{100 * value:.0f}%"


def _figure(name: str) -> Callable[[TargetView, int], str]:
    def cell(view: TargetView, _now_ms: int) -> str:
        value = view.decision.figures.get(name)
        return f"{value}%" if value is not None else "-"
    return cell


def _age(view: TargetView, now_ms: int) -> str:
    seconds = max(0, now_ms - view.decision.computed_at) // 1000
    return f"{seconds}s" if seconds < 600 else f"{seconds // 60}m"


COLUMNS: tuple[Column, ...] = (
    Column("TARGET", 18, lambda v, _: v.decision.target_id, 0, left=True),
    Column("STATE", 8, lambda v, _: v.decision.state, 8, left=True),
    Column("AGENTS", 6, lambda v, _: str(v.decision.logged_in_agents), 6),
    Column("READY", 5, lambda v, _: str(v.decision.ready_agents), 1),
    Column("BUSY", 5, lambda v, _: str(v.decision.busy_agents), 3),
    Column("WAIT", 5, lambda v, _: str(v.decision.waiting_interactions), 2),
    Column("PEND", 5, lambda v, _: str(v.decision.outstanding_offers), 6),
    Column("OFFERS", 6, lambda v, _: str(v.decision.allowed_offers), 0),
    Column("ADMIT", 5, lambda v, _: _pct(v.decision.reactive_admission), 7),
    Column("ACCEPT", 6, lambda v, _: _pct(v.decision.acceptance_rate), 4),
    Column("ABAND", 6, _figure("abandonmentPct"), 4),
    Column("SL", 4, _figure("serviceLevelPct"), 4),
    Column("ALGORITHM", 22, lambda v, _: v.decision.algorithm, 10, left=True),
    Column("OWNER", 14, lambda v, _: f"{v.decision.node}/p{v.partition}", 5, left=True),
    Column("AGE", 4, _age, 9),
)
"""The target table, left to right: OFFERS is the allowed offers of the newest decision (for one refresh
period), PEND the offers made and not yet answered, ADMIT the reactive admission, ABAND and SL the
abandonment and service level the engine observed, OWNER the deciding node and partition, AGE how long
ago it decided."""


def fit_columns(width: int) -> list[Column]:
    """The columns that fit ``width`` characters (one space between), dropping the highest ranks first."""
    columns = list(COLUMNS)
    for rank in sorted({c.drop_rank for c in COLUMNS if c.drop_rank}, reverse=True):
        if _table_width(columns) <= width:
            break
        columns = [c for c in columns if c.drop_rank != rank]
    return columns


def _table_width(columns: list[Column]) -> int:
    return sum(c.width for c in columns) + len(columns) - 1


def _cells(columns: list[Column], values: list[str]) -> str:
    out = []
    for column, value in zip(columns, values, strict=True):
        if len(value) > column.width:
            value = value[: column.width - 1] + "~"
        out.append(value.ljust(column.width) if column.left else value.rjust(column.width))
    return " ".join(out).rstrip()


def _clock(epoch_ms: int) -> str:
    """Local time of day (with the date when not today)."""
    moment = datetime.fromtimestamp(epoch_ms / 1000)
    return moment.strftime("%H:%M:%S" if moment.date() == datetime.now().date() else "%Y-%m-%d %H:%M:%S")


def _alarm_line(alarm: Alarm) -> str:
    figures = ""
    if alarm.observed_value is not None:
        figures = f" ({alarm.observed_value:g}" + (f" > {alarm.threshold:g})" if alarm.threshold is not None else ")")
    return f"{_clock(alarm.timestamp)} {alarm.severity.upper():8} {alarm.name} [{alarm.scope}] {alarm.message}{figures}"


def render(board: Board, width: int, height: int, now_ms: int, source: str = "") -> list[tuple[Style, str]]:
    """The whole screen as ``(style, text)`` lines, none wider than ``width``, at most ``height`` of them.

    Title, the target table (sorted by target id) with a totals line, then the raised alarms.
    Alarms get at most a third of the height (and at least one line); targets that do not fit
    are counted in a last line, as are alarms.
    """
    width, height = max(1, width), max(1, height)
    alarms = sorted(board.alarms.values(), key=lambda a: a.timestamp, reverse=True)
    plural = "" if len(alarms) == 1 else "s"
    title = (f"pacing top  {source}  {len(board.targets)} targets  {len(alarms)} alarm{plural} raised"
             f"  {_clock(now_ms)}  q quits")
    lines: list[tuple[Style, str]] = [(TITLE, title)]
    if board.problem:
        lines.append((ALARM, board.problem))
    if board.unreadable:
        lines.append((PLAIN, f"{board.unreadable} unreadable record(s) skipped"))

    alarm_lines = min(len(alarms), max(1, height // 3)) + 1  # their heading too
    lines.extend(target_table(board, width, now_ms, max_rows=height - len(lines) - 3 - alarm_lines))

    lines.append((PLAIN, ""))
    lines.append((HEADER, f"RAISED ALARMS ({len(alarms)})" if alarms else "no alarms raised"))
    room = height - len(lines)
    shown_alarms = alarms if len(alarms) <= room else alarms[: max(0, room - 1)]
    lines.extend((ALARM, _alarm_line(a)) for a in shown_alarms)
    if len(shown_alarms) < len(alarms) and room > 0:
        lines.append((PLAIN, f"... {len(alarms) - len(shown_alarms)} more alarms"))
    return [(style, text[:width]) for style, text in lines[:height]]


def target_table(board: Board, width: int, now_ms: int, max_rows: int | None = None) -> list[tuple[Style, str]]:
    """The target table: column header, one row per target (by target id), then a totals line.

    At most ``max_rows`` target rows (all when None); the ones left out are counted instead.
    """
    views = sorted(board.targets.values(), key=lambda v: (v.decision.target_id, v.decision.tenant))
    columns = fit_columns(width)
    lines: list[tuple[Style, str]] = [(HEADER, _cells(columns, [c.heading for c in columns]))]
    if not views:
        return [*lines, (PLAIN, "no decisions yet on the decisions topic")]
    room = len(views) if max_rows is None else max_rows
    shown = views if len(views) <= room else views[: max(0, room - 1)]
    lines.extend((ROW, _cells(columns, [c.cell(v, now_ms) for c in columns])) for v in shown)
    if len(shown) < len(views):
        lines.append((PLAIN, f"... {len(views) - len(shown)} more targets (a taller terminal shows them)"))
    lines.append((PLAIN, f"total: {sum(v.decision.logged_in_agents for v in views)} agents, "
                         f"{sum(v.decision.ready_agents for v in views)} ready, "
                         f"{sum(v.decision.waiting_interactions for v in views)} waiting, "
                         f"{sum(v.decision.allowed_offers for v in views)} offers allowed"))
    return [(style, text[:width]) for style, text in lines]


async def follow_topics(settings: Settings, board: Board, changed: asyncio.Event,
                        names: TopicNames | None = None) -> None:
    """Fold the decisions and alarms topics, from the beginning, into ``board`` until cancelled.

    It first waits until both topics exist, saying so on the board: subscribing to a missing
    topic would have a broker that auto-creates topics create it with its default partition
    count, which the pipeline then refuses (a viewer must not break what it watches).
    """
    names = names or topic_names(settings)
    while missing := await missing_topics(settings, [names.actiontargets, names.alarms]):
        board.problem = f"waiting for {', '.join(missing)} (a pacing worker creates them)"
        changed.set()
        await asyncio.sleep(1.0)
    board.problem = ""
    consumer = AIOKafkaConsumer(names.actiontargets, names.alarms, group_id=None, auto_offset_reset="earliest",
                                enable_auto_commit=False, **client_options(settings))
    await consumer.start()
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    if record.topic == names.alarms:
                        board.apply_alarm(record.value)
                    else:
                        board.apply_decision(record.partition, record.key, record.value)
            if batches:
                board.problem = ""
                changed.set()
    finally:
        await consumer.stop()


_MIN_REDRAW_S = 0.2
"""Records arriving redraw the screen at once, but at most this often."""
_STYLES = {TITLE: curses.A_BOLD, HEADER: curses.A_REVERSE, ALARM: curses.A_BOLD}


def _draw(screen: curses.window, board: Board, source: str) -> None:
    height, width = screen.getmaxyx()
    screen.erase()
    for y, (style, text) in enumerate(render(board, width, height, int(time.time() * 1000), source)):
        with contextlib.suppress(curses.error):  # the bottom-right cell cannot be written without scrolling
            screen.addnstr(y, 0, text, width, _STYLES.get(style, curses.A_NORMAL))
    screen.refresh()


async def _watch(screen: curses.window, settings: Settings, refresh_s: float) -> None:
    with contextlib.suppress(curses.error):
        curses.curs_set(0)
    screen.nodelay(True)
    board = Board()
    changed = asyncio.Event()
    follower = asyncio.create_task(follow_topics(settings, board, changed))
    source = settings.kafka.bootstrap_servers + (f" [{settings.kafka.topic_prefix}]" if settings.kafka.topic_prefix
                                                 else "")
    next_draw = last_draw = 0.0
    stopped = False
    try:
        while True:
            key = screen.getch()
            while key != -1:
                if key in (ord("q"), ord("Q")):
                    return
                if key == curses.KEY_RESIZE:
                    next_draw = 0.0
                key = screen.getch()
            if follower.done() and not stopped:
                error = follower.exception() if not follower.cancelled() else None
                board.problem = f"stopped reading the topics: {error or 'cancelled'}"
                stopped, next_draw = True, 0.0
            now = time.monotonic()
            if (changed.is_set() and now >= last_draw + _MIN_REDRAW_S) or now >= next_draw:
                changed.clear()
                _draw(screen, board, source)
                last_draw, next_draw = now, now + refresh_s
            await asyncio.sleep(0.05)
    finally:
        follower.cancel()
        with contextlib.suppress(BaseException):
            await follower


def run_top(settings: Settings, refresh_s: float = 1.0) -> int:
    """Show the live view until ``q`` or Ctrl-C; returns the exit code (0).

    Logging is silenced while the screen is up: the Kafka client's lines would scroll it away.
    """
    if refresh_s <= 0:
        print(f"pacing top: --refresh must be a positive number of seconds, got {refresh_s:g}", file=sys.stderr)
        return 2
    logging.disable(logging.CRITICAL)
    try:
        curses.wrapper(lambda screen: asyncio.run(_watch(screen, settings, refresh_s)))
    except KeyboardInterrupt:
        pass
    finally:
        logging.disable(logging.NOTSET)
    return 0
