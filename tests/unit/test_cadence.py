"""The decide period: a target with only small changes is decided at most once per period, which grows under load.

The intake and the node are the real ones; only the producer under the outbox is a stand-in.
"""

from __future__ import annotations

from pathlib import Path

from schemas import encode_stat_event
from streams.node.cadence import DECIDE_SHARE, MAX_PERIOD_SHARE, DecideCadence
from streams.node.partitioning import home_partition
from tests.unit.node_doubles import PARTITIONS, T0, stat, taken
from tests.unit.test_decision_pass import RunningNode, decided_count


def test_the_period_grows_while_deciding_takes_too_much_time_and_shrinks_back_when_it_does_not() -> None:
    cadence = DecideCadence(1.0, 10.0, now_s=0.0)
    now = 0.0
    periods = []
    for _ in range(8):  # deciding takes half the time: too much
        now += 2.0
        periods.append(cadence.passed(deciding_s=1.0, now_s=now))
    assert periods == sorted(periods) and periods[0] > 1.0
    assert periods[-1] == 10.0 * MAX_PERIOD_SHARE, "never past the refresh period's share"
    for _ in range(12):  # idle again
        now += 1.0
        cadence.passed(deciding_s=0.01, now_s=now)
    assert cadence.period_s == 1.0
    steady = cadence.passed(deciding_s=DECIDE_SHARE * 0.75, now_s=now + 1.0)
    assert steady == 1.0, "within the band it stays"


async def test_a_target_is_decided_at_most_once_per_period_unless_its_change_is_material(tmp_path: Path) -> None:
    running = RunningNode(tmp_path)
    node = running.node
    running.settle()
    target = "vq-1"
    partition = home_partition(target, PARTITIONS)
    offset = 0

    async def fold(statistic: str, value: float) -> None:
        nonlocal offset
        await node.turn([taken(partition, offset, encode_stat_event(stat(target, statistic, value, T0 + offset)))])
        offset += 1

    def decisions() -> float:
        return decided_count(node)

    node.cadence.period_s = 3600.0  # as under heavy load (the test does not wait for it)
    await fold("logged_in_agents", 10.0)
    assert decisions() == 1, "a new target is decided at once"

    running.clock.advance(node.cadence.min_period_s)  # material changes: at most once per decide interval
    await fold("ready_agents", 3.0)  # leaving zero: material
    assert decisions() == 2
    await fold("busy_agents", 5.0)  # small: waits for the period
    running.clock.advance(node.settings.worker.checkpoint_interval_s)
    await node.turn()  # a tick and a checkpoint: its state is written, but it is not decided early
    assert decisions() == 2
    assert running.stream.acked and not node.intake.pending
    assert target in node.intake.undecided, "still due once its period ends"

    node.cadence.period_s = 1.0  # the period shrank back
    running.clock.advance(node.settings.worker.decide_interval_s)
    await node.turn()
    assert decisions() == 3 and not node.intake.undecided
