"""The Pacing REST API's routes and its HTTP(S) server (:func:`run_api`, run by the worker's API process).

A light aiohttp application (aiohttp is already Faust's): handlers read the in-memory
:class:`~streams.api.directory.TargetDirectory` (a dict lookup, or a bisect for a page) and never wait
on Kafka, except a definition write, which waits for the broker's acknowledgement. Faust's own web
server stays off (``web_enabled=False``): it would add a second server and its own views for what
these few routes do. Every answer carries ``X-Pacing-Node`` (which worker answered), every error is
problem+json (:mod:`streams.api.problems`), and ``/healthz`` and ``/readyz`` are served here too so a
load balancer checks the very port it balances.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import ssl
from collections.abc import Callable
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ValidationError

from streams.api.auth import TokenBook
from streams.api.decision_feed import DecisionFeed
from streams.api.definitions import DefinitionWriter, Send
from streams.api.directory import Consolidated, DefinitionSource, TargetDirectory
from streams.api.models import MAX_ID_LEN, GroupsQuery, ListQuery
from streams.api.openapi import openapi_document
from streams.api.problems import ProblemError, field_problems, problem_middleware
from streams.runtime.config import ApiSettings, Settings
from streams.runtime.kafka import consumer_options
from streams.runtime.topics import topic_names

log = logging.getLogger(__name__)

_LIST_PARAMETERS = frozenset({"groups"})
MAX_REQUEST_LINE = 1 << 20


def encode_cursor(target_id: str) -> str:
    """The opaque cursor that continues a listing after ``target_id``."""
    return base64.urlsafe_b64encode(target_id.encode("utf-8", "surrogatepass")).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> str:
    """The target id a cursor continues after; raises :class:`ProblemError` 400 for one this API did not give."""
    try:
        padded = (cursor + "=" * (-len(cursor) % 4)).encode("ascii")
        return base64.b64decode(padded, altchars=b"-_", validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise ProblemError(400, "cursor is not one this API gave (use next_cursor of the previous page)",
                           errors=[{"field": "cursor", "reason": "not a cursor of this API"}]) from None


def parse_query(request: web.Request, model: type[BaseModel]) -> Any:
    """The query string validated by ``model``; a 400 naming each wrong parameter otherwise."""
    data: dict[str, Any] = {}
    for name in request.query:
        values = request.query.getall(name)
        if name in _LIST_PARAMETERS:
            data[name] = values
        elif len(values) > 1:
            raise ProblemError(400, f"query parameter {name!r} is given more than once",
                               errors=[{"field": name[:60], "reason": "given more than once"}])
        else:
            data[name] = values[0]
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = field_problems(exc)
        raise ProblemError(400, "; ".join(f"{p['field'][:60]}: {p['reason']}" for p in problems),
                           errors=problems) from None


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=json.dumps(body).encode(), content_type="application/json")


class PacingApi:
    """The routes of the API over one directory, one definition writer and one token book."""

    def __init__(self, api: ApiSettings, node_id: str, directory: TargetDirectory, writer: DefinitionWriter,
                 ready: Callable[[], bool] = lambda: True):
        self.settings = api
        self.node_id = node_id
        self.directory = directory
        self.writer = writer
        self.tokens = TokenBook(api.all_tokens(), api.read_requires_token)
        self.ready = ready
        self._openapi = json.dumps(openapi_document(api.read_requires_token)).encode()

    def application(self) -> web.Application:
        """The aiohttp application: routes, problem+json errors, the node header, the body limit."""
        app = web.Application(middlewares=[problem_middleware], client_max_size=self.settings.max_body_bytes)
        app.add_routes([
            web.get("/v1/targets", self.list_targets, allow_head=False),
            web.get("/v1/targets/{target_id}", self.get_target, allow_head=False),
            web.put("/v1/targets/{target_id}/definition", self.put_definition),
            web.delete("/v1/targets/{target_id}/definition", self.delete_definition),
            web.get("/v1/pacing/reactiveState", self.reactive_state, allow_head=False),
            web.get("/v1/pacing/channelCapacity", self.channel_capacity, allow_head=False),
            web.get("/v1/openapi.json", self.openapi, allow_head=False),
            web.get("/healthz", self.healthz, allow_head=False),
            web.get("/readyz", self.readyz, allow_head=False),
        ])
        app.on_response_prepare.append(self._stamp)
        return app

    async def _stamp(self, _: web.Request, response: web.StreamResponse) -> None:
        response.headers["X-Pacing-Node"] = self.node_id

    def _read(self, request: web.Request) -> None:
        self.tokens.check(request.headers.get("Authorization"), write=False)

    # -- reads ---------------------------------------------------------------------------------

    async def get_target(self, request: web.Request) -> web.Response:
        """``GET /v1/targets/{target_id}``."""
        self._read(request)
        target_id = request.match_info["target_id"]
        view = self.directory.view(target_id) if len(target_id) <= MAX_ID_LEN else None
        if view is None:
            raise ProblemError(404, "no decision and no definition for this target")
        return _json(view)

    async def list_targets(self, request: web.Request) -> web.Response:
        """``GET /v1/targets?prefix=&limit=&cursor=``."""
        self._read(request)
        query: ListQuery = parse_query(request, ListQuery)
        after = None if query.cursor is None else decode_cursor(query.cursor)
        items, last = self.directory.page(query.prefix, after, query.limit)
        return _json({"items": items, "next_cursor": None if last is None else encode_cursor(last)})

    async def reactive_state(self, request: web.Request) -> web.Response:
        """``GET /v1/pacing/reactiveState?channel=&groups=``."""
        return self._consolidated(request, "reactiveState", lambda result: result.reactive_state)

    async def channel_capacity(self, request: web.Request) -> web.Response:
        """``GET /v1/pacing/channelCapacity?channel=&groups=``."""
        return self._consolidated(request, "channelCapacity", lambda result: result.capacity)

    def _consolidated(self, request: web.Request, name: str, figure: Callable[[Consolidated], Any]) -> web.Response:
        """One of GWE's figures over the channel's groups (:meth:`TargetDirectory.consolidated`)."""
        self._read(request)
        query: GroupsQuery = parse_query(request, GroupsQuery)
        result = self.directory.consolidated(query.channel.value, query.groups)
        return _json({name: figure(result), "channel": query.channel.value,
                      "groupsCounted": result.groups_counted,
                      "groupsWithoutDecision": result.groups_without_decision})

    async def openapi(self, _: web.Request) -> web.Response:
        """``GET /v1/openapi.json``: the contract."""
        return web.Response(body=self._openapi, content_type="application/json")

    async def healthz(self, _: web.Request) -> web.Response:
        """The process answers."""
        return _json({"status": "ok"})

    async def readyz(self, _: web.Request) -> web.Response:
        """Ready to answer: the node is ready and has read every decision and definition."""
        ready = self.ready()
        return _json({"ready": ready}, 200 if ready else 503)

    # -- writes --------------------------------------------------------------------------------

    async def put_definition(self, request: web.Request) -> web.Response:
        """``PUT /v1/targets/{target_id}/definition``: 202 once Kafka acknowledged it."""
        self.tokens.check(request.headers.get("Authorization"), write=True)
        if request.content_length is not None and request.content_length > self.settings.max_body_bytes:
            raise ProblemError(413, f"the request body is larger than {self.settings.max_body_bytes} bytes")
        body = await request.read()
        return _json(await self.writer.put(request.match_info["target_id"], body), 202)

    async def delete_definition(self, request: web.Request) -> web.Response:
        """``DELETE /v1/targets/{target_id}/definition``: the tombstone, 202 once Kafka acknowledged it."""
        self.tokens.check(request.headers.get("Authorization"), write=True)
        target_id = request.match_info["target_id"]
        view = self.directory.view(target_id) if len(target_id) <= MAX_ID_LEN else None
        if view is None or view["definition"] is None:
            raise ProblemError(404, "no definition for this target")
        return _json(await self.writer.delete(target_id), 202)


def server_ssl_context(api: ApiSettings) -> ssl.SSLContext | None:
    """The TLS context of the API when ``api.cert_file`` is set (TLS 1.2 or newer)."""
    if not api.https:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(api.cert_file, api.key_file)
    return context


def api_url(api: ApiSettings, host: str | None = None, port: int | None = None) -> str:
    """The API's base URL (``host``: the address clients use, default the listening one)."""
    shown = host or ("127.0.0.1" if api.host in ("0.0.0.0", "::") else api.host)
    return f"{'https' if api.https else 'http'}://{shown}:{port or api.port}"


