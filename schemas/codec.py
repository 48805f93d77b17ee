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
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from io import BytesIO
from pathlib import Path
from typing import Any, TypeVar

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint, to_parsing_canonical_form
from pydantic import BaseModel, ValidationError

from schemas.models import (
    ActionTargetDecision,
    Alarm,
    AvroModel,
    StatEvent,
    TargetConfig,
    describe_validation_error,
)

__all__ = [
    "AVRO_DIR",
    "MAGIC",
    "MAX_JSON_DEPTH",
    "MAX_JSON_FIELDS",
    "MAX_JSON_INT_DIGITS",
    "MAX_PAYLOAD_BYTES",
    "MODELS",
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
    "decode_target_config",
    "encode",
    "encode_alarm",
    "encode_decision",
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

_MAX_REASON_CHARS = 200

log = logging.getLogger(__name__)

_FILE_RE = re.compile(r"^(?P<stem>[a-z0-9_]+)\.v(?P<version>[1-9][0-9]*)\.avsc$")
_JSON_WS = b" \t\r\n"

#: Model class per record (short) name; the class names equal the Avro record names.
MODELS: dict[str, type[AvroModel]] = {
    model.__name__: model for model in (StatEvent, ActionTargetDecision, Alarm, TargetConfig)
}

_M = TypeVar("_M", bound=AvroModel)
_T = TypeVar("_T")


class DecodeCategory(StrEnum):
    """The fixed set of rejection classes: a bounded label value for a metric.

    The free-text detail stays in :attr:`DecodeError.reason` (the DLQ ``error``
    header); the category says which kind of problem it is, so a counter labelled
    by it has a handful of series whatever producers send.
    """

    EMPTY = "empty"
    """A Kafka null value or zero bytes."""
    TOO_LARGE = "too_large"
    """Over a decoder limit: payload bytes, JSON nesting depth, integer digits or field count."""
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
    """

    def __init__(self, reason: str, category: DecodeCategory | str = DecodeCategory.INVALID_FIELD) -> None:
        reason = _one_line(str(reason))
        super().__init__(reason)
        self.reason = reason
        self.category = category if type(category) is DecodeCategory else DecodeCategory(category)

    def __reduce__(self) -> tuple[type[DecodeError], tuple[str, DecodeCategory]]:
        return type(self), (self.reason, self.category)


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

    @classmethod
    def from_schemas(cls, schemas: Iterable[tuple[int, Mapping[str, Any]]]) -> SchemaRegistry:
        """Build a registry from ``(version, schema_dict)`` pairs (handy in tests)."""
        return cls(_make_version(raw, v, f"<{raw.get('name')} v{v}>") for v, raw in schemas)

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


def encode(
    record: str | BaseModel,
    data: Mapping[str, Any] | BaseModel | None = None,
    *,
    registry: SchemaRegistry | None = None,
) -> bytes:
    """Encode a record as Avro single-object bytes with the newest schema version.

    Call as ``encode(model_instance)`` or ``encode("StatEvent", dict_or_model)``.
    Dicts are validated through the record's pydantic model first, so nothing
    invalid is ever produced. Raises ``pydantic.ValidationError`` for invalid
    data, :class:`EncodeError` if it does not fit the schema.
    """
    if isinstance(record, BaseModel):
        if data is not None:
            raise TypeError("encode(model) takes no data argument")
        record, data = type(record).__name__, record
    if data is None:
        raise TypeError("encode(record_name, data) needs data")
    reg = REGISTRY if registry is None else registry
    if isinstance(data, AvroModel):
        if type(data).__name__ != record:
            raise TypeError(f"cannot encode a {type(data).__name__} as {record}")
        avro = data.to_avro_dict()
    elif isinstance(data, BaseModel):
        avro = data.model_dump()
    elif record in MODELS:
        avro = MODELS[record].model_validate(data).to_avro_dict()
    else:
        avro = dict(data)
    return reg.encode(record, avro)


# --------------------------------------------------------------------- StatEvent


def encode_stat_event(event: StatEvent, *, registry: SchemaRegistry | None = None) -> bytes:
    """Encode a StatEvent as Avro single-object bytes (newest schema)."""
    return (REGISTRY if registry is None else registry).encode("StatEvent", event.to_avro_dict())


def _decode_stat_event(payload: object, reg: SchemaRegistry) -> StatEvent:
    """The stat-event hot path: checked bytes, Avro (or JSON), strict validation."""
    if type(payload) is not bytes or len(payload) > MAX_PAYLOAD_BYTES:
        payload = _checked_bytes(payload)
    if payload[:2] == MAGIC:
        data = reg._decode_avro("StatEvent", payload, None)
    elif payload.lstrip(_JSON_WS)[:1] == b"{":
        data = _decode_json(payload)
    else:
        data = _decode_dict("StatEvent", payload, True, reg)  # the rejection: empty, not Avro or JSON
    try:
        # Strict: the Avro types exactly (JSON true or "5" is not a double, 1.7e12 not a long).
        return StatEvent.model_validate(data, strict=True)
    except ValidationError as exc:
        reason = f"invalid StatEvent: {describe_validation_error(exc)}"
        raise DecodeError(reason, DecodeCategory.INVALID_FIELD) from None


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


# ---------------------------------------------------------- ActionTargetDecision


def encode_decision(decision: ActionTargetDecision, *, registry: SchemaRegistry | None = None) -> bytes:
    """Encode an ActionTargetDecision as Avro single-object bytes (newest schema)."""
    reg = REGISTRY if registry is None else registry
    return reg.encode("ActionTargetDecision", decision.to_avro_dict())


def decode_decision(payload: bytes | None, *, registry: SchemaRegistry | None = None) -> ActionTargetDecision:
    """Decode and validate an ActionTargetDecision (Avro single-object only).

    Raises :class:`DecodeError` for any payload (``None`` included), nothing else.
    """
    data = decode("ActionTargetDecision", payload, registry=registry)
    return _guarded(_validate, ActionTargetDecision, data)


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
