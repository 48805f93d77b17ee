"""The hand-written reader of StatEvent and StatBatch records (Avro binary), for the usual payload.

fastavro costs about 7 µs per StatEvent record read (a generic interpreter of the schema), more
than the whole budget of the pacing node per event. The two layouts of :mod:`schemas.fast`
(``FAST_STAT_EVENT_FORM``, ``FAST_STAT_BATCH_FORM``) are read by hand instead: the usual payload
(short strings, one array block) in a few hundred nanoseconds per field, and validated while
read (statistic and media type looked up by their UTF-8 bytes).

The reader only ever returns what fastavro would read, or None: anything it does not expect
(truncation, a negative length, an unknown union branch, a block count in the negative form,
a varint over 64 bits, invalid UTF-8, trailing bytes, more than MAX_BATCH_EVENTS...) makes it
give up, and the caller (:mod:`schemas.codec`) decodes the payload the reference way, which
produces the rejection reason. An event it reads but that breaks a rule is returned as the dict
fastavro would read, for pydantic to name the problem. tests/unit/schemas/test_codec_fuzz.py checks both
paths agree.

Layout (Avro binary): StatEvent = tenant, target_id, statistic (strings: zig-zag varint length
and UTF-8 bytes), value (8-byte little-endian double), timestamp (zig-zag varint long), source
(string), media_type (union index 0 = null, 1 = string); StatBatch = array blocks of
(count, events) ended by a count of 0.
"""

from __future__ import annotations

import struct
from typing import Any

from schemas.models import MEDIA_TYPES, STATISTICS, StatEvent, _stat_event_unchecked
from schemas.registry import _HEADER_LEN, MAX_BATCH_EVENTS

__all__ = ["read_stat_batch", "read_stat_event"]


class _Unusual(Exception):
    """The hand reader met something it does not read; the reference path decides."""


_unpack_double = struct.Struct("<d").unpack_from
_STATISTIC_BY_UTF8 = {name.encode(): name for name in STATISTICS}
_MEDIA_TYPE_BY_UTF8 = {name.encode(): name for name in MEDIA_TYPES}
_MAX_FINITE = 1.7976931348623157e308
_INT64_MAX = 2**63 - 1
_MAX_ID_CHARS = 255
# The fields set of a StatEvent read from Avro (all of them), copied for each event.
_ALL_STAT_FIELDS = {"tenant", "target_id", "statistic", "value", "timestamp", "source", "media_type"}
_U64 = 1 << 64


def _varint_tail(buf: bytes, pos: int, first: int) -> tuple[int, int]:
    """A varint whose first byte (at ``pos - 1``) was ``first`` >= 0x80: (zig-zag decoded value, next pos).

    Over 64 bits (where fastavro's C reader wraps) is :class:`_Unusual`; past the end, IndexError.
    """
    n = first & 0x7F
    shift = 7
    while True:
        byte = buf[pos]
        pos += 1
        n |= (byte & 0x7F) << shift
        if byte < 0x80:
            break
        shift += 7
        if shift > 63:
            raise _Unusual
    if n >= _U64:
        raise _Unusual
    return (n >> 1) ^ -(n & 1), pos


