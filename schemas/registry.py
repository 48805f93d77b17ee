"""The schema registry and Avro single-object framing: every kept schema version, by fingerprint.

Wire format (Avro specification, "Single object encoding")::

    C3 01 | 8-byte little-endian CRC-64-AVRO fingerprint of the writer schema's
          | Parsing Canonical Form | Avro binary body

The fingerprint lets a reader find the writer schema among every version kept
in ``schemas/avro/<name>.v<N>.avsc`` (all loaded and parsed once, at import)
and resolve the body to the newest version of the record, so producers and
consumers can be upgraded independently (schema evolution). The registry reads
and writes that framing with fastavro (the reference path, which names every
rejection); it also tells the hand-written fast paths (:mod:`schemas.fast`)
whether its newest schemas are the layouts they were written for.

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
from typing import Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint, to_parsing_canonical_form

from schemas.errors import DecodeCategory, DecodeError, EncodeError
from schemas.fast import FAST_DECISION_FORM, FAST_STAT_BATCH_FORM, FAST_STAT_EVENT_FORM

__all__ = [
    "AVRO_DIR",
    "MAGIC",
    "MAX_BATCH_EVENTS",
    "MAX_PAYLOAD_BYTES",
    "REGISTRY",
    "SchemaRegistry",
    "SchemaVersion",
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

#: Most events one StatBatch record may carry; a longer batch is rejected whole (``too_large``).
#: The 64 KiB record limit alone would allow about 2,400 valid Avro events, or 4,600 invalid
#: ones (14 bytes each) and 21,000 JSON ``{}``: each invalid event costs a pydantic validation and
#: a DLQ record, so one record could cost a worker a second and the DLQ thousands of records.
#: 1,024 bounds that to 1,024 DLQ records and 60-80 ms of decoding (all invalid; measured on the
#: shared 2-core machine, load 3-6), and is far more than a target reports at once (13 statistics
#: per report; :class:`schemas.batching.StatBatcher` never writes more). An Avro batch over the
#: limit is still read whole before it is rejected: about 20 ms for 64 KiB of 4,500 tiny events.
MAX_BATCH_EVENTS = 1024

_FILE_RE = re.compile(r"^(?P<stem>[a-z0-9_]+)\.v(?P<version>[1-9][0-9]*)\.avsc$")


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
        self._fast_event_fp = _fast_fingerprint(self._latest.get("StatEvent"), FAST_STAT_EVENT_FORM)
        self._fast_batch_fp = _fast_fingerprint(self._latest.get("StatBatch"), FAST_STAT_BATCH_FORM)
        # Likewise the hand-written decision writer: the header it writes before the body, or None.
        decision_fp = _fast_fingerprint(self._latest.get("ActionTargetDecision"), FAST_DECISION_FORM)
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
