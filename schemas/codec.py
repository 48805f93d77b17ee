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
raises :class:`DecodeError` whose ``reason`` is a short, precise phrase meant
for the DLQ ``error`` header.

Fingerprints in messages are shown as ``0x%016x`` of the 64-bit value (the
header bytes are that value little-endian; e.g. the schema ``"int"`` has
fingerprint 0x7275d51a3f395c8f, header bytes ``8f 5c 39 3f 1a d5 75 72``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
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
    "MODELS",
    "REGISTRY",
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

_FILE_RE = re.compile(r"^(?P<stem>[a-z0-9_]+)\.v(?P<version>[1-9][0-9]*)\.avsc$")
_JSON_WS = b" \t\r\n"

#: Model class per record (short) name; the class names equal the Avro record names.
MODELS: dict[str, type[AvroModel]] = {
    model.__name__: model for model in (StatEvent, ActionTargetDecision, Alarm, TargetConfig)
}

_M = TypeVar("_M", bound=AvroModel)


class DecodeError(ValueError):
    """A payload could not be decoded or validated.

    ``reason`` is a short human phrase (``unknown schema fingerprint 0x...``,
    ``invalid StatEvent: value must be >= 0``) suitable for a DLQ ``error``
    header and for labelling a rejection counter by its prefix.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


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

    def decode(self, record: str, payload: bytes, *, version: int | None = None) -> dict[str, Any]:
        """Read a single-object Avro payload written with any kept version of ``record``.

        The writer schema is found by the header fingerprint; the body is
        resolved to ``version`` (default: the newest) so callers always see the
        current field set. Raises :class:`DecodeError` with a precise reason.
        """
        if len(payload) < _HEADER_LEN:
            if payload[:2] == MAGIC:
                raise DecodeError("truncated Avro single-object header")
            raise DecodeError("not Avro single-object encoding")
        if payload[:2] != MAGIC:
            raise DecodeError("not Avro single-object encoding")
        fp = bytes(payload[2:_HEADER_LEN])
        writer = self._by_fp.get(fp)
        if writer is None:
            raise DecodeError(f"unknown schema fingerprint {_fp_text(fp)}")
        if writer.record != record:
            raise DecodeError(f"expected {record}, got {writer.record} (fingerprint {_fp_text(fp)})")
        reader = self._latest[record] if version is None else self.get(record, version)
        stream = BytesIO(payload)
        stream.seek(_HEADER_LEN)
        try:
            if reader is writer:
                data = schemaless_reader(stream, writer.schema, None)
            else:
                data = schemaless_reader(stream, writer.schema, reader.schema)
        except EOFError:
            raise DecodeError(f"truncated Avro body ({record} v{writer.version})") from None
        except Exception as exc:  # fastavro raises assorted errors on corrupt input
            raise DecodeError(f"corrupt Avro body ({record} v{writer.version}): {type(exc).__name__}") from None
        extra = len(payload) - stream.tell()
        if extra:
            raise DecodeError(f"{extra} trailing bytes after Avro body ({record} v{writer.version})")
        return data  # type: ignore[no-any-return]


#: The registry of every schema file in :data:`AVRO_DIR`, loaded at import.
REGISTRY = SchemaRegistry.from_directory(AVRO_DIR)


def _decode_json(payload: bytes) -> dict[str, Any]:
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise DecodeError("invalid JSON: not UTF-8") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DecodeError(f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(data, dict):  # cannot happen after a leading '{', kept for safety
        raise DecodeError("invalid JSON: not an object")
    return data


def decode(
    record: str,
    payload: bytes,
    *,
    allow_json: bool = False,
    registry: SchemaRegistry | None = None,
) -> dict[str, Any]:
    """Decode a payload of ``record`` to a plain dict (no pydantic validation).

    Avro single-object encoding always; with ``allow_json`` also a JSON object.
    Raises :class:`DecodeError`.
    """
    reg = REGISTRY if registry is None else registry
    if payload[:2] == MAGIC:
        return reg.decode(record, payload)
    if allow_json:
        if not payload:
            raise DecodeError("empty payload")
        first = payload.lstrip(_JSON_WS)[:1]
        if first == b"{":
            return _decode_json(payload)
        raise DecodeError("not Avro single-object or JSON")
    if not payload:
        raise DecodeError("empty payload")
    raise DecodeError("not Avro single-object encoding")


def _validate(model: type[_M], data: Mapping[str, Any]) -> _M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise DecodeError(f"invalid {model.__name__}: {describe_validation_error(exc)}") from None


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


def decode_stat_event(payload: bytes, *, registry: SchemaRegistry | None = None) -> StatEvent:
    """Decode and validate one ``pacing.stats`` value: Avro single-object or a JSON object.

    Raises :class:`DecodeError` with the reason to put in the DLQ ``error`` header.
    """
    return _validate(StatEvent, decode("StatEvent", payload, allow_json=True, registry=registry))


def decode_stat_events(
    payloads: Iterable[bytes], *, registry: SchemaRegistry | None = None
) -> list[StatEvent | DecodeError]:
    """Decode a batch; each position holds the event or the DecodeError for that payload.

    Never raises for bad input, so one poison message cannot stop a batch.
    """
    reg = REGISTRY if registry is None else registry
    out: list[StatEvent | DecodeError] = []
    append = out.append
    for payload in payloads:
        try:
            append(decode_stat_event(payload, registry=reg))
        except DecodeError as exc:
            append(exc)
    return out


# ---------------------------------------------------------- ActionTargetDecision


def encode_decision(decision: ActionTargetDecision, *, registry: SchemaRegistry | None = None) -> bytes:
    """Encode an ActionTargetDecision as Avro single-object bytes (newest schema)."""
    reg = REGISTRY if registry is None else registry
    return reg.encode("ActionTargetDecision", decision.to_avro_dict())


def decode_decision(payload: bytes, *, registry: SchemaRegistry | None = None) -> ActionTargetDecision:
    """Decode and validate an ActionTargetDecision (Avro single-object only)."""
    data = decode("ActionTargetDecision", payload, registry=registry)
    return _validate(ActionTargetDecision, data)


# ------------------------------------------------------------------------ Alarm


def encode_alarm(alarm: Alarm, *, registry: SchemaRegistry | None = None) -> bytes:
    """Encode an Alarm as Avro single-object bytes (newest schema)."""
    return (REGISTRY if registry is None else registry).encode("Alarm", alarm.to_avro_dict())


def decode_alarm(payload: bytes, *, registry: SchemaRegistry | None = None) -> Alarm:
    """Decode and validate an Alarm (Avro single-object only)."""
    return _validate(Alarm, decode("Alarm", payload, registry=registry))


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

    A Kafka null value (``None``) is a tombstone and returns ``None`` (target deleted).
    """
    if payload is None:
        return None
    data = decode("TargetConfig", payload, allow_json=True, registry=registry)
    return _validate(TargetConfig, data)