def _read_events(buf: bytes, pos: int, count: int, out: list[Any]) -> tuple[int, bool]:
    """Read ``count`` StatEvent bodies from ``pos`` into ``out``: StatEvents, or dicts that break a rule.

    Returns the position after them and whether all were StatEvents. Raises :class:`_Unusual`,
    IndexError, OverflowError (a huge length), struct.error or UnicodeDecodeError on what it does
    not read; a position past the end means truncated.

    The events of a batch usually share their tenant and target id (the "head", before the
    statistic) and their timestamp, source and media type (the "tail", after the value): when
    the bytes at ``pos`` start with the previous event's head or tail, they are read as the
    same values (the encoding is self-delimiting, so the same bytes read the same), and only
    the statistic and the value are read per event.
    """
    append = out.append
    unpack_double, statistics, media_types = _unpack_double, _STATISTIC_BY_UTF8, _MEDIA_TYPE_BY_UTF8
    copy_fields = _ALL_STAT_FIELDS.copy
    unchecked = _stat_event_unchecked
    head = tail = b"\x80"  # matches nothing at the start of an event (a varint never ends with it)
    head_len = tail_len = 0
    max_finite = _MAX_FINITE
    tenant = target_id = source = ""
    media_type: str | None = None
    timestamp = 0
    head_ok = tail_ok = False
    clean = True
    for _ in range(count):
        if buf.startswith(head, pos):
            pos += head_len
        else:
            start = pos
            # Strings: a 1-byte varint of an even value is a length of 0..63; else the slow way.
            b = buf[pos]
            if b & 0x81:
                n, pos = _string_length(buf, pos + 1, b)
            else:
                n = b >> 1
                pos += 1
            tenant = buf[pos:pos + n].decode()
            pos += n
            b = buf[pos]
            if b & 0x81:
                n, pos = _string_length(buf, pos + 1, b)
            else:
                n = b >> 1
                pos += 1
            target_id = buf[pos:pos + n].decode()
            pos += n
            head = buf[start:pos]
            head_len = pos - start
            # Strings read from UTF-8 hold no surrogates: len() counts what pydantic counts.
            head_ok = bool(tenant) and 0 < len(target_id) <= _MAX_ID_CHARS
        b = buf[pos]
        if b & 0x81:
            n, pos = _string_length(buf, pos + 1, b)
        else:
            n = b >> 1
            pos += 1
        raw = buf[pos:pos + n]
        pos += n
        statistic = statistics.get(raw)
        value = unpack_double(buf, pos)[0]
        pos += 8
        if buf.startswith(tail, pos):
            pos += tail_len
        else:
            start = pos
            b = buf[pos]
            pos += 1
            if b & 0x80:
                timestamp, pos = _varint_tail(buf, pos, b)
            else:
                timestamp = (b >> 1) ^ -(b & 1)
            b = buf[pos]
            if b & 0x81:
                n, pos = _string_length(buf, pos + 1, b)
            else:
                n = b >> 1
                pos += 1
            source = buf[pos:pos + n].decode()
            pos += n
            b = buf[pos]
            pos += 1
            if b == 0:
                media_type = None
                tail_ok = True
            elif b == 2:
                b = buf[pos]
                if b & 0x81:
                    n, pos = _string_length(buf, pos + 1, b)
                else:
                    n = b >> 1
                    pos += 1
                media_raw = buf[pos:pos + n]
                pos += n
                media_type = media_types.get(media_raw)
                tail_ok = media_type is not None
                if media_type is None:
                    media_type = media_raw.decode()
            else:
                raise _Unusual
            tail = buf[start:pos]
            tail_len = pos - start
            tail_ok = tail_ok and 0 < timestamp <= _INT64_MAX
        if statistic is not None and head_ok and tail_ok and 0.0 <= value <= max_finite:  # NaN: False
            # StatEvent's rules all hold (schemas.models): built as model_validate would, without
            # pydantic (StatEvent.model_construct costs twice the whole read: see _stat_event_unchecked).
            append(unchecked(tenant, target_id, statistic, value, timestamp, source, media_type, copy_fields()))
        else:
            append({"tenant": tenant, "target_id": target_id, "statistic": raw.decode(), "value": value,
                    "timestamp": timestamp, "source": source, "media_type": media_type})
            clean = False
    return pos, clean


def _string_length(buf: bytes, pos: int, first: int) -> tuple[int, int]:
    """A string length whose first varint byte (at ``pos - 1``) is ``first``: (length, next pos)."""
    if first & 0x80:
        n, pos = _varint_tail(buf, pos, first)
    else:
        n = (first >> 1) ^ -(first & 1)
    if n < 0:
        raise _Unusual
    return n, pos


def read_stat_event(payload: bytes) -> StatEvent | None:
    """A single-object StatEvent payload read by hand: the event if valid, else None (see the module doc)."""
    out: list[Any] = []
    try:
        end, clean = _read_events(payload, _HEADER_LEN, 1, out)
    except (_Unusual, IndexError, OverflowError, struct.error, UnicodeDecodeError):
        return None
    return out[0] if clean and end == len(payload) else None


def read_stat_batch(payload: bytes) -> tuple[list[Any], bool] | None:
    """A single-object StatBatch payload read by hand: its events (StatEvents or dicts) and whether
    all are StatEvents; or None (see the module doc)."""
    out: list[Any] = []
    pos = _HEADER_LEN
    clean = True
    try:
        while True:
            b = payload[pos]
            if b & 0x81:  # a negative count (block with a byte size) or a multi-byte one
                count, pos = _string_length(payload, pos + 1, b)
            else:
                count = b >> 1
                pos += 1
            if not count:
                break
            if len(out) + count > MAX_BATCH_EVENTS:
                return None
            pos, block_clean = _read_events(payload, pos, count, out)
            clean = clean and block_clean
    except (_Unusual, IndexError, OverflowError, struct.error, UnicodeDecodeError):
        return None
    return (out, clean) if pos == len(payload) else None

