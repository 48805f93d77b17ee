"""What a pacing node gets attached for the dev broker: everything on Tansu, nothing on Apache Kafka.

The node is the production one (:func:`streams.node.app.create_app`) on an address where no broker
listens; the broker kind is configured, or the question to the cluster is answered by the test
(``questions``, in conftest.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from streams.dev_broker import attach_to_worker
from streams.dev_broker.detect import classify_broker
from streams.dev_broker.worker import probes_end_offsets
from streams.node.app import PacingNode, create_app
from streams.runtime.config import load_settings


def _node(tmp_path: Path, **kafka: Any) -> PacingNode:
    settings = load_settings(kafka={"bootstrap_servers": "127.0.0.1:1", **kafka}, worker={"data_dir": str(tmp_path)})
    return create_app(settings)


def _timers(node: PacingNode) -> int:
    return len(node.app._app_tasks)  # Faust's list of the app's tasks and timers


def _probes(node: PacingNode) -> bool:
    """Whether the app's table recovery corrects the end offsets the broker reports."""
    return node.app.transport.Consumer.end_offset_correction is not None


async def test_a_worker_configured_for_apache_kafka_gets_no_dev_broker_hook_and_asks_nothing(
        tmp_path: Path, questions: list[str]) -> None:
    node = _node(tmp_path, broker_kind="kafka")
    timers = _timers(node)
    assert await attach_to_worker(node) is None
    assert not _probes(node)
    assert _timers(node) == timers  # no topic watch
    assert node.readiness == []
    assert questions == []


async def test_a_worker_on_tansu_gets_the_probe_and_a_topic_watch_that_holds_readiness(
        tmp_path: Path, questions: list[str]) -> None:
    node = _node(tmp_path, broker_kind="tansu")
    timers = _timers(node)
    watch = await attach_to_worker(node)
    assert watch is not None
    assert _probes(node)
    assert _timers(node) == timers + 1
    node._took_events = True  # serving, as far as the node itself can tell
    assert node.ready
    watch.lost = ["pacing.stats missing"]
    assert not node.ready
    assert questions == []


async def test_auto_asks_the_cluster_once_and_attaches_nothing_to_a_worker_on_apache_kafka(
        tmp_path: Path, questions: list[str]) -> None:
    node = _node(tmp_path)  # broker_kind = "auto", the default
    assert await attach_to_worker(node) is None
    assert node.readiness == [] and not _probes(node)
    assert questions == ["127.0.0.1:1"]


async def test_auto_keeps_the_workarounds_when_the_cluster_does_not_say_it_is_apache_kafka(tmp_path: Path) -> None:
    node = _node(tmp_path, connect_timeout_s=0.5)  # nobody listens: no answer
    assert await attach_to_worker(node) is not None and _probes(node)


async def test_an_explicit_probe_setting_wins_over_the_broker_kind(tmp_path: Path, questions: list[str]) -> None:
    on_kafka = _node(tmp_path / "a", broker_kind="kafka", probe_end_offsets=True)
    assert await attach_to_worker(on_kafka) is None and _probes(on_kafka)
    on_tansu = _node(tmp_path / "b", broker_kind="tansu", probe_end_offsets=False)
    assert await attach_to_worker(on_tansu) is not None and not _probes(on_tansu)


@pytest.mark.parametrize(("kind", "configured", "probes"), [
    ("tansu", None, True), ("kafka", None, False), ("kafka", True, True), ("tansu", False, False)])
def test_the_end_offset_probe_follows_the_broker_unless_configured(kind: str, configured: bool | None,
                                                                    probes: bool) -> None:
    assert probes_end_offsets(kind, configured) is probes  # type: ignore[arg-type]


def test_only_apache_kafka_with_both_signs_counts_as_kafka() -> None:
    kraft_apis = {0, 1, 3, 18, 55, 60}
    assert classify_broker("WFUIjXOfTRSO7WbLafwQuQ", kraft_apis) == "kafka"
    assert classify_broker("tansu_cluster", {0, 1, 3, 18, 60}) == "tansu"
    # A Tansu given a UUID-like cluster id still lacks the KRaft quorum API.
    assert classify_broker("WFUIjXOfTRSO7WbLafwQuQ", {0, 1, 3, 18, 60}) == "other"
    assert classify_broker("my-cluster", kraft_apis) == "other"
    assert classify_broker(None, kraft_apis) == "other"
