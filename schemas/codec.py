"""Avro single-object codec for the pacing records, with JSON accepted on input.

Wire format (Avro specification, "Single object encoding")::

    C3 01 | 8-byte little-endian CRC-64-AVRO fingerprint of the writer schema's
          | Parsing Canonical Form | Avro binary body

The fingerprint lets a reader find the writer schema among every version kept
in ``schemas/avro/<name>.v<N>.avsc`` (all loaded and parsed once, at import)
and resolve the body to the newest version of the record, so producers and
consumers can be upgraded independently (schema evolution).

Stat events and target configs also accept a JSON object (UTF-8, first
non-whitespace byte ``{``) so a person can produce with any console producer.
Everything decoded is validated through the pydantic models; any failure
raises :class:`DecodeError` whose ``reason`` is a short, precise, one-line
phrase meant for the DLQ ``error`` header and whose ``category`` (one of the
fixed :class:`DecodeCategory` values) is meant for a metric label.

The decoders never let anything but :class:`DecodeError` out, whatever the
payload: a Kafka null value (``None``), empty bytes, random bytes, a truncated
or corrupt Avro body, JSON nested thousands deep, integer literals of
thousands of digits, lone surrogates, ``NaN``... A poison record therefore
costs one rejection, never the batch it came in. Limits that bound the work
per payload: :data:`MAX_PAYLOAD_BYTES`, :data:`MAX_JSON_DEPTH`,
:data:`MAX_JSON_INT_DIGITS`, :data:`MAX_JSON_FIELDS`. Stat events are validated strictly (no
``true`` or ``"5"`` for a number, no ``1.7e12`` for the integer timestamp),
exactly as their Avro types say.

Fingerprints in messages are shown as ``0x%016x`` of the 64-bit value (the
header bytes are that value little-endian; e.g. the schema ``"int"`` has
fingerprint 0x7275d51a3f395c8f, header bytes ``8f 5c 39 3f 1a d5 75 72``).
"""

from __future__ import annotations

import json
import logging
import operator
import re
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from io import BytesIO
from pathlib import Path
from typing import Any, TypeVar

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint, to_parsing_canonical_form
from pydantic import ValidationError

from schemas.models import (
    MEDIA_TYPES,
    STATISTICS,
    ActionTargetDecision,
    Alarm,
    AvroModel,
    StatEvent,
    TargetConfig,
    describe_validation_error,
    stat_event_if_valid,
)

__all__ = [
    "AVRO_DIR",
    "MAGIC",
    "MAX_BATCH_EVENTS",
    "MAX_JSON_DEPTH",
    "MAX_JSON_FIELDS",
    "MAX_JSON_INT_DIGITS",
    "MAX_PAYLOAD_BYTES",
    "REGISTRY",
    "DecodeCategory",
    "DecodeError",
    "EncodeError",
    "SchemaRegistry",
    "SchemaVersion",
    "decode",
    "decode_alarm",
    "decode_decision",
    "decode_stat_event",
    "decode_stat_events",
    "decode_stat_records",
    "decode_target_config",
    "encode_alarm",
    "encode_decision",
    "encode_decision_fields",
    "encode_stat_batch",
    "encode_stat_event",
    "encode_target_config",
]

#: Directory holding every released schema version, ``<name>.v<N>.avsc``.
AVRO_DIR = Path(__file__).resolve().parent / "avro"

#: Avro single-object encoding marker.
MAGIC = b"\xc3\x01"
_HEADER_LEN = 10  # marker + 8-byte fingerprint

#: Largest payload any decoder reads (64 KiB). A stat event is about 100 bytes, a decision
#: or a target definition typically a few hundred; the limit bounds the work one record
#: can cost (JSON parsing, validation) whatever the broker's maximum message size.
MAX_PAYLOAD_BYTES = 64 * 1024

#: Deepest JSON nesting accepted (a stat event is flat, a target definition has one
#: list). Checked before parsing, so the outcome does not depend on how deep the
#: caller's stack happens to be (the standard library's parser recurses).
MAX_JSON_DEPTH = 32

#: Longest JSON integer literal accepted, in digits: the smallest limit Python lets a
#: process set with ``sys.set_int_max_str_digits``, so ``int()`` never refuses what is
#: accepted here, and far more than any field needs (a double's integer part has at
#: most 309 digits). Longer literals would otherwise raise ``ValueError`` (>4,300
#: digits by default) or cost quadratic time (with the limit switched off).
MAX_JSON_INT_DIGITS = 640

#: Most fields a JSON record may have (a TargetConfig has 12, a StatEvent 7). Thousands of
#: unknown fields would otherwise cost validation one error each (tens of milliseconds).
MAX_JSON_FIELDS = 64

#: Most events one StatBatch record may carry; a longer batch is rejected whole (``too_large``).
#: The 64 KiB record limit alone would allow about 2,400 valid Avro events, or 4,600 invalid
#: ones (14 bytes each) and 21,000 JSON ``{}``: each invalid event costs a pydantic validation and
#: a DLQ record, so one record could cost a worker a second and the DLQ thousands of records.
#: 1,024 bounds that to 1,024 DLQ records and 60-80 ms of decoding (all invalid; measured on the
#: shared 2-core machine, load 3-6), and is far more than a target reports at once (13 statistics
#: per report; :class:`schemas.batching.StatBatcher` never writes more). An Avro batch over the
#: limit is still read whole before it is rejected: about 20 ms for 64 KiB of 4,500 tiny events.
MAX_BATCH_EVENTS = 1024

_MAX_REASON_CHARS = 200

log = logging.getLogger(__name__)

_FILE_RE = re.compile(r"^(?P<stem>[a-z0-9_]+)\.v(?P<version>[1-9][0-9]*)\.avsc$")
_JSON_WS = b" \t\r\n"

_M = TypeVar("_M", bound=AvroModel)
_T = TypeVar("_T")


class DecodeCategory(StrEnum):
    """The fixed set of rejection classes: a bounded label value for a metric.

    The free-text detail stays in :attr:`DecodeError.reason` (the DLQ ``error``
    header); the category says which kind of problem it is, so a counter labelled
    by it has a handful of series whatever producers send.
    """

    EMPTY = "empty"
    """A Kafka null value or zero bytes; or a StatBatch without events."""
    TOO_LARGE = "too_large"
    """Over a decoder limit: payload bytes, JSON nesting depth, integer digits, field count or batch length."""
    UNKNOWN_FORMAT = "unknown_format"
    """Neither Avro single-object encoding nor (where accepted) a JSON object; or not bytes."""
    UNKNOWN_SCHEMA = "unknown_schema"
    """Avro with a writer-schema fingerprint this deployment does not keep."""
    WRONG_RECORD = "wrong_record"
    """Avro of another record type (e.g. an Alarm on the stats topic)."""
    MALFORMED_AVRO = "malformed_avro"
    """Truncated header or body, corrupt body, invalid UTF-8 string, trailing bytes."""
    MALFORMED_JSON = "malformed_json"
    """Not UTF-8, not JSON, NaN/Infinity literals, lone surrogates, not an object."""
    INVALID_FIELD = "invalid_field"
    """Decoded, but a field is missing, unexpected, of the wrong type or out of range."""
    WRONG_TENANT = "wrong_tenant"
    """Not produced by the codec: for callers that reject a record of a tenant not served here."""
    INTERNAL_ERROR = "internal_error"
    """The decoder itself failed unexpectedly (a bug); the record is rejected, not retried,
    because decoding is a pure function of the bytes and would fail again."""


