"""The embedded HTTP server (aiohttp.web, on the App's event loop).

    GET /                                         the status page (HTML; filters, pg/sz, refresh)
    GET /healthz                                  200 {"status": "ok" | "degraded"}, no config
    GET /api/v1/sla                               EaseProbe's item shape + windows; its filters
    GET /api/v1/probes/{name}                     status, SLA per window, results, incidents
    GET /metrics                                  Prometheus exposition of the registry
    GET /badge/{name}/status.svg
    GET /badge/{name}/uptime/{24h|7d|30d|90d}.svg
    GET /badge/{name}/response-time/{24h|7d|30d}.svg

With `settings.http.token` and/or `username`/`password`, everything but /healthz and the
badges needs `Authorization: Bearer <token>` or HTTP basic auth (a browser asks for it). Bad
query parameters are a 400 with a JSON error, an unknown probe a 404 with a JSON error, and no
request ever gets a traceback. The web layer only reads: the store through StatusSource, the
metrics through the registry the App hands in.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import logging
import logging.handlers
import queue
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.typedefs import Middleware
from aiohttp.web_request import BaseRequest
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry

from probe.config.models import HTTPAccessLogSettings
from probe.config.urls import icon_origin
from probe.core.result import Result, Status, utc_iso
from probe.core.tracker import Transition
from probe.errors import StartupError
from probe.metrics import exposition
from probe.store.sla import SLAFigures
from probe.web import svg
from probe.web.data import WINDOWS, ProbeSummary, StatusSource
from probe.web.query import DEFAULT_PAGE_SIZE, BadRequest, filter_summaries
from probe.web.render import StatusPage

__all__ = ["DEFAULT_PAGE_SIZE", "BadRequest", "create_app", "filter_summaries", "start_server"]

log = logging.getLogger("probe.web")

_BADGE_RESPONSE_WINDOWS = ("24h", "7d", "30d")


@dataclass(frozen=True, slots=True)
class _State:
    source: StatusSource
    registry: CollectorRegistry | None
    healthy: Callable[[], bool]
    page: StatusPage


_STATE = web.AppKey("probe", _State)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


# --- middlewares -------------------------------------------------------------------------------


def _auth_middleware(token: str | None, basic: tuple[str, str] | None) -> Middleware:
    # An empty secret would let in anyone who sends an empty one ("Authorization: Bearer "):
    # the config refuses it, and so does the server, whoever builds it.
    if token is not None and not token.strip():
        raise ValueError("an empty bearer token protects nothing")
    if basic is not None and not (basic[0] and basic[1].strip()):
        raise ValueError("basic auth needs a user name and a non-empty password")
    bearer = None if token is None else token.encode()
    user, password = (None, None) if basic is None else (basic[0].encode(), basic[1].encode())
    # Basic makes a browser ask for the password; an API client sends the bearer token.
    challenge = 'Basic realm="probe", charset="UTF-8"' if basic else 'Bearer realm="probe"'

    def allowed(header: str) -> bool:
        scheme, _, credentials = header.strip().partition(" ")
        given = credentials.strip().encode()
        if not given:
            return False
        if scheme.lower() == "bearer" and bearer is not None:
            return hmac.compare_digest(given, bearer)
        if scheme.lower() == "basic" and user is not None and password is not None:
            try:
                decoded = base64.b64decode(given, validate=True)
            except (binascii.Error, ValueError):
                return False
            name, sep, secret = decoded.partition(b":")
            # Both compared, always: the time taken says nothing about which was wrong.
            same_user = hmac.compare_digest(name, user)
            same_password = hmac.compare_digest(secret, password)
            return bool(sep) and same_user and same_password
        return False

    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if bearer is None and user is None:
            return await handler(request)
        if path == "/healthz" or path.startswith("/badge/"):
            return await handler(request)
        if not allowed(request.headers.get("Authorization", "")):
            response = _error(401, "authentication required")
            response.headers["WWW-Authenticate"] = challenge
            return response
        return await handler(request)

    return auth


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except BadRequest as err:
        return _error(400, str(err))
    except web.HTTPException as exc:
        if exc.status >= 400:
            return _error(exc.status, exc.reason)
        raise
    except Exception:  # the one place a bug becomes a 500; never a traceback to the client
        log.exception("web: %s %s failed", request.method, request.path)
        return _error(500, "internal error")


def _security_headers(icon: str | None) -> Middleware:
    # Nothing is loaded from anywhere: no scripts, no frames; styles only inline (the page).
    # The one exception is the origin of `settings.icon`, when it is on another server.
    origin = None if icon is None else icon_origin(icon)
    images = "'self' data:" if origin is None else f"'self' data: {origin}"
    policy = (
        f"default-src 'none'; style-src 'unsafe-inline'; img-src {images}; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    )

    @web.middleware
    async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        headers = response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "no-referrer")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Content-Security-Policy", policy)
        return response

    return security_headers


# --- JSON shapes -------------------------------------------------------------------------------


def _pct(figures: SLAFigures) -> float | None:
    return None if figures.sla is None else round(figures.sla, 4)


def _latest(result: Result | None) -> dict[str, Any] | None:
    if result is None:
        return None
    return {"time": utc_iso(result.time), "status": result.status.value, "message": result.message}


def sla_item(item: ProbeSummary) -> dict[str, Any]:
    """EaseProbe's /api/v1/sla item, plus kind, status and the SLA per window."""
    total = item.total
    return {
        "name": item.info.name,
        "kind": item.info.kind,
        "endpoint": item.info.endpoint,
        "status": item.status.value,
        "sla": {"up": round(total.up_s, 3), "down": round(total.down_s, 3), "sla": _pct(total)},
        "probe_summary": {
            "total": total.checks,
            "up": total.checks - total.checks_down,
            "down": total.checks_down,
        },
        "latest_probe": _latest(item.last),
        "windows": {window: _pct(item.windows[window]) for window in WINDOWS},
    }


