"""The hand-written writer of ActionTargetDecision records (Avro binary), with its byte caches.

fastavro costs 12-15 µs of CPU per decision record here (a generic interpreter of the schema
behind a BytesIO; 40 µs and more of wall time on the loaded 2-core machine), and the pacing node
writes one per target per tick. The current layout (``FAST_DECISION_FIELDS`` of
:mod:`schemas.fast`, checked against the newest schema whenever a registry is built) is written
by hand instead (:meth:`DecisionWriter.write`, called by :func:`schemas.codec.encode_decision_fields`):
a string as a zig-zag varint length and the UTF-8 bytes, an int or long as a zig-zag varint, a
double as 8 little-endian bytes, the array and the map as one block (count, items, then a 0
count; an empty one as the 0 alone): exactly what fastavro writes.

Python's own steps (dict lookups, the join) cost more here than the Avro work, and most values
of a decision repeat from record to record and tick to tick (tenant, node, ids, names,
algorithm, the tick time, small counts, the figures' names and rounded values), so the encoded
form of each is cached, and a record costs one dict lookup per field (per figure: the name,
then the value, giving the pair as the map holds it) and one join. The doubles are packed every
time (struct, i.e. float(value), as fastavro does).

Only values of exactly the usual types are cached (:meth:`DecisionWriter.learn`: a str, not a
subclass; an int, not a bool, within 64 bits; a list or tuple of str; a dict of str to str). A
value not cached yet (a KeyError, as for a missing field) sends the record to ``learn``, which
checks and caches the values it lacks, and the record is written again; a figure value, the
kind that keeps changing, is checked and cached on the spot instead (:class:`_FigureValues`). A
record that is not usual there (a missing field, a None, a bool not seen as an int, a lone
surrogate, a long out of range, a map of another type...) is not written here (``write`` returns
None) and the caller writes it with fastavro, which gives its bytes (a field's default) or its
EncodeError. A cached value also serves values equal to it (== and the same hash): a bool or an
int-valued float in an int field, an IntEnum, a StrEnum; fastavro writes those as the equal int
or str too. The differences left would be a str subclass overriding encode() equal to a cached
str, and a float subclass overriding __float__ in a double field (struct packs its value,
fastavro calls float()). The caches hold about ``max_entries`` values or ``max_bytes`` bytes
and are emptied when full.

The caches belong to a :class:`DecisionWriter` object, not to the process: a writer can be made,
bounded and emptied on its own (tests, benchmarks, a second node in one process); the codec keeps
one default writer for :func:`schemas.codec.encode_decision_fields`.
tests/unit/schemas/test_decision_writer.py checks the bytes against fastavro.
"""

from __future__ import annotations

import operator
import struct
from collections.abc import Mapping
from typing import Any

from schemas.fast import FAST_DECISION_FIELDS

__all__ = ["CACHE_MAX_BYTES", "CACHE_MAX_ENTRIES", "DecisionWriter"]

#: Default bound of a writer's caches, in values and in bytes (emptied when either is passed).
CACHE_MAX_ENTRIES = 100_000
CACHE_MAX_BYTES = 16 * 1024 * 1024

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_ZERO = b"\x00"
_pack_double = struct.Struct("<d").pack
_get_decision_fields = operator.itemgetter(*(name for name, _ in FAST_DECISION_FIELDS))
_DECISION_STRINGS = ("tenant", "target_id", "name", "state", "description", "algorithm", "node")
_DECISION_LONGS = ("service_level_duration_ms", "short_abandon_threshold", "allowed_offers", "ready_agents",
                   "busy_agents", "logged_in_agents", "waiting_interactions", "outstanding_offers", "computed_at",
                   "owner_epoch")


class _Unusual(Exception):
    """A value the writer does not write (not of exactly the usual type, out of range): fastavro decides."""


def _zigzag_varint(value: int) -> bytes:
    """The Avro zig-zag varint of a long within 64 bits (the caller checks the range)."""
    n = (value << 1) ^ (value >> 63)
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _avro_string(text: object) -> bytes:
    """A str's Avro encoding (length, UTF-8 bytes); _Unusual for anything else, UnicodeEncodeError
    for a lone surrogate."""
    if type(text) is not str:
        raise _Unusual
    data = text.encode()
    return _zigzag_varint(len(data)) + data


def _avro_long(value: object) -> bytes:
    """An int's (not a bool's) zig-zag varint; _Unusual for anything else or out of 64 bits."""
    if type(value) is not int or not _INT64_MIN <= value <= _INT64_MAX:
        raise _Unusual
    return _zigzag_varint(value)


def _array_block(items: tuple[Any, ...]) -> bytes:
    """An array of strings as fastavro writes it: one block (count, items, 0), or the 0 alone if empty."""
    if not items:
        return _ZERO
    return b"".join((_zigzag_varint(len(items)), *map(_avro_string, items), _ZERO))


class _FigureValues(dict[str, bytes]):
    """The values of one figure seen so far, each to the pair (name, value) as written in the map.

    A value not seen yet is checked and cached here, during the write (figure values are the ones
    that keep changing: the rounded rates and times of each target); when the writer's caches are
    full it is written without being cached, until the next :meth:`DecisionWriter.learn` empties them.
    """

    __slots__ = ("name", "writer")

    def __init__(self, name: bytes, writer: DecisionWriter) -> None:
        super().__init__()
        self.name = name
        self.writer = writer

    def __missing__(self, value: object) -> bytes:
        data = self.name + _avro_string(value)  # _Unusual for anything but a str; UnicodeEncodeError
        writer = self.writer
        if not writer.full():
            writer._cache(self, value, data)
        return data


