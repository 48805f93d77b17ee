"""Alarms are raised once and cleared once — no flood."""

from __future__ import annotations

from schemas import AlarmState, decode_alarm
from streams.runtime.alarms import PACING_REQUESTS_FAILED, AlarmBoard


def test_raise_once_clear_once() -> None:
    board = AlarmBoard("acme", "node-1")
    first = board.raise_alarm(PACING_REQUESTS_FAILED, "sink", "HTTP 503", observed_value=1, threshold=1)
    assert first is not None
    assert board.raise_alarm(PACING_REQUESTS_FAILED, "sink", "HTTP 503 again") is None
    cleared = board.clear_alarm(PACING_REQUESTS_FAILED, "sink", "ok again")
    assert cleared is not None
    assert board.clear_alarm(PACING_REQUESTS_FAILED, "sink", "still ok") is None
    raised, done = decode_alarm(first.value), decode_alarm(cleared.value)
    assert (raised.state, done.state) == (AlarmState.RAISED, AlarmState.CLEARED)
    assert first.key == b"PacingRequestsFailed:sink"
    assert raised.tenant == "acme" and raised.node == "node-1" and raised.message == "HTTP 503"
    assert done.severity == raised.severity


def test_scopes_are_independent() -> None:
    board = AlarmBoard("acme", "n")
    assert board.raise_alarm("TargetStale", "vq-1", "stale") is not None
    assert board.raise_alarm("TargetStale", "vq-2", "stale") is not None
    assert {a.scope for a in board.raised} == {"vq-1", "vq-2"}
    assert ("TargetStale", "vq-1") in {(a.name, a.scope) for a in board.raised}
