"""The engine without its compiled kernels: the Python reference takes over, with one warning.

streams.engine.kernels picks the kernels once, at import. Forced with PACING_ENGINE_KERNELS=python
(as where the extension cannot be built), a fresh interpreter decides a sample of targets of every
algorithm with the reference kernels; its decisions are compared with this process's, made with
the compiled ones: the same offers, algorithms and published figures (0.1 % steps), admissions
within the comparison tests' tolerances (tests/unit/engine/test_engine_reference.py: the
reference's Erlang A bisection resolves the rate to ~1e-9 of it, the horizon costs agree to ~1e-9).
"""

from __future__ import annotations

import json
import logging
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from streams.engine import _kernels, decide, kernels, reference
from tests.benchmarks.engine_cost import T_NOW, random_target

ROOT = Path(__file__).resolve().parents[3]

#: Decides the sample in a fresh interpreter, printing the decisions as JSON on stdout.
_DECIDE_SAMPLE = """
import json, sys
from tests.unit.engine.test_engine_kernels import decisions
json.dump(decisions(), sys.stdout)
"""


def decisions() -> list[list]:
    """Decisions of 60 seeded targets of 1-60 agents, every algorithm and AUTO (small groups: the
    reference's convolutions take milliseconds a decision there, seconds for a thousand agents)."""
    rnd = random.Random(20)
    out = []
    for i in range(60):
        target = random_target(rnd, 1, 60)
        made = decide(target.state(f"k{i}"), target.settings(), T_NOW)
        out.append([made.allowed_offers, made.reactive_admission, made.algorithm, made.figures])
    return out


def test_forced_reference_kernels_decide_as_the_compiled_ones_and_say_so_once() -> None:
    env = {**os.environ, kernels.CHOICE_VARIABLE: "python"}
    done = subprocess.run([sys.executable, "-c", _DECIDE_SAMPLE], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300, check=True)
    warnings = [line for line in done.stderr.splitlines() if "Python reference kernels" in line]
    assert len(warnings) == 1, done.stderr
    assert f"{kernels.CHOICE_VARIABLE}=python" in warnings[0]
    assert kernels.kernels is _kernels  # this process: the compiled ones
    fallback, compiled = json.loads(done.stdout), decisions()
    offered = 0
    for (offers, admission, algorithm, figures), want in zip(fallback, compiled, strict=True):
        assert (offers, algorithm) == (want[0], want[2])
        assert admission == pytest.approx(want[1], rel=1e-6, abs=1e-9)
        assert figures == want[3]  # (predicted and observed figures, printed to 0.1 %)
        offered += offers > 0
    assert offered > 20  # the sample makes offers, not only refusals


def test_kernels_that_do_not_import_fall_back_with_one_warning(monkeypatch: pytest.MonkeyPatch,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setitem(sys.modules, "streams.engine._kernels", None)  # import raises ImportError
    monkeypatch.delenv(kernels.CHOICE_VARIABLE, raising=False)
    with caplog.at_level(logging.WARNING, logger="streams.engine.kernels"):
        assert kernels.load() is reference
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "do not import" in caplog.records[0].getMessage()


def test_the_compiled_kernels_load_silently_and_an_unknown_choice_is_refused(
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="streams.engine.kernels"):
        assert kernels.load("compiled") is _kernels
        assert kernels.load("") is _kernels
    assert caplog.records == []
    with pytest.raises(ValueError, match=kernels.CHOICE_VARIABLE):
        kernels.load("fortran")


def test_make_test_runs_the_engine_tests_on_the_reference_kernels_too() -> None:
    """CI (.ci/run: make test) runs the engine's unit tests once with the fallback forced."""
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("\ntest: install\n", 1)[1].split("\n\n", 1)[0]
    assert f"{kernels.CHOICE_VARIABLE}=python $(BIN)/python -m pytest" in recipe
    assert "ENGINE_FALLBACK_TESTS := tests/unit/engine" in makefile