def _one_line(text: str) -> str:
    """``text`` as one printable line of at most 200 characters.

    Reasons go into Kafka headers (UTF-8 bytes), log lines and metric labels, and
    may quote producer input: control characters, line breaks and lone surrogates
    are escaped (``\\n``, ``\\ud800``) so the header can always be encoded and stays
    one line.
    """
    if not text.isprintable():
        text = "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)
    if len(text) > _MAX_REASON_CHARS:
        text = text[: _MAX_REASON_CHARS - 3] + "..."
    return text or "rejected"


class DecodeError(ValueError):
    """A payload could not be decoded or validated.

    ``reason`` is a short one-line phrase (``unknown schema fingerprint 0x...``,
    ``invalid StatEvent: value must be >= 0``) for the DLQ ``error`` header and
    logs; ``category`` is one of the fixed :class:`DecodeCategory` values, for a
    metric label. The reason is escaped and cut to 200 characters here, so any
    text given is safe to put in a header. ``category`` defaults to
    ``invalid_field`` for callers that reject a decoded record themselves.

    ``index`` and ``item`` are set on the rejection of one event inside a StatBatch
    (:func:`decode_stat_records`): its position in the batch, and that event alone as
    JSON bytes, for the DLQ record. Both are None on a rejection of a whole record.
    """

    def __init__(
        self,
        reason: str,
        category: DecodeCategory | str = DecodeCategory.INVALID_FIELD,
        *,
        index: int | None = None,
        item: bytes | None = None,
    ) -> None:
        reason = _one_line(str(reason))
        super().__init__(reason)
        self.reason = reason
        self.category = category if type(category) is DecodeCategory else DecodeCategory(category)
        self.index = index
        self.item = item

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild_decode_error, (self.reason, self.category, self.index, self.item)


def _rebuild_decode_error(
    reason: str, category: DecodeCategory, index: int | None, item: bytes | None
) -> DecodeError:
    """Unpickling: a DecodeError with the same reason, category, index and item."""
    return DecodeError(reason, category, index=index, item=item)


