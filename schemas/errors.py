"""The codec's exceptions: :class:`DecodeError` (with its :class:`DecodeCategory`) and :class:`EncodeError`.

Every decoder of :mod:`schemas.codec` raises nothing but :class:`DecodeError`, whatever the
payload; the registry (:mod:`schemas.registry`), the JSON guards (:mod:`schemas.json_input`)
and the codec all raise it, so it lives apart from each of them. Its ``reason`` is a short,
precise, one-line phrase meant for the DLQ ``error`` header; its ``category`` (one of the fixed
:class:`DecodeCategory` values) is meant for a metric label.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

__all__ = ["DecodeCategory", "DecodeError", "EncodeError"]

_MAX_REASON_CHARS = 200


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