def incidents(changes: list[Transition], now: float) -> list[dict[str, Any]]:
    """Outages from status changes: start, end (None while ongoing) and duration."""
    found: list[dict[str, Any]] = []
    start: float | None = None
    for change in changes:
        if change.current is Status.DOWN and start is None:
            start = change.time
        elif change.current is not Status.DOWN and start is not None:
            found.append({"start": start, "end": change.time})
            start = None
    if start is not None:
        found.append({"start": start, "end": None})
    return [
        {
            "start": _iso(item["start"]),
            "end": None if item["end"] is None else _iso(item["end"]),
            "duration_s": round((item["end"] or now) - item["start"], 3),
        }
        for item in reversed(found)
    ]


def _iso(moment: float) -> str:
    from datetime import UTC, datetime

    return utc_iso(datetime.fromtimestamp(moment, UTC))


# --- handlers ----------------------------------------------------------------------------------


async def _page(request: web.Request) -> web.Response:
    html = await request.app[_STATE].page.render(request.query)
    response = web.Response(
        text=html,
        content_type="text/html",
        charset="utf-8",
        headers={"Cache-Control": "no-cache"},
    )
    return _compressed(response)


async def _healthz(request: web.Request) -> web.Response:
    healthy = request.app[_STATE].healthy()
    return web.json_response({"status": "ok" if healthy else "degraded"})


async def _sla(request: web.Request) -> web.Response:
    items = await request.app[_STATE].source.summaries()
    page, _, total = filter_summaries(items, request.query)
    # 1,000 items are ~20 ms of Python: in a thread, so the loop runs between its slices.
    body = await asyncio.to_thread(lambda: json.dumps([sla_item(item) for item in page]))
    response = web.Response(text=body, content_type="application/json")
    response.headers["X-Total-Count"] = str(total)
    return _compressed(response)


