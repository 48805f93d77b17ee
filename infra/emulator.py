"""A local, honest stand-in for the Genesys Cloud Journey API (``pacing emulator``).

Genesys Cloud cannot be reached from a developer machine or CI, so the sink talks to this
instead: ``make run`` points ``base_auth_url``/``base_service_url`` at it and the tests use it as
the real HTTP peer. It is honest in the ways that matter to the sink — OAuth2 client credentials
with expiring tokens, every entity validated against :mod:`connectors.bulk_models`, the Genesys
bulk-result shape, 429 with ``Retry-After`` above a rate limit — and it can misbehave on demand.

Endpoints
---------
``POST /oauth/token``
    Client credentials: form ``grant_type=client_credentials``; id/secret by HTTP Basic or the
    form fields ``client_id``/``client_secret``. Wrong credentials: 401 ``invalid_client``.
``POST /api/v2/journey/actiontargets/bulk``
    Needs ``Authorization: Bearer <token>`` (401 otherwise) and ``Content-Type:
    application/json`` (415). A body that is not JSON or not ``{"entities": [1..10,000 items]}``
    is a 400 ``bad.request``. Otherwise 200 with one result per entity: invalid entities fail
    alone with ``{"status": 400, "code": "invalid.value"}``, valid ones are upserted by ``id``.
``GET|POST|DELETE /emulator/faults``
    Read, replace or clear the injected faults (fields: :class:`FaultSettings`).
``GET|DELETE /emulator/requests``
    The recorded bulk requests (summaries; ``?limit=N`` for the latest N) / forget them.
``GET /emulator/targets``, ``GET /emulator/targets/{id}``
    The store: id → latest accepted entity.
``GET /emulator/health``
    ``{"status": "ok"}`` once the server listens (for start-up scripts).

Order of checks on a bulk request: bearer token, content type, rate limit, then the injected
fault (delay, body size, then status), then the body. ``JourneyEmulator.start(ssl_context=…)``
serves it all over HTTPS.
"""

from __future__ import annotations

import asyncio
import binascii
import json
import logging
import math
import secrets
import ssl
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

from aiohttp import BasicAuth, web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from connectors.bulk_models import (
    MAX_BULK_ENTITIES,
    ActionTarget,
    BulkActionTargetsResponse,
    BulkError,
    BulkResult,
    EnrichedActionTarget,
    TokenResponse,
)
from schemas import describe_validation_error

logger = logging.getLogger(__name__)

DEFAULT_CLIENT_ID = "pacing"
DEFAULT_CLIENT_SECRET = "pacing-secret"
BULK_PATH = "/api/v2/journey/actiontargets/bulk"
TARGET_ERROR_STATUS = 500
"""Status of an injected per-target error: the entity was valid, the server failed on it."""
TARGET_ERROR_CODE = "target.error"
MAX_BODY_BYTES = 64 * 1024 * 1024
"""10,000 entities with generous userData fit well below this; aiohttp's 1 MiB default does not."""

_STATUS_CODES = {
    400: "bad.request",
    401: "bad.credentials",
    403: "forbidden",
    404: "not.found",
    408: "request.timeout",
    413: "request.entity.too.large",
    415: "unsupported.media.type",
    429: "too.many.requests",
    500: "internal.server.error",
    502: "bad.gateway",
    503: "service.unavailable",
    504: "gateway.timeout",
}


