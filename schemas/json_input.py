"""The JSON input of the decoders: its limits and the guards that enforce them.

Stat events and target configs also accept a JSON object (UTF-8, first non-whitespace byte
``{``) so a person can produce with any console producer. JSON is producer input like any
other, so its parsing is bounded: :data:`MAX_JSON_DEPTH` (checked before parsing, so the
outcome does not depend on the caller's stack), :data:`MAX_JSON_INT_DIGITS` (no quadratic
``int()`` and no ``ValueError``), :data:`MAX_JSON_FIELDS` (no thousands of validation errors),
no ``NaN``/``Infinity`` literals and no lone surrogates (no UTF-8 form downstream). Every
failure is a :class:`~schemas.errors.DecodeError` naming what is wrong; :mod:`schemas.codec`
decides when a payload is JSON and validates what this module parses.
"""

from __future__ import annotations

import json
import re
from typing import Any

from schemas.errors import DecodeCategory, DecodeError

__all__ = ["MAX_JSON_DEPTH", "MAX_JSON_FIELDS", "MAX_JSON_INT_DIGITS"]

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

#: The whitespace JSON allows before the opening ``{``.
_JSON_WS = b" \t\r\n"

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


def _check_json_event(item: object) -> None:
    """The checks a JSON object gets as a whole record (:func:`_decode_json`), for one batch event."""
    if type(item) is not dict:
        raise DecodeError("invalid JSON: event is not an object", DecodeCategory.MALFORMED_JSON)
    if len(item) > MAX_JSON_FIELDS:
        raise DecodeError(
            f"invalid JSON: object of {len(item)} fields (limit {MAX_JSON_FIELDS})", DecodeCategory.TOO_LARGE
        )
    _reject_lone_surrogates(item)
