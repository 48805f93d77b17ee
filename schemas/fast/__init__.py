"""The hand-written fast paths of the codec, and the exact layouts they were written for.

fastavro is a generic interpreter of a schema: about 7 µs to read a StatEvent and 12-15 µs of
CPU to write an ActionTargetDecision, more than the pacing node's budget per record. The two
record layouts the node handles most are read (:mod:`schemas.fast.stat_reader`) and written
(:mod:`schemas.fast.decision_writer`) by hand instead, byte for byte as fastavro does.

They are only used while the newest schema of the record is exactly the layout below (its
Parsing Canonical Form): :class:`schemas.registry.SchemaRegistry` compares them when built, and
a registry whose newest schema differs reads and writes with fastavro (correct, but slower;
tests/unit/schemas/test_decision_writer.py fails, asking for the writer to be updated). The layouts
live here, apart from the reader and the writer, so that the registry can check them without
importing the fast paths (which import the registry's framing).
"""

from __future__ import annotations

# The Parsing Canonical Forms the hand-written stat reader (schemas.fast.stat_reader) knows.
FAST_STAT_EVENT_FORM = (
    '{"name":"com.pacing.StatEvent","type":"record","fields":[{"name":"tenant","type":"string"},'
    '{"name":"target_id","type":"string"},{"name":"statistic","type":"string"},{"name":"value","type":"double"},'
    '{"name":"timestamp","type":"long"},{"name":"source","type":"string"},'
    '{"name":"media_type","type":["null","string"]}]}'
)
FAST_STAT_BATCH_FORM = (
    '{"name":"com.pacing.StatBatch","type":"record","fields":[{"name":"events","type":{"type":"array","items":'
    + FAST_STAT_EVENT_FORM + "}}]}"
)


# The ActionTargetDecision fields, in order, with their types (as in the Parsing Canonical Form),
# that the hand-written decision writer (schemas.fast.decision_writer) writes. A newest schema with
# any other field list is written by fastavro (tests/unit/schemas/test_decision_writer.py fails, asking for
# the writer to be updated).
FAST_DECISION_FIELDS: tuple[tuple[str, str], ...] = (
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
    ("owner_epoch", '"long"'),
)
FAST_DECISION_FORM = (
    '{"name":"com.pacing.ActionTargetDecision","type":"record","fields":['
    + ",".join(f'{{"name":"{name}","type":{avro_type}}}' for name, avro_type in FAST_DECISION_FIELDS)
    + "]}"
)
