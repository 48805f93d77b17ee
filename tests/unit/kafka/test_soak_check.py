"""The soak's invariant checker (tests/kafka/soak_check.py) finds each violation it promises to, and
counts as known only a regression that fencing (issue 18 item 1) would prevent."""

from __future__ import annotations

from tests.kafka.soak_check import Decision, Stored, TableEntry, Window, check, format_table, table_rows

TARGETS = ["t1", "t2"]
ACKED = {1: 100.0, 2: 101.0, 3: 102.0}


def decisions(*rounds: tuple[str, int, str], start: float = 100.5) -> list[Decision]:
    return [Decision(t, r, int((start + i) * 1000), node, 0, i, start + i) for i, (t, r, node) in enumerate(rounds)]


def clean_run() -> tuple[list[Decision], list[Stored]]:
    made = decisions(("t1", 1, "a"), ("t2", 1, "b"), ("t1", 3, "a"), ("t2", 3, "b"))
    stored = [Stored(d.target, d.ready, d.computed_at_ms, d.node, d.at + 0.2) for d in made]
    return made, stored


def test_a_clean_run_has_no_violation_and_a_row_per_fault_kind() -> None:
    made, stored = clean_run()
    windows = [Window("sink_kill", 100.0, 101.0, "sink")]
    report = check(TARGETS, ACKED, made, stored, [], {("PacingRequestsFailed", "sink"): ["raised", "cleared"]},
                   windows, [(100.5, "PacingRequestsFailed[sink]")])
    assert report.violations == []
    rows = table_rows(report, windows)
    assert [row[0] for row in rows] == ["fault", "sink_kill", "(none/end)"]
    assert rows[1][5] == "1"  # the alarm raised inside the window
    assert "sink_kill" in format_table(rows)


def test_an_unreflected_round_a_stale_endpoint_a_raised_alarm_and_a_lost_poison_record_fail() -> None:
    made, stored = clean_run()
    report = check(TARGETS, {**ACKED, 4: 103.0}, made, stored[:-1], [], {("X", "worker-a"): ["raised"]}, [],
                   poison_sent=5, dead_letters=4)
    invariants = sorted(v.invariant for v in report.failures)
    assert invariants == ["alarms", "dlq", "final", "reflected", "reflected"]


def test_an_endpoint_regression_fails_the_run_even_from_a_paused_worker_now_that_decisions_are_fenced() -> None:
    made, stored = clean_run()
    stale = Stored("t1", 1, made[0].computed_at_ms, "a", 110.0)  # a's older decision lands again
    newest = Stored("t1", 3, made[2].computed_at_ms, "a", 111.0)
    for windows in ([Window("worker_pause", 105.0, 108.0, "a")], [Window("worker_pause", 105.0, 108.0, "b")],
                    [Window("sink_kill", 105.0, 108.0, "sink")], []):
        report = check(TARGETS, ACKED, made, [*stored, stale, newest], [], {}, windows)
        assert [v.invariant for v in report.failures] == ["endpoint-regression"]
        assert report.violations[0].lasted_s == 1.0  # until a's newest decision was stored again


def test_a_table_entry_a_restore_keeps_must_not_be_older_than_the_one_before_it() -> None:
    made, stored = clean_run()
    table = [TableEntry("t1", 2, 101_000, 0, 0, 101.0, epoch=3, written_ms=101_100),
             TableEntry("t1", 3, 102_000, 0, 1, 102.0, epoch=3, written_ms=102_100),
             TableEntry("t1", 2, 101_000, 0, 2, 130.0, epoch=3, written_ms=130_000)]  # same owner, older statistic
    report = check(TARGETS, ACKED, made, stored, table, {}, [])
    assert [v.invariant for v in report.failures] == ["changelog-regression"]
    in_a_cut = check(TARGETS, ACKED, made, stored, table, {}, [Window("worker_cut", 100.0, 120.0, "c")])
    assert [v.invariant for v in in_a_cut.failures] == ["changelog-regression"], "nothing is excused any more"


def test_an_older_owners_entry_after_the_new_owners_is_fenced_not_a_regression() -> None:
    """What a cut-off worker had handed to its producer lands after the new owner's entry; the restore
    skips it (newest epoch wins within the fence window), so the checker counts it as fenced."""
    made, stored = clean_run()
    new_owner = TableEntry("t1", 3, 102_000, 0, 1, 102.0, epoch=5, written_ms=102_100)
    stale = TableEntry("t1", 2, 101_000, 0, 2, 110.0, epoch=4, written_ms=101_500)
    windows = [Window("worker_cut", 100.0, 108.0, "c")]
    report = check(TARGETS, ACKED, made, stored, [new_owner, stale], {}, windows)
    assert report.violations == []
    assert report.table_fenced == {0: 1}
    assert table_rows(report, windows)[1][4] == "0 (1)"
    written_long_after = TableEntry("t1", 2, 101_000, 0, 3, 200.0, epoch=4, written_ms=200_000)
    late = check(TARGETS, ACKED, made, stored, [new_owner, written_long_after], {}, windows)
    assert [v.invariant for v in late.failures] == ["changelog-regression"], \
        "past the fence window an older epoch is kept by the restore, so its older statistic is a regression"


def test_the_endpoint_must_end_on_the_decision_computed_last_not_the_one_written_last() -> None:
    made, stored = clean_run()
    stale = Decision("t1", 1, made[0].computed_at_ms, "c", 0, 10, 120.0)  # written last, computed first
    ended_stale = [*stored, Stored("t1", 1, made[0].computed_at_ms, "c", 120.5)]
    report = check(TARGETS, ACKED, [*made, stale], ended_stale, [], {}, [])
    assert sorted(v.invariant for v in report.failures) == ["endpoint-regression", "final"]
    cut_c = [Window("worker_cut", 90.0, 110.0, "c")]
    assert sorted(v.invariant for v in check(TARGETS, ACKED, [*made, stale], ended_stale, [], {}, cut_c).failures
                  ) == ["endpoint-regression", "final"], "fenced: a cut-off worker's decision must not win"