async def serve(api: PacingApi) -> web.AppRunner:
    """Listen on ``api.host:api.port`` (HTTPS with a certificate); returns the runner to clean up."""
    settings = api.settings
    # No access log (it could carry secrets in URLs). Request lines up to MAX_REQUEST_LINE: a query with
    # the most groups the document allows, each of the longest id percent-encoded, still gets a JSON answer.
    runner = web.AppRunner(api.application(), access_log=None, max_line_size=MAX_REQUEST_LINE)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.host, settings.port, ssl_context=server_ssl_context(settings)).start()
    except OSError as exc:  # the worker stops, saying which option to change
        await runner.cleanup()
        raise OSError(exc.errno, f"api.host/api.port: cannot listen on {settings.host}:{settings.port}: "
                                 f"{exc.strerror or exc}") from None
    if settings.https:
        log.info("Pacing REST API on %s", api_url(settings))
    else:
        log.warning("Pacing REST API on %s without TLS: set api.cert_file and api.key_file for HTTPS",
                    api_url(settings))
    return runner


async def run_api(settings: Settings, definitions: DefinitionSource, send: Send, ready: Callable[[], bool],
                  listening: Callable[[], None], stopping: asyncio.Event,
                  read: Callable[[], None] = lambda: None) -> None:
    """Follow ``pacing.actiontargets`` and serve the routes until ``stopping`` is set.

    The API process's main coroutine (:mod:`streams.node.api_process`). ``definitions`` is a reader of
    ``pacing.targets`` (it calls :meth:`TargetDirectory.definition_changed`); ``send`` writes a record
    and returns once Kafka acknowledged it; ``ready`` is the worker's readiness and whether the
    definitions are read; ``listening`` is called once the port listens, ``read`` once every decision
    on the topic was read. Raises what kept it from listening (an :class:`OSError` naming
    ``api.host``/``api.port``).
    """
    directory = TargetDirectory(settings.kafka.stats_partitions, definitions)
    feed = DecisionFeed(consumer_options(settings), topic_names(settings).actiontargets, directory)
    try:
        await feed.start()
        writer = DefinitionWriter(settings.tenant, topic_names(settings).targets, send, settings.worker.send_timeout_s)
        api = PacingApi(settings.api, settings.node_id, directory, writer, ready=lambda: ready() and feed.caught_up)
        runner = await serve(api)
    except BaseException:
        await feed.stop()
        raise
    listening()
    reading = asyncio.create_task(_when_read(feed, read))
    try:
        await stopping.wait()
    finally:
        reading.cancel()
        await runner.cleanup()
        await feed.stop()


async def _when_read(feed: DecisionFeed, then: Callable[[], None]) -> None:
    while not await feed.wait_caught_up_for(60.0):
        pass
    then()
