"""The public codec of the pacing records: ``encode_*`` and ``decode_*``, one pair per record.

Every record is Avro single-object encoding (``C3 01``, the writer schema's fingerprint, the
body; see :mod:`schemas.registry`, which keeps every released schema version and resolves a body
written with any of them to the newest). Stat events and target configs also accept a JSON
object (UTF-8, first non-whitespace byte ``{``) so a person can produce with any console
producer (its limits and guards: :mod:`schemas.json_input`). Everything decoded is validated
through the pydantic models; any failure raises :class:`DecodeError` whose ``reason`` is a
short, precise, one-line phrase meant for the DLQ ``error`` header and whose ``category`` (one
of the fixed :class:`DecodeCategory` values) is meant for a metric label.

The decoders never let anything but :class:`DecodeError` out, whatever the
payload: a Kafka null value (``None``), empty bytes, random bytes, a truncated
or corrupt Avro body, JSON nested thousands deep, integer literals of
thousands of digits, lone surrogates, ``NaN``... A poison record therefore
costs one rejection, never the batch it came in. Limits that bound the work
per payload: :data:`MAX_PAYLOAD_BYTES`, :data:`MAX_JSON_DEPTH`,
:data:`MAX_JSON_INT_DIGITS`, :data:`MAX_JSON_FIELDS`. Stat events are validated strictly (no
``true`` or ``"5"`` for a number, no ``1.7e12`` for the integer timestamp),
exactly as their Avro types say.

The two hot records take hand-written paths whose outcome is always fastavro's (and
pydantic's): StatEvent and StatBatch are read by :mod:`schemas.fast.stat_reader`,
ActionTargetDecision is written by :mod:`schemas.fast.decision_writer`. This module decides
which path a payload takes and keeps the names other modules import from it (the registry,
the errors, the limits), so ``from schemas.codec import ...`` works as before the split.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from pydantic import ValidationError

from schemas.errors import DecodeCategory, DecodeError, EncodeError
from schemas.errors import _rebuild_decode_error as _rebuild_decode_error  # unpickles DecodeErrors made before
from schemas.fast import FAST_DECISION_FIELDS as _FAST_DECISION_FIELDS  # noqa: F401 (tests read it here)
from schemas.fast import FAST_DECISION_FORM as _FAST_DECISION_FORM  # noqa: F401 (tests read it here)
from schemas.fast.decision_writer import DecisionWriter
from schemas.fast.stat_reader import read_stat_batch as _read_stat_batch
from schemas.fast.stat_reader import read_stat_event as _read_stat_event
from schemas.json_input import (
    _JSON_WS,
    MAX_JSON_DEPTH,
    MAX_JSON_FIELDS,
    MAX_JSON_INT_DIGITS,
    _check_json_event,
    _decode_json,
    _short_text,
)
from schemas.models import (
    ActionTargetDecision,
    Alarm,
    AvroModel,
    StatEvent,
    TargetConfig,
    describe_validation_error,
    stat_event_if_valid,
)
from schemas.registry import (
    _HEADER_LEN,
    AVRO_DIR,
    MAGIC,
    MAX_BATCH_EVENTS,
    MAX_PAYLOAD_BYTES,
    REGISTRY,
    SchemaRegistry,
    SchemaVersion,
    _checked_bytes,
    _fp_text,
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

log = logging.getLogger(__name__)

_M = TypeVar("_M", bound=AvroModel)
_T = TypeVar("_T")


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
    one fastavro and pydantic give (tests/unit/schemas/test_codec_fuzz.py).
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



# ---------------------------------------------------------- ActionTargetDecision


def encode_decision(decision: ActionTargetDecision, *, registry: SchemaRegistry | None = None) -> bytes:
    """Encode an ActionTargetDecision as Avro single-object bytes (newest schema)."""
    return encode_decision_fields(decision.to_avro_dict(), registry=registry)


def encode_decision_fields(record: Mapping[str, Any], *, registry: SchemaRegistry | None = None) -> bytes:
    """An ActionTargetDecision given as its Avro fields (a dict) as Avro single-object bytes (newest schema).

    The bytes ``registry.encode("ActionTargetDecision", record)`` writes, byte for byte, in a
    fraction of the time (the default :class:`~schemas.fast.decision_writer.DecisionWriter`,
    while the newest schema is the layout it was written for); no pydantic validation, as
    there. Raises :class:`EncodeError` when the data does not fit the schema.
    """
    reg = REGISTRY if registry is None else registry
    header = reg._fast_decision_header
    if header is not None:
        data = _DECISION_WRITER.write(record, header)
        if data is not None:
            return data
    return reg.encode("ActionTargetDecision", record)  # fastavro: its bytes, or its EncodeError


def decode_decision(payload: bytes | None, *, registry: SchemaRegistry | None = None) -> ActionTargetDecision:
    """Decode and validate an ActionTargetDecision (Avro single-object only).

    Raises :class:`DecodeError` for any payload (``None`` included), nothing else.
    """
    data = decode("ActionTargetDecision", payload, registry=registry)
    return _guarded(_validate, ActionTargetDecision, data)


#: The writer behind :func:`encode_decision_fields`; its caches are its own (see DecisionWriter).
_DECISION_WRITER = DecisionWriter()
# Its caches under their names from before the split (tests and benchmarks read them).
_STRINGS = _DECISION_WRITER.strings
_VARINTS = _DECISION_WRITER.varints
_MEDIA = _DECISION_WRITER.media
_FIGURES = _DECISION_WRITER.figures
_cache_size = _DECISION_WRITER.size


def _clear_decision_caches() -> None:
    """Forget every value the default decision writer has cached (tests and benchmarks)."""
    _DECISION_WRITER.clear()


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
