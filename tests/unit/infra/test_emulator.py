"""The Journey API emulator over real sockets: tokens, bulk upserts, rate limit, faults, records."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from connectors.bulk_models import BulkActionTargetsResponse, TokenResponse
from infra.emulator import TARGET_ERROR_CODE, TARGET_ERROR_STATUS, JourneyEmulator

CLIENT_ID = "pacing"
CLIENT_SECRET = "pacing-secret"
BULK = "v2/journey/actiontargets/bulk"


def target(target_id: str, **overrides: Any) -> dict[str, Any]:
    """A valid ActionTarget body."""
    body: dict[str, Any] = {
        "id": target_id,
        "name": f"target {target_id}",
        "state": "active",
        "supportedMediaTypes": ["webchat"],
        "serviceLevel": {"percentage": 0.8, "durationMs": 20000},
        "shortAbandonThreshold": 10,
        "description": "",
        "userData": [{"key": "allowedOffers", "value": "3"}],
    }
    body.update(overrides)
    return body


@pytest.fixture
async def emulator() -> AsyncIterator[JourneyEmulator]:
    emu = JourneyEmulator(CLIENT_ID, CLIENT_SECRET)
    await emu.start()
    yield emu
    await emu.stop()


@dataclass
class FakeClock:
    """A clock the test moves by hand: token lifetimes and rate windows without sleeping."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def basic_auth(login: str, password: str) -> str:
    """An HTTP Basic header value (built by hand: aiohttp's helpers differ across versions)."""
    return "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()


async def get_token(
    http: aiohttp.ClientSession, emu: JourneyEmulator, secret: str = CLIENT_SECRET
) -> aiohttp.ClientResponse:
    return await http.post(
        emu.base_auth_url,
        data={"grant_type": "client_credentials"},
        headers={"Authorization": basic_auth(CLIENT_ID, secret)},
    )


async def bearer(http: aiohttp.ClientSession, emu: JourneyEmulator) -> dict[str, str]:
    async with await get_token(http, emu) as response:
        assert response.status == 200
        token = TokenResponse.model_validate(await response.json())
    return {"Authorization": f"Bearer {token.access_token}"}


async def post_bulk(
    http: aiohttp.ClientSession, emu: JourneyEmulator, body: Any, headers: dict[str, str]
) -> tuple[int, Any, aiohttp.ClientResponse]:
    async with http.post(emu.base_service_url + BULK, json=body, headers=headers) as response:
        text = await response.text()
        try:
            payload = await response.json(content_type=None)
        except ValueError:
            payload = text
        return response.status, payload, response


# -- tokens ----------------------------------------------------------------------------------


async def test_token_via_basic_auth(emulator: JourneyEmulator, http: aiohttp.ClientSession) -> None:
    async with await get_token(http, emulator) as response:
        assert response.status == 200
        token = TokenResponse.model_validate(await response.json())
    assert token.token_type == "bearer"
    assert token.expires_in == 3600


