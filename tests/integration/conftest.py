"""Fixtures of the integration tests: an isolated pipeline per test (the emulator is in tests/conftest.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from infra.broker import EmbeddedBroker
from infra.emulator import JourneyEmulator
from tests.integration.pipeline import Pipeline

pytestmark = pytest.mark.integration


@pytest.fixture
async def pipeline(kafka_bootstrap: str, emulator: JourneyEmulator, tmp_path: Path) -> AsyncIterator[Pipeline]:
    """An isolated deployment (own topic prefix); its children are stopped after the test."""
    deployment = Pipeline(kafka_bootstrap, emulator, tmp_path)
    yield deployment
    deployment.stop()


@pytest.fixture
async def private_broker() -> AsyncIterator[EmbeddedBroker]:
    """An embedded broker of this test alone, for tests that restart it (started in a thread: its start blocks)."""
    broker = EmbeddedBroker()
    await asyncio.to_thread(broker.start)
    yield broker
    await asyncio.to_thread(broker.stop, 1.0)
