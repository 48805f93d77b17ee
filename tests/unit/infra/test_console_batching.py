"""``pacing produce`` and ``pacing feed`` coalesce stat events per target (StatBatch records)."""

from __future__ import annotations

import asyncio
import io
import json
import threading
import time
from typing import Any

import pytest

import infra.console as console
from infra.cli import parse_args
from infra.console import LineBatcher, produce_lines
from schemas import DecodeError, StatEvent, decode_stat_events, decode_stat_records
from streams.runtime.config import load_settings


def line(target_id: str, statistic: str = "ready_agents", value: float = 4, **extra: Any) -> bytes:
    return json.dumps({"tenant": "acme", "target_id": target_id, "statistic": statistic, "value": value,
                       "timestamp": 1_700_000_000_000, "source": "console", "media_type": "webchat",
                       **extra}).encode()


def events_of(value: bytes) -> list[StatEvent]:
    [result] = decode_stat_records([value])
    assert isinstance(result, list) and all(isinstance(e, StatEvent) for e in result), result
    return result  # type: ignore[return-value]


# --- pacing produce ------------------------------------------------------------------------------


def test_line_batcher_coalesces_per_target_and_keeps_the_typed_objects() -> None:
    batcher = LineBatcher()
    typed = [line("vq-a", "ready_agents"), line("vq-b"), line("vq-a", "busy_agents", 2)]
    assert [batcher.add(None, value) for value in typed] == [[], [], []]
    assert len(batcher) == 3
    records = batcher.flush()
    assert len(batcher) == 0
    assert [key for key, _ in records] == [b"vq-a", None]  # a batch keyed by its target; a lone line as typed
    assert records[0][1] == b'{"events": [' + typed[0] + b", " + typed[2] + b"]}"
    assert records[1][1] == typed[1]
    assert [e.statistic for e in events_of(records[0][1])] == ["ready_agents", "busy_agents"]


def test_line_batcher_sends_everything_else_at_once_as_typed() -> None:
    batcher = LineBatcher()
    invalid = line("vq-a", value=-1)
    typed_batch = b'{"events": [' + line("vq-a") + b"]}"
    for value in (invalid, typed_batch, b"not json", b'{"tenant": '):
        assert batcher.add(b"k", value) == [(b"k", value)]
    assert batcher.flush() == []


def test_line_batcher_groups_by_given_key_too_and_splits_full_batches() -> None:
    batcher = LineBatcher(max_events=2)
    due = [record for value in [line("vq-a", value=i) for i in range(5)] for record in batcher.add(b"K", value)]
    due += batcher.flush()
    assert [key for key, _ in due] == [b"K", b"K", b"K"]
    assert [len(decode_stat_records([value])[0]) for _, value in due] == [2, 2, 1]  # type: ignore[arg-type]
    assert batcher.add(b"K", line("vq-a")) == [] and batcher.add(b"L", line("vq-a")) == []
    assert [key for key, _ in batcher.flush()] == [b"K", b"L"]


def test_line_batcher_respects_max_bytes() -> None:
    batcher = LineBatcher(max_bytes=1000)
    values = [line("vq-a", value=i, source="s" * 100) for i in range(20)]
    due = [record for value in values for record in batcher.add(None, value)] + batcher.flush()
    assert len(due) > 2 and all(len(value) <= 1000 for _, value in due)
    assert [e.value for _, value in due for e in events_of(value)] == list(range(20))


class FakeProducer:
    """What produce_lines needs of AIOKafkaProducer; records what was sent and when."""

    sent: list[tuple[str, bytes | None, bytes, float]] = []

    def __init__(self, **_: Any) -> None:
        FakeProducer.sent = []

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def send_and_wait(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        FakeProducer.sent.append((topic, key, value, time.monotonic()))


class SlowInput(io.TextIOBase):
    """Lines as from a terminal: a pause before the lines listed in ``pauses``."""

    def __init__(self, lines: list[str], pauses: dict[int, float]) -> None:
        self.lines, self.pauses, self.index = lines, pauses, 0
        self.lock = threading.Lock()
        self.returned_at: dict[int, float] = {}
        """When each line was handed over (``time.monotonic()``), by index."""

    def readline(self, size: int | None = -1) -> str:  # type: ignore[override]
        with self.lock:
            index = self.index
            self.index += 1
        if index >= len(self.lines):
            return ""
        time.sleep(self.pauses.get(index, 0))
        self.returned_at[index] = time.monotonic()
        return self.lines[index]


@pytest.fixture
def fake_kafka(monkeypatch: pytest.MonkeyPatch) -> Any:
    async def no_topics(_: Any) -> None:
        pass

    monkeypatch.setattr(console, "AIOKafkaProducer", FakeProducer)
    monkeypatch.setattr(console, "ensure_topics", no_topics)
    return load_settings()


def test_produce_lines_batches_lines_that_arrive_together(fake_kafka: Any) -> None:
    text = "".join(value.decode() + "\n" for value in
                   [line("vq-a"), line("vq-a", "busy_agents"), line("vq-b"), line("vq-a", value=-1)])
    count = asyncio.run(produce_lines(fake_kafka, "pacing.stats", None, io.StringIO(text + "\n"), batch=True))
    sent = FakeProducer.sent
    assert count == len(sent) == 3
    invalid, batch, lone = sent  # the invalid line at once, the rest at the end of the input
    assert isinstance(decode_stat_events([invalid[2]])[0], DecodeError)
    assert (batch[1], [e.statistic for e in events_of(batch[2])]) == (b"vq-a", ["ready_agents", "busy_agents"])
    assert (lone[1], lone[2]) == (None, line("vq-b"))


def test_produce_lines_single_keeps_one_record_per_line(fake_kafka: Any) -> None:
    text = f"vq-a\t{line('vq-a').decode()}\n{line('vq-a').decode()}\n"
    count = asyncio.run(produce_lines(fake_kafka, "pacing.stats", None, io.StringIO(text), batch=False))
    assert count == 2
    assert [(key, value) for _, key, value, _ in FakeProducer.sent] == [(b"vq-a", line("vq-a")), (None, line("vq-a"))]


def test_produce_lines_sends_what_waits_when_the_input_pauses(fake_kafka: Any) -> None:
    typed = [line("vq-a").decode() + "\n", line("vq-a", "busy_agents").decode() + "\n", line("vq-a").decode() + "\n"]
    typing = SlowInput(typed, {2: 0.6})
    count = asyncio.run(produce_lines(fake_kafka, "pacing.stats", "vq-a", typing, batch=True, linger_s=0.05))
    assert count == 2
    (_, _, first, at_first), (_, _, second, _) = FakeProducer.sent
    # Sent during the pause (before the third line came), not at the end: measured against the
    # input's own clock, so a loaded machine cannot make it pass or fail.
    assert len(events_of(first)) == 2 and at_first < typing.returned_at[2]
    assert second == typed[2].strip().encode()


def test_cli_flags() -> None:
    assert parse_args(["produce", "--single"]).single
    assert not parse_args(["produce"]).single
    assert parse_args(["feed", "--single"]).single
    assert not parse_args(["feed"]).single
