"""The headers of a record sent to a dead-letter topic (``pacing.stats.dlq``, ``pacing.bulk.errors``).

The record goes as received; these headers say why and where it came from, the same way for the
pacing node and the sink, so one tool reads both topics.
"""

from __future__ import annotations


def dead_letter_headers(
    reason: str, error_class: str, topic: str, partition: int, offset: int, index: int | None = None
) -> list[tuple[str, bytes]]:
    """``error`` (the one-line reason), ``error.class`` (its metric label, a fixed set) and
    ``source.topic/partition/offset``; ``source.index``: which event of a batch."""
    headers = [("error", reason.encode()), ("error.class", error_class.encode()), ("source.topic", topic.encode()),
               ("source.partition", str(partition).encode()), ("source.offset", str(offset).encode())]
    if index is not None:
        headers.append(("source.index", str(index).encode()))
    return headers
