"""The targets a node owns: live objects in front of Faust's changelog-backed table.

Folding and deciding work on :class:`~streams.node.target_entry.TargetEntry` objects kept across
ticks, so a target's state is parsed from its table value once per ownership, not once per tick.
The table itself holds the JSON form, which is what the changelog, standbys and recovery see.
The live objects are dropped whenever partitions move: the table then holds the truth.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from faust.serializers import codecs
from faust.types import EventT, TableT

from streams.node.faust_compat import changelog_topic_name, keep_newest_on_restore, store_locally
from streams.node.target_entry import TargetEntry
from streams.runtime.fencing import supersedes
from streams.runtime.outbox import Outbox


def newer_entry(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether table value ``new`` may replace ``old`` on restore: not from an older owner (the fence)."""
    return supersedes(int(old.get("epoch", 0)), int(old.get("written_ms", 0)),
                      int(new.get("epoch", 0)), int(new.get("written_ms", 0)))


class TargetStore:
    """Entries by target id, read through from the table and written back with their changelog record."""

    def __init__(self, table: TableT, epoch: Callable[[], int] = lambda: 0):
        self.table = table
        self._epoch = epoch  # the ownership epoch each written value carries (streams.node.ownership)
        self._live: dict[str, TargetEntry] = {}
        keep_newest_on_restore(table, newer_entry)

    def get(self, target_id: str) -> TargetEntry | None:
        """The live entry of a target, read from the table the first time; None for a new target."""
        entry = self._live.get(target_id)
        if entry is None:
            data = self.table.get(target_id)
            if data is None:
                return None
            entry = self._live[target_id] = TargetEntry.from_json(data)
        return entry

    def add(self, target_id: str, entry: TargetEntry) -> None:
        """Track a target seen for the first time (written at its first :meth:`write`)."""
        self._live[target_id] = entry

    async def write(self, target_id: str, entry: TargetEntry, event: EventT, outbox: Outbox) -> None:
        """Store the entry in the table's local store and send its changelog record through ``outbox``.

        ``event`` is one of the target's events: Faust files the write under its partition. The
        value carries this worker's ownership epoch and the wall-clock time of the write, so that a
        restore keeps it over a late write of an older owner (:func:`newer_entry`).
        """
        data = entry.to_json()
        data["epoch"] = self._epoch()
        data["written_ms"] = int(time.time() * 1000)
        store_locally(self.table, event, target_id, data)
        await outbox.send(self.changelog_topic, codecs.dumps("json", target_id), codecs.dumps("json", data),
                          partition=entry.partition)

    def forget(self, target_ids: Any = None) -> None:
        """Drop live entries (all of them by default): the next read comes from the table."""
        if target_ids is None:
            self._live.clear()
        else:
            for target_id in target_ids:
                self._live.pop(target_id, None)

    def owned(self, partitions: set[int]) -> Iterator[tuple[str, TargetEntry]]:
        """Every entry of the given partitions (the node's active ones), live where it is live."""
        for target_id in list(self.table.keys()):
            entry = self._live.get(target_id)
            if entry is None:
                data = self.table.get(target_id)
                if not data or data.get("partition") not in partitions:
                    continue
                entry = self._live[target_id] = TargetEntry.from_json(data)
            elif entry.partition not in partitions:
                continue
            yield target_id, entry

    @property
    def changelog_topic(self) -> str:
        """The table's changelog topic."""
        return changelog_topic_name(self.table)
