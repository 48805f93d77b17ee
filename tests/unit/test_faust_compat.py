"""The Faust internals :mod:`streams.faust_compat` relies on are still there, in the pinned version.

If one of these fails after a faust-streaming upgrade, read ``streams/faust_compat.py`` before
anything else: the pacing node's at-least-once guarantees go through it.
"""

from __future__ import annotations

import contextvars
import inspect
from importlib.metadata import version
from types import SimpleNamespace

import faust
from faust.streams import Stream, current_event
from faust.tables.base import Collection
from faust.transport.consumer import Consumer

from streams.faust_compat import as_current_event, forget_positions


def test_the_pinned_faust_streaming_version_is_installed() -> None:
    major, minor = (int(part) for part in version("faust-streaming").split(".")[:2])
    assert (major, minor) == (0, 15)


class _Event:
    partition = 3


def test_current_event_is_a_context_variable_faust_reads() -> None:
    event = _Event()
    assert isinstance(faust.streams._current_event, contextvars.ContextVar)
    with as_current_event(event):  # type: ignore[arg-type]
        assert current_event() is event
    assert current_event() is None


def test_the_apis_the_node_uses_keep_their_shape() -> None:
    assert "noack_take" in vars(Stream)
    assert list(inspect.signature(Collection.send_changelog).parameters)[:4] == ["self", "partition", "key", "value"]
    assert {"_read_offset", "_committed_offset", "_unacked_messages"} <= set(Consumer.__annotations__)


def test_forget_positions_resets_faust_marks() -> None:
    consumer = SimpleNamespace(_read_offset={"tp": 41}, _committed_offset={"tp": 40})
    forget_positions(consumer, ["tp"])  # type: ignore[list-item]
    assert consumer._read_offset["tp"] is None and consumer._committed_offset["tp"] is None