async def _probe(request: web.Request) -> web.Response:
    source = request.app[_STATE].source
    name = request.match_info["name"]
    item = await source.summary(name)
    if item is None:
        return _error(404, "no such probe")
    detail = await source.detail(name)
    body = sla_item(item)
    body["labels"] = dict(item.info.labels)
    body["since"] = None if item.since is None else _iso(item.since)
    body["windows"] = {
        w: {**item.windows[w].to_json(), "sla": _pct(item.windows[w])} for w in WINDOWS
    }
    body["results"] = [r.to_json() for r in detail["results"]]
    body["incidents"] = incidents(detail["transitions"], source.now())
    return web.json_response(body)


async def _metrics(request: web.Request) -> web.Response:
    registry = request.app[_STATE].registry
    if registry is None:
        return _error(404, "metrics are not enabled")
    body = exposition(registry)
    return _compressed(web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST}))


def _compressed(response: web.Response) -> web.Response:
    """gzip/deflate when the client accepts it: a page of 100 probes is ~650 KB of repetitive
    HTML, ~10x smaller compressed. aiohttp compresses bodies over 4 KB in a thread."""
    response.enable_compression()
    return response


def _svg(body: str) -> web.Response:
    return web.Response(
        text=body,
        content_type="image/svg+xml",
        headers={"Cache-Control": "max-age=60"},
    )


async def _badge_status(request: web.Request) -> web.Response:
    item = await request.app[_STATE].source.summary(request.match_info["name"])
    if item is None:
        return _error(404, "no such probe")
    return _svg(svg.status_badge(item.info.name, item.status.value))


async def _badge_uptime(request: web.Request) -> web.Response:
    window = request.match_info["window"]
    if window not in WINDOWS:
        return _error(404, f"no such window; one of {', '.join(WINDOWS)}")
    item = await request.app[_STATE].source.summary(request.match_info["name"])
    if item is None:
        return _error(404, "no such probe")
    return _svg(svg.uptime_badge(item.info.name, window, item.windows[window].sla))


async def _badge_response_time(request: web.Request) -> web.Response:
    window = request.match_info["window"]
    if window not in _BADGE_RESPONSE_WINDOWS:
        return _error(404, f"no such window; one of {', '.join(_BADGE_RESPONSE_WINDOWS)}")
    item = await request.app[_STATE].source.summary(request.match_info["name"])
    if item is None:
        return _error(404, "no such probe")
    return _svg(svg.response_time_badge(item.info.name, window, item.windows[window].p95_ms))


def create_app(
    source: StatusSource,
    *,
    registry: CollectorRegistry | None = None,
    token: str | None = None,
    basic: tuple[str, str] | None = None,
    healthy: Callable[[], bool] = lambda: True,
    title: str = "Status",
    icon: str | None = None,
    page: StatusPage | None = None,
) -> web.Application:
    """The server's routes over `source`; `page` shares a StatusPage (and its cache) with
    the App's status-file writer, else one is made with `title` and `icon`."""
    page = page or StatusPage(source, title=title, icon=icon)
    app = web.Application(
        middlewares=[
            _security_headers(page.icon),
            _connection_state,
            _errors,
            _auth_middleware(token, basic),
        ],
        client_max_size=64 * 1024,
    )
    app[_STATE] = _State(source, registry, healthy, page)
    app.router.add_get("/", _page)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/api/v1/sla", _sla)
    # `.+`: probe names may hold a slash (sent as %2F, which the router sees decoded).
    app.router.add_get("/api/v1/probes/{name:.+}", _probe)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/badge/{name:.+}/status.svg", _badge_status)
    app.router.add_get("/badge/{name:.+}/uptime/{window}.svg", _badge_uptime)
    app.router.add_get("/badge/{name:.+}/response-time/{window}.svg", _badge_response_time)
    return app


# --- connections: bounded in number and in time ------------------------------------------------
#
# The checks and the web server share one process and its descriptors: a client must never be
# able to take the ones a check needs (idle connections under a small RLIMIT_NOFILE once made
# every check fail with "too many open files"). So the server keeps at most `max_connections`
# (and at most a quarter of RLIMIT_NOFILE), closing any more the moment they arrive; a request
# head must arrive within HEADER_TIMEOUT of the connection (or of its first byte, between
# keep-alive requests); an idle keep-alive connection is closed after IDLE_TIMEOUT.

