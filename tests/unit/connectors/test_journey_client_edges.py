"""JourneyClient against a scripted local HTTP server: the answers the emulator does not give.

A real aiohttp server on a local socket answers the token and bulk requests as each test tells
it (a token endpoint that fails or hands out garbage, a proxy's HTML page with 200, a body cut
short); the client's own session is not touched. The emulator-based tests are in
``test_journey_client.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from connectors.journey_client import (
    Delivered,
    InvalidResponse,
    JourneyClient,
    OperatorError,
    RetriableFailure,
)
from streams.runtime.config import load_settings

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
GOOD_RESULT = {"results": [{"id": "vq-1", "success": True}], "errorCount": 0, "errorIndexes": []}


class Scripted:
    """The server's token and bulk handlers (replaceable per test) and what it received."""

    def __init__(self) -> None:
        self.token_requests = 0
        self.bulk_auth: list[str] = []
        self.token: Handler = self.good_token
        self.bulk: Handler = self.good_bulk

    async def good_token(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"access_token": f"t{self.token_requests}", "expires_in": 3600})

    async def good_bulk(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(GOOD_RESULT)

    async def _token(self, request: web.Request) -> web.StreamResponse:
        self.token_requests += 1
        return await self.token(request)

    async def _bulk(self, request: web.Request) -> web.StreamResponse:
        self.bulk_auth.append(request.headers.get("Authorization", ""))
        return await self.bulk(request)

    def app(self) -> web.Application:
        app = web.Application()
        app.add_routes([web.post("/oauth/token", self._token),
                        web.post("/api/v2/journey/actiontargets/bulk", self._bulk)])
        return app


@pytest.fixture
async def server() -> AsyncIterator[tuple[Scripted, str]]:
    scripted = Scripted()
    test_server = TestServer(scripted.app(), host="127.0.0.1")
    await test_server.start_server()
    yield scripted, str(test_server.make_url("")).rstrip("/")
    await test_server.close()


def client(base: str, http: aiohttp.ClientSession, **sink: Any) -> JourneyClient:
    settings = load_settings(base_auth_url=f"{base}/oauth/token", base_service_url=f"{base}/api/",
                             sink={"request_timeout_s": 2.0, **sink})
    return JourneyClient(settings.sink, http, auth_url=settings.base_auth_url, bulk_url=settings.bulk_url)


ENTITY = [{"id": "vq-1"}]


async def test_the_token_is_fetched_once_and_sent_as_a_bearer(
        server: tuple[Scripted, str], http: aiohttp.ClientSession) -> None:
    scripted, base = server
    journey = client(base, http)
    for _ in range(3):
        assert isinstance(await journey.post_bulk(ENTITY), Delivered)
    assert scripted.token_requests == 1 and scripted.bulk_auth == ["Bearer t1"] * 3


async def test_an_expired_token_is_renewed_before_the_request(
        server: tuple[Scripted, str], http: aiohttp.ClientSession) -> None:
    scripted, base = server

    async def short_lived(request: web.Request) -> web.StreamResponse:
        return web.json_response({"access_token": f"t{scripted.token_requests}", "expires_in": 0})

    scripted.token = short_lived
    journey = client(base, http)
    for _ in range(2):
        assert isinstance(await journey.post_bulk(ENTITY), Delivered)
    assert scripted.bulk_auth == ["Bearer t1", "Bearer t2"]  # no request left with an expired token


async def test_a_token_answer_that_is_not_a_token_is_retriable_and_quoted(
        server: tuple[Scripted, str], http: aiohttp.ClientSession) -> None:
    scripted, base = server

    async def garbage(request: web.Request) -> web.StreamResponse:
        return web.Response(text="<html>login page</html>", content_type="text/html")

    scripted.token = garbage
    outcome = await client(base, http).post_bulk(ENTITY)
    assert isinstance(outcome, RetriableFailure)
    assert "is not a token" in outcome.reason and "login page" in outcome.reason
    assert scripted.bulk_auth == []  # nothing was posted without a token


@pytest.mark.parametrize(("status", "kind"), [(500, RetriableFailure), (503, RetriableFailure),
                                              (429, RetriableFailure), (400, OperatorError), (403, OperatorError)])
async def test_a_token_endpoint_error_is_classified_by_its_status(
        server: tuple[Scripted, str], http: aiohttp.ClientSession, status: int, kind: type) -> None:
    scripted, base = server

    async def failing(request: web.Request) -> web.StreamResponse:
        return web.json_response({"error": "nope"}, status=status)

    scripted.token = failing
    outcome = await client(base, http).post_bulk(ENTITY)
    assert isinstance(outcome, kind) and f"HTTP {status}" in outcome.reason
    assert f"{base}/oauth/token" in outcome.reason


async def test_a_token_endpoint_that_hangs_times_out_as_retriable(
        server: tuple[Scripted, str], http: aiohttp.ClientSession) -> None:
    scripted, base = server

    async def hanging(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(2)
        return await scripted.good_token(request)

    scripted.token = hanging
    outcome = await client(base, http, request_timeout_s=0.1).post_bulk(ENTITY)
    assert isinstance(outcome, RetriableFailure)
    assert "TimeoutError" in outcome.reason and f"{base}/oauth/token" in outcome.reason


@pytest.mark.parametrize("body", ["<html>proxy says hello</html>", "", '{"results": [{"id": "vq-1"}]}',
                                  '{"results": [{"id": "vq-1", "success": tru'])
async def test_a_2xx_that_is_not_a_bulk_result_is_reported_not_delivered(
        server: tuple[Scripted, str], http: aiohttp.ClientSession, body: str) -> None:
    scripted, base = server

    async def odd(request: web.Request) -> web.StreamResponse:
        return web.Response(text=body, content_type="application/json")

    scripted.bulk = odd
    outcome = await client(base, http).post_bulk(ENTITY)
    assert isinstance(outcome, InvalidResponse), outcome
    assert outcome.reason.startswith("response does not match the bulk result model")


async def test_retry_after_of_a_429_reaches_the_caller(
        server: tuple[Scripted, str], http: aiohttp.ClientSession) -> None:
    scripted, base = server

    async def busy(request: web.Request) -> web.StreamResponse:
        return web.json_response({"message": "slow down"}, status=429, headers={"Retry-After": " 12 "})

    scripted.bulk = busy
    outcome = await client(base, http).post_bulk(ENTITY)
    assert isinstance(outcome, RetriableFailure) and outcome.retry_after_s == 12
    assert "slow down" in outcome.reason


async def test_a_connection_closed_mid_answer_is_retriable(
        server: tuple[Scripted, str], http: aiohttp.ClientSession) -> None:
    scripted, base = server

    async def cut(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=200, headers={"Content-Length": "1000"})
        await response.prepare(request)
        await response.write(b'{"results": [')
        assert request.transport is not None
        request.transport.close()
        return response

    scripted.bulk = cut
    outcome = await client(base, http).post_bulk(ENTITY)
    assert isinstance(outcome, RetriableFailure) and "transport error" in outcome.reason