class DecisionWriter:
    """Writes ActionTargetDecision bodies by hand from caches of encoded values (see the module doc).

    The caches are this object's: ``strings`` (the top-level strings: tenant, target_id, name,
    state, description, algorithm, node), ``varints`` (the ints and longs, and the map's count),
    ``media`` (the media-type arrays, keyed by the tuple of their items, as whole blocks) and
    ``figures`` (figure name, then value: the pair as written in the map); ``size`` counts the
    values and bytes they hold, bounded by ``max_entries`` and ``max_bytes``. The dicts and the
    ``size`` list are emptied in place, never replaced. Not thread-safe (the node writes from one
    thread).
    """

    __slots__ = ("figures", "max_bytes", "max_entries", "media", "size", "strings", "varints")

    def __init__(self, max_entries: int = CACHE_MAX_ENTRIES, max_bytes: int = CACHE_MAX_BYTES) -> None:
        self.strings: dict[str, bytes] = {}
        self.varints: dict[int, bytes] = {}
        self.media: dict[tuple[str, ...], bytes] = {}
        self.figures: dict[str, _FigureValues] = {}
        self.size = [0, 0]  # values, bytes
        self.max_entries = max_entries
        self.max_bytes = max_bytes

    def write(self, record: Mapping[str, Any], header: bytes) -> bytes | None:
        """``header`` and the record's Avro body, as fastavro writes them; None if not usual here.

        ``header`` is the single-object header of the newest ActionTargetDecision schema, which
        must have the layout of ``FAST_DECISION_FIELDS`` (the registry knows:
        ``SchemaRegistry._fast_decision_header``). None: the caller writes the record with
        fastavro, which gives its bytes or its EncodeError.
        """
        if type(record) is not dict:
            return None
        for attempt in (0, 1):
            # The FAST_DECISION_FIELDS layout from the caches. KeyError: a field or a value not
            # cached yet; TypeError (an unhashable value), struct.error or OverflowError (a double
            # that is not a number, an int too large for one): not usual.
            try:
                (tenant, target_id, name, state, media, service_level_percentage, service_level_duration_ms,
                 short_abandon_threshold, description, allowed_offers, reactive_admission, ready_agents,
                 busy_agents, logged_in_agents, waiting_interactions, outstanding_offers, acceptance_rate,
                 algorithm, computed_at, node, figures, owner_epoch) = _get_decision_fields(record)
                if (type(media) is not list and type(media) is not tuple) or type(figures) is not dict:
                    return None
                strings, varints, pack_double = self.strings, self.varints, _pack_double
                parts = [
                    header, strings[tenant], strings[target_id], strings[name], strings[state],
                    self.media[tuple(media)],
                    pack_double(service_level_percentage), varints[service_level_duration_ms],
                    varints[short_abandon_threshold], strings[description], varints[allowed_offers],
                    pack_double(reactive_admission), varints[ready_agents], varints[busy_agents],
                    varints[logged_in_agents], varints[waiting_interactions], varints[outstanding_offers],
                    pack_double(acceptance_rate), strings[algorithm], varints[computed_at], strings[node],
                ]
                if figures:
                    append = parts.append
                    append(varints[len(figures)])
                    named = self.figures
                    for key, value in figures.items():
                        append(named[key][value])
                parts.append(_ZERO)
                parts.append(varints[owner_epoch])
                return b"".join(parts)
            except KeyError:  # cached after checking, then written again; or not usual: fastavro
                if attempt or not self.learn(record):
                    return None
            except (_Unusual, UnicodeEncodeError, TypeError, struct.error, OverflowError):
                return None
        return None  # not reached: the second attempt returns or gives up

    def clear(self) -> None:
        """Forget every cached value (when full; tests and benchmarks)."""
        for cache in (self.strings, self.varints, self.media, self.figures):
            cache.clear()
        self.size[:] = [0, 0]

    def full(self) -> bool:
        """Whether the caches hold more than ``max_entries`` values or ``max_bytes`` bytes."""
        return self.size[0] > self.max_entries or self.size[1] > self.max_bytes

    def _cache(self, cache: dict[Any, bytes], key: Any, data: bytes) -> None:
        cache[key] = data
        size = self.size
        size[0] += 1
        size[1] += len(data)

    def learn(self, record: dict[str, Any]) -> bool:
        """Cache the values of a usual decision record not cached yet; False if the record is not usual.

        Each value is checked (exact types, see the module doc) before it is cached; one already
        cached was checked when it was.
        """
        if self.full():
            self.clear()  # before, so that all of this record's values are there after
        strings, varints, cache = self.strings, self.varints, self._cache
        try:
            media = record["supported_media_types"]
            figures = record["figures"]
            if (type(media) is not list and type(media) is not tuple) or type(figures) is not dict:
                return False
            for name in _DECISION_STRINGS:
                value = record[name]
                if value not in strings:
                    cache(strings, value, _avro_string(value))
            for value in (*map(record.__getitem__, _DECISION_LONGS), len(figures)):
                if value not in varints:
                    cache(varints, value, _avro_long(value))
            items = tuple(media)
            if items not in self.media:
                cache(self.media, items, _array_block(items))
            for key, value in figures.items():
                values = self.figures.get(key)
                if values is None:
                    values = self.figures[key] = _FigureValues(_avro_string(key), self)
                # A new value is checked and cached by _FigureValues.__missing__.
                values[value]
        except (_Unusual, KeyError, TypeError, UnicodeEncodeError):
            return False
        return True
