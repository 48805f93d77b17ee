"""Fixtures of the integration tests: an isolated pipeline per test (the emulator is in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from infra.emulator import JourneyEmulator
from tests.integration.pipeline import Pipeline

pytestmark = pytest.mark.integration


@pytest.fixture
async def pipeline(kafka_bootstrap: str, emulator: JourneyEmulator, tmp_path: Path) -> AsyncIterator[Pipeline]:
    """An isolated deployment (own topic prefix); its children are stopped after the test."""
    deployment = Pipeline(kafka_bootstrap, emulator, tmp_path)
    yield deployment
    deployment.stop()