async def test_token_via_form_fields(emulator: JourneyEmulator, http: aiohttp.ClientSession) -> None:
    form = {"grant_type": "client_credentials", "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET}
    async with http.post(emulator.base_auth_url, data=form) as response:
        assert response.status == 200
        TokenResponse.model_validate(await response.json())


async def test_wrong_credentials_get_401(
    emulator: JourneyEmulator, http: aiohttp.ClientSession
) -> None:
    async with await get_token(http, emulator, secret="wrong") as response:
        assert response.status == 401
        assert (await response.json())["error"] == "invalid_client"
    async with http.post(emulator.base_auth_url, data={"grant_type": "password"}) as response:
        assert response.status == 400


async def test_bulk_without_valid_token_is_401(
    emulator: JourneyEmulator, http: aiohttp.ClientSession
) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        status, body, _ = await post_bulk(http, emulator, {"entities": [target("a")]}, headers)
        assert status == 401
        assert body["status"] == 401
    assert emulator.targets == {}


async def test_token_is_valid_for_its_lifetime_then_401(http: aiohttp.ClientSession) -> None:
    clock = FakeClock()
    emu = JourneyEmulator(token_ttl_s=60, clock=clock)
    await emu.start()
    try:
        headers = await bearer(http, emu)
        status, _, _ = await post_bulk(http, emu, {"entities": [target("a")]}, headers)
        assert status == 200
        clock.advance(59.9)
        status, _, _ = await post_bulk(http, emu, {"entities": [target("a")]}, headers)
        assert status == 200
        clock.advance(0.1)
        status, body, _ = await post_bulk(http, emu, {"entities": [target("a")]}, headers)
        assert status == 401
        assert "expired" in body["message"]
    finally:
        await emu.stop()


async def test_revoked_token_is_401(emulator: JourneyEmulator, http: aiohttp.ClientSession) -> None:
    headers = await bearer(http, emulator)
    emulator.revoke_tokens()
    status, _, _ = await post_bulk(http, emulator, {"entities": [target("a")]}, headers)
    assert status == 401


# -- bulk upserts ----------------------------------------------------------------------------


async def test_valid_bulk_is_stored_and_echoed(
    emulator: JourneyEmulator, http: aiohttp.ClientSession
) -> None:
    headers = await bearer(http, emulator)
    body = {"entities": [target("a"), target("b", state="inactive")]}
    status, payload, _ = await post_bulk(http, emulator, body, headers)
    assert status == 200
    response = BulkActionTargetsResponse.model_validate(payload)
    assert response.errorCount == 0 and response.errorIndexes == []
    assert [result.id for result in response.results] == ["a", "b"]
    assert all(result.success and result.entity for result in response.results)
    assert response.results[1].entity is not None
    assert response.results[1].entity.state == "inactive"
    assert set(emulator.targets) == {"a", "b"}

    # An upsert replaces the stored entity; the store is readable over HTTP too.
    await post_bulk(http, emulator, {"entities": [target("a", name="renamed")]}, headers)
    async with http.get(f"{emulator.base_url}/emulator/targets/a") as resp:
        assert (await resp.json())["name"] == "renamed"
    async with http.get(f"{emulator.base_url}/emulator/targets") as resp:
        assert set(await resp.json()) == {"a", "b"}
    async with http.get(f"{emulator.base_url}/emulator/targets/missing") as resp:
        assert resp.status == 404


async def test_invalid_entity_fails_alone(
    emulator: JourneyEmulator, http: aiohttp.ClientSession
) -> None:
    headers = await bearer(http, emulator)
    bad_level = target("bad", serviceLevel={"percentage": 1.5, "durationMs": 20000})
    extra = target("extra", colour="blue")
    body = {"entities": [target("a"), bad_level, target("c"), extra, "not-an-object"]}
    status, payload, _ = await post_bulk(http, emulator, body, headers)
    assert status == 200
    response = BulkActionTargetsResponse.model_validate(payload)
    assert response.errorCount == 3
    assert response.errorIndexes == [1, 3, 4]
    failed = response.results[1]
    assert failed.id == "bad" and not failed.success and failed.entity is None
    assert failed.error is not None
    assert (failed.error.status, failed.error.code) == (400, "invalid.value")
    assert "serviceLevel.percentage" in failed.error.message
    assert response.results[3].error is not None
    assert "colour" in response.results[3].error.message
    assert set(emulator.targets) == {"a", "c"}


@pytest.mark.parametrize(
    "raw",
    ["this is not json", '["a list"]', '{"entities": []}', '{"entities": "a"}', '{"other": 1}',
     '{"entities": [{"id": "x"}], "extra": true}', "NaN"],
)
async def test_bad_envelope_is_400(
    emulator: JourneyEmulator, http: aiohttp.ClientSession, raw: str
) -> None:
    headers = {**await bearer(http, emulator), "Content-Type": "application/json"}
    async with http.post(emulator.base_service_url + BULK, data=raw, headers=headers) as resp:
        assert resp.status == 400
        body = await resp.json()
    assert body["status"] == 400 and body["code"] == "bad.request" and body["message"]
    assert emulator.requests[-1].status == 400


async def test_wrong_content_type_is_415(
    emulator: JourneyEmulator, http: aiohttp.ClientSession
) -> None:
    headers = {**await bearer(http, emulator), "Content-Type": "text/plain"}
    async with http.post(emulator.base_service_url + BULK, data="{}", headers=headers) as resp:
        assert resp.status == 415


# -- rate limit ------------------------------------------------------------------------------


async def test_rate_limit_answers_429_with_retry_after(http: aiohttp.ClientSession) -> None:
    clock = FakeClock()
    emu = JourneyEmulator(rate_limit_per_s=2, clock=clock)
    await emu.start()
    try:
        headers = await bearer(http, emu)
        statuses = []
        retry_after = None
        for _ in range(4):
            status, _, response = await post_bulk(http, emu, {"entities": [target("a")]}, headers)
            statuses.append(status)
            retry_after = response.headers.get("Retry-After") or retry_after
        assert statuses == [200, 200, 429, 429]
        assert retry_after is not None and int(retry_after) >= 1
        clock.advance(0.99)  # still inside the one-second window of the two admitted requests
        status, _, _ = await post_bulk(http, emu, {"entities": [target("a")]}, headers)
        assert status == 429
        clock.advance(0.02)  # the window has slid past them
        status, _, _ = await post_bulk(http, emu, {"entities": [target("a")]}, headers)
        assert status == 200
    finally:
        await emu.stop()


# -- faults ----------------------------------------------------------------------------------


async def test_status_fault_over_http_then_cleared(
    emulator: JourneyEmulator, http: aiohttp.ClientSession
) -> None:
    headers = await bearer(http, emulator)
    faults_url = f"{emulator.base_url}/emulator/faults"
    async with http.post(faults_url, json={"status": 503, "retry_after": 2}) as resp:
        assert resp.status == 200
    async with http.get(faults_url) as resp:
        assert (await resp.json())["status"] == 503

    status, body, response = await post_bulk(http, emulator, {"entities": [target("a")]}, headers)
    assert status == 503
    assert response.headers["Retry-After"] == "2"
    assert body == {"status": 503, "code": "service.unavailable", "message": body["message"]}
    assert emulator.targets == {}

    async with http.delete(faults_url) as resp:
        assert resp.status == 200
    status, _, _ = await post_bulk(http, emulator, {"entities": [target("a")]}, headers)
    assert status == 200
    assert "a" in emulator.targets


async def test_fault_control_rejects_unknown_or_bad_fields(
    emulator: JourneyEmulator, http: aiohttp.ClientSession
) -> None:
    faults_url = f"{emulator.base_url}/emulator/faults"
    for bad in ({"stauts": 503}, {"status": 200}, {"remaining": 0}, ["status"]):
        async with http.post(faults_url, json=bad) as resp:
            assert resp.status == 400
    assert not emulator.faults.current.active


async def test_remaining_fault_clears_itself(
    emulator: JourneyEmulator, http: aiohttp.ClientSession
) -> None:
    headers = await bearer(http, emulator)
    emulator.faults.set(status=500, remaining=2)
    statuses = []
    for _ in range(3):
        status, _, _ = await post_bulk(http, emulator, {"entities": [target("a")]}, headers)
        statuses.append(status)
    assert statuses == [500, 500, 200]
    assert not emulator.faults.current.active


async def test_delay_fault_makes_the_client_time_out(
    emulator: JourneyEmulator, http: aiohttp.ClientSession
) -> None:
    headers = await bearer(http, emulator)
    emulator.faults.set(delay_s=1.0, remaining=1)
    with pytest.raises(asyncio.TimeoutError):
        async with http.post(
            emulator.base_service_url + BULK,
            json={"entities": [target("a")]},
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=0.2),
        ):
            pass
    status, _, _ = await post_bulk(http, emulator, {"entities": [target("b")]}, headers)
    assert status == 200


