"""Optional dependencies of the tools, and the one error that names the extra to install.

The product (``pacing worker``, ``pacing sink``, ``pacing simulate``) needs only the core
dependencies. Tools that need more import it through :func:`require`, so that a production
install without the extra gets one line saying what to install instead of a traceback.
"""

from __future__ import annotations

import importlib
from types import ModuleType

DISTRIBUTION = "agent-pacing-service"


class MissingExtra(RuntimeError):
    """A tool needs an optional dependency that is not installed."""

    def __init__(self, module: str, extra: str, purpose: str):
        self.module = module
        self.extra = extra
        super().__init__(f"{purpose} needs the '{extra}' extra ({module} is not installed): "
                         f"pip install '{DISTRIBUTION}[{extra}]'")


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Import ``module``; when it is missing raise :class:`MissingExtra` naming ``extra``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtra(module, extra, purpose) from exc