class FaultSettings(BaseModel):
    """What the emulator does wrong, switched at run time (Python or ``POST /emulator/faults``).

    All fields are optional; an empty object means "behave". Applies to bulk requests only, after
    the token and rate-limit checks, so an injected fault is always what the sink sees.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    status: int | None = Field(None, ge=400, le=599, description="answer every bulk request so")
    retry_after: Annotated[int, Field(ge=0)] | str | None = Field(
        None, description="Retry-After with `status`: seconds, or verbatim text such as an HTTP date"
    )
    delay_s: float = Field(0.0, ge=0, description="sleep before answering (timeouts)")
    fail_target_ids: list[str] = Field(
        default_factory=list,
        description=f"these ids fail alone: {TARGET_ERROR_STATUS} {TARGET_ERROR_CODE}",
    )
    malformed_response: bool = Field(False, description="200 with a body that fails the model")
    max_body_bytes: int | None = Field(None, ge=0, description="413 for a request body larger than this")
    remaining: int | None = Field(None, ge=1, description="only the next N bulk requests")

    @property
    def active(self) -> bool:
        """Whether any misbehaviour is switched on."""
        return bool(
            self.status or self.delay_s or self.fail_target_ids or self.malformed_response
            or self.max_body_bytes is not None
        )

    def describe(self) -> str:
        """A short human note for the request log, e.g. ``fault=503,delay=2s``."""
        parts = []
        if self.status:
            parts.append(str(self.status))
        if self.delay_s:
            parts.append(f"delay={self.delay_s:g}s")
        if self.fail_target_ids:
            parts.append(f"fail_ids={len(self.fail_target_ids)}")
        if self.malformed_response:
            parts.append("malformed")
        if self.max_body_bytes is not None:
            parts.append(f"max_body={self.max_body_bytes}")
        return "fault=" + ",".join(parts)


class FaultControl:
    """The current fault, with a countdown so a fault can last for N bulk requests only."""

    def __init__(self) -> None:
        self._settings = FaultSettings()

    @property
    def current(self) -> FaultSettings:
        """The settings in force now (``remaining`` shows what is left of the countdown)."""
        return self._settings

    def set(self, **fields: Any) -> FaultSettings:
        """Replace the fault with these fields (unspecified ones reset); validates them."""
        self._settings = FaultSettings(**fields)
        return self._settings

    def clear(self) -> None:
        """Behave again."""
        self._settings = FaultSettings()

    def take(self) -> FaultSettings | None:
        """The fault for one bulk request, counting it against ``remaining``; None if none."""
        settings = self._settings
        if not settings.active:
            return None
        if settings.remaining is not None:
            left = settings.remaining - 1
            self._settings = (
                settings.model_copy(update={"remaining": left}) if left else FaultSettings()
            )
        return settings


@dataclass
class RecordedRequest:
    """One bulk request as received, for inspection by tests and people.

    ``body`` (the parsed JSON, or the raw text if it was not JSON), ``entity_ids`` and
    ``response`` are kept only for the most recent requests; older records keep the counts.
    """

    received_at: float
    status: int
    entity_count: int
    error_count: int
    entity_ids: list[str] | None
    body: Any
    response: Any
    fault: str | None = None
    details_dropped: bool = False

    def summary(self) -> dict[str, Any]:
        """The JSON shape of ``GET /emulator/requests`` (no bodies)."""
        return {
            "time": datetime.fromtimestamp(self.received_at, UTC).isoformat(),
            "status": self.status,
            "entityCount": self.entity_count,
            "errorCount": self.error_count,
            "entityIds": self.entity_ids,
            "fault": self.fault,
        }

    def drop_details(self) -> None:
        """Forget the bulky parts so a long run stays bounded in memory."""
        self.body = self.response = self.entity_ids = None
        self.details_dropped = True


@dataclass
class _Outcome:
    """What the bulk handler answered, gathered for the record and the log line."""

    status: int
    payload: Any
    error_count: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    raw_text: str | None = None


class _Envelope(BaseModel):
    """The request's outer shape; the entities are validated one by one afterwards."""

    model_config = ConfigDict(extra="forbid")

    entities: list[Any] = Field(min_length=1, max_length=MAX_BULK_ENTITIES)


def genesys_error(status: int, message: str, code: str | None = None) -> dict[str, Any]:
    """A Genesys-style error body: ``{"status", "code", "message"}``."""
    code = code or _STATUS_CODES.get(status, "error")
    return {"status": status, "code": code, "message": message}


