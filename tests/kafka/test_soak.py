"""The chaos soak for five minutes in ``make test-kafka`` (:mod:`tests.kafka.soak`; ``make soak`` runs it longer).

The schedule's seed is ``PACING_SOAK_SEED`` or random; a failure names it, with the command that
replays the schedule. ``PACING_SOAK_DURATION`` changes the five minutes.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from tests.kafka.soak import soak

DURATION_S = float(os.environ.get("PACING_SOAK_DURATION") or 300)


@pytest.mark.timeout(DURATION_S + 900)  # start-up, the last fault, settling and the check come on top
async def test_the_pipeline_keeps_every_invariant_under_a_seeded_schedule_of_faults(tmp_path: Path) -> None:
    seed = int(os.environ.get("PACING_SOAK_SEED") or random.randrange(1_000_000))
    _, report, text = await soak(DURATION_S, seed, tmp_path)
    print("\n" + text)
    assert not report.failures, text
