"""Which kernels the engine computes with: the compiled ``_kernels`` (``_kernels.c``), or where
they cannot be built or imported (no compiler, another Python), the Python reference
(``streams.engine.reference``: the same functions, the same decisions to the tolerances
tests/unit/engine/test_engine_reference.py checks, ~100 times slower).

The choice is made once, at import, and a fallback says so in one warning: a node that runs on the
reference keeps pacing, but a cold decision costs milliseconds instead of microseconds.
``PACING_ENGINE_KERNELS=python`` forces the reference (the CI runs the engine's tests once so);
``compiled`` or unset takes the compiled kernels when they import.
"""

from __future__ import annotations

import importlib
import logging
import os
from types import ModuleType

#: The environment variable that forces the reference kernels ("python").
CHOICE_VARIABLE = "PACING_ENGINE_KERNELS"

_log = logging.getLogger(__name__)


def load(choice: str | None = None) -> ModuleType:
    """The kernels module for ``choice`` (default: the environment's ``PACING_ENGINE_KERNELS``),
    logging one warning when it is the reference."""
    choice = (os.environ.get(CHOICE_VARIABLE, "") if choice is None else choice).strip().lower()
    if choice not in ("", "compiled", "python"):
        raise ValueError(f"{CHOICE_VARIABLE} must be 'compiled' or 'python', not {choice!r}")
    if choice != "python":
        try:
            return importlib.import_module("streams.engine._kernels")
        except ImportError as error:
            reason = (f"the compiled kernels (streams/engine/_kernels.c) do not import ({error}); "
                      "`make install` builds them")
    else:
        reason = f"{CHOICE_VARIABLE}=python"
    from streams.engine import reference

    _log.warning("pacing engine: Python reference kernels (%s): the same decisions, each ~100 times slower",
                 reason)
    return reference


kernels = load()