def _error_response(status: int, message: str, headers: dict[str, str] | None = None) -> _Outcome:
    return _Outcome(status=status, payload=genesys_error(status, message), headers=headers or {})


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JourneyEmulator:
    """The emulator as an object: start it in-process (tests) or via :func:`run_emulator`.

    State lives in memory: issued tokens, the target store (id → latest accepted entity), a
    bounded record of bulk requests, and the fault switch :attr:`faults`. ``clock`` (seconds,
    default :func:`time.monotonic`) measures token lifetimes and the rate-limit window, so tests
    can step time instead of sleeping through it.
    """

    def __init__(
        self,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        *,
        token_ttl_s: float = 3600.0,
        rate_limit_per_s: int | None = None,
        max_recorded_requests: int = 10_000,
        max_recorded_bodies: int = 100,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if token_ttl_s <= 0:
            raise ValueError("token_ttl_s must be positive")
        if rate_limit_per_s is not None and rate_limit_per_s < 1:
            raise ValueError("rate_limit_per_s must be at least 1 (or None for no limit)")
        self._client_id = client_id
        self._client_secret = client_secret
        self.token_ttl_s = token_ttl_s
        self.rate_limit_per_s = rate_limit_per_s
        self._clock = clock
        self.faults = FaultControl()
        self._tokens: dict[str, float] = {}
        self._admitted: deque[float] = deque()
        self._targets: dict[str, EnrichedActionTarget] = {}
        self._requests: deque[RecordedRequest] = deque(maxlen=max_recorded_requests)
        self._max_bodies = max_recorded_bodies
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None
        #: Observation hook (benchmarks): called with each entity as a bulk request stores it.
        self.on_stored: Callable[[EnrichedActionTarget], None] | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def make_app(self) -> web.Application:
        """The aiohttp application serving this emulator's state."""
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.add_routes(
            [
                web.post("/oauth/token", self._handle_token),
                web.post(BULK_PATH, self._handle_bulk),
                web.get("/emulator/faults", self._handle_get_faults),
                web.post("/emulator/faults", self._handle_set_faults),
                web.delete("/emulator/faults", self._handle_clear_faults),
                web.get("/emulator/requests", self._handle_get_requests),
                web.delete("/emulator/requests", self._handle_clear_requests),
                web.get("/emulator/targets", self._handle_get_targets),
                web.get("/emulator/targets/{id}", self._handle_get_target),
                web.get("/emulator/health", self._handle_health),
            ]
        )
        return app

    async def start(
        self, host: str = "127.0.0.1", port: int = 0, *, ssl_context: ssl.SSLContext | None = None
    ) -> str:
        """Listen on host:port (0 picks a free port); returns the base URL ``http(s)://host:port``.

        With ``ssl_context`` (a server context holding the certificate) it serves HTTPS.
        """
        if self._runner is not None:
            raise RuntimeError("emulator already started")
        runner = web.AppRunner(self.make_app(), access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        bound_host, bound_port = runner.addresses[0][:2]
        url_host = f"[{bound_host}]" if ":" in bound_host else bound_host
        scheme = "https" if ssl_context is not None else "http"
        self._base_url = f"{scheme}://{url_host}:{bound_port}"
        return self._base_url

    async def stop(self) -> None:
        """Stop listening; state (store, record) stays readable."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    @property
    def base_url(self) -> str:
        """``http://host:port`` of the running emulator."""
        if self._base_url is None:
            raise RuntimeError("emulator not started")
        return self._base_url

    @property
    def base_auth_url(self) -> str:
        """The value for the ``base_auth_url`` option: ``…/oauth/token``."""
        return f"{self.base_url}/oauth/token"

    @property
    def base_service_url(self) -> str:
        """The value for the ``base_service_url`` option: ``…/api/``."""
        return f"{self.base_url}/api/"

    # -- inspection from Python --------------------------------------------------------------

    @property
    def targets(self) -> dict[str, EnrichedActionTarget]:
        """The store: id → latest accepted entity (a copy)."""
        return dict(self._targets)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Recorded bulk requests, oldest first (a copy of the bounded history)."""
        return list(self._requests)

    def clear_requests(self) -> None:
        """Forget the recorded requests."""
        self._requests.clear()

    def revoke_tokens(self) -> None:
        """Invalidate every issued token, as a credential rotation would (next call gets 401)."""
        self._tokens.clear()

    # -- OAuth -------------------------------------------------------------------------------

    async def _handle_token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("grant_type") != "client_credentials":
            return _oauth_error(400, "unsupported_grant_type", "only client_credentials")
        client_id, client_secret = _client_credentials(request, form)
        if not self._credentials_match(client_id, client_secret):
            logger.info("emulator token: 401 rejected client %r", client_id)
            return _oauth_error(401, "invalid_client", "client authentication failed")
        token = self._issue_token()
        body = TokenResponse(access_token=token, expires_in=int(self.token_ttl_s))
        return web.json_response(
            body.model_dump(), headers={"Cache-Control": "no-store", "Pragma": "no-cache"}
        )

    def _credentials_match(self, client_id: str | None, client_secret: str | None) -> bool:
        if client_id is None or client_secret is None:
            return False
        id_ok = secrets.compare_digest(client_id.encode(), self._client_id.encode())
        secret_ok = secrets.compare_digest(client_secret.encode(), self._client_secret.encode())
        return id_ok and secret_ok

    def _issue_token(self) -> str:
        now = self._clock()
        self._tokens = {tok: exp for tok, exp in self._tokens.items() if exp > now}
        token = secrets.token_urlsafe(32)
        self._tokens[token] = now + self.token_ttl_s
        return token

    def _token_problem(self, request: web.Request) -> str | None:
        """Why the request's bearer token is not acceptable, or None if it is."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return "Authorization: Bearer <token> required"
        expires = self._tokens.get(token.strip())
        if expires is None:
            return "unknown token"
        if expires <= self._clock():
            return "token expired"
        return None

    # -- rate limit --------------------------------------------------------------------------

    def _rate_limited(self) -> int | None:
        """Seconds to wait if this request exceeds the per-second limit, else None (admitted)."""
        if self.rate_limit_per_s is None:
            return None
        now = self._clock()
        while self._admitted and self._admitted[0] <= now - 1.0:
            self._admitted.popleft()
        if len(self._admitted) >= self.rate_limit_per_s:
            return max(1, math.ceil(self._admitted[0] + 1.0 - now))
        self._admitted.append(now)
        return None

    # -- the bulk endpoint -------------------------------------------------------------------

    async def _handle_bulk(self, request: web.Request) -> web.Response:
        started = time.monotonic()
        received_at = time.time()
        body = await request.read()
        raw = body.decode("utf-8", errors="replace")
        fault: FaultSettings | None = None
        outcome = self._gate(request)
        if outcome is None:
            fault = self.faults.take()
            outcome = await self._faulted(fault, len(body)) if fault else None
        parsed = _parse_json(raw)
        if outcome is None:
            outcome = self._process(parsed, fault)
        self._record(received_at, raw, parsed, outcome, fault)
        _log_bulk(outcome, _entity_count(parsed), fault, time.monotonic() - started)
        if outcome.raw_text is not None:
            return web.Response(
                status=outcome.status, text=outcome.raw_text, content_type="application/json"
            )
        return web.json_response(outcome.payload, status=outcome.status, headers=outcome.headers)

    def _gate(self, request: web.Request) -> _Outcome | None:
        """Token, content type and rate limit; an outcome here ends the request."""
        problem = self._token_problem(request)
        if problem:
            return _error_response(401, problem, {"WWW-Authenticate": "Bearer"})
        if request.content_type != "application/json":
            return _error_response(
                415, f"Content-Type must be application/json, got {request.content_type!r}"
            )
        wait = self._rate_limited()
        if wait is not None:
            message = (
                f"Rate limit exceeded the maximum [{self.rate_limit_per_s}] requests"
                " within [1] seconds"
            )
            return _error_response(429, message, {"Retry-After": str(wait)})
        return None

    async def _faulted(self, fault: FaultSettings, body_bytes: int) -> _Outcome | None:
        """Apply the delay, the body-size limit and the status fault; None lets the request be processed."""
        if fault.delay_s:
            await asyncio.sleep(fault.delay_s)
        if fault.max_body_bytes is not None and body_bytes > fault.max_body_bytes:
            return _error_response(413, f"request body of {body_bytes} bytes exceeds {fault.max_body_bytes}")
        if fault.status is None:
            return None
        headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
        return _error_response(fault.status, f"injected fault: HTTP {fault.status}", headers)

    def _process(self, parsed: Any, fault: FaultSettings | None) -> _Outcome:
        """Validate the envelope, then each entity alone; upsert the valid ones."""
        if parsed is _NOT_JSON:
            return _error_response(400, "The request body is not valid JSON")
        try:
            envelope = _Envelope.model_validate(parsed)
        except ValidationError as exc:
            return _error_response(400, describe_validation_error(exc, every=True))
        fail_ids = set(fault.fail_target_ids) if fault else set()
        results = [self._upsert_one(item, fail_ids) for item in envelope.entities]
        error_indexes = [index for index, result in enumerate(results) if not result.success]
        response = BulkActionTargetsResponse(
            results=results, errorCount=len(error_indexes), errorIndexes=error_indexes
        )
        outcome = _Outcome(
            status=200,
            payload=response.model_dump(mode="json", exclude_none=True),
            error_count=len(error_indexes),
        )
        if fault and fault.malformed_response:
            outcome.raw_text = _MALFORMED_BODY
        return outcome

    def _upsert_one(self, item: Any, fail_ids: set[str]) -> BulkResult:
        item_id = item.get("id") if isinstance(item, dict) else None
        item_id = item_id if isinstance(item_id, str) else ""
        try:
            target = ActionTarget.model_validate(item)
        except ValidationError as exc:
            message = describe_validation_error(exc, every=True)
            error = BulkError(status=400, code="invalid.value", message=message)
            return BulkResult(id=item_id, success=False, error=error)
        if target.id in fail_ids:
            message = f"injected failure for action target {target.id}"
            error = BulkError(status=TARGET_ERROR_STATUS, code=TARGET_ERROR_CODE, message=message)
            return BulkResult(id=target.id, success=False, error=error)
        stored = self._store(target)
        return BulkResult(id=target.id, success=True, entity=stored)

    def _store(self, target: ActionTarget) -> EnrichedActionTarget:
        now = _now_iso()
        previous = self._targets.get(target.id)
        stored = EnrichedActionTarget(
            **target.model_dump(),
            selfUri=f"/api/v2/journey/actiontargets/{target.id}",
            createdDate=previous.createdDate if previous else now,
            modifiedDate=now,
        )
        self._targets[target.id] = stored
        if self.on_stored is not None:
            self.on_stored(stored)
        return stored

    # -- recording ---------------------------------------------------------------------------

    def _record(
        self,
        received_at: float,
        raw: str,
        parsed: Any,
        outcome: _Outcome,
        fault: FaultSettings | None,
    ) -> None:
        entity_ids = _entity_ids(parsed)
        record = RecordedRequest(
            received_at=received_at,
            status=outcome.status,
            entity_count=_entity_count(parsed),
            error_count=outcome.error_count,
            entity_ids=entity_ids,
            body=raw if parsed is _NOT_JSON else parsed,
            response=outcome.raw_text if outcome.raw_text is not None else outcome.payload,
            fault=fault.describe() if fault else None,
        )
        self._requests.append(record)
        if len(self._requests) > self._max_bodies:
            self._requests[-self._max_bodies - 1].drop_details()

    # -- control and inspection over HTTP ----------------------------------------------------

    async def _handle_get_faults(self, request: web.Request) -> web.Response:
        return web.json_response(self.faults.current.model_dump())

    async def _handle_set_faults(self, request: web.Request) -> web.Response:
        try:
            fields = await request.json()
        except ValueError:
            return web.json_response(genesys_error(400, "body is not JSON"), status=400)
        if not isinstance(fields, dict):
            return web.json_response(genesys_error(400, "body must be a JSON object"), status=400)
        try:
            settings = self.faults.set(**fields)
        except ValidationError as exc:
            message = describe_validation_error(exc, every=True)
            return web.json_response(genesys_error(400, message), status=400)
        logger.info("emulator faults set: %s", settings.model_dump(exclude_defaults=True))
        return web.json_response(settings.model_dump())

    async def _handle_clear_faults(self, request: web.Request) -> web.Response:
        self.faults.clear()
        logger.info("emulator faults cleared")
        return web.json_response(self.faults.current.model_dump())

    async def _handle_get_requests(self, request: web.Request) -> web.Response:
        records = list(self._requests)
        limit = request.query.get("limit")
        if limit is not None:
            if not limit.isdigit():
                return web.json_response(genesys_error(400, "limit must be a number"), status=400)
            records = records[-int(limit) :] if int(limit) else []
        return web.json_response([record.summary() for record in records])

    async def _handle_clear_requests(self, request: web.Request) -> web.Response:
        self.clear_requests()
        return web.json_response({"cleared": True})

    async def _handle_get_targets(self, request: web.Request) -> web.Response:
        return web.json_response(
            {key: target.model_dump(mode="json") for key, target in self._targets.items()}
        )

    async def _handle_get_target(self, request: web.Request) -> web.Response:
        target_id = request.match_info["id"]
        target = self._targets.get(target_id)
        if target is None:
            message = f"action target {target_id} not found"
            return web.json_response(genesys_error(404, message), status=404)
        return web.json_response(target.model_dump(mode="json"))

    async def _handle_health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})


