"""The Pacing REST API over real sockets: reads, paging, GWE's consolidations, errors, tokens, the contract.

Definition writes that reach Kafka are tested on a real broker (tests/integration/test_api_cluster.py);
here the requests that must never reach it (bad input, no or wrong token) are shown not to.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiokafka.partitioner import murmur2

from streams.api.models import ChannelCapacity, Problem, ReactiveState, TargetPage, TargetView
from streams.api.openapi import openapi_document
from tests.unit.api_doubles import (
    READ_TOKEN,
    TOKENS,
    WRITE_TOKEN,
    RecordingSend,
    ServedApi,
    decision,
    definition,
    serve_api,
)


@pytest.fixture
async def served() -> AsyncIterator[ServedApi]:
    api = await serve_api(tokens=TOKENS)
    yield api
    await api.stop()


async def _get(http: aiohttp.ClientSession, url: str, **kwargs: Any) -> tuple[int, Any, aiohttp.ClientResponse]:
    async with http.get(url, **kwargs) as response:
        return response.status, await response.json(content_type=None), response


def _problem(body: dict[str, Any], status: int) -> Problem:
    problem = Problem.model_validate(body)
    assert problem.status == status
    return problem


async def test_a_target_shows_its_newest_decision_its_figures_and_its_definition(
        served: ServedApi, http: aiohttp.ClientSession) -> None:
    served.directory.apply_decision(b"vq-1", decision("vq-1", ready=2, admission=0.25))
    served.directory.apply_decision(b"vq-1", decision("vq-1", ready=4, waiting=1, admission=0.75,
                                                      abandonmentPct="2.5", serviceLevelPct="81"))
    served.definitions.apply(b"vq-1", definition("vq-1", service_level_percentage=0.9))
    status, body, response = await _get(http, f"{served.url}/v1/targets/vq-1")
    assert status == 200 and response.headers["X-Pacing-Node"] == "node-a"
    view = TargetView.model_validate(body)
    assert view.decision is not None and view.definition is not None
    assert (view.decision.ready_agents, view.decision.reactive_admission) == (4, 0.75)  # the newest one
    assert (view.decision.abandonment_pct, view.decision.service_level_pct) == (2.5, 81.0)
    assert view.decision.partition == (murmur2(b"vq-1") & 0x7FFFFFFF) % 12
    assert 0 <= view.decision.age_s < 5
    assert view.definition.service_level_percentage == 0.9 and view.definition.name == "defined vq-1"


async def test_a_defined_target_without_a_decision_is_found_and_an_unknown_one_is_404(
        served: ServedApi, http: aiohttp.ClientSession) -> None:
    served.definitions.apply(b"new", definition("new"))
    status, body, _ = await _get(http, f"{served.url}/v1/targets/new")
    assert status == 200 and body["decision"] is None and body["definition"]["target_id"] == "new"
    status, body, response = await _get(http, f"{served.url}/v1/targets/nobody")
    assert status == 404 and response.content_type == "application/problem+json"
    assert _problem(body, 404).instance == "/v1/targets/nobody"
    served.definitions.apply(b"new", None)  # deleted: unknown again
    assert (await _get(http, f"{served.url}/v1/targets/new"))[0] == 404


async def test_an_id_with_a_slash_and_unicode_round_trips(served: ServedApi, http: aiohttp.ClientSession) -> None:
    served.directory.apply_decision("eu/vq-é".encode(), decision("eu/vq-é"))
    status, body, _ = await _get(http, f"{served.url}/v1/targets/eu%2Fvq-%C3%A9")
    assert status == 200 and body["target_id"] == "eu/vq-é"


async def test_the_listing_pages_through_every_target_once_in_id_order(
        served: ServedApi, http: aiohttp.ClientSession) -> None:
    ids = [f"vq-{n:03d}" for n in range(250)] + ["other-1"]
    for target_id in reversed(ids):
        served.directory.apply_decision(target_id.encode(), decision(target_id))
    served.definitions.apply(b"vq-zzz", definition("vq-zzz"))  # defined only: listed too
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"prefix": "vq-", "limit": "100", **({"cursor": cursor} if cursor else {})}
        status, body, _ = await _get(http, f"{served.url}/v1/targets", params=params)
        assert status == 200
        page = TargetPage.model_validate(body)
        seen += [item.target_id for item in page.items]
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
        served.directory.apply_decision(b"vq-000a", decision("vq-000a"))  # added behind the cursor: not seen
    assert seen == sorted([*ids[:250], "vq-zzz"]) and pages == 3
    status, body, _ = await _get(http, f"{served.url}/v1/targets", params={"limit": "1"})
    assert [item["target_id"] for item in body["items"]] == ["other-1"] and body["next_cursor"]


@pytest.mark.parametrize(("query", "field"), [
    ("limit=0", "limit"), ("limit=abc", "limit"), ("limit=5000", "limit"), ("cursor=%25%25%25", "cursor"),
    ("limit=1&limit=2", "limit"), ("colour=red", "colour"), ("prefix=" + "x" * 300, "prefix"),
])
async def test_a_wrong_listing_parameter_is_a_400_naming_it(served: ServedApi, http: aiohttp.ClientSession,
                                                            query: str, field: str) -> None:
    status, body, response = await _get(http, f"{served.url}/v1/targets?{query}")
    assert status == 400 and response.content_type == "application/problem+json"
    problem = _problem(body, 400)
    assert [error.field for error in problem.errors or []] == [field]
    assert field in problem.detail


async def test_reactive_state_is_the_admission_weighted_by_logged_in_agents(
        served: ServedApi, http: aiohttp.ClientSession) -> None:
    directory = served.directory
    directory.apply_decision(b"g1", decision("g1", logged_in=10, admission=0.2))
    directory.apply_decision(b"g2", decision("g2", logged_in=30, admission=0.6))
    directory.apply_decision(b"g3", decision("g3", logged_in=50, admission=1.0, state="inactive"))  # no weight
    directory.apply_decision(b"cb", decision("cb", logged_in=5, admission=0.0, media=("callback",)))
    url = f"{served.url}/v1/pacing/reactiveState"
    status, body, _ = await _get(http, url, params=[("channel", "chat"), ("groups", "g1"), ("groups", "g2"),
                                                   ("groups", "g3"), ("groups", "nobody")])
    state = ReactiveState.model_validate(body)
    assert status == 200 and state.reactiveState == pytest.approx((10 * 0.2 + 30 * 0.6) / 40)
    assert (state.groupsCounted, state.groupsWithoutDecision, state.channel) == (2, ["nobody"], "chat")
    # Every group of the channel: the same figure (callback is another channel).
    status, body, _ = await _get(http, url, params={"channel": "webchat"})
    assert body["reactiveState"] == pytest.approx(0.5) and body["groupsCounted"] == 2
    # A decision changes: the consolidation follows it.
    directory.apply_decision(b"g2", decision("g2", logged_in=30, admission=0.0))
    status, body, _ = await _get(http, url, params={"channel": "webchat"})
    assert body["reactiveState"] == pytest.approx(0.05)
    status, body, _ = await _get(http, url, params={"channel": "webchat", "groups": "nobody"})
    assert body == {"reactiveState": 0.0, "channel": "webchat", "groupsCounted": 0, "groupsWithoutDecision": ["nobody"]}


async def test_the_consolidation_over_every_group_matches_a_recount_after_many_changes(
        served: ServedApi, http: aiohttp.ClientSession) -> None:
    import random

    rng = random.Random(3)
    latest: dict[str, tuple[int, int, int, float, str]] = {}
    for round_ in range(6):
        for _ in range(200):
            target = f"t{rng.randrange(60)}"
            figures = (rng.randrange(20), rng.randrange(20, 40), rng.randrange(5), rng.random(),
                       rng.choice(["active", "active", "inactive"]))
            latest[target] = figures
            ready, logged_in, waiting, admission, state = figures
            served.directory.apply_decision(target.encode(), decision(
                target, ready=ready, logged_in=logged_in, waiting=waiting, admission=admission, state=state))
        active = [f for f in latest.values() if f[4] == "active"]
        capacity = sum(max(0, ready - waiting) for ready, _, waiting, _, _ in active)
        state = sum(logged_in * admission for _, logged_in, _, admission, _ in active) / sum(f[1] for f in active)
        _, body, _ = await _get(http, f"{served.url}/v1/pacing/channelCapacity", params={"channel": "webchat"})
        assert ChannelCapacity.model_validate(body).channelCapacity == capacity, round_
        _, body, _ = await _get(http, f"{served.url}/v1/pacing/reactiveState", params={"channel": "webchat"})
        assert body["reactiveState"] == pytest.approx(state, abs=1e-6) and body["groupsCounted"] == len(active)


async def test_channel_capacity_counts_agents_free_for_a_new_interaction(
        served: ServedApi, http: aiohttp.ClientSession) -> None:
    served.directory.apply_decision(b"g1", decision("g1", ready=5, waiting=2))
    served.directory.apply_decision(b"g2", decision("g2", ready=1, waiting=4))  # more waiting than ready: 0
    served.directory.apply_decision(b"g3", decision("g3", ready=7, media=("webchat", "callback")))
    _, body, _ = await _get(http, f"{served.url}/v1/pacing/channelCapacity",
                            params=[("channel", "webchat"), ("groups", "g1"), ("groups", "g2"), ("groups", "g3")])
    assert body["channelCapacity"] == 3 + 0 + 7 and body["groupsCounted"] == 3
    _, body, _ = await _get(http, f"{served.url}/v1/pacing/channelCapacity", params={"channel": "webcallback"})
    assert body["channelCapacity"] == 7


@pytest.mark.parametrize("query", ["", "channel=fax", "channel=chat&channel=webchat", "channel=chat&groups="])
async def test_a_wrong_channel_or_group_is_a_400_naming_it(served: ServedApi, http: aiohttp.ClientSession,
                                                           query: str) -> None:
    status, body, _ = await _get(http, f"{served.url}/v1/pacing/reactiveState?{query}")
    problem = _problem(body, 400)
    assert status == 400 and problem.errors and problem.errors[0].field.startswith(("channel", "groups"))


# ---- writes: validation and tokens (nothing reaches Kafka) -------------------------------------------------


@pytest.fixture
async def recording() -> AsyncIterator[tuple[ServedApi, RecordingSend]]:
    send = RecordingSend()
    api = await serve_api(send=send, tokens=TOKENS, max_body_bytes=2048)
    yield api, send
    await api.stop()


async def _put(http: aiohttp.ClientSession, url: str, body: bytes | dict[str, Any], token: str | None = WRITE_TOKEN,
               ) -> tuple[int, dict[str, Any], aiohttp.ClientResponse]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    async with http.put(url, data=data, headers=headers) as response:
        return response.status, await response.json(content_type=None), response


@pytest.mark.parametrize(("body", "fields"), [
    ({"name": "x", "supported_media_types": ["fax"]}, ["supported_media_types"]),
    ({"name": "x", "supported_media_types": ["webchat"], "service_level_percentage": 2}, ["service_level_percentage"]),
    ({"supported_media_types": ["webchat"]}, ["name"]),
    ({"name": "x", "supported_media_types": ["webchat"], "target_id": "other"}, ["target_id"]),
    ({"name": "x", "supported_media_types": ["webchat"], "tenant": "acme"}, ["tenant"]),
    ({"name": "x", "supported_media_types": ["webchat"], "colour": "red"}, ["colour"]),
])
async def test_an_invalid_definition_is_a_422_with_every_reason_and_is_not_written(
        recording: tuple[ServedApi, RecordingSend], http: aiohttp.ClientSession, body: dict[str, Any],
        fields: list[str]) -> None:
    api, send = recording
    status, answer, _ = await _put(http, f"{api.url}/v1/targets/vq-1/definition", body)
    problem = _problem(answer, 422)
    assert status == 422 and [error.field.split(".")[0] for error in problem.errors or []] == fields
    assert send.sent == []


@pytest.mark.parametrize(("body", "status"), [
    (b"not json", 400), (b'{"name": ', 400), (b"[1, 2]", 400), (b'{"name": NaN}', 400),
    (b'{"name": "' + b"x" * 4096 + b'"}', 413),
])
async def test_a_malformed_or_oversized_body_is_a_400_or_413(recording: tuple[ServedApi, RecordingSend],
                                                             http: aiohttp.ClientSession, body: bytes,
                                                             status: int) -> None:
    api, send = recording
    answered, answer, response = await _put(http, f"{api.url}/v1/targets/vq-1/definition", body)
    assert answered == status and response.content_type == "application/problem+json"
    _problem(answer, status)
    assert send.sent == []


async def test_a_valid_definition_goes_to_pacing_targets_as_the_record_every_worker_reads(
        recording: tuple[ServedApi, RecordingSend], http: aiohttp.ClientSession) -> None:
    from schemas import decode_target_config

    api, send = recording
    status, answer, _ = await _put(http, f"{api.url}/v1/targets/vq-1/definition",
                                   {"name": "Sales chat", "supported_media_types": ["webchat", "callback"],
                                    "proactive_ratio": 0.5})
    assert status == 202 and answer == {"target_id": "vq-1", "operation": "put", "topic": "pacing.targets"}
    [(topic, key, value)] = send.sent
    config = decode_target_config(value)
    assert (topic, key, config.tenant, config.name, config.proactive_ratio) == (
        "pacing.targets", b"vq-1", "demo", "Sales chat", 0.5)


async def test_writes_need_a_write_token_and_tokens_are_never_echoed_or_logged(
        recording: tuple[ServedApi, RecordingSend], http: aiohttp.ClientSession,
        caplog: pytest.LogCaptureFixture) -> None:
    api, send = recording
    caplog.set_level(logging.DEBUG)
    url = f"{api.url}/v1/targets/vq-1/definition"
    body = {"name": "x", "supported_media_types": ["webchat"]}
    status, answer, response = await _put(http, url, body, token=None)
    assert status == 401 and response.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = "wrong-token-0123456789abcdef"
    status, answer, _ = await _put(http, url, body, token=wrong)
    assert status == 401 and wrong not in json.dumps(answer)
    status, answer, _ = await _put(http, url, body, token=READ_TOKEN)
    assert status == 403 and "viewer" in answer["detail"] and READ_TOKEN not in json.dumps(answer)
    async with http.delete(url) as response:
        assert response.status == 401
    assert send.sent == []
    assert all(secret not in caplog.text for secret in (wrong, READ_TOKEN, WRITE_TOKEN))
    # Reads need none by default.
    api.definitions.apply(b"vq-1", definition("vq-1"))
    assert (await _get(http, f"{api.url}/v1/targets/vq-1"))[0] == 200


async def test_reads_need_a_token_when_configured(http: aiohttp.ClientSession) -> None:
    api = await serve_api(tokens=TOKENS, read_requires_token=True)
    try:
        api.definitions.apply(b"vq-1", definition("vq-1"))
        url = f"{api.url}/v1/targets/vq-1"
        assert (await _get(http, url))[0] == 401
        assert (await _get(http, url, headers={"Authorization": "Basic abc"}))[0] == 401
        assert (await _get(http, url, headers={"Authorization": f"Bearer {READ_TOKEN}"}))[0] == 200
        assert (await _get(http, f"{api.url}/v1/pacing/reactiveState?channel=chat",
                           headers={"Authorization": f"Bearer {WRITE_TOKEN}"}))[0] == 200
        assert (await _get(http, f"{api.url}/v1/openapi.json"))[0] == 200  # the contract is public
        assert (await _get(http, f"{api.url}/readyz"))[0] == 200
        document = (await _get(http, f"{api.url}/v1/openapi.json"))[1]
        assert document["paths"]["/v1/targets"]["get"]["security"] == [{"bearer": []}]
    finally:
        await api.stop()


async def test_no_route_and_a_wrong_method_are_problems_too(served: ServedApi, http: aiohttp.ClientSession) -> None:
    status, body, _ = await _get(http, f"{served.url}/v2/nothing")
    assert status == 404 and _problem(body, 404)
    async with http.post(f"{served.url}/v1/targets/x/definition") as response:
        assert response.status == 405 and response.content_type == "application/problem+json"
        assert "PUT" in response.headers["Allow"]


async def test_readyz_follows_the_node(http: aiohttp.ClientSession) -> None:
    ready = {"now": False}
    api = await serve_api(ready=lambda: ready["now"])
    try:
        assert (await _get(http, f"{api.url}/readyz"))[0] == 503
        ready["now"] = True
        assert (await _get(http, f"{api.url}/readyz"))[0] == 200
    finally:
        await api.stop()


async def test_the_served_document_is_the_one_built_from_the_models(served: ServedApi,
                                                                    http: aiohttp.ClientSession) -> None:
    status, document, _ = await _get(http, f"{served.url}/v1/openapi.json")
    assert status == 200 and document == openapi_document()
    schemas = document["components"]["schemas"]
    assert set(schemas["TargetConfig"]["properties"]) == set(schemas["TargetDefinition"]["properties"])
    assert "target_id" not in schemas["TargetDefinition"]["required"]
    parameters = document["paths"]["/v1/pacing/reactiveState"]["get"]["parameters"]
    [channel] = [p for p in parameters if p["name"] == "channel"]
    assert channel["required"] is True


def test_sums_over_every_group_are_kept_only_while_asked_for_and_exact_at_the_first_request() -> None:
    from streams.api.directory import TargetDirectory

    directory = TargetDirectory(stats_partitions=4)
    for n in range(600):  # more than one request folds once the sums are kept
        directory.apply_decision(f"t{n}".encode(), decision(f"t{n}", ready=2, waiting=1, logged_in=10))
    assert not directory.sums_wanted(), "nobody asked: the feed leaves the decisions undecoded"
    first = directory.consolidated("webchat", [])
    assert (first.groups_counted, first.capacity) == (600, 600), "the first request folds every change itself"
    assert directory.sums_wanted()
