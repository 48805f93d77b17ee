"""HTTP client for the Journey action-targets bulk API: OAuth2 client credentials, one POST.

It classifies every outcome so the sink can decide what to do:

- :class:`Delivered` — 2xx with a valid bulk result (which may still report per-target errors);
- :class:`RetriableFailure` — 408, 429, 5xx, transport errors, timeouts, TLS and proxy
  failures: the endpoint may answer later (with the server's ``Retry-After`` when given);
- :class:`OperatorError` — 401 after a token renewal, 403, 404, 405 and every other status
  that says the *deployment* is wrong (URL, endpoint path, permission, proxy credentials),
  not the entities: retried too, because resending will work once an operator fixes it;
- :class:`PayloadTooLarge` — 413: the sink splits the batch;
- :class:`RequestRejected` — 400 or 422: the entities sent are invalid; resending cannot help;
- :class:`InvalidResponse` — 2xx whose body does not match the bulk result model.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
from pydantic import ValidationError
from yarl import URL

from connectors.bulk_models import BulkActionTargetsResponse, TokenResponse
from schemas import describe_validation_error
from streams.runtime.config import SinkSettings

RETRIABLE_STATUSES = frozenset({408, 429}) | frozenset(range(500, 600))
"""The endpoint is busy or failing: try again later."""
REJECTED_STATUSES = frozenset({400, 422})
"""The request's entities are invalid: the only statuses that discard what was sent."""
TOO_LARGE_STATUS = 413


@dataclass(frozen=True)
class Delivered:
    """The endpoint answered 2xx with a valid bulk result."""

    response: BulkActionTargetsResponse


@dataclass(frozen=True)
class RetriableFailure:
    """Transport error, timeout, TLS or proxy failure, 408/429/5xx: try again later."""

    reason: str
    retry_after_s: float | None = None


@dataclass(frozen=True)
class OperatorError:
    """The deployment is wrong (URL, endpoint path, permission, proxy credentials), not the entities.

    401 after a token renewal, 403, 404, 405, 407 and any other status that is neither success,
    retriable, 413 nor 400/422. The sink retries it with backoff and keeps everything: once an
    operator fixes the configuration or the permission, nothing has been lost.
    """

    status: int
    url: str
    reason: str
    retry_after_s: float | None = None


@dataclass(frozen=True)
class PayloadTooLarge:
    """413: the request body is too large for the server; a smaller batch may pass."""

    reason: str


@dataclass(frozen=True)
class RequestRejected:
    """400 or 422: the entities sent are invalid; resending them cannot succeed."""

    status: int
    reason: str


@dataclass(frozen=True)
class InvalidResponse:
    """2xx whose body does not match the bulk result model."""

    reason: str


Outcome = Delivered | RetriableFailure | OperatorError | PayloadTooLarge | RequestRejected | InvalidResponse


class TokenError(RuntimeError):
    """The authorization server did not hand out a token (``status`` None: no usable answer)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delta-seconds or an HTTP date (RFC 9110 §10.2.3).

    A date in the past means 0; an unreadable value is ignored (None). The caller caps the result.
    """
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": UTC without a claim about the local zone
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _without_credentials(url: str) -> str:
    """A URL fit for logs and alarms: user and password removed."""
    try:
        return str(URL(url).with_user(None))
    except (ValueError, TypeError):
        return "<unparseable URL>"