# -- helpers ----------------------------------------------------------------------------------

_NOT_JSON = object()
_MALFORMED_BODY = '{"results": "not-a-list", "errorCount": "several"}'
"""Valid JSON, wrong shape: what a broken proxy or API change would hand the sink."""


def _parse_json(raw: str) -> Any:
    """The parsed body, or ``_NOT_JSON``; NaN/Infinity are refused, as strict JSON parsers do."""
    try:
        return json.loads(raw, parse_constant=_refuse_constant)
    except ValueError:
        return _NOT_JSON


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _entities(parsed: Any) -> list[Any] | None:
    if isinstance(parsed, dict) and isinstance(parsed.get("entities"), list):
        return parsed["entities"]
    return None


def _entity_count(parsed: Any) -> int:
    entities = _entities(parsed)
    return len(entities) if entities is not None else 0


def _entity_ids(parsed: Any) -> list[str]:
    entities = _entities(parsed) or []
    ids = (item.get("id") for item in entities if isinstance(item, dict))
    return [item_id for item_id in ids if isinstance(item_id, str)]


def _client_credentials(request: web.Request, form: Any) -> tuple[str | None, str | None]:
    """Client id and secret from HTTP Basic auth, else from the form fields."""
    header = request.headers.get("Authorization")
    if header and header.lower().startswith("basic "):
        try:
            auth = BasicAuth.decode(header)
        except (ValueError, binascii.Error):
            return None, None
        return auth.login, auth.password
    client_id, client_secret = form.get("client_id"), form.get("client_secret")
    return (
        client_id if isinstance(client_id, str) else None,
        client_secret if isinstance(client_secret, str) else None,
    )