HEADER_TIMEOUT = 5.0
IDLE_TIMEOUT = 15.0
_REFUSAL_WARNING_EVERY = 60.0


def connection_cap(requested: int) -> int:
    """`requested`, lowered to a quarter of the soft RLIMIT_NOFILE: the checks, the store and
    the notifiers keep the other three quarters, whatever the web clients do."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):  # no such limit on this platform
        return requested
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return requested
    return max(1, min(requested, soft // 4))


class _Limiter:
    """Connections open now, shared by every connection's _Gate."""

    def __init__(self, limit: int, header_timeout: float) -> None:
        self.limit = limit
        self.header_timeout = header_timeout
        self.active = 0
        self.refused = 0
        self._refused_reported = 0
        self._warned_at: float | None = None

    def refuse(self, loop: asyncio.AbstractEventLoop) -> None:
        self.refused += 1
        now = loop.time()
        if self._warned_at is None or now - self._warned_at >= _REFUSAL_WARNING_EVERY:
            log.warning(
                "web: %d connection(s) closed at once: %d clients connected, the most"
                " allowed (settings.http.max_connections, RLIMIT_NOFILE)",
                self.refused - self._refused_reported,
                self.active,
            )
            self._warned_at = now
            self._refused_reported = self.refused


class _Gate(asyncio.Protocol):
    """One client connection, between the event loop and aiohttp's handler: counted against
    the limit (or closed at once past it), and closed when a request head takes too long.
    Every protocol call is passed on to the handler unchanged."""

    def __init__(self, limiter: _Limiter, handler: Callable[[], asyncio.Protocol]) -> None:
        self._limiter = limiter
        self._make_handler = handler
        self._inner: asyncio.Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._busy = 0  # requests being handled

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        loop = asyncio.get_running_loop()
        if self._limiter.active >= self._limiter.limit:
            transport.abort()  # the descriptor is freed now, not after a goodbye
            self._limiter.refuse(loop)
            return
        self._limiter.active += 1
        self._transport = transport
        self._inner = self._make_handler()
        self._arm()  # a connection that sends nothing is a slow request head too
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        inner, self._inner = self._inner, None
        if inner is not None:
            self._limiter.active -= 1
            inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._inner is None:
            return
        if not self._busy and self._timer is None:
            self._arm()  # the first byte of the next request: its head has HEADER_TIMEOUT
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return None if self._inner is None else self._inner.eof_received()

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    # The middleware reports when aiohttp has a whole request head, and when it is answered.
    def request_started(self) -> None:
        self._busy += 1
        self._disarm()

    def request_done(self) -> None:
        self._busy -= 1

    def _arm(self) -> None:
        self._disarm()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._limiter.header_timeout, self._expired)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self) -> None:
        self._timer = None
        if not self._busy and self._transport is not None:
            self._transport.abort()


