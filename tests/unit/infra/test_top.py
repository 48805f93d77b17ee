"""``pacing top``: what the screen shows for a board of decisions and alarms (no terminal needed)."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import pytest

from infra.top import COLUMNS, Board, fit_columns, render, target_table
from schemas import ActionTargetDecision, Alarm, encode_alarm, encode_decision

NOW_MS = int(time.time() * 1000)


def decision(target_id: str, allowed_offers: int, **fields: Any) -> bytes:
    values: dict[str, Any] = {
        "tenant": "acme", "target_id": target_id, "name": target_id, "state": "active",
        "supported_media_types": ["webchat"], "service_level_percentage": 0.8, "service_level_duration_ms": 20_000,
        "short_abandon_threshold": 10, "allowed_offers": allowed_offers, "reactive_admission": 0.75,
        "ready_agents": 3, "busy_agents": 12, "logged_in_agents": 15, "waiting_interactions": 2,
        "outstanding_offers": 4, "acceptance_rate": 0.284, "algorithm": "SUPER_PROGRESSIVE_DUAL",
        "computed_at": NOW_MS - 7_000, "node": "node-a",
        "figures": {"abandonmentPct": "2.5", "serviceLevelPct": "81"},
    }
    values.update(fields)
    return encode_decision(ActionTargetDecision(**values))


def alarm(name: str, state: str, scope: str = "queue-15", **fields: Any) -> bytes:
    return encode_alarm(Alarm(**{"name": name, "state": state, "severity": "major", "tenant": "acme",
                                 "node": "node-a", "scope": scope, "message": "no events for 300 s",
                                 "timestamp": NOW_MS - 60_000, **fields}))


def board_of(*targets: tuple[str, int, int]) -> Board:
    board = Board()
    for target_id, offers, partition in targets:
        board.apply_decision(partition, target_id.encode(), decision(target_id, offers))
    return board


def texts(board: Board, width: int = 120, height: int = 40) -> list[str]:
    return [text for _, text in render(board, width, height, NOW_MS, "127.0.0.1:9092")]


def row(lines: list[str], target_id: str) -> list[str]:
    [line] = [line for line in lines if line.startswith(target_id + " ")]
    return line.split()


def test_each_target_shows_its_newest_decision_and_owner() -> None:
    board = board_of(("queue-15", 9, 3), ("chat-2", 4, 1))
    board.apply_decision(3, b"queue-15", decision("queue-15", 11, waiting_interactions=5))  # a newer decision
    lines = texts(board)
    assert lines[0].startswith("pacing top  127.0.0.1:9092  2 targets  0 alarms raised")
    header = lines[1].split()
    assert header[:3] == ["TARGET", "STATE", "AGENTS"]
    cells = dict(zip(header, row(lines, "queue-15"), strict=True))
    assert cells == {"TARGET": "queue-15", "STATE": "active", "AGENTS": "15", "READY": "3", "BUSY": "12",
                     "WAIT": "5", "PEND": "4", "OFFERS": "11", "ADMIT": "75%", "ACCEPT": "28%", "ABAND": "2.5%",
                     "SL": "81%", "OWNER": "node-a/p3", "AGE": "7s"}
    assert [line.split()[0] for line in lines[2:4]] == ["chat-2", "queue-15"]  # sorted by target id
    assert "total: 30 agents, 6 ready, 7 waiting, 15 offers allowed" in lines
    assert "no alarms raised" in lines


def test_missing_figures_show_a_dash_and_inactive_targets_say_so() -> None:
    board = Board()
    board.apply_decision(0, b"new", decision("new", 0, state="inactive", figures={}))
    cells = dict(zip(texts(board)[1].split(), row(texts(board), "new"), strict=True))
    assert (cells["STATE"], cells["OFFERS"], cells["ABAND"], cells["SL"]) == ("inactive", "0", "-", "-")


def test_raised_alarms_are_listed_until_cleared_in_local_time() -> None:
    board = board_of(("queue-15", 9, 3))
    board.apply_alarm(alarm("TargetStale", "raised", observed_value=312, threshold=300))
    board.apply_alarm(alarm("TargetStale", "raised", scope="chat-2"))
    board.apply_alarm(alarm("TargetStale", "cleared", scope="chat-2"))
    lines = texts(board)
    assert "1 alarm raised" in lines[0]
    start = lines.index("RAISED ALARMS (1)")
    clock = time.strftime("%H:%M:%S", time.localtime((NOW_MS - 60_000) / 1000))
    assert lines[start + 1] == f"{clock} MAJOR    TargetStale [queue-15] no events for 300 s (312 > 300)"
    board.apply_alarm(alarm("TargetStale", "cleared"))
    assert "no alarms raised" in texts(board)


@pytest.mark.parametrize("width", [200, 120, 100, 80, 60, 40, 26, 10])
def test_a_narrow_terminal_drops_the_least_needed_columns_first(width: int) -> None:
    board = board_of(("queue-15-reactive", 9, 3), ("chat-2-low", 4, 1))
    board.apply_alarm(alarm("PacingRequestsFailed", "raised", message="x" * 300))
    lines = texts(board, width=width)
    assert all(len(line) <= width for line in lines)
    headings = [c.heading for c in fit_columns(width)]
    if width >= 26:
        assert lines[1].split() == headings
        assert {"TARGET", "OFFERS"} <= set(headings)  # never dropped
        assert dict(zip(headings, row(lines, "queue-15-reactive"), strict=True))["OFFERS"] == "9"
        assert dict(zip(headings, row(lines, "chat-2-low"), strict=True))["OFFERS"] == "4"
    dropped = {c.heading for c in COLUMNS} - set(headings)
    if width >= 120:
        assert dropped <= {"ALGORITHM"} and "OWNER" in headings
    if width == 80:
        assert {"READY", "BUSY", "WAIT", "ACCEPT", "ABAND", "SL", "OWNER"} <= set(headings)


def test_a_short_terminal_counts_the_targets_and_alarms_it_cannot_show() -> None:
    board = board_of(*((f"t-{i:02d}", i, i % 4) for i in range(30)))
    for i in range(8):
        board.apply_alarm(alarm("TargetStale", "raised", scope=f"t-{i:02d}"))
    lines = texts(board, height=20)
    assert len(lines) == 20
    shown = [line for line in lines if line.startswith("t-")]
    more = [line for line in lines if line.startswith("... ")]
    assert more[0] == f"... {30 - len(shown)} more targets (a taller terminal shows them)"
    assert more[1].endswith("more alarms")
    assert lines[-1] == more[1]


def test_tombstones_remove_targets_and_unreadable_records_are_counted() -> None:
    board = board_of(("queue-15", 9, 3), ("chat-2", 4, 1))
    board.apply_decision(3, b"queue-15", None)
    board.apply_decision(0, b"junk", b"\x00not a decision")
    board.apply_alarm(b"{}")
    lines = texts(board)
    assert "1 targets" in lines[0]
    assert "2 unreadable record(s) skipped" in lines
    assert not [line for line in lines if line.startswith("queue-15")]


def test_an_empty_board_says_what_it_waits_for() -> None:
    lines = texts(Board(), height=10)
    assert "no decisions yet on the decisions topic" in lines
    assert target_table(Board(), 80, NOW_MS)[1][1] == "no decisions yet on the decisions topic"


def _today_at(clock: str) -> int:
    hours, minutes, seconds = map(int, clock.split(":"))
    moment = datetime.now().replace(hour=hours, minute=minutes, second=seconds, microsecond=0)
    return int(moment.timestamp() * 1000)


def test_the_readme_screen_is_what_render_prints() -> None:
    from tests.unit.test_readme import block

    now_ms = _today_at("10:15:30")
    rows = [  # target, partition, agents, ready, busy, waiting, pending, offers, admission, acceptance, aband, SL, age
        ("callback-60", 11, 60, 5, 55, 0, 1, 6, 1.0, 0.71, "0.0", "100", 3),
        ("chat-2-low", 8, 2, 1, 1, 0, 3, 0, 1.0, 0.07, None, None, 1),
        ("messaging-8", 11, 8, 1, 7, 0, 3, 0, 1.0, 0.18, "0.0", "100", 1),
        ("queue-15-reactive", 7, 15, 0, 15, 3, 6, 0, 0.6, 0.29, "4.2", "71", 2),
        ("sales-5-high", 8, 5, 1, 4, 0, 1, 1, 1.0, 0.55, "1.9", "92", 1),
    ]
    board = Board()
    for target, partition, agents, ready, busy, waiting, pending, offers, admit, accept, aband, sl, age in rows:
        figures = {k: v for k, v in (("abandonmentPct", aband), ("serviceLevelPct", sl)) if v is not None}
        board.apply_decision(partition, target.encode(), decision(
            target, offers, logged_in_agents=agents, ready_agents=ready, busy_agents=busy,
            waiting_interactions=waiting, outstanding_offers=pending, reactive_admission=admit,
            acceptance_rate=accept, figures=figures, computed_at=now_ms - age * 1000, node="worker-1"))
    board.apply_alarm(alarm("PacingRequestsFailed", "raised", scope="sink", node="sink-1",
                            message="bulk requests failing: HTTP 503", observed_value=3, threshold=0,
                            timestamp=_today_at("10:14:52")))
    screen = [text for _, text in render(board, 120, 11, now_ms, "127.0.0.1:9092")]
    assert block("pacing top  127.0.0.1:9092").text.splitlines() == screen
