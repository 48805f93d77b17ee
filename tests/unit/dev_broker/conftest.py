"""The question to the cluster about its kind, answered by the test."""

from __future__ import annotations

from typing import Any

import pytest

from streams.dev_broker import detect


@pytest.fixture
def questions(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every question to the cluster about its kind (answered "kafka")."""
    asked: list[str] = []

    async def detect_broker_kind(options: dict[str, Any], timeout_s: float = 10.0) -> str:
        asked.append(options["bootstrap_servers"])
        return "kafka"

    monkeypatch.setattr(detect, "detect_broker_kind", detect_broker_kind)
    return asked
