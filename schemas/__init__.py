"""Wire contracts of the pacing service: Avro schemas, pydantic models and the codec.

``schemas/avro/<name>.v<N>.avsc`` keeps every released schema version; the
codec loads them all at import and reads any of them (Avro single-object
encoding, resolved to the newest version). See :mod:`schemas.codec` and
:mod:`schemas.models`.
"""

from schemas.codec import (
    AVRO_DIR,
    MAGIC,
    MODELS,
    REGISTRY,
    DecodeError,
    EncodeError,
    SchemaRegistry,
    SchemaVersion,
    decode,
    decode_alarm,
    decode_decision,
    decode_stat_event,
    decode_stat_events,
    decode_target_config,
    encode,
    encode_alarm,
    encode_decision,
    encode_stat_event,
    encode_target_config,
)
from schemas.models import (
    COUNTERS,
    GAUGES,
    MEDIA_TYPES,
    STATISTICS,
    ActionTargetDecision,
    Alarm,
    AlarmState,
    AvroModel,
    StatEvent,
    TargetConfig,
    describe_validation_error,
)

__all__ = [
    "AVRO_DIR",
    "COUNTERS",
    "GAUGES",
    "MAGIC",
    "MEDIA_TYPES",
    "MODELS",
    "REGISTRY",
    "STATISTICS",
    "ActionTargetDecision",
    "Alarm",
    "AlarmState",
    "AvroModel",
    "DecodeError",
    "EncodeError",
    "SchemaRegistry",
    "SchemaVersion",
    "StatEvent",
    "TargetConfig",
    "decode",
    "decode_alarm",
    "decode_decision",
    "decode_stat_event",
    "decode_stat_events",
    "decode_target_config",
    "describe_validation_error",
    "encode",
    "encode_alarm",
    "encode_decision",
    "encode_stat_event",
    "encode_target_config",
]