class EncodeError(ValueError):
    """Data could not be written with the requested schema (wrong type, missing field)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SchemaVersion:
    """One released version of one record schema, parsed once and kept for the process."""

    record: str
    """Short record name, e.g. ``StatEvent``."""
    full_name: str
    """Namespace-qualified name, e.g. ``com.pacing.StatEvent``."""
    version: int
    schema: dict[str, Any]
    """fastavro-parsed schema (what the reader/writer functions take)."""
    canonical_form: str
    """Avro Parsing Canonical Form of the schema."""
    fingerprint: bytes
    """8-byte CRC-64-AVRO fingerprint, little-endian, exactly as in the message header."""
    source: str = ""
    """Where the schema came from (file path), for error messages."""

    @property
    def fingerprint_int(self) -> int:
        """The fingerprint as the unsigned 64-bit integer the Avro spec defines."""
        return int.from_bytes(self.fingerprint, "little")

    @property
    def header(self) -> bytes:
        """The 10-byte single-object header written before every body."""
        return MAGIC + self.fingerprint


def _fp_text(fp: bytes) -> str:
    return f"0x{int.from_bytes(fp, 'little'):016x}"


def _checked_bytes(payload: object) -> bytes:
    """``payload`` as ``bytes`` within :data:`MAX_PAYLOAD_BYTES`, else a :class:`DecodeError`.

    Kafka hands the decoders ``bytes`` or ``None`` (a record with a null value);
    ``bytearray`` and ``memoryview`` are copied to bytes, anything else is rejected.
    """
    if type(payload) is not bytes:
        if payload is None:
            raise DecodeError("null value", DecodeCategory.EMPTY)
        if not isinstance(payload, bytes | bytearray | memoryview):
            raise DecodeError(f"payload is {type(payload).__name__}, not bytes", DecodeCategory.UNKNOWN_FORMAT)
        size = payload.nbytes if isinstance(payload, memoryview) else len(payload)
        if size > MAX_PAYLOAD_BYTES:  # before copying
            raise _too_large(size)
        payload = bytes(payload)
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise _too_large(len(payload))
    return payload


def _too_large(size: int) -> DecodeError:
    return DecodeError(f"payload of {size} bytes exceeds the {MAX_PAYLOAD_BYTES}-byte limit", DecodeCategory.TOO_LARGE)


def _avro_error_text(exc: Exception) -> str:
    """What an unexpected fastavro exception on a corrupt body means, in a few words."""
    if isinstance(exc, IndexError):  # fastavro indexes the union/enum lists with the decoded number
        return "a union branch, enum symbol or varint is out of range"
    return type(exc).__name__


def _make_version(raw: Mapping[str, Any], version: int, source: str) -> SchemaVersion:
    raw = dict(raw)
    if raw.get("type") != "record" or "name" not in raw:
        raise ValueError(f"{source}: top-level schema must be a named record")
    parsed = parse_schema(raw, named_schemas={})
    full_name = parsed["name"]
    canonical = to_parsing_canonical_form(raw)
    # fastavro returns the hex of the fingerprint bytes in little-endian order,
    # i.e. exactly the 8 bytes the single-object header carries.
    fp = bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))
    return SchemaVersion(
        record=full_name.rsplit(".", 1)[-1],
        full_name=full_name,
        version=version,
        schema=parsed,
        canonical_form=canonical,
        fingerprint=fp,
        source=source,
    )


# The Parsing Canonical Forms the hand-written stat reader (see "StatEvent fast path") knows.
_FAST_STAT_EVENT_FORM = (
    '{"name":"com.pacing.StatEvent","type":"record","fields":[{"name":"tenant","type":"string"},'
    '{"name":"target_id","type":"string"},{"name":"statistic","type":"string"},{"name":"value","type":"double"},'
    '{"name":"timestamp","type":"long"},{"name":"source","type":"string"},'
    '{"name":"media_type","type":["null","string"]}]}'
)
_FAST_STAT_BATCH_FORM = (
    '{"name":"com.pacing.StatBatch","type":"record","fields":[{"name":"events","type":{"type":"array","items":'
    + _FAST_STAT_EVENT_FORM + "}}]}"
)


# The ActionTargetDecision fields, in order, with their types (as in the Parsing Canonical Form),
# that the hand-written decision writer (see "ActionTargetDecision fast writer") writes. A newest
# schema with any other field list is written by fastavro (tests/unit/test_decision_writer.py fails,
# asking for the writer to be updated).
_FAST_DECISION_FIELDS: tuple[tuple[str, str], ...] = (
    ("tenant", '"string"'),
    ("target_id", '"string"'),
    ("name", '"string"'),
    ("state", '"string"'),
    ("supported_media_types", '{"type":"array","items":"string"}'),
    ("service_level_percentage", '"double"'),
    ("service_level_duration_ms", '"long"'),
    ("short_abandon_threshold", '"int"'),
    ("description", '"string"'),
    ("allowed_offers", '"int"'),
    ("reactive_admission", '"double"'),
    ("ready_agents", '"int"'),
    ("busy_agents", '"int"'),
    ("logged_in_agents", '"int"'),
    ("waiting_interactions", '"int"'),
    ("outstanding_offers", '"int"'),
    ("acceptance_rate", '"double"'),
    ("algorithm", '"string"'),
    ("computed_at", '"long"'),
    ("node", '"string"'),
    ("figures", '{"type":"map","values":"string"}'),
)
_FAST_DECISION_FORM = (
    '{"name":"com.pacing.ActionTargetDecision","type":"record","fields":['
    + ",".join(f'{{"name":"{name}","type":{avro_type}}}' for name, avro_type in _FAST_DECISION_FIELDS)
    + "]}"
)


def _fast_fingerprint(sv: SchemaVersion | None, form: str) -> bytes | None:
    return sv.fingerprint if sv is not None and sv.canonical_form == form else None


class SchemaRegistry:
    """All kept versions of all records, indexed by fingerprint and by record name.

    Built once (module-level :data:`REGISTRY` from :data:`AVRO_DIR`); tests can
    build their own from a temporary directory or from schema dicts.
    """

    def __init__(self, versions: Iterable[SchemaVersion]) -> None:
        self._by_fp: dict[bytes, SchemaVersion] = {}
        self._by_record: dict[str, dict[int, SchemaVersion]] = {}
        self._latest: dict[str, SchemaVersion] = {}
        for sv in versions:
            per_record = self._by_record.setdefault(sv.record, {})
            if sv.version in per_record:
                raise ValueError(f"{sv.source}: duplicate {sv.record} version {sv.version}")
            other = next(iter(per_record.values()), None)
            if other is not None and other.full_name != sv.full_name:
                raise ValueError(f"{sv.source}: {sv.full_name} clashes with {other.full_name}")
            clash = self._by_fp.get(sv.fingerprint)
            if clash is not None and clash.record != sv.record:
                raise ValueError(
                    f"{sv.source}: fingerprint {_fp_text(sv.fingerprint)} already used by "
                    f"{clash.record} v{clash.version}"
                )
            per_record[sv.version] = sv
            # Versions whose canonical forms are equal (e.g. only a default or
            # doc changed) share a fingerprint; any of them decodes the body.
            if clash is None or sv.version > clash.version:
                self._by_fp[sv.fingerprint] = sv
        for record, per_record in self._by_record.items():
            self._latest[record] = per_record[max(per_record)]
        # What the hand-written stat reader may read: the newest StatEvent and StatBatch when
        # they have exactly the layout it knows (no resolution needed); anything else, fastavro.
        self._fast_event_fp = _fast_fingerprint(self._latest.get("StatEvent"), _FAST_STAT_EVENT_FORM)
        self._fast_batch_fp = _fast_fingerprint(self._latest.get("StatBatch"), _FAST_STAT_BATCH_FORM)
        # Likewise the hand-written decision writer: the header it writes before the body, or None.
        decision_fp = _fast_fingerprint(self._latest.get("ActionTargetDecision"), _FAST_DECISION_FORM)
        self._fast_decision_header = None if decision_fp is None else MAGIC + decision_fp

    @classmethod
    def from_directory(cls, directory: Path | str) -> SchemaRegistry:
        """Load every ``<name>.v<N>.avsc`` in ``directory``; other ``.avsc`` names are an error."""
        versions = []
        for path in sorted(Path(directory).glob("*.avsc")):
            match = _FILE_RE.match(path.name)
            if match is None:
                raise ValueError(f"{path}: schema files must be named <name>.v<N>.avsc")
            raw = json.loads(path.read_text(encoding="utf-8"))
            versions.append(_make_version(raw, int(match["version"]), str(path)))
        return cls(versions)

    @property
    def records(self) -> list[str]:
        """Short names of the records known to this registry."""
        return sorted(self._by_record)

    def versions(self, record: str) -> list[SchemaVersion]:
        """All kept versions of ``record``, oldest first."""
        per_record = self._record(record)
        return [per_record[v] for v in sorted(per_record)]

    def latest(self, record: str) -> SchemaVersion:
        """The newest version of ``record`` (what we write and resolve reads to)."""
        self._record(record)
        return self._latest[record]

    def get(self, record: str, version: int | None = None) -> SchemaVersion:
        """A specific version of ``record``, or the newest when ``version`` is None."""
        if version is None:
            return self.latest(record)
        try:
            return self._record(record)[version]
        except KeyError:
            raise KeyError(f"no {record} schema version {version}") from None

    def by_fingerprint(self, fp: bytes) -> SchemaVersion | None:
        """The schema whose 8-byte (header-order) fingerprint is ``fp``, if kept."""
        return self._by_fp.get(fp)

    def _record(self, record: str) -> dict[int, SchemaVersion]:
        try:
            return self._by_record[record]
        except KeyError:
            raise KeyError(f"unknown record {record!r}; known: {self.records}") from None

    def encode(self, record: str, data: Mapping[str, Any], *, version: int | None = None) -> bytes:
        """Write ``data`` as single-object Avro with the given (default: newest) schema version.

        No pydantic validation here: fastavro only checks Avro types. Raises
        :class:`EncodeError` when the data does not fit the schema.
        """
        sv = self.get(record, version)
        out = BytesIO()
        out.write(MAGIC)
        out.write(sv.fingerprint)
        try:
            schemaless_writer(out, sv.schema, data)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            raise EncodeError(f"cannot encode {record} v{sv.version}: {exc}") from exc
        return out.getvalue()

    def decode(self, record: str, payload: bytes | None, *, version: int | None = None) -> dict[str, Any]:
        """Read a single-object Avro payload written with any kept version of ``record``.

        The writer schema is found by the header fingerprint; the body is
        resolved to ``version`` (default: the newest) so callers always see the
        current field set. Raises :class:`DecodeError` with a precise reason for
        any payload (``None`` and non-bytes included), nothing else.
        """
        return self._decode_avro(record, _checked_bytes(payload), version)

    def _decode_avro(self, record: str, payload: bytes, version: int | None) -> dict[str, Any]:
        """:meth:`decode` for a payload already known to be ``bytes`` within the size limit."""
        if len(payload) < _HEADER_LEN:
            if payload[:2] == MAGIC:
                raise DecodeError("truncated Avro single-object header", DecodeCategory.MALFORMED_AVRO)
            if not payload:
                raise DecodeError("empty payload", DecodeCategory.EMPTY)
            raise DecodeError("not Avro single-object encoding", DecodeCategory.UNKNOWN_FORMAT)
        if payload[:2] != MAGIC:
            raise DecodeError("not Avro single-object encoding", DecodeCategory.UNKNOWN_FORMAT)
        fp = payload[2:_HEADER_LEN]
        writer = self._by_fp.get(fp)
        if writer is None:
            raise DecodeError(f"unknown schema fingerprint {_fp_text(fp)}", DecodeCategory.UNKNOWN_SCHEMA)
        if writer.record != record:
            raise DecodeError(
                f"expected {record}, got {writer.record} (fingerprint {_fp_text(fp)})", DecodeCategory.WRONG_RECORD
            )
        reader = self._latest[record] if version is None else self.get(record, version)
        # BytesIO shares the bytes object (no copy) until written; reads past the end
        # return short, so a declared length of 2**62 costs nothing but an EOFError.
        stream = BytesIO(payload)
        stream.seek(_HEADER_LEN)
        try:
            if reader is writer:
                data = schemaless_reader(stream, writer.schema, None)
            else:
                data = schemaless_reader(stream, writer.schema, reader.schema)
        except EOFError:
            # Also a negative or oversized length prefix: it asks for bytes that are not there.
            raise DecodeError(
                f"truncated Avro body ({record} v{writer.version})", DecodeCategory.MALFORMED_AVRO
            ) from None
        except UnicodeDecodeError:
            raise DecodeError(
                f"corrupt Avro body ({record} v{writer.version}): a string is not valid UTF-8",
                DecodeCategory.MALFORMED_AVRO,
            ) from None
        except Exception as exc:  # fastavro raises assorted errors on corrupt input
            raise DecodeError(
                f"corrupt Avro body ({record} v{writer.version}): {_avro_error_text(exc)}",
                DecodeCategory.MALFORMED_AVRO,
            ) from None
        extra = len(payload) - stream.tell()
        if extra:
            raise DecodeError(
                f"{extra} trailing bytes after Avro body ({record} v{writer.version})", DecodeCategory.MALFORMED_AVRO
            )
        if type(data) is not dict:  # a record schema always reads as a dict; kept for safety
            raise DecodeError(f"corrupt Avro body ({record} v{writer.version})", DecodeCategory.MALFORMED_AVRO)
        return data


#: The registry of every schema file in :data:`AVRO_DIR`, loaded at import.
REGISTRY = SchemaRegistry.from_directory(AVRO_DIR)


def _parse_json_int(literal: str) -> int:
    digits = len(literal) - (literal[:1] == "-")
    if digits > MAX_JSON_INT_DIGITS:
        raise DecodeError(
            f"invalid JSON: integer literal of {digits} digits (limit {MAX_JSON_INT_DIGITS})", DecodeCategory.TOO_LARGE
        )
    return int(literal)


def _reject_json_constant(literal: str) -> float:
    raise DecodeError(f"invalid JSON: {literal} is not a JSON number", DecodeCategory.MALFORMED_JSON)


# NaN/Infinity/-Infinity (a Python extension to JSON) refused; the hook costs nothing until one appears.
_JSON_DECODER = json.JSONDecoder(parse_constant=_reject_json_constant)
# And integers through a digit-limited hook (a Python call per integer): only for payloads that
# are long enough to hold an integer literal over the limit.
_JSON_DECODER_LONG = json.JSONDecoder(parse_int=_parse_json_int, parse_constant=_reject_json_constant)
# A JSON string literal (escapes included, any byte after a backslash), or an unterminated one
# up to the end: every quote that starts a match is consumed by it, so the scan stays linear
# (a pattern that can fail after scanning to the end is retried from every later quote:
# quadratic, seconds for 32 KiB of \"\"\"...). And every byte that is not a bracket.
_JSON_STRING_RE = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_BRACKETS_AS_PARENS = bytes.maketrans(b"[{]}", b"(())")


def _json_too_deep(payload: bytes) -> bool:
    """True if ``payload`` nests objects/arrays deeper than :data:`MAX_JSON_DEPTH`.

    Free when there are few brackets (the usual case). Otherwise string literals
    are removed, brackets kept as ``(`` and ``)``, and innermost ``()`` pairs
    removed level by level: a pair left after :data:`MAX_JSON_DEPTH` rounds is
    nested deeper. Unclosed openings (truncated JSON, which the parser still
    recurses into) count too. All in C-speed bytes operations, linear per round:
    under a millisecond for 64 KiB of brackets.
    """
    if payload.count(0x7B) + payload.count(0x5B) <= MAX_JSON_DEPTH:  # '{' and '['; ints: faster
        return False
    brackets = _JSON_STRING_RE.sub(b"", payload).translate(_BRACKETS_AS_PARENS, _NOT_BRACKETS)
    for _ in range(MAX_JSON_DEPTH):
        inner_removed = brackets.replace(b"()", b"")
        if len(inner_removed) == len(brackets):
            break
        brackets = inner_removed
    else:
        if b"()" in brackets:
            return True
    # No pair left: what remains is unmatched, ")))(((": the openings are nesting the parser enters.
    return brackets.count(b"(") > MAX_JSON_DEPTH


def _decode_json(payload: bytes) -> dict[str, Any]:
    """Parse a JSON object; any failure is a :class:`DecodeError` naming what is wrong."""
    # Few brackets (the usual case) cannot nest too deep: the full check only when there are more.
    if payload.count(0x7B) + payload.count(0x5B) > MAX_JSON_DEPTH and _json_too_deep(payload):
        raise DecodeError(f"invalid JSON: nested deeper than {MAX_JSON_DEPTH} levels", DecodeCategory.TOO_LARGE)
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise DecodeError("invalid JSON: not UTF-8", DecodeCategory.MALFORMED_JSON) from None
    try:
        data = (_JSON_DECODER if len(payload) <= MAX_JSON_INT_DIGITS else _JSON_DECODER_LONG).decode(text)
    except json.JSONDecodeError as exc:
        raise DecodeError(
            f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", DecodeCategory.MALFORMED_JSON
        ) from None
    except DecodeError:  # from the hooks: an integer literal over the limit, NaN or Infinity
        raise
    except RecursionError:  # not expected after the depth check; the caller's stack may be deep
        raise DecodeError("invalid JSON: nested too deeply", DecodeCategory.TOO_LARGE) from None
    except ValueError:  # int() refusing a literal the hook let through (a lower process-wide limit)
        raise DecodeError("invalid JSON: integer literal too long", DecodeCategory.TOO_LARGE) from None
    if type(data) is not dict:  # cannot happen after a leading '{', kept for safety
        raise DecodeError("invalid JSON: not an object", DecodeCategory.MALFORMED_JSON)
    if len(data) > MAX_JSON_FIELDS:
        raise DecodeError(
            f"invalid JSON: object of {len(data)} fields (limit {MAX_JSON_FIELDS})", DecodeCategory.TOO_LARGE
        )
    if "\\u" in text:  # only escapes can produce lone surrogates; UTF-8 input cannot
        _reject_lone_surrogates(data)
    return data


def _reject_lone_surrogates(data: dict[str, Any]) -> None:
    """Refuse field names and string values holding a lone UTF-16 surrogate (``"\\ud800"``).

    JSON allows the escape, but such a string has no UTF-8 form: it could not be
    put in a Kafka key, header or HTTP body downstream. Nested values are left to
    validation (a record's fields are flat or lists of strings).
    """
    for key, value in data.items():
        if not key.isascii() and not _is_utf8_encodable(key):
            raise DecodeError("invalid JSON: a field name holds a lone surrogate", DecodeCategory.MALFORMED_JSON)
        if type(value) is str and not value.isascii() and not _is_utf8_encodable(value):
            raise DecodeError(
                f"invalid JSON: field {_short_text(key)} holds a lone surrogate", DecodeCategory.MALFORMED_JSON
            )


def _is_utf8_encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _short_text(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _decode_dict(record: str, payload: object, allow_json: bool, reg: SchemaRegistry) -> dict[str, Any]:
    """Avro or (with ``allow_json``) JSON bytes to a dict, or a :class:`DecodeError`."""
    if type(payload) is not bytes or len(payload) > MAX_PAYLOAD_BYTES:
        payload = _checked_bytes(payload)
    if payload[:2] == MAGIC:
        return reg._decode_avro(record, payload, None)
    if not payload:
        raise DecodeError("empty payload", DecodeCategory.EMPTY)
    if allow_json:
        if payload.lstrip(_JSON_WS)[:1] == b"{":
            return _decode_json(payload)
        raise DecodeError("not Avro single-object or JSON", DecodeCategory.UNKNOWN_FORMAT)
    raise DecodeError("not Avro single-object encoding", DecodeCategory.UNKNOWN_FORMAT)


def decode(
    record: str,
    payload: bytes | None,
    *,
    allow_json: bool = False,
    registry: SchemaRegistry | None = None,
) -> dict[str, Any]:
    """Decode a payload of ``record`` to a plain dict (no pydantic validation).

    Avro single-object encoding always; with ``allow_json`` also a JSON object.
    Raises :class:`DecodeError` for any payload (``None`` included), nothing else.
    """
    reg = REGISTRY if registry is None else registry
    return _guarded(_decode_dict, record, payload, allow_json, reg)


def _validate(model: type[_M], data: Mapping[str, Any], strict: bool = False) -> _M:
    try:
        return model.model_validate(data, strict=strict)
    except ValidationError as exc:
        raise DecodeError(
            f"invalid {model.__name__}: {describe_validation_error(exc)}", DecodeCategory.INVALID_FIELD
        ) from None


def _internal_error(exc: Exception) -> DecodeError:
    """The rejection for a decoder bug: logged with its traceback, reported as its type and message."""
    log.error("the decoder failed unexpectedly; the payload is rejected", exc_info=exc)
    try:
        detail = f"{type(exc).__name__}: {exc}"
    except Exception:  # an exception whose str() fails must not escape from here either
        detail = type(exc).__name__
    return DecodeError(f"decoder failed: {detail}", DecodeCategory.INTERNAL_ERROR)


def _guarded(function: Callable[..., _T], *args: Any) -> _T:
    """Call ``function``; let a :class:`DecodeError` through and turn anything else into one.

    The last line of defence of the "decoders raise nothing but DecodeError"
    promise: the fuzz test makes sure it is never what catches a payload.
    """
    try:
        return function(*args)
    except DecodeError:
        raise
    except Exception as exc:
        raise _internal_error(exc) from None


# --------------------------------------------------------------------- StatEvent


def encode_stat_event(event: StatEvent, *, registry: SchemaRegistry | None = None) -> bytes:
    """Encode a StatEvent as Avro single-object bytes (newest schema)."""
    return (REGISTRY if registry is None else registry).encode("StatEvent", event.to_avro_dict())


def _validate_stat_event(data: object) -> StatEvent:
    """Strict StatEvent validation: the hand check for the usual case, pydantic for the rest.

    Strict: the Avro types exactly (JSON true or "5" is not a double, 1.7e12 not a long).
    """
    event = stat_event_if_valid(data)
    if event is not None:
        return event
    try:
        return StatEvent.model_validate(data, strict=True)
    except ValidationError as exc:
        reason = f"invalid StatEvent: {describe_validation_error(exc)}"
        raise DecodeError(reason, DecodeCategory.INVALID_FIELD) from None


def _decode_stat_event_reference(payload: bytes, reg: SchemaRegistry) -> StatEvent:
    """A checked ``bytes`` payload through fastavro (or JSON) and validation: every rejection reason."""
    if payload[:2] == MAGIC:
        data = reg._decode_avro("StatEvent", payload, None)
    elif payload.lstrip(_JSON_WS)[:1] == b"{":
        data = _decode_json(payload)
    else:
        data = _decode_dict("StatEvent", payload, True, reg)  # the rejection: empty, not Avro or JSON
    return _validate_stat_event(data)


def _decode_stat_event(payload: object, reg: SchemaRegistry) -> StatEvent:
    """The stat-event hot path: checked bytes, Avro (or JSON), strict validation."""
    if type(payload) is not bytes or len(payload) > MAX_PAYLOAD_BYTES:
        payload = _checked_bytes(payload)
    if payload[2:_HEADER_LEN] == reg._fast_event_fp and payload[:2] == MAGIC:
        event = _read_stat_event(payload)
        if event is not None:
            return event
    return _decode_stat_event_reference(payload, reg)


def decode_stat_event(payload: bytes | None, *, registry: SchemaRegistry | None = None) -> StatEvent:
    """Decode and validate one ``pacing.stats`` value: Avro single-object or a JSON object.

    Raises :class:`DecodeError` with the reason to put in the DLQ ``error`` header
    and its category, for any payload (``None``, empty, garbage); nothing else.
    """
    return _guarded(_decode_stat_event, payload, REGISTRY if registry is None else registry)


def decode_stat_events(
    payloads: Iterable[bytes | None], *, registry: SchemaRegistry | None = None
) -> list[StatEvent | DecodeError]:
    """Decode a batch; each position holds the event or the DecodeError for that payload.

    Never raises, whatever the payloads, so one poison record cannot stop the
    batch it arrived in (it used to crash the agent, and the batch was lost). An
    unexpected decoder failure becomes a rejection of category ``internal_error``.
    Single StatEvent records only: a StatBatch is a ``wrong_record`` rejection here
    (see :func:`decode_stat_records`).
    """
    reg = REGISTRY if registry is None else registry
    out: list[StatEvent | DecodeError] = []
    append = out.append
    for payload in payloads:
        try:
            append(_decode_stat_event(payload, reg))
        except DecodeError as exc:
            # Kept for the whole batch: drop the traceback and the exception it replaced, whose
            # frames and objects would otherwise live on and make the garbage collector's work
            # (measured: most of the cost of a batch of rejections).
            exc.__traceback__ = exc.__context__ = None
            append(exc)
        except Exception as exc:
            append(_internal_error(exc))
    return out


# --------------------------------------------------------------------- StatBatch


def encode_stat_batch(events: Sequence[StatEvent], *, registry: SchemaRegistry | None = None) -> bytes:
    """Encode events as one StatBatch record, Avro single-object bytes (newest schema).

    The events should be those of one target, the record keyed by its id (the
    ``pacing.stats`` contract; :class:`schemas.batching.StatBatcher` does that).
    Raises :class:`EncodeError` for what the decoder would reject whole: no events,
    more than :data:`MAX_BATCH_EVENTS`, or over :data:`MAX_PAYLOAD_BYTES` encoded.
    """
    if not events:
        raise EncodeError("a StatBatch needs at least one event")
    if len(events) > MAX_BATCH_EVENTS:
        raise EncodeError(f"a StatBatch holds at most {MAX_BATCH_EVENTS} events, not {len(events)}")
    reg = REGISTRY if registry is None else registry
    payload = reg.encode("StatBatch", {"events": [event.to_avro_dict() for event in events]})
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise EncodeError(f"the StatBatch would be {len(payload)} bytes, over the {MAX_PAYLOAD_BYTES}-byte limit")
    return payload


def decode_stat_records(
    payloads: Iterable[bytes | None], *, registry: SchemaRegistry | None = None
) -> list[list[StatEvent | DecodeError] | DecodeError]:
    """Decode ``pacing.stats`` record values, single StatEvents and StatBatches alike.

    One entry per payload, in order:

    - a :class:`DecodeError` when the record as a whole is unusable: null or empty, not
      Avro single-object or JSON, unknown fingerprint, truncated or corrupt, over a limit,
      another record type, a StatBatch without events or over :data:`MAX_BATCH_EVENTS`;
      and a single StatEvent that fails validation (the record *is* the event: its
      rejection is the one :func:`decode_stat_events` gives, the DLQ takes the record);
    - else the list of the record's events in order (one for a single StatEvent), where
      an event of a StatBatch that fails validation is a :class:`DecodeError` with the
      reason and category the same event would get as a single record, its position in
      ``index`` and the event alone as JSON bytes in ``item`` (for the DLQ).

    Never raises, like :func:`decode_stat_events`; the usual Avro records take a
    hand-written reader (a few microseconds per event) whose outcome is always the
    one fastavro and pydantic give (tests/unit/test_codec_fuzz.py).
    """
    reg = REGISTRY if registry is None else registry
    out: list[list[StatEvent | DecodeError] | DecodeError] = []
    append = out.append
    for payload in payloads:
        try:
            append(_decode_stat_record(payload, reg))
        except DecodeError as exc:
            exc.__traceback__ = exc.__context__ = None  # see decode_stat_events
            append(exc)
        except Exception as exc:
            append(_internal_error(exc))
    return out


def _decode_stat_record(payload: object, reg: SchemaRegistry) -> list[StatEvent | DecodeError]:
    """One ``pacing.stats`` value to its events; raises :class:`DecodeError` for the whole record."""
    if type(payload) is not bytes or len(payload) > MAX_PAYLOAD_BYTES:
        payload = _checked_bytes(payload)
    if payload[:2] == MAGIC:
        fp = payload[2:_HEADER_LEN]
        if fp == reg._fast_batch_fp:
            read = _read_stat_batch(payload)
            if read is None:  # not the usual: fastavro decides, and names what is wrong
                return _batch_events(reg._decode_avro("StatBatch", payload, None)["events"], False)
            events, clean = read
            return events if clean and events else _batch_events(events, False)
        if fp == reg._fast_event_fp:
            event = _read_stat_event(payload)
            return [event if event is not None else _decode_stat_event_reference(payload, reg)]
        writer = reg.by_fingerprint(fp)
        if writer is not None and writer.record == "StatBatch":  # another version: resolved by fastavro
            return _batch_events(reg._decode_avro("StatBatch", payload, None)["events"], False)
        if writer is not None and writer.record != "StatEvent":
            raise DecodeError(
                f"expected StatEvent or StatBatch, got {writer.record} (fingerprint {_fp_text(fp)})",
                DecodeCategory.WRONG_RECORD,
            )
        return [_decode_stat_event_reference(payload, reg)]
    if payload.lstrip(_JSON_WS)[:1] != b"{":
        return [_decode_stat_event_reference(payload, reg)]  # the rejection: empty, not Avro or JSON
    data = _decode_json(payload)
    if "events" not in data:
        return [_validate_stat_event(data)]
    if len(data) > 1:
        other = next(key for key in data if key != "events")
        raise DecodeError(f"invalid StatBatch: unexpected field {_short_text(other)}", DecodeCategory.INVALID_FIELD)
    events = data["events"]
    if type(events) is not list:
        raise DecodeError("invalid StatBatch: events must be a list", DecodeCategory.INVALID_FIELD)
    return _batch_events(events, True)


def _batch_events(items: list[Any], from_json: bool) -> list[StatEvent | DecodeError]:
    """A StatBatch's events: read ones kept, the others validated one by one (rejected alone)."""
    if not items:
        raise DecodeError("empty StatBatch: no events", DecodeCategory.EMPTY)
    if len(items) > MAX_BATCH_EVENTS:
        raise DecodeError(
            f"StatBatch of {len(items)} events exceeds the {MAX_BATCH_EVENTS}-event limit", DecodeCategory.TOO_LARGE
        )
    out: list[StatEvent | DecodeError] = []
    append = out.append
    for index, item in enumerate(items):
        if type(item) is StatEvent:
            append(item)
            continue
        try:
            if from_json:
                _check_json_event(item)
            append(_validate_stat_event(item))
        except DecodeError as exc:
            append(DecodeError(exc.reason, exc.category, index=index, item=_event_json(item)))
    return out


def _check_json_event(item: object) -> None:
    """The checks a JSON object gets as a whole record (:func:`_decode_json`), for one batch event."""
    if type(item) is not dict:
        raise DecodeError("invalid JSON: event is not an object", DecodeCategory.MALFORMED_JSON)
    if len(item) > MAX_JSON_FIELDS:
        raise DecodeError(
            f"invalid JSON: object of {len(item)} fields (limit {MAX_JSON_FIELDS})", DecodeCategory.TOO_LARGE
        )
    _reject_lone_surrogates(item)


def _event_json(item: object) -> bytes:
    """One rejected batch event as JSON bytes for the DLQ.

    UTF-8 when it can be (lone surrogates are written as ``\\ud800`` escapes); a
    non-finite double read from Avro is written as ``NaN``/``Infinity``, which is what
    it was, and which the decoder rejects again if the record is replayed.
    """
    try:
        return json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(item, separators=(",", ":")).encode("ascii")
    except (TypeError, ValueError):  # not JSON-able: cannot come from the decoders, kept for safety
        return repr(item).encode("utf-8", "backslashreplace")


# ------------------------------------------------------------ StatEvent fast path
#
# fastavro costs about 7 µs per StatEvent record read (a generic interpreter of the schema), more
# than the whole budget of the pacing node per event. The two layouts below are read by hand
# instead: the usual payload (short strings, one array block) in a few hundred nanoseconds per
# field, and validated while read (statistic and media type looked up by their UTF-8 bytes).
#
# The reader only ever returns what fastavro would read, or None: anything it does not expect
# (truncation, a negative length, an unknown union branch, a block count in the negative form,
# a varint over 64 bits, invalid UTF-8, trailing bytes, more than MAX_BATCH_EVENTS...) makes it
# give up, and the caller decodes the payload the reference way, which produces the rejection
# reason. An event it reads but that breaks a rule is returned as the dict fastavro would read,
# for pydantic to name the problem. tests/unit/test_codec_fuzz.py checks both paths agree.
#
# Layout (Avro binary): StatEvent = tenant, target_id, statistic (strings: zig-zag varint length
# and UTF-8 bytes), value (8-byte little-endian double), timestamp (zig-zag varint long), source
# (string), media_type (union index 0 = null, 1 = string); StatBatch = array blocks of
# (count, events) ended by a count of 0.


class _Unusual(Exception):
    """The hand reader met something it does not read; the reference path decides."""


_unpack_double = struct.Struct("<d").unpack_from
_new_object = object.__new__
_set_slot = object.__setattr__
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
    new, set_slot, unpack_double, statistics, media_types = (
        _new_object, _set_slot, _unpack_double, _STATISTIC_BY_UTF8, _MEDIA_TYPE_BY_UTF8)
    copy_fields = _ALL_STAT_FIELDS.copy
    event_type = StatEvent
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
            # StatEvent's rules all hold (schemas.models): built as model_validate would.
            event = new(event_type)
            set_slot(event, "__dict__", {
                "tenant": tenant, "target_id": target_id, "statistic": statistic, "value": value,
                "timestamp": timestamp, "source": source, "media_type": media_type,
            })
            set_slot(event, "__pydantic_fields_set__", copy_fields())
            set_slot(event, "__pydantic_extra__", None)
            set_slot(event, "__pydantic_private__", None)
            append(event)
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


def _read_stat_event(payload: bytes) -> StatEvent | None:
    """A single-object StatEvent payload read by hand: the event if valid, else None (see above)."""
    out: list[Any] = []
    try:
        end, clean = _read_events(payload, _HEADER_LEN, 1, out)
    except (_Unusual, IndexError, OverflowError, struct.error, UnicodeDecodeError):
        return None
    return out[0] if clean and end == len(payload) else None


def _read_stat_batch(payload: bytes) -> tuple[list[Any], bool] | None:
    """A single-object StatBatch payload read by hand: its events (StatEvents or dicts) and whether
    all are StatEvents; or None (see above)."""
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


# ---------------------------------------------------------- ActionTargetDecision


def encode_decision(decision: ActionTargetDecision, *, registry: SchemaRegistry | None = None) -> bytes:
    """Encode an ActionTargetDecision as Avro single-object bytes (newest schema)."""
    return encode_decision_fields(decision.to_avro_dict(), registry=registry)


def encode_decision_fields(record: Mapping[str, Any], *, registry: SchemaRegistry | None = None) -> bytes:
    """An ActionTargetDecision given as its Avro fields (a dict) as Avro single-object bytes (newest schema).

    The bytes ``registry.encode("ActionTargetDecision", record)`` writes, byte for byte, in a
    fraction of the time (see "ActionTargetDecision fast writer" below); no pydantic validation,
    as there. Raises :class:`EncodeError` when the data does not fit the schema.
    """
    reg = REGISTRY if registry is None else registry
    header = reg._fast_decision_header
    if header is not None and type(record) is dict:
        for attempt in (0, 1):
            # The _FAST_DECISION_FIELDS layout from the caches (see below). KeyError: a field or a value
            # not cached yet; TypeError (an unhashable value), struct.error or OverflowError (a double
            # that is not a number, an int too large for one): not usual.
            try:
                (tenant, target_id, name, state, media, service_level_percentage, service_level_duration_ms,
                 short_abandon_threshold, description, allowed_offers, reactive_admission, ready_agents,
                 busy_agents, logged_in_agents, waiting_interactions, outstanding_offers, acceptance_rate,
                 algorithm, computed_at, node, figures) = _get_decision_fields(record)
                if (type(media) is not list and type(media) is not tuple) or type(figures) is not dict:
                    break
                strings, varints, pack_double = _STRINGS, _VARINTS, _pack_double
                parts = [
                    header, strings[tenant], strings[target_id], strings[name], strings[state], _MEDIA[tuple(media)],
                    pack_double(service_level_percentage), varints[service_level_duration_ms],
                    varints[short_abandon_threshold], strings[description], varints[allowed_offers],
                    pack_double(reactive_admission), varints[ready_agents], varints[busy_agents],
                    varints[logged_in_agents], varints[waiting_interactions], varints[outstanding_offers],
                    pack_double(acceptance_rate), strings[algorithm], varints[computed_at], strings[node],
                ]
                if figures:
                    append = parts.append
                    append(varints[len(figures)])
                    named = _FIGURES
                    for key, value in figures.items():
                        append(named[key][value])
                parts.append(_ZERO)
                return b"".join(parts)
            except KeyError:  # cached after checking, then written again; or not usual: fastavro
                if attempt or not _learn_decision(record):
                    break
            except (_Unusual, UnicodeEncodeError, TypeError, struct.error, OverflowError):
                break
    return reg.encode("ActionTargetDecision", record)  # fastavro: its bytes, or its EncodeError


def decode_decision(payload: bytes | None, *, registry: SchemaRegistry | None = None) -> ActionTargetDecision:
    """Decode and validate an ActionTargetDecision (Avro single-object only).

    Raises :class:`DecodeError` for any payload (``None`` included), nothing else.
    """
    data = decode("ActionTargetDecision", payload, registry=registry)
    return _guarded(_validate, ActionTargetDecision, data)


# ------------------------------------------------------ ActionTargetDecision fast writer
#
# fastavro costs 12-15 µs of CPU per decision record here (a generic interpreter of the schema
# behind a BytesIO; 40 µs and more of wall time on the loaded 2-core machine), and the pacing node
# writes one per target per tick. The current layout (_FAST_DECISION_FIELDS, checked against the
# newest schema whenever a registry is built) is written by hand instead (encode_decision_fields,
# above, from the caches below): a string as a zig-zag varint length and the UTF-8 bytes, an int
# or long as a zig-zag varint, a double as 8 little-endian bytes, the array and the map as one
# block (count, items, then a 0 count; an empty one as the 0 alone): exactly what fastavro writes.
#
# Python's own steps (dict lookups, the join) cost more here than the Avro work, and most values
# of a decision repeat from record to record and tick to tick (tenant, node, ids, names,
# algorithm, the tick time, small counts, the figures' names and rounded values), so the encoded
# form of each is cached, and a record costs one dict lookup per field (per figure: the name,
# then the value, giving the pair as the map holds it) and one join. The doubles are packed every
# time (struct, i.e. float(value), as fastavro does).
#
# Only values of exactly the usual types are cached (_learn_decision: a str, not a subclass; an
# int, not a bool, within 64 bits; a list or tuple of str; a dict of str to str). A value not
# cached yet (a KeyError, as for a missing field) sends the record to _learn_decision, which
# checks and caches the values it lacks, and the record is written again; a figure value, the
# kind that keeps changing, is checked and cached on the spot instead (_FigureValues). A record
# that is not usual there (a missing field, a None, a bool not seen as an int, a lone surrogate,
# a long out of range, a map of another type...) is written by fastavro, which gives its bytes (a
# field's default) or its EncodeError. A cached value also serves values equal to it (== and the same
# hash): a bool or an int-valued float in an int field, an IntEnum, a StrEnum; fastavro writes
# those as the equal int or str too. The differences left would be a str subclass overriding
# encode() equal to a cached str, and a float subclass overriding __float__ in a double field
# (struct packs its value, fastavro calls float()). The caches hold about _CACHE_MAX_ENTRIES
# values or _CACHE_MAX_BYTES bytes and are emptied when full.
# tests/unit/test_decision_writer.py checks the bytes against fastavro.


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


_CACHE_MAX_ENTRIES = 100_000
_CACHE_MAX_BYTES = 16 * 1024 * 1024
_INT64_MIN = -(2**63)
_ZERO = b"\x00"
_pack_double = struct.Struct("<d").pack
#: The top-level strings (tenant, target_id, name, state, description, algorithm, node).
_STRINGS: dict[str, bytes] = {}
#: The ints and longs, and the map's count.
_VARINTS: dict[int, bytes] = {}
#: The media-type arrays (keyed by the tuple of their items), as whole blocks.
_MEDIA: dict[tuple[str, ...], bytes] = {}


class _FigureValues(dict[str, bytes]):
    """The values of one figure seen so far, each to the pair (name, value) as written in the map.

    A value not seen yet is checked and cached here, during the write (figure values are the ones
    that keep changing: the rounded rates and times of each target); when the caches are full it is
    written without being cached, until the next _learn_decision empties them.
    """

    __slots__ = ("name",)

    def __init__(self, name: bytes) -> None:
        super().__init__()
        self.name = name

    def __missing__(self, value: object) -> bytes:
        data = self.name + _avro_string(value)  # _Unusual for anything but a str; UnicodeEncodeError
        if _cache_size[0] <= _CACHE_MAX_ENTRIES and _cache_size[1] <= _CACHE_MAX_BYTES:
            _cache(self, value, data)
        return data


#: Figure name (KeyError when new: _learn_decision), then value: the pair as written in the map.
_FIGURES: dict[str, _FigureValues] = {}
_cache_size = [0, 0]  # values, bytes
_get_decision_fields = operator.itemgetter(*(name for name, _ in _FAST_DECISION_FIELDS))
_DECISION_STRINGS = ("tenant", "target_id", "name", "state", "description", "algorithm", "node")
_DECISION_LONGS = ("service_level_duration_ms", "short_abandon_threshold", "allowed_offers", "ready_agents",
                   "busy_agents", "logged_in_agents", "waiting_interactions", "outstanding_offers", "computed_at")


def _clear_decision_caches() -> None:
    """Forget every cached value (when full; tests and benchmarks)."""
    for cache in (_STRINGS, _VARINTS, _MEDIA, _FIGURES):
        cache.clear()
    _cache_size[:] = [0, 0]


def _cache(cache: dict[Any, bytes], key: Any, data: bytes) -> None:
    cache[key] = data
    _cache_size[0] += 1
    _cache_size[1] += len(data)


def _learn_decision(record: dict[str, Any]) -> bool:
    """Cache the values of a usual decision record not cached yet; False if the record is not usual.

    Each value is checked (exact types, see above) before it is cached; one already cached was
    checked when it was.
    """
    if _cache_size[0] > _CACHE_MAX_ENTRIES or _cache_size[1] > _CACHE_MAX_BYTES:
        _clear_decision_caches()  # before, so that all of this record's values are there after
    try:
        media = record["supported_media_types"]
        figures = record["figures"]
        if (type(media) is not list and type(media) is not tuple) or type(figures) is not dict:
            return False
        for name in _DECISION_STRINGS:
            value = record[name]
            if value not in _STRINGS:
                _cache(_STRINGS, value, _avro_string(value))
        for value in (*map(record.__getitem__, _DECISION_LONGS), len(figures)):
            if value not in _VARINTS:
                _cache(_VARINTS, value, _avro_long(value))
        items = tuple(media)
        if items not in _MEDIA:
            _cache(_MEDIA, items, _array_block(items))
        for key, value in figures.items():
            values = _FIGURES.get(key)
            if values is None:
                values = _FIGURES[key] = _FigureValues(_avro_string(key))
            # A new value is checked and cached by _FigureValues.__missing__.
            values[value]
    except (_Unusual, KeyError, TypeError, UnicodeEncodeError):
        return False
    return True


# ------------------------------------------------------------------------ Alarm


def encode_alarm(alarm: Alarm, *, registry: SchemaRegistry | None = None) -> bytes:
    """Encode an Alarm as Avro single-object bytes (newest schema)."""
    return (REGISTRY if registry is None else registry).encode("Alarm", alarm.to_avro_dict())


def decode_alarm(payload: bytes | None, *, registry: SchemaRegistry | None = None) -> Alarm:
    """Decode and validate an Alarm (Avro single-object only).

    Raises :class:`DecodeError` for any payload (``None`` included), nothing else.
    """
    return _guarded(_validate, Alarm, decode("Alarm", payload, registry=registry))


# ----------------------------------------------------------------- TargetConfig


def encode_target_config(config: TargetConfig | None, *, registry: SchemaRegistry | None = None) -> bytes | None:
    """Encode a TargetConfig as Avro single-object bytes; ``None`` (a deletion) stays ``None``.

    ``None`` is the tombstone for the compacted ``pacing.targets`` topic.
    """
    if config is None:
        return None
    reg = REGISTRY if registry is None else registry
    return reg.encode("TargetConfig", config.to_avro_dict())


def decode_target_config(payload: bytes | None, *, registry: SchemaRegistry | None = None) -> TargetConfig | None:
    """Decode and validate a ``pacing.targets`` value: Avro single-object or JSON object.

    A Kafka null value (``None``) or an empty value is a tombstone and returns
    ``None`` (target deleted). Any other payload is a TargetConfig or raises
    :class:`DecodeError`; nothing else is raised.
    """
    if payload is None or (type(payload) is bytes and not payload):
        return None
    data = decode("TargetConfig", payload, allow_json=True, registry=registry)
    return _guarded(_validate, TargetConfig, data)
