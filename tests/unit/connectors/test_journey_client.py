"""JourneyClient's classification of every answer, against the emulator over a real socket.

Each HTTP status (real ones where the emulator or its router produces them, injected ones
otherwise), ``Retry-After`` in seconds and as an HTTP date, the token renewal on 401, a
malformed 2xx and a timeout. Plus the sink's retry delay: real full jitter with a floor.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import aiohttp
import pytest

from connectors.backoff import MAX_RETRY_AFTER_S, full_jitter_delay
from connectors.journey_client import (
    Delivered,
    InvalidResponse,
    JourneyClient,
    OperatorError,
    Outcome,
    PayloadTooLarge,
    RequestRejected,
    RetriableFailure,
    parse_retry_after,
)
from infra.broker import free_port
from infra.emulator import JourneyEmulator
from streams.runtime.config import load_settings


def entity(target_id: str) -> dict[str, Any]:
    """A valid ActionTarget body."""
    return {
        "id": target_id, "name": f"target {target_id}", "state": "active", "supportedMediaTypes": ["webchat"],
        "serviceLevel": {"percentage": 0.8, "durationMs": 20000}, "shortAbandonThreshold": 10,
        "description": "", "userData": [{"key": "allowedOffers", "value": "3"}],
    }


def client_for(emulator: JourneyEmulator, http: aiohttp.ClientSession, **overrides: Any) -> JourneyClient:
    settings = load_settings(base_auth_url=overrides.pop("base_auth_url", emulator.base_auth_url),
                             base_service_url=overrides.pop("base_service_url", emulator.base_service_url),
                             **overrides)
    return JourneyClient(settings.sink, http, auth_url=settings.base_auth_url, bulk_url=settings.bulk_url)


async def post_one(client: JourneyClient) -> Outcome:
    return await client.post_bulk([entity("vq-1")])


async def test_success_is_delivered(emulator: JourneyEmulator, http: aiohttp.ClientSession) -> None:
    outcome = await post_one(client_for(emulator, http))
    assert isinstance(outcome, Delivered) and outcome.response.results[0].success
    assert "vq-1" in emulator.targets


@pytest.mark.parametrize("status", [403, 404, 405, 409, 410, 415])
async def test_operator_error_statuses_name_status_and_url(
        emulator: JourneyEmulator, http: aiohttp.ClientSession, status: int) -> None:
    emulator.faults.set(status=status)
    client = client_for(emulator, http)
    outcome = await post_one(client)
    assert isinstance(outcome, OperatorError), outcome
    assert outcome.status == status and outcome.url == client.bulk_url
    assert f"HTTP {status}" in outcome.reason and client.bulk_url in outcome.reason


async def test_wrong_endpoint_path_is_an_operator_error(emulator: JourneyEmulator, http: aiohttp.ClientSession) -> None:
    client = client_for(emulator, http, pacingEndpoint={"targetEndpoint": "v2/journey/actiontarget/bulk"})
    outcome = await post_one(client)  # the emulator's router: no such route
    assert isinstance(outcome, OperatorError) and outcome.status == 404
    assert "actiontarget/bulk" in outcome.reason


async def test_401_renews_the_token_once_and_repeats(emulator: JourneyEmulator, http: aiohttp.ClientSession) -> None:
    client = client_for(emulator, http)
    assert isinstance(await post_one(client), Delivered)
    old_token = await client.token()
    emulator.revoke_tokens()  # a credential rotation: the cached token is now unknown (a real 401)
    outcome = await post_one(client)
    assert isinstance(outcome, Delivered)
    assert await client.token() != old_token
    assert [r.status for r in emulator.requests] == [200, 401, 200]


async def test_401_after_renewal_is_an_operator_error(emulator: JourneyEmulator, http: aiohttp.ClientSession) -> None:
    emulator.faults.set(status=401)
    client = client_for(emulator, http)
    outcome = await post_one(client)
    assert isinstance(outcome, OperatorError) and outcome.status == 401
    assert [r.status for r in emulator.requests] == [401, 401]  # one renewal, then give the verdict


async def test_wrong_client_secret_is_an_operator_error_naming_the_token_url(
        emulator: JourneyEmulator, http: aiohttp.ClientSession) -> None:
    client = client_for(emulator, http, sink={"client_secret": "wrong"})
    outcome = await post_one(client)
    assert isinstance(outcome, OperatorError) and outcome.status == 401
    assert outcome.url == emulator.base_auth_url and emulator.base_auth_url in outcome.reason
    assert emulator.requests == []


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
async def test_retriable_statuses_carry_retry_after_seconds(
        emulator: JourneyEmulator, http: aiohttp.ClientSession, status: int) -> None:
    emulator.faults.set(status=status, retry_after=7)
    outcome = await post_one(client_for(emulator, http))
    assert isinstance(outcome, RetriableFailure) and outcome.retry_after_s == 7
    assert f"HTTP {status}" in outcome.reason


async def test_retry_after_as_an_http_date(emulator: JourneyEmulator, http: aiohttp.ClientSession) -> None:
    when = datetime.now(UTC) + timedelta(seconds=120)
    emulator.faults.set(status=503, retry_after=format_datetime(when, usegmt=True))
    outcome = await post_one(client_for(emulator, http))
    assert isinstance(outcome, RetriableFailure)
    assert outcome.retry_after_s is not None and 115 <= outcome.retry_after_s <= 120


def test_parse_retry_after() -> None:
    now = datetime(2026, 11, 25, 9, 0, 0, tzinfo=UTC)
    assert parse_retry_after("30", now) == 30
    assert parse_retry_after("Wed, 25 Nov 2026 09:01:30 GMT", now) == 90
    assert parse_retry_after("Wed, 25 Nov 2026 08:00:00 GMT", now) == 0  # in the past: now
    assert parse_retry_after("Wed, 25 Nov 2026 09:00:10 -0000", now) == 10
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after("nan", now) is None
    assert parse_retry_after(None, now) is None


async def test_413_is_payload_too_large(emulator: JourneyEmulator, http: aiohttp.ClientSession) -> None:
    emulator.faults.set(max_body_bytes=100)
    outcome = await post_one(client_for(emulator, http))
    assert isinstance(outcome, PayloadTooLarge) and "413" in outcome.reason


async def test_400_and_422_reject_the_entities(emulator: JourneyEmulator, http: aiohttp.ClientSession) -> None:
    client = client_for(emulator, http)
    empty = await client.post_bulk([])  # the emulator's own 400: "entities" needs at least one item
    assert isinstance(empty, RequestRejected) and empty.status == 400
    emulator.faults.set(status=422)
    assert isinstance(outcome := await post_one(client), RequestRejected) and outcome.status == 422


async def test_malformed_2xx_is_an_invalid_response(emulator: JourneyEmulator, http: aiohttp.ClientSession) -> None:
    emulator.faults.set(malformed_response=True)
    outcome = await post_one(client_for(emulator, http))
    assert isinstance(outcome, InvalidResponse) and "results" in outcome.reason


async def test_timeout_is_retriable(emulator: JourneyEmulator, http: aiohttp.ClientSession) -> None:
    emulator.faults.set(delay_s=0.5)
    outcome = await post_one(client_for(emulator, http, sink={"request_timeout_s": 0.1}))
    assert isinstance(outcome, RetriableFailure) and "TimeoutError" in outcome.reason


async def test_nobody_listening_is_retriable_and_names_the_url(http: aiohttp.ClientSession) -> None:
    base = f"http://127.0.0.1:{free_port()}"
    client = JourneyClient(load_settings().sink, http, auth_url=f"{base}/oauth/token", bulk_url=f"{base}/api/bulk")
    outcome = await post_one(client)
    assert isinstance(outcome, RetriableFailure) and f"{base}/oauth/token" in outcome.reason


def test_full_jitter_spreads_over_the_whole_interval_with_retry_after_as_floor() -> None:
    rng = random.Random(6)
    delays = [full_jitter_delay(8.0, rng=rng) for _ in range(2000)]
    assert 0.0 <= min(delays) < 0.1 and 7.9 < max(delays) <= 8.0
    assert sum(d < 4.0 for d in delays) > 800  # equal jitter would never go below half the ceiling
    assert all(full_jitter_delay(8.0, 5.0, rng) >= 5.0 for _ in range(200))
    assert full_jitter_delay(1.0, 10_000.0, rng) == MAX_RETRY_AFTER_S