async def test_malformed_response_switch(
    emulator: JourneyEmulator, http: aiohttp.ClientSession
) -> None:
    headers = await bearer(http, emulator)
    emulator.faults.set(malformed_response=True)
    status, payload, _ = await post_bulk(http, emulator, {"entities": [target("a")]}, headers)
    assert status == 200
    with pytest.raises(ValueError):
        BulkActionTargetsResponse.model_validate(payload)
    emulator.faults.clear()
    status, payload, _ = await post_bulk(http, emulator, {"entities": [target("a")]}, headers)
    BulkActionTargetsResponse.model_validate(payload)


async def test_fail_target_ids(emulator: JourneyEmulator, http: aiohttp.ClientSession) -> None:
    headers = await bearer(http, emulator)
    emulator.faults.set(fail_target_ids=["b"])
    body = {"entities": [target("a"), target("b"), target("c")]}
    status, payload, _ = await post_bulk(http, emulator, body, headers)
    assert status == 200
    response = BulkActionTargetsResponse.model_validate(payload)
    assert (response.errorCount, response.errorIndexes) == (1, [1])
    error = response.results[1].error
    assert error is not None
    assert (error.status, error.code) == (TARGET_ERROR_STATUS, TARGET_ERROR_CODE)
    assert set(emulator.targets) == {"a", "c"}


# -- recording and logging -------------------------------------------------------------------


async def test_requests_are_recorded(
    emulator: JourneyEmulator, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    headers = await bearer(http, emulator)
    body = {"entities": [target("a"), target("b", name="")]}
    with caplog.at_level(logging.INFO, logger="infra.emulator"):
        await post_bulk(http, emulator, body, headers)
    emulator.faults.set(status=503, remaining=1)
    await post_bulk(http, emulator, {"entities": [target("c")]}, headers)

    first, second = emulator.requests
    assert first.body == body and first.status == 200
    assert (first.entity_count, first.error_count, first.entity_ids) == (2, 1, ["a", "b"])
    assert first.response["errorIndexes"] == [1]
    assert (second.status, second.entity_ids) == (503, ["c"])
    assert any("emulator bulk: 200 entities=2 errors=1" in line for line in caplog.messages)

    requests_url = f"{emulator.base_url}/emulator/requests"
    async with http.get(requests_url) as resp:
        summaries = await resp.json()
    assert [(s["status"], s["entityCount"], s["entityIds"]) for s in summaries] == [
        (200, 2, ["a", "b"]), (503, 1, ["c"])
    ]
    assert "time" in summaries[0] and "body" not in summaries[0]
    async with http.get(requests_url, params={"limit": "1"}) as resp:
        assert [s["status"] for s in await resp.json()] == [503]
    async with http.delete(requests_url) as resp:
        assert resp.status == 200
    assert emulator.requests == []


async def test_record_is_bounded(http: aiohttp.ClientSession) -> None:
    emu = JourneyEmulator(max_recorded_requests=3, max_recorded_bodies=1)
    await emu.start()
    try:
        headers = await bearer(http, emu)
        for index in range(5):
            await post_bulk(http, emu, {"entities": [target(f"t{index}")]}, headers)
        records = emu.requests
        assert len(records) == 3
        assert [r.body is None for r in records] == [True, True, False]
        assert records[-1].entity_ids == ["t4"]
        assert all(r.entity_count == 1 for r in records)
    finally:
        await emu.stop()