def _oauth_error(status: int, error: str, description: str) -> web.Response:
    """An RFC 6749 §5.2 error, the shape Genesys Cloud's login service answers."""
    headers = {"WWW-Authenticate": "Basic"} if status == 401 else {}
    return web.json_response(
        {"error": error, "error_description": description}, status=status, headers=headers
    )


def _log_bulk(
    outcome: _Outcome, entity_count: int, fault: FaultSettings | None, elapsed_s: float
) -> None:
    note = f" {fault.describe()}" if fault else ""
    if outcome.status == 200:
        detail = f"errors={outcome.error_count}"
    else:
        detail = outcome.payload.get("message", "") if isinstance(outcome.payload, dict) else ""
    logger.info(
        "emulator bulk: %d entities=%d %s%s (%.0f ms)",
        outcome.status, entity_count, detail, note, elapsed_s * 1000,
    )


async def run_emulator(
    host: str,
    port: int,
    client_id: str = DEFAULT_CLIENT_ID,
    client_secret: str = DEFAULT_CLIENT_SECRET,
    *,
    token_ttl_s: float = 3600.0,
    rate_limit_per_s: int | None = None,
) -> None:
    """Serve the emulator on host:port until cancelled (``pacing emulator``)."""
    emulator = JourneyEmulator(
        client_id, client_secret, token_ttl_s=token_ttl_s, rate_limit_per_s=rate_limit_per_s
    )
    await emulator.start(host, port)
    logger.info(
        "Journey API emulator listening: base_auth_url=%s base_service_url=%s",
        emulator.base_auth_url, emulator.base_service_url,
    )
    try:
        await asyncio.Event().wait()
    finally:
        await emulator.stop()


__all__ = [
    "BULK_PATH",
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "TARGET_ERROR_CODE",
    "TARGET_ERROR_STATUS",
    "FaultControl",
    "FaultSettings",
    "JourneyEmulator",
    "RecordedRequest",
    "genesys_error",
    "run_emulator",
]