class JourneyClient:
    """Posts bulk upserts with a cached OAuth2 token, renewed before expiry and on 401.

    ``sink`` gives the credentials, proxy, TLS and timeout; ``auth_url`` is where tokens come
    from (``base_auth_url``), ``bulk_url`` where the upserts go (``Settings.bulk_url``).
    """

    def __init__(self, sink: SinkSettings, session: aiohttp.ClientSession, *, auth_url: str, bulk_url: str):
        self.sink = sink
        self.auth_url = auth_url
        self.bulk_url = bulk_url
        self.session = session
        self._token: str | None = None
        self._token_expires_at = 0.0
        self._token_lock = asyncio.Lock()
        self._request_options: dict[str, Any] = {
            "proxy": sink.proxy_url,
            "ssl": tls_option(sink),
            "timeout": aiohttp.ClientTimeout(total=sink.request_timeout_s),
        }
        if sink.proxy_url and sink.proxy_username is not None:
            password = sink.proxy_password.get_secret_value() if sink.proxy_password else ""
            self._request_options["proxy_headers"] = {
                "Proxy-Authorization": aiohttp.BasicAuth(sink.proxy_username, password).encode()}
        self._via = f" via proxy {_without_credentials(sink.proxy_url)}" if sink.proxy_url else ""

    async def _fetch_token(self) -> None:
        sink = self.sink
        async with self.session.post(
            self.auth_url,
            data={"grant_type": "client_credentials"},
            auth=aiohttp.BasicAuth(sink.client_id, sink.client_secret.get_secret_value()),
            **self._request_options,
        ) as response:
            if response.status != 200:
                raise TokenError(f"token request to {self.auth_url} answered HTTP {response.status}",
                                 response.status)
            text = await response.text()
        try:
            token = TokenResponse.model_validate_json(text)
        except ValidationError as exc:
            raise TokenError(f"token response from {self.auth_url} is not a token: "
                             f"{text[:200]!r}") from exc
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
        """One bulk upsert, classified; a 401 renews the token and retries once."""
        body = {"entities": entities}
        bulk_url = self.bulk_url
        for attempt in (1, 2):
            url = self.auth_url  # where a transport error came from
            try:
                token = await self.token(renew=attempt == 2)
                url = bulk_url
                async with self.session.post(
                    bulk_url, json=body, headers={"Authorization": f"Bearer {token}"}, **self._request_options,
                ) as response:
                    status = response.status
                    text = await response.text()
                    retry_after = parse_retry_after(response.headers.get("Retry-After"))
            except TokenError as exc:
                if exc.status is not None and exc.status < 500 and exc.status not in RETRIABLE_STATUSES:
                    hint = ("proxy authentication required: check sink.proxy_username/proxy_password"
                            if exc.status == 407 else "check sink.client_id/client_secret")
                    return OperatorError(exc.status, self.auth_url,
                                         f"authorization failed: {exc} ({hint})")
                return RetriableFailure(f"authorization failed: {exc}")
            except aiohttp.ClientHttpProxyError as exc:
                proxy = _without_credentials(self.sink.proxy_url or "")
                if exc.status == 407:
                    return OperatorError(407, proxy, f"HTTP 407 from proxy {proxy}: proxy authentication "
                                         "required (check sink.proxy_username/proxy_password)")
                return RetriableFailure(f"proxy {proxy} answered HTTP {exc.status} for {url}: {exc.message}")
            except (aiohttp.ClientError, TimeoutError) as exc:
                detail = f"{type(exc).__name__}: {exc}".rstrip(": ")
                return RetriableFailure(f"transport error on POST {url}{self._via}: {detail}")
            if status == 401 and attempt == 1:
                continue
            return self._classify(status, text, retry_after, bulk_url)
        raise AssertionError("unreachable")

    @staticmethod
    def _classify(status: int, text: str, retry_after: float | None, url: str) -> Outcome:
        """Which outcome an HTTP answer of the bulk endpoint is (see the module docstring)."""
        detail = f"HTTP {status} from POST {url}: {text[:300]}".rstrip(": ")
        if status in RETRIABLE_STATUSES:
            return RetriableFailure(detail, retry_after)
        if status == TOO_LARGE_STATUS:
            return PayloadTooLarge(detail)
        if status in REJECTED_STATUSES:
            return RequestRejected(status, detail)
        if status == 401:
            return OperatorError(status, url, f"{detail} (after a token renewal: do the credentials have "
                                 "the permission?)", retry_after)
        if status == 407:  # a plain-HTTP request through a proxy that wants credentials
            return OperatorError(status, url, f"{detail} (proxy authentication required: check "
                                 "sink.proxy_username/proxy_password)", retry_after)
        if not 200 <= status < 300:
            return OperatorError(status, url, f"{detail} (check base_service_url, pacingEndpoint.targetEndpoint "
                                 "and the client's permissions)", retry_after)
        try:
            return Delivered(BulkActionTargetsResponse.model_validate_json(text))
        except ValidationError as exc:
            return InvalidResponse(f"response does not match the bulk result model: {describe_validation_error(exc)}")


def tls_option(sink: SinkSettings) -> ssl.SSLContext | bool | None:
    """aiohttp's ``ssl`` argument: no verification, a context trusting ``sink.ca_file``, or the default.

    ``sink.ca_file`` names a PEM bundle of the certificate authorities to trust *instead of* the
    system's (a private CA, or a TLS-intercepting proxy's).
    """
    if not sink.verify_tls:
        return False
    if sink.ca_file:
        return ssl.create_default_context(cafile=sink.ca_file)
    return None
