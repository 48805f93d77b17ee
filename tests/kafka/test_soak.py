"""The chaos soak for five minutes in ``make test-kafka`` (:mod:`tests.kafka.soak`; ``make soak`` runs it longer).

The schedule's seed is ``PACING_SOAK_SEED`` or random; a failure names it, with the command that
replays the schedule. ``PACING_SOAK_DURATION`` changes the five minutes.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

from tests.kafka.soak import soak


async def test_the_pipeline_keeps_every_invariant_under_a_seeded_schedule_of_faults(tmp_path: Path) -> None:
    seed = int(os.environ.get("PACING_SOAK_SEED") or random.randrange(1_000_000))
    duration = float(os.environ.get("PACING_SOAK_DURATION") or 300)
    _, report, text = await soak(duration, seed, tmp_path)
    print("\n" + text)
    assert not report.failures, text