@web.middleware
async def _connection_state(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Tells the connection's _Gate that a whole request head arrived (its header timer
    stops) and when the request is answered."""
    transport = request.transport
    gate = None if transport is None else transport.get_protocol()
    if not isinstance(gate, _Gate):
        return await handler(request)
    gate.request_started()
    try:
        return await handler(request)
    finally:
        gate.request_done()


class _GatedSite(web.BaseSite):
    """A TCP site whose connections pass through a _Gate each."""

    __slots__ = ("_host", "_limiter", "_port")

    def __init__(self, runner: web.AppRunner, host: str, port: int, limiter: _Limiter) -> None:
        # The backlog is also how many connections the event loop accepts in one go: small,
        # so a burst holds few descriptors before the gates close the excess.
        super().__init__(runner, backlog=max(8, min(128, limiter.limit)))
        self._host = host
        self._port = port
        self._limiter = limiter

    @property
    def name(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        limiter = self._limiter
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Gate(limiter, server),
            self._host,
            self._port,
            backlog=self._backlog,
            reuse_address=True,
        )


# --- the access log ----------------------------------------------------------------------------

_UNPRINTABLE = re.compile(r"[^\x21-\x7e]")


def _printable(text: str) -> str:
    # One line per request whatever the client sent: anything but visible ASCII %-encoded.
    return _UNPRINTABLE.sub(lambda m: "".join(f"%{b:02X}" for b in m.group().encode()), text)


class _AccessLogger(AbstractAccessLogger):
    """`ADDRESS METHOD PATH STATUS BYTES DURATION`: the path without its query string (a
    token may be in it) and never a header (Authorization)."""

    def log(self, request: BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            "%s %s %s %d %d %.1fms",
            _printable(request.remote or "-"),
            _printable(request.method),
            _printable(request.rel_url.raw_path),
            response.status,
            response.body_length,
            time * 1000,
        )


def _access_log(settings: HTTPAccessLogSettings) -> tuple[logging.Logger, Callable[[], None]]:
    """A logger whose lines a thread writes to the file (the event loop only queues them),
    and the function that stops the thread and closes the file. Raises StartupError when the
    file cannot be opened."""
    path = settings.file
    handler: logging.Handler
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if settings.self_rotate:
            handler = logging.handlers.RotatingFileHandler(
                path,
                maxBytes=settings.size * 1024 * 1024,
                backupCount=settings.backups,
                encoding="utf-8",
            )
        else:
            # An outside tool rotates: the file is reopened once it has been moved away.
            handler = logging.handlers.WatchedFileHandler(path, encoding="utf-8")
    except OSError as err:
        reason = err.strerror or str(err)
        raise StartupError(f"settings.http.log.file: cannot open {path}: {reason}") from None
    formatter = logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%dT%H:%M:%SZ")
    formatter.converter = _gmtime
    handler.setFormatter(formatter)
    lines: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    listener = logging.handlers.QueueListener(lines, handler)
    # Not in the logging manager's tree: its lines go to the file only, never to probe's log.
    logger = logging.Logger("probe.web.access", logging.INFO)
    logger.propagate = False
    logger.addHandler(logging.handlers.QueueHandler(lines))
    listener.start()

    def stop() -> None:
        listener.stop()  # writes what is queued, then ends the thread
        handler.close()

    return logger, stop


def _gmtime(seconds: float | None) -> time.struct_time:
    return time.gmtime(seconds)


async def start_server(
    app: web.Application,
    host: str,
    port: int,
    *,
    max_connections: int = 100,
    access_log: HTTPAccessLogSettings | None = None,
    header_timeout: float = HEADER_TIMEOUT,
    idle_timeout: float = IDLE_TIMEOUT,
) -> tuple[web.AppRunner, int]:
    """Serve `app` on host:port (0 = any free port), at most `max_connections` clients at
    once (see connection_cap), each closed when a request head takes over `header_timeout`
    or it idles `idle_timeout` between requests; `access_log` writes one line per request.
    Raises OSError when the port is taken, StartupError when the access log cannot be
    opened."""
    stop_log: Callable[[], None] | None = None
    options: dict[str, Any] = {"access_log": None}
    if access_log is not None:
        logger, stop_log = _access_log(access_log)
        options = {"access_log": logger, "access_log_class": _AccessLogger}
        stopper = stop_log

        async def close_log(_app: web.Application) -> None:
            await asyncio.to_thread(stopper)

        app.on_cleanup.append(close_log)
    limit = connection_cap(max_connections)
    if limit < max_connections:
        log.info(
            "web: at most %d connections (a quarter of RLIMIT_NOFILE), not %d",
            limit,
            max_connections,
        )
    runner = web.AppRunner(app, keepalive_timeout=idle_timeout, **options)
    await runner.setup()
    site = _GatedSite(runner, host, port, _Limiter(limit, header_timeout))
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    bound = runner.addresses[0][1] if runner.addresses else port
    return runner, int(bound)
