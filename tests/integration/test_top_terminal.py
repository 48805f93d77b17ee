"""``pacing top`` in a real terminal (tmux): the targets with their allowed offers, redrawn in place, ``q`` quits."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from infra.top import fit_columns
from schemas import ActionTargetDecision, decode_decision
from tests.integration.pipeline import ROOT, Pipeline, eventually, stat_records

TMUX = shutil.which("tmux")
pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(TMUX is None, reason="tmux is not installed: pacing top is tested in a real terminal")]


class Terminal:
    """A 120x40 tmux pane on a private tmux server, running one command."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], cwd: Path, exit_file: Path):
        self.server = ["tmux", "-L", name, "-f", "/dev/null"]
        self.exit_file = exit_file
        # COLUMNS/LINES inherited from the test's own terminal would override the pane's size for curses.
        # The shell notes the exit status in a file: tmux's #{pane_dead_status} stays empty now and then
        # on a loaded machine although the pane is dead.
        run = shlex.join(["env", "-u", "COLUMNS", "-u", "LINES", *(f"{k}={v}" for k, v in env.items()), *command])
        wrapped = f"{run}; echo $? > {shlex.quote(str(exit_file))}"
        self.tmux("new-session", "-d", "-s", "top", "-x", "120", "-y", "40", "-c", str(cwd), wrapped)
        self.tmux("set-option", "-t", "top", "remain-on-exit", "on")

    def tmux(self, *args: str) -> str:
        return subprocess.run([*self.server, *args], capture_output=True, text=True, check=True, timeout=10).stdout

    def screen(self) -> list[str]:
        return self.tmux("capture-pane", "-p", "-t", "top").splitlines()

    def pane(self, variable: str) -> str:
        return self.tmux("display-message", "-p", "-t", "top", f"#{{{variable}}}").strip()

    def exit_status(self) -> str | None:
        """The command's exit status once it has ended (None while it runs)."""
        return self.exit_file.read_text().strip() if self.exit_file.exists() else None

    def close(self) -> None:
        subprocess.run([*self.server, "kill-server"], capture_output=True, timeout=10)


def offers_on_screen(lines: list[str]) -> dict[str, tuple[str, str]]:
    """Target id -> (READY, OFFERS) as the table shows them."""
    header = next((line.split() for line in lines if line.startswith("TARGET ")), None)
    if header is None:
        return {}
    rows = {}
    for line in lines:
        cells = line.split()
        if len(cells) == len(header) and cells[0] != "TARGET":
            row = dict(zip(header, cells, strict=True))
            rows[row["TARGET"]] = (row["READY"], row["OFFERS"])
    return rows


async def newest_decisions(pipeline: Pipeline) -> dict[str, ActionTargetDecision]:
    decisions: dict[str, ActionTargetDecision] = {}
    for record in await pipeline.read_all(pipeline.topics.actiontargets, timeout_s=1.0):
        decision = decode_decision(record.value)
        decisions[decision.target_id] = decision
    return decisions


async def test_pacing_top_shows_each_target_redraws_in_place_and_quits_on_q(pipeline: Pipeline) -> None:
    await pipeline.start_worker()
    await pipeline.produce(stat_records("east-chat", ready=4, logged_in=12)
                           + stat_records("west-queue", ready=9, logged_in=20))
    first = await eventually(lambda: _both(pipeline), message="decisions for both targets")

    env = {k: v for k, v in pipeline.env.items() if k.startswith(("PACING_", "KAFKA_"))}
    terminal = Terminal(f"pacing-top-{pipeline.prefix}",
                        [sys.executable, "-m", "infra.cli", "top", "--refresh", "0.5"], env, ROOT,
                        pipeline.tmp / "top.exit")
    try:
        def shows(expected: dict[str, ActionTargetDecision]) -> dict[str, tuple[str, str]] | None:
            rows = offers_on_screen(terminal.screen())
            wanted = {t: (str(d.ready_agents), str(d.allowed_offers)) for t, d in expected.items()}
            return rows if all(rows.get(t) == cells for t, cells in wanted.items()) else None

        await eventually(lambda: shows(first), timeout_s=30,
                         message=f"both targets with their allowed offers on screen: {terminal.screen()}")
        top = terminal.screen()
        assert top[0].startswith("pacing top ") and "2 targets" in top[0]
        header = next(line.split() for line in top if line.startswith("TARGET "))
        assert header == [c.heading for c in fit_columns(120)]  # the pane's width, not a default 80
        assert {"OWNER", "PEND", "ACCEPT", "ABAND", "SL", "AGE"} <= set(header)
        assert "no alarms raised" in top

        # New statistics for one target: its row changes where it is, and the terminal never scrolls.
        await pipeline.produce(stat_records("east-chat", ready=11, logged_in=12))
        later = await eventually(lambda: _decided(pipeline, "east-chat", ready=11), message="the new decision")
        await eventually(lambda: shows({"east-chat": later}), timeout_s=30,
                         message=f"the new decision on screen: {terminal.screen()}")
        again = terminal.screen()
        assert again[0].startswith("pacing top ")
        assert [line.split()[0] for line in again[2:4]] == ["east-chat", "west-queue"]  # same rows, same place
        assert terminal.pane("history_size") == "0"  # redrawn in place: nothing scrolled off the top

        terminal.tmux("send-keys", "-t", "top", "q")
        status = await eventually(terminal.exit_status, timeout_s=20, message="pacing top to exit on q")
        assert status == "0", "pacing top must exit 0 on q"
    finally:
        terminal.close()


async def _both(pipeline: Pipeline) -> dict[str, ActionTargetDecision] | None:
    decisions = await newest_decisions(pipeline)
    return decisions if {"east-chat", "west-queue"} <= decisions.keys() else None


async def _decided(pipeline: Pipeline, target_id: str, ready: int) -> ActionTargetDecision | None:
    decision = (await newest_decisions(pipeline)).get(target_id)
    return decision if decision is not None and decision.ready_agents == ready else None


async def test_pacing_top_waits_for_missing_topics_without_creating_them(pipeline: Pipeline) -> None:
    env = {k: v for k, v in pipeline.env.items() if k.startswith(("PACING_", "KAFKA_"))}
    terminal = Terminal(f"pacing-top-{pipeline.prefix}",
                        [sys.executable, "-m", "infra.cli", "top", "--refresh", "0.5"], env, ROOT,
                        pipeline.tmp / "top.exit")
    try:
        await eventually(lambda: any("waiting for" in line for line in terminal.screen()), timeout_s=30,
                         message=f"pacing top to say what it waits for: {terminal.screen()}")
        [line] = [line for line in terminal.screen() if "waiting for" in line]
        assert pipeline.topics.actiontargets in line and "(a pacing worker creates them)" in line
        topics = await _topics(pipeline)
        assert pipeline.topics.actiontargets not in topics and pipeline.topics.alarms not in topics
        terminal.tmux("send-keys", "-t", "top", "q")
        assert await eventually(terminal.exit_status, timeout_s=20, message="pacing top to exit on q") == "0"
    finally:
        terminal.close()


async def _topics(pipeline: Pipeline) -> set[str]:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=pipeline.bootstrap)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()
