"""RFC 9457 problem details: every error of the API is ``application/problem+json`` naming what is wrong.

Handlers raise :class:`ProblemError`; :func:`problem_middleware` turns it — and aiohttp's own HTTP
errors (no such route, method not allowed, body too large) — into a problem response. Anything else
is a bug: logged with its traceback and answered 500 without internals.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import ValidationError

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

_TITLES = {400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found",
           405: "Method not allowed", 413: "Request body too large", 415: "Unsupported media type",
           422: "Definition not valid", 500: "Internal error", 503: "Service unavailable"}


class ProblemError(Exception):
    """An error answer: status, detail, and optionally the fields at fault and extra headers."""

    def __init__(self, status: int, detail: str, *, errors: list[dict[str, str]] | None = None,
                 headers: dict[str, str] | None = None, title: str | None = None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}
        self.title = title or _TITLES.get(status, "Error")


def problem_response(error: ProblemError, instance: str) -> web.Response:
    """The problem+json response of ``error`` for the request path ``instance``."""
    body: dict[str, Any] = {"type": "about:blank", "title": error.title, "status": error.status,
                            "detail": error.detail, "instance": instance}
    if error.errors:
        body["errors"] = error.errors
    return web.Response(status=error.status, body=json.dumps(body).encode(), content_type=PROBLEM_JSON,
                        headers=error.headers)


def field_problems(exc: ValidationError, where: str = "") -> list[dict[str, str]]:
    """Each pydantic error as ``{"field", "reason"}`` (``where``: a prefix such as ``query.``)."""
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = ".".join(str(part) for part in error.get("loc", ())) or "body"
        problems.append({"field": where + loc, "reason": str(error.get("msg", "invalid"))})
    return problems


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error answered as problem+json; an unexpected exception logged and answered 500."""
    try:
        return await handler(request)
    except ProblemError as error:
        return problem_response(error, request.path)
    except web.HTTPRequestEntityTooLarge as exc:
        return problem_response(ProblemError(413, f"the request body is larger than {exc.max_size} bytes"),
                                request.path)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        detail = {404: "no such resource", 405: f"{request.method} is not allowed here"}.get(exc.status, exc.reason)
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return problem_response(ProblemError(exc.status, detail, headers=headers), request.path)
    except Exception:
        log.exception("API request %s %s failed", request.method, request.path[:200])
        return problem_response(ProblemError(500, "the request failed on this worker; see its log"), request.path)
