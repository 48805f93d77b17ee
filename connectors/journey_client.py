"""HTTP client for the Journey action-targets bulk API: OAuth2 client credentials, one POST.

It classifies every outcome so the sink can decide what to do: success (with per-target
results), a failure worth retrying (408, 429, 5xx, transport errors, timeouts; with the
server's ``Retry-After`` when given), a rejected request (other 4xx: retrying cannot help),
or a 2xx response that does not match the bulk result model.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
from pydantic import ValidationError

from connectors.bulk_models import BulkActionTargetsResponse, TokenResponse
from streams.config import Settings

RETRIABLE_STATUSES = frozenset({408, 429}) | frozenset(range(500, 600))


@dataclass(frozen=True)
class Delivered:
    """The endpoint answered 2xx with a valid bulk result."""

    response: BulkActionTargetsResponse


@dataclass(frozen=True)
class RetriableFailure:
    """Transport error, timeout, 408/429/5xx: try again later."""

    reason: str
    retry_after_s: float | None = None


@dataclass(frozen=True)
class RequestRejected:
    """A 4xx other than 408/429: the request itself is wrong; resending it cannot succeed."""

    status: int
    reason: str


@dataclass(frozen=True)
class InvalidResponse:
    """2xx whose body does not match the bulk result model."""

    reason: str


Outcome = Delivered | RetriableFailure | RequestRejected | InvalidResponse


class TokenError(RuntimeError):
    """The authorization server refused the client credentials."""


def _retry_after(headers: Any) -> float | None:
    value = headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


class JourneyClient:
    """Posts bulk upserts with a cached OAuth2 token, renewed before expiry and on 401."""

    def __init__(self, settings: Settings, session: aiohttp.ClientSession):
        self.settings = settings
        self.session = session
        self._token: str | None = None
        self._token_expires_at = 0.0
        self._token_lock = asyncio.Lock()
        sink = settings.sink
        self._request_options: dict[str, Any] = {
            "proxy": sink.proxy_url,
            "ssl": None if sink.verify_tls else False,
            "timeout": aiohttp.ClientTimeout(total=sink.request_timeout_s),
        }

    async def _fetch_token(self) -> None:
        sink = self.settings.sink
        async with self.session.post(
            self.settings.base_auth_url,
            data={"grant_type": "client_credentials"},
            auth=aiohttp.BasicAuth(sink.client_id, sink.client_secret.get_secret_value()),
            **self._request_options,
        ) as response:
            if response.status != 200:
                raise TokenError(f"token request answered {response.status}")
            text = await response.text()
        try:
            token = TokenResponse.model_validate_json(text)
        except ValidationError as exc:
            raise TokenError(f"token response is not a token: {text[:200]!r}") from exc
        self._token = token.access_token
        # Renew a little early so a request never leaves with a token about to expire.
        self._token_expires_at = time.monotonic() + token.expires_in * 0.9

    async def token(self, renew: bool = False) -> str:
        """A valid access token, fetched when missing, expiring or ``renew`` is asked."""
        async with self._token_lock:
            if renew or self._token is None or time.monotonic() >= self._token_expires_at:
                await self._fetch_token()
            assert self._token is not None
            return self._token

    async def post_bulk(self, entities: list[dict[str, Any]]) -> Outcome:
        """One bulk upsert; a 401 renews the token and retries once."""
        body = {"entities": entities}
        for attempt in (1, 2):
            try:
                token = await self.token(renew=attempt == 2)
                async with self.session.post(
                    self.settings.bulk_url, json=body,
                    headers={"Authorization": f"Bearer {token}"}, **self._request_options,
                ) as response:
                    status = response.status
                    text = await response.text()
                    retry_after = _retry_after(response.headers)
            except TokenError as exc:
                return RetriableFailure(f"authorization failed: {exc}")
            except (aiohttp.ClientError, TimeoutError) as exc:
                return RetriableFailure(f"transport error: {type(exc).__name__}: {exc}".rstrip(": "))
            if status == 401 and attempt == 1:
                continue
            return self._classify(status, text, retry_after)
        raise AssertionError("unreachable")

    @staticmethod
    def _classify(status: int, text: str, retry_after: float | None) -> Outcome:
        if status in RETRIABLE_STATUSES:
            return RetriableFailure(f"HTTP {status}", retry_after)
        if status == 401:
            return RetriableFailure("HTTP 401 after token renewal")
        if not 200 <= status < 300:
            return RequestRejected(status, f"HTTP {status}: {text[:300]}")
        try:
            return Delivered(BulkActionTargetsResponse.model_validate_json(text))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            return InvalidResponse(f"response does not match the bulk result model: {where}: {first['msg']}")
